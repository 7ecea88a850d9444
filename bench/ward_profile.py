"""Ward profile benchmark on the demo city: server time from a ward click to its complete
profile page, through streamlit.testing (the app's own scripts run, no browser), against the
per-ward briefing measured in the same run.

    python bench/ward_profile.py [--repeat 3] [--wards 5] [--db PATH]

Each pass is one new session with empty caches: it opens the profile of one ward (that first
click reads the city-wide parts: hotspots, areas, early warnings, and now the briefing's
ranking, windows and every ward's counts, once per filter), then clicks ``--wards`` other
wards, timed. "Before" is the same page with the briefing read for each ward alone, every
city-wide figure read again and one scipy test per change, as the page did it before the
briefing's city-wide parts were shared (the reference that ``tests/test_briefing_fast.py``
holds the shared path to); "after" is the page as it is. The passes alternate, so a drift in
the machine's speed touches both sides. The last line printed is one JSON object:
``{"bench": "ward_profile", "before_s": ..., "after_s": ..., "ratio": ...}`` (medians of the
timed clicks; ``ratio`` is after over before), with the briefing alone timed alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _reference():
    """The per-ward briefing kept in the tests, loaded from its file."""
    spec = importlib.util.spec_from_file_location(
        "briefing_reference", REPO / "tests" / "test_briefing_fast.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_briefing


class Before:
    """Swaps the page's shared briefing calls for the per-ward reading, and back."""

    def __init__(self) -> None:
        from app import briefing
        from app.dashboard import cached

        self.briefing, self.cached = briefing, cached
        self.originals = (cached.briefing_inputs, briefing.ward_inputs, briefing.ward_briefing_from)
        self.reference = _reference()

    def on(self) -> None:
        from app.dashboard import ui
        from app.filters import datasets_in

        briefing, reference = self.briefing, self.reference

        def per_ward(inputs, local, *, areas=None, interventions=None):
            (stamp, f, own), code = inputs, local
            con = ui.warehouse(stamp)
            old = reference(con, f, code, own_windows=own)
            if areas is None:
                return old
            if interventions is None:
                interventions = bool((datasets_in(con, f)["kind"] == "intervention").any())
            mine = briefing.areas_in_ward(areas, code)
            said = old.sentences + briefing.area_sentences(mine, interventions)
            return dataclasses.replace(old, sentences=said, areas=mine)

        self.cached.briefing_inputs = lambda stamp, f, own: (stamp, f, own)
        briefing.ward_inputs = lambda con, inputs, code: code
        briefing.ward_briefing_from = per_ward

    def off(self) -> None:
        self.cached.briefing_inputs, self.briefing.ward_inputs, self.briefing.ward_briefing_from = (
            self.originals
        )


def run_pass(app: str, codes: list[str]) -> list[float]:
    """One session: the first ward's profile (not timed), then each other ward's, timed."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    at = AppTest.from_file(app, default_timeout=600)
    at.run()
    at.query_params["ward"] = codes[0]
    at.switch_page("screens/ward.py").run()
    assert not at.exception, at.exception
    seconds = []
    for code in codes[1:]:
        t = time.perf_counter()
        at.selectbox(key="ward_pick").set_value(code).run()
        seconds.append(time.perf_counter() - t)
        assert not at.exception, at.exception
    return seconds


def briefing_pass(db: str, codes: list[str], before: bool) -> list[float]:
    """The briefing alone, ward after ward: the per-ward reading, or the shared inputs read
    once (not timed, as the page caches them) and each ward's part."""
    from app import briefing
    from app.filters import Filter
    from app.warehouse import connect

    con = connect(db, read_only=True)
    seconds = []
    if before:
        reference = _reference()
        for code in codes[1:]:
            t = time.perf_counter()
            reference(con, Filter(), code)
            seconds.append(time.perf_counter() - t)
    else:
        inputs = briefing.city_briefing_inputs(con, Filter())
        for code in codes[1:]:
            t = time.perf_counter()
            briefing.ward_briefing_from(inputs, briefing.ward_inputs(con, inputs, code))
            seconds.append(time.perf_counter() - t)
    con.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wards", type=int, default=5)
    parser.add_argument("--db", default=str(REPO / "data" / "warehouse.duckdb"))
    args = parser.parse_args()
    # Loads are idempotent: this builds the warehouse if it is missing or outdated, else skips.
    subprocess.run([sys.executable, "-m", "app", "load", "--db", args.db], cwd=REPO, check=True)
    os.environ["COMMON_GROUND_DB"] = args.db

    from app.warehouse import connect

    con = connect(args.db, read_only=True)
    every = [c for (c,) in con.execute("SELECT code FROM wards ORDER BY code").fetchall()]
    con.close()
    step = max(1, len(every) // (args.wards + 1))
    codes = every[::step][: args.wards + 1]
    app = str(REPO / "app" / "dashboard" / "streamlit_app.py")
    before = Before()
    run_pass(app, codes[:2])  # warms DuckDB and the files, for both sides
    page: dict[bool, list[float]] = {True: [], False: []}
    alone: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.repeat):
        for side in (True, False) if i % 2 == 0 else (False, True):
            before.on() if side else before.off()
            try:
                page[side] += run_pass(app, codes)
            finally:
                before.off()
            alone[side] += briefing_pass(args.db, codes, side)
    before_s, after_s = statistics.median(page[True]), statistics.median(page[False])
    out = {
        "bench": "ward_profile",
        "repeat": args.repeat,
        "wards": len(codes) - 1,
        "before_s": round(before_s, 3),
        "after_s": round(after_s, 3),
        "ratio": round(after_s / before_s, 3),
        "after_max_s": round(max(page[False]), 3),
        "briefing_before_s": round(statistics.median(alone[True]), 3),
        "briefing_after_s": round(statistics.median(alone[False]), 3),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
