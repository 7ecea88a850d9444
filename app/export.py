"""Exports for analysts: hex, ward, hotspot and emerging-hotspot tables as CSV, GeoJSON or
Parquet, each with a JSON sidecar saying what was filtered, which disclosure rule was applied,
and which data (and load) it came from. The dashboard's download buttons call the same code.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import h3
import pandas as pd
import shapely

from app.aggregate import check_hex_res, hex_aggregate, ward_aggregate
from app.disclosure import DEFAULT_RULE, Rule
from app.emerging import emerging_hotspots
from app.filters import Filter, datasets_in, validate
from app.hotspots import hex_hotspots
from app.quality import load_report, study_area
from app.trends import coverage_note

KINDS = ("hexes", "wards", "hotspots", "emerging")
FORMATS = ("csv", "geojson", "parquet")

HEX_COLUMNS = [
    "h3_cell",
    "resolution",
    "cell_lat",
    "cell_lng",
    "dataset",
    "agency",
    "kind",
    "count",
    "weight",
]
WARD_COLUMNS = [
    "ward_code",
    "ward_name",
    "dataset",
    "agency",
    "kind",
    "count",
    "rate_per_1000",
    "per_km2",
    "share",
    "previous_count",
    "change",
    "change_pct",
    "suppressed",
    "period_start",
    "period_end",
    "compared_count",
    "compared_start",
    "compared_end",
    "previous_start",
    "previous_end",
    "comparison",
]
HOTSPOT_COLUMNS = [
    "h3_cell",
    "resolution",
    "cell_lat",
    "cell_lng",
    "count",
    "suppressed",
    "z",
    "p",
    "p_fdr",
    "bin",
]
EMERGING_COLUMNS = [
    *HOTSPOT_COLUMNS,
    "pattern",
    "trend_z",
    "trend_p",
    "count_trend_z",
    "count_trend_p",
    "hot_steps",
    "cold_steps",
    "steps",
]


@dataclass
class Export:
    frame: pd.DataFrame
    metadata: dict
    geometry: str  # "hex" or "ward": how GeoJSON draws each row


def build(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    f: Filter,
    res: int = 8,
    k: int = 1,
    step: str = "month",
    rule: Rule = DEFAULT_RULE,
) -> Export:
    """The table and its metadata; raises ValueError (or FilterError) on bad arguments."""
    if kind not in KINDS:
        raise ValueError(f"unknown export '{kind}': choose one of {', '.join(KINDS)}")
    f = validate(con, f)
    warnings: list[str] = []
    if kind == "hexes":
        frame = _whole_numbers(hex_aggregate(con, f, check_hex_res(res), rule)[HEX_COLUMNS], ("count",))
        geometry = "hex"
    elif kind == "wards":
        frame = _whole_numbers(ward_aggregate(con, f, rule)[WARD_COLUMNS], WARD_COUNTS)
        geometry = "ward"
    elif kind == "hotspots":
        result, stats = hex_hotspots(con, f, check_hex_res(res), k, rule)
        frame = result[HOTSPOT_COLUMNS]
        warnings += [stats.warning] if stats.warning else []
        geometry = "hex"
    else:
        result = emerging_hotspots(con, f, check_hex_res(res), step, k, rule)
        from scipy.stats import norm

        result["p"] = 2 * norm.sf(result["z"].abs())
        frame = result[EMERGING_COLUMNS]
        geometry = "hex"
    note = coverage_note(con, f)
    warnings += [note] if note else []
    selected = datasets_in(con, f)
    metadata = {
        "export": kind,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "filters": f.describe(),
        "resolution": res if geometry == "hex" else None,
        "k": k if kind in ("hotspots", "emerging") else None,
        "step": step if kind == "emerging" else None,
        "rows": len(frame),
        # Hotspot and emerging files pool the selected datasets into one figure per cell.
        "datasets": selected["id"].tolist(),
        "pooled": kind in ("hotspots", "emerging"),
        "dataset_spans": [
            {"id": r.id, "from": _day(r.time_min), "to": _day(r.time_max)} for r in selected.itertuples()
        ],
        "suppression": rule.as_dict(),
        "data_vintage": _vintage(con),
        "load_report": [
            {
                key: d.get(key)
                for key in (
                    "id",
                    "title",
                    "agency",
                    "kind",
                    "sharing",
                    "rows_read",
                    "rows_loaded",
                    "rows_quarantined",
                    "time_min",
                    "time_max",
                )
            }
            for d in load_report(con, f.access)
        ],
        "attribution": sorted(
            {
                a
                for (i, a) in con.execute("SELECT id, attribution FROM datasets").fetchall()
                if a and f.access.may_see(i)
            }
        ),
        "warnings": warnings,
    }
    return Export(frame.reset_index(drop=True), metadata, geometry)


WARD_COUNTS = ("count", "compared_count", "previous_count", "change")


def _whole_numbers(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Counts as whole numbers in every format (``43860``, not ``43860.0``); a suppressed or
    missing figure stays empty."""
    return frame.assign(**{c: frame[c].round().astype("Int64") for c in columns if c in frame})


def _day(value) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _vintage(con: duckdb.DuckDBPyConnection) -> dict:
    area = study_area(con)
    loaded = con.execute("SELECT max(loaded_at) FROM datasets").fetchall()[0][0]
    return {
        "study_area": area.get("name"),
        "boundaries": area.get("vintage") or area.get("boundaries"),
        "loaded_at": loaded.isoformat() if loaded else None,
    }


def to_bytes(con: duckdb.DuckDBPyConnection, export: Export, fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}': choose one of {', '.join(FORMATS)}")
    frame = export.frame
    if fmt == "csv":
        return frame.to_csv(index=False).encode("utf-8")
    if fmt == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    return json.dumps(_geojson(con, export), default=str).encode("utf-8")


def _geojson(con: duckdb.DuckDBPyConnection, export: Export) -> dict:
    frame = export.frame
    if export.geometry == "ward":
        shapes = dict(con.execute("SELECT code, geojson FROM wards").fetchall())
        geoms = [json.loads(shapes[c]) for c in frame["ward_code"]]
    else:
        geoms = [
            shapely.geometry.mapping(shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]))
            for c in frame["h3_cell"]
        ]
    records = json.loads(frame.to_json(orient="records", date_format="iso"))
    features = [
        {"type": "Feature", "geometry": g, "properties": props}
        for g, props in zip(geoms, records, strict=True)
    ]
    return {"type": "FeatureCollection", "metadata": export.metadata, "features": features}


def write(con: duckdb.DuckDBPyConnection, export: Export, fmt: str, out: Path) -> Path:
    """Write the export and its sidecar (``out`` + ``.json``); return the sidecar's path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_bytes(con, export, fmt))
    sidecar = out.with_name(out.name + ".json")
    sidecar.write_text(
        json.dumps({**export.metadata, "file": out.name, "format": fmt}, indent=2, default=str)
    )
    return sidecar
