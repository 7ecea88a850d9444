"""Dashboard benchmark on the demo city: how soon the first page is usable, and how fast the map
redraws after a filter change, through streamlit.testing (the app's own script runs, no browser),
against the engine's uncached time for the same figures, measured in the same run.

    python bench/dashboard.py [--repeat 5]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", default=str(REPO / "data" / "warehouse.duckdb"))
    args = parser.parse_args()
    # Loads are idempotent: this builds the warehouse if it is missing or outdated, else skips.
    subprocess.run([sys.executable, "-m", "app", "load", "--db", args.db], cwd=REPO, check=True)
    os.environ["COMMON_GROUND_DB"] = args.db
    from streamlit.testing.v1 import AppTest

    from app.aggregate import hex_totals, ward_aggregate
    from app.filters import Filter
    from app.warehouse import connect

    app = str(REPO / "app" / "dashboard" / "streamlit_app.py")
    t = time.perf_counter()
    at = AppTest.from_file(app, default_timeout=120)
    at.query_params["layers"] = "wards,density,outlines"
    at.run()
    first_page = time.perf_counter() - t
    assert not at.exception, at.exception

    choices = [["council_env"], ["police_crime"], ["ambulance"], ["fire_incidents"], []]
    redraws, cold = [], []
    for i in range(args.repeat):
        for datasets in choices:
            t = time.perf_counter()
            at.multiselect(key="f_datasets").set_value(datasets).run()
            # The first round computes (cold); later rounds find the figures cached.
            (cold if i == 0 else redraws).append(time.perf_counter() - t)
            assert not at.exception, at.exception

    con = connect(args.db, read_only=True)
    engine = []
    for _ in range(args.repeat):
        for datasets in choices:
            f = Filter(datasets=tuple(datasets))
            t = time.perf_counter()
            ward_aggregate(con, f, by_dataset=False)
            hex_totals(con, f, 8)
            engine.append(time.perf_counter() - t)
    con.close()
    print(
        json.dumps(
            {
                "bench": "dashboard",
                "first_page_s": round(first_page, 2),
                "filter_change_cold_median_s": round(statistics.median(cold), 3),
                "filter_change_cold_max_s": round(max(cold), 3),
                "filter_change_cached_median_s": round(statistics.median(redraws), 3),
                "engine_median_s": round(statistics.median(engine), 3),
                "cold_redraw_vs_engine": round(statistics.median(cold) / statistics.median(engine), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
