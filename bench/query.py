"""Query benchmark: map-sized hex aggregates at several resolutions and a ward aggregate over a
warehouse of 10M events, against an in-memory numpy baseline on the same events (parent cells by
the same bit arithmetic, counted with np.unique) measured in the same run; then the same map
questions asked of the store folder written from that warehouse (``app.store.layout``), where
the aggregate cube or its monthly roll-up answers them, with the ratio of the two.

    python bench/query.py [--events 10000000] [--repeat 7]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ingest import write_input  # noqa: E402

from app import store  # noqa: E402
from app.aggregate import hex_aggregate, raw_hex_counts, ward_aggregate, ward_counts  # noqa: E402
from app.filters import Filter, validate  # noqa: E402
from app.h3cells import parent_np  # noqa: E402
from app.ingest import load  # noqa: E402
from app.store.duckdb import open_store  # noqa: E402
from app.store.layout import write_store  # noqa: E402
from app.warehouse import connect  # noqa: E402


def median_ms(fn, repeat: int) -> float:
    fn()  # warm caches, as a dashboard would have them
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_input(Path(tmp), args.events)
        load(folder / "catalog.toml", folder / "w.duckdb")
        con = connect(folder / "w.duckdb", read_only=True)
        loaded = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        f = Filter()
        figures = {}
        for res in (7, 9, 11):
            figures[f"hex_sql_res{res}_ms"] = median_ms(lambda r=res: raw_hex_counts(con, f, r), args.repeat)
        figures["hex_full_res9_ms"] = median_ms(lambda: hex_aggregate(con, f, 9), args.repeat)
        # At resolution 11 the whole city is over 100,000 cells; a map shows its visible area.
        west, south, east, north = json.loads(
            con.execute("SELECT value FROM meta WHERE key = 'study_area'").fetchall()[0][0]
        )["bounds"]
        view = Filter(
            bbox=(
                west + 0.35 * (east - west),
                south + 0.35 * (north - south),
                west + 0.65 * (east - west),
                south + 0.65 * (north - south),
            )
        )
        figures["hex_sql_res11_view_cells"] = len(raw_hex_counts(con, view, 11))
        figures["hex_sql_res11_view_ms"] = median_ms(lambda: raw_hex_counts(con, view, 11), args.repeat)
        figures["ward_ms"] = median_ms(lambda: ward_aggregate(con, f), args.repeat)
        cells = next(iter(con.execute("SELECT h3 FROM events").fetchnumpy().values())).astype(np.uint64)
        baseline = median_ms(lambda: np.unique(parent_np(cells, 9), return_counts=True), args.repeat)
        t = time.perf_counter()
        manifest = write_store(con, folder / "store")
        figures["store_write_s"] = round(time.perf_counter() - t, 2)
        figures["cube_rows"] = manifest["tables"]["cube"]["rows"]
        figures["rollup_rows"] = manifest["tables"]["rollup"]["rows"]
        figures |= _cube_figures(con, open_store(folder / "store"), args.repeat)
        con.close()
    print(
        json.dumps(
            {
                "bench": "query",
                "events": loaded,
                **figures,
                "numpy_baseline_res9_ms": baseline,
                "ratio_vs_numpy_res9": round(baseline / figures["hex_sql_res9_ms"], 2),
            }
        )
    )


def _cube_figures(events_con, cube_con, repeat: int) -> dict:
    """The map's questions (a hex aggregate at resolution 9 and a ward aggregate, for a year of
    whole months and for 90 days) from the records and from the store's cube, in one run."""
    figures = {}
    questions = {
        "year": Filter(start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31)),
        "days": Filter(start=dt.date(2024, 2, 10), end=dt.date(2024, 5, 9)),
    }
    for name, f in questions.items():
        fe, fc = validate(events_con, f), validate(cube_con, f)
        figures[f"source_{name}"] = store.cube_source(cube_con, fc, 9)
        for label, con, g in (("events", events_con, fe), ("cube", cube_con, fc)):
            figures[f"hex_res9_{name}_{label}_ms"] = median_ms(
                lambda c=con, g=g: raw_hex_counts(c, g, 9), repeat
            )
            figures[f"ward_{name}_{label}_ms"] = median_ms(lambda c=con, g=g: ward_counts(c, g, True), repeat)
        for kind in ("hex_res9", "ward"):
            events_ms, cube_ms = figures[f"{kind}_{name}_events_ms"], figures[f"{kind}_{name}_cube_ms"]
            figures[f"{kind}_{name}_ratio"] = round(events_ms / max(cube_ms, 0.1), 1)
    figures["ward_aggregate_events_ms"] = median_ms(lambda: ward_aggregate(events_con, Filter()), repeat)
    figures["ward_aggregate_cube_ms"] = median_ms(lambda: ward_aggregate(cube_con, Filter()), repeat)
    return figures


if __name__ == "__main__":
    main()
