"""What the warehouse holds and how it got there: catalogue, load report, quarantined rows.

Plain functions over a DuckDB connection, shared by the Data page and the tests. Quarantined
rows of ``restricted`` datasets are never returned raw: their reasons and counts are enough to
fix a feed, and their content is a partner agency's to show.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import shapely

from app.ingest import REASONS


def catalogue(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        """
        SELECT id, title, agency, kind, sharing, owner, licence, attribution,
               loaded_at
        FROM datasets ORDER BY kind, agency, id
        """
    ).df()


def load_report(con: duckdb.DuckDBPyConnection) -> list[dict]:
    rows = con.execute("SELECT report_json FROM datasets ORDER BY kind, agency, id").fetchall()
    return [json.loads(r[0]) for r in rows]


def report_table(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per dataset: rows read, loaded, quarantined, share quarantined, period."""
    frame = pd.DataFrame(
        [
            {
                "dataset": r["id"],
                "agency": r["agency"],
                "kind": r["kind"],
                "rows read": r["rows_read"],
                "loaded": r["rows_loaded"],
                "quarantined": r["rows_quarantined"],
                "quarantined %": round(100 * r["rows_quarantined"] / r["rows_read"], 2)
                if r["rows_read"]
                else 0.0,
                "empty category": r.get("category_unknown", 0),
                "from": (r.get("time_min") or "")[:10],
                "to": (r.get("time_max") or "")[:10],
            }
            for r in load_report(con)
        ]
    )
    return frame


def quarantine_by_reason(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    frame = con.execute(
        """
        SELECT dataset, reason, count(*) AS rows
        FROM quarantine GROUP BY dataset, reason ORDER BY dataset, rows DESC
        """
    ).df()
    frame["meaning"] = frame["reason"].map(REASONS).fillna("")
    return frame


def quarantine_sample(
    con: duckdb.DuckDBPyConnection, dataset: str, reason: str | None = None, limit: int = 20
) -> pd.DataFrame:
    """A few quarantined rows with file, row and column, for an analyst to show the owner."""
    sharing = con.execute("SELECT sharing FROM datasets WHERE id = ?", [dataset]).fetchall()[0]
    if sharing is None:
        raise KeyError(f"no dataset '{dataset}' in the warehouse")
    raw = "raw" if sharing[0] != "restricted" else "'(withheld: restricted dataset)'"
    return con.execute(
        f"""
        SELECT source_file AS file, source_row AS row, reason, column_name AS column, {raw} AS raw
        FROM quarantine
        WHERE dataset = $dataset AND ($reason IS NULL OR reason = $reason)
        ORDER BY source_file, source_row
        LIMIT $limit
        """,
        {"dataset": dataset, "reason": reason, "limit": int(limit)},
    ).df()


def ward_shapes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every ward's code, name, GeoJSON outline and a point inside it to label it by (a
    representative point, inside even a crescent-shaped ward, where a centroid may not be)."""
    frame = con.execute("SELECT code AS ward_code, name AS ward_name, geojson, geom_wkb FROM wards").df()
    geoms = shapely.from_wkb([bytes(b) for b in frame["geom_wkb"]])
    labels = shapely.point_on_surface(geoms)
    frame["label_lng"] = shapely.get_x(labels)
    frame["label_lat"] = shapely.get_y(labels)
    return frame.drop(columns=["geom_wkb"])


def study_area(con: duckdb.DuckDBPyConnection) -> dict:
    row = con.execute("SELECT value FROM meta WHERE key = 'study_area'").fetchall()[0]
    return json.loads(row[0]) if row else {}
