"""What the warehouse holds and how it got there: catalogue, load report, quarantined rows.

Plain functions over a DuckDB connection, shared by the Data page and the tests. Quarantined
rows of ``restricted`` datasets are never returned raw: their reasons and counts are enough to
fix a feed, and their content is a partner agency's to show.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import shapely

from app import store
from app.access import AccessContext
from app.disclosure import OTHER_AGENCIES, agency_table
from app.ingest import REASONS


def _sees(access: AccessContext | None, dataset: str) -> bool:
    return access is None or access.may_see(dataset)


def catalogue(con: duckdb.DuckDBPyConnection, access: AccessContext | None = None) -> pd.DataFrame:
    """The catalogue rows of the datasets the viewer (``access``; None: anyone) may see."""
    frame = con.execute(
        """
        SELECT id, title, agency, kind, sharing, owner, licence, attribution,
               loaded_at
        FROM datasets ORDER BY kind, agency, id
        """
    ).df()
    seen = [_sees(access, i) for i in frame["id"]]
    return frame[pd.Series(seen, index=frame.index, dtype=bool)].reset_index(drop=True)


def load_report(con: duckdb.DuckDBPyConnection, access: AccessContext | None = None) -> list[dict]:
    """Each dataset's load report as the dashboard and exports show it: a partners' or
    restricted dataset's first and last times in whole months (as ``filters.span_sql``). Only
    the datasets the viewer (``access``) may see."""
    rows = con.execute("SELECT id, report_json FROM datasets ORDER BY kind, agency, id").fetchall()
    return [_released_span(json.loads(r[1])) for r in rows if _sees(access, r[0])]


def _released_span(report: dict) -> dict:
    if report.get("sharing") not in ("partners", "restricted") or not report.get("time_min"):
        return report
    first = pd.Timestamp(report["time_min"]).to_period("M")
    last = pd.Timestamp(report["time_max"]).to_period("M")
    return {
        **report,
        "time_min": first.start_time.isoformat(),
        "time_max": last.end_time.floor("s").isoformat(),
    }


def report_table(con: duckdb.DuckDBPyConnection, access: AccessContext | None = None) -> pd.DataFrame:
    """One row per dataset: rows read, loaded, quarantined, share quarantined, period, how
    precise its locations are, and warnings (a reload that lost most of its rows)."""
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
                "locations": (r.get("location_precision") or {}).get("note", ""),
                "warnings": "; ".join(r.get("warnings", [])),
            }
            for r in load_report(con, access)
        ]
    )
    return frame


def quarantine_by_reason(con: duckdb.DuckDBPyConnection, access: AccessContext | None = None) -> pd.DataFrame:
    """Quarantined rows per dataset (of those the viewer may see) and reason."""
    frame = con.execute(
        """
        SELECT dataset, reason, count(*) AS rows
        FROM quarantine GROUP BY dataset, reason ORDER BY dataset, rows DESC
        """
    ).df()
    seen = [_sees(access, d) for d in frame["dataset"]]
    frame = frame[pd.Series(seen, index=frame.index, dtype=bool)].reset_index(drop=True)
    frame["meaning"] = frame["reason"].map(REASONS).fillna("")
    return frame


def quarantine_sample(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    reason: str | None = None,
    limit: int = 20,
    access: AccessContext | None = None,
) -> pd.DataFrame:
    """A few quarantined rows with file, row and column, for an analyst to show the owner. The
    file is named, not its path on the server. A dataset the viewer may not see is answered as
    one that does not exist."""
    found = con.execute("SELECT sharing FROM datasets WHERE id = ?", [dataset]).fetchall()
    sharing = found[0] if found and _sees(access, dataset) else None
    if sharing is None:
        raise KeyError(f"no dataset '{dataset}' in the warehouse")
    raw = "raw" if sharing[0] != "restricted" else "'(withheld: restricted dataset)'"
    return con.execute(
        f"""
        SELECT regexp_extract(source_file, '[^/\\\\]+$') AS file, source_row AS row, reason,
               column_name AS column, {raw} AS raw
        FROM quarantine
        WHERE dataset = $dataset AND ($reason IS NULL OR reason = $reason)
        ORDER BY source_file, source_row
        LIMIT $limit
        """,
        {"dataset": dataset, "reason": reason, "limit": int(limit)},
    ).df()


_METRES_PER_DEGREE = 111_320.0
_CHAR_WIDTH = 0.6  # a monospace glyph's width, in font sizes (deck.gl's TextLayer font)


def ward_shapes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every ward's code, name and GeoJSON outline, with where and how large to write its name
    (``label_lng``, ``label_lat``, and ``label_m``, a font size in metres) so that the name lies
    inside its ward: names of small neighbouring wards never overlap, whatever the zoom."""
    frame = con.execute("SELECT code AS ward_code, name AS ward_name, geojson, geom_wkb FROM wards").df()
    geoms = shapely.from_wkb([bytes(b) for b in frame["geom_wkb"]])
    placed = np.array([label_place(g, len(n)) for g, n in zip(geoms, frame["ward_name"], strict=True)])
    frame["label_lng"], frame["label_lat"], frame["label_m"] = placed.reshape(-1, 3).T
    return frame.drop(columns=["geom_wkb"])


def label_place(ward: shapely.Geometry, chars: int) -> tuple[float, float, float]:
    """The centre and font size (metres) of a large name box that fits inside ``ward``.

    A name is a wide box, about 0.6 font sizes per character by one high. Two centres are
    tried: that of the largest circle inside the ward (inside even a crescent, where a centroid
    would not be), and that of the largest circle inside the ward stretched across until the
    name's box is a square. The box grows from each until it would cross the boundary."""
    lng0, lat0 = ward.centroid.x, ward.centroid.y
    metres = np.array([_METRES_PER_DEGREE * np.cos(np.radians(lat0)), _METRES_PER_DEGREE])
    width = _CHAR_WIDTH * max(chars, 1)  # the box's width in font sizes
    local = shapely.transform(ward, lambda xy: (xy - [lng0, lat0]) * metres)
    shapely.prepare(local)
    best = (0.0, 0.0, 0.0)
    for stretch in (1.0, width):
        shape = shapely.transform(local, lambda xy, k=stretch: xy / [k, 1])
        # To 1 % of the ward's scale: finer costs time (a city of 1,000 areas) and gains nothing.
        circle = shapely.maximum_inscribed_circle(shape, tolerance=0.01 * np.sqrt(shape.area))
        (x, y), _ = shapely.get_coordinates(circle)
        centre = (x * stretch, y)
        size = _grow_box(local, centre, width, circle.length / np.hypot(width / 2 / stretch, 0.5))
        best = max(best, (size, *centre))
    size, x, y = best
    return lng0 + x / metres[0], lat0 + y / metres[1], size


def _grow_box(ward: shapely.Geometry, centre: tuple[float, float], width: float, fits: float) -> float:
    """The largest font size (to a few per cent) whose box around ``centre`` lies in ``ward``,
    starting from one that ``fits``."""
    too_big = 4 * fits
    for _ in range(6):
        size = np.sqrt(fits * too_big)
        half_w, half_h = width * size / 2, size / 2
        box = shapely.box(centre[0] - half_w, centre[1] - half_h, centre[0] + half_w, centre[1] + half_h)
        fits, too_big = (size, too_big) if ward.contains(box) else (fits, size)
    return fits


def study_area(con: duckdb.DuckDBPyConnection) -> dict:
    row = con.execute("SELECT value FROM meta WHERE key = 'study_area'").fetchall()[0]
    return json.loads(row[0]) if row else {}


def dataset_agencies(
    con: duckdb.DuckDBPyConnection, threshold: int = 5, access: AccessContext | None = None
) -> dict[str, list[str]]:
    """The agencies each dataset's records name: most records first for an open dataset; for a
    partners' or restricted one, only those with at least ``threshold`` records, in alphabetical
    order, so that the list tells neither that an agency has one to four records nor how the
    agencies rank. A file that holds several agencies (``agency_column``) has one catalogue
    agency, but its rows say whose they are. Only the datasets the viewer (``access``) may see;
    a protected one they see exactly lists every agency. A file of several agencies they see
    released also lists the plain unit its rare agencies are counted under, rare agency or
    not (``app.disclosure.OTHER_AGENCIES``)."""
    rows = store.agency_counts_by_dataset(con, access)
    found: dict[str, list[str]] = {}
    for dataset, agency, n, sharing in rows:
        if sharing in ("partners", "restricted"):
            if n >= threshold:
                found[dataset] = sorted([*found.get(dataset, []), agency])
        else:
            found.setdefault(dataset, []).append(agency)
    for dataset in agency_table(con, access):
        found[dataset] = [*found.get(dataset, []), OTHER_AGENCIES]
    return found


def skipped_uploads() -> list[str]:
    """Datasets added through the dashboard that the next load will skip (their file deleted,
    the uploads list edited into invalid TOML), each naming the list and the entry; nothing
    when the catalogue itself cannot be read (the load says why)."""
    from app.catalog import CatalogError, load_catalog
    from app.db import catalog_path, warehouse_path
    from app.ingest import uploads_path

    try:
        return list(load_catalog(catalog_path(), uploads_path(warehouse_path())).skipped)
    except (CatalogError, OSError):
        return []
