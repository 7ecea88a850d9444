"""Query benchmark: map-sized hex aggregates at several resolutions and a ward aggregate over a
warehouse of 10M events, against an in-memory numpy baseline on the same events (parent cells by
the same bit arithmetic, counted with np.unique) measured in the same run.

    python bench/query.py [--events 10000000] [--repeat 7]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
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

from app.aggregate import hex_aggregate, raw_hex_counts, ward_aggregate  # noqa: E402
from app.filters import Filter  # noqa: E402
from app.h3cells import parent_np  # noqa: E402
from app.ingest import load  # noqa: E402
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


if __name__ == "__main__":
    main()
