"""Dashboard benchmark on the demo city: server time and bytes sent for the actions people feel
(the map's default view, a category change, adding the overlap layer, a ward click to its
complete profile, and a filter change), through streamlit.testing (the app's own scripts run,
no browser), against a baseline measured in the same run: the same app sending ward shapes in
full detail and pydeck's indented JSON, as the map did before.

    python bench/dashboard.py [--repeat 3] [--db PATH]

Bytes are those of the elements each run draws (their protobuf messages). "Sent" counts an
element of 10 kB or more only the first time the session draws it: Streamlit sends an element
the browser already holds as a reference to it (its forward-message cache). The last line
printed is one JSON object with the figures.

    python bench/dashboard.py --filters [--changes 8] [--repeat 3] [--against DIR]

times filter changes alone: in one session on the default map, ``--changes`` category changes
(each to a category not chosen before, so each computes) and as many period changes, with the
server's wall time and the process's CPU time (``time.process_time``, all threads, DuckDB's
too: far less sensitive than wall time to other work on a shared machine), median over every
change of ``--repeat`` passes, each pass a fresh process. ``--against DIR`` measures another
copy of the app the same way, alternating with this one in the same run (for instance the last
commit: ``git archive HEAD | tar -x -C DIR``), and prints the ratios.

Both modes share one compiled copy of each page between runs: AppTest compiles every script
again on every run, which a server does once (about 0.25 s a run on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHED_MIN = 10_000  # Streamlit's global.minCachedMessageSize


def _elements(node):
    """Every element of an AppTest tree (blocks are walked, not counted)."""
    children = getattr(node, "children", None)
    if children:
        for child in children.values():
            yield from _elements(child)
    elif getattr(node, "proto", None) is not None:
        yield node


def share_script_cache() -> None:
    """One ScriptCache for every AppTest run, as a server has: AppTest makes a new one per run,
    so each run would compile the entry point and the page again."""
    import streamlit.testing.v1.app_test as app_test
    import streamlit.testing.v1.local_script_runner as runner
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache

    shared = ScriptCache()
    app_test.ScriptCache = runner.ScriptCache = lambda: shared


class Session:
    """One browser session: an AppTest and the large elements the browser already holds."""

    def __init__(self, app: str) -> None:
        from streamlit.testing.v1 import AppTest

        self.at = AppTest.from_file(app, default_timeout=300)
        self.held: set[bytes] = set()

    def act(self, step: Callable) -> dict:
        t, cpu = time.perf_counter(), time.process_time()
        step(self.at)
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        assert not self.at.exception, self.at.exception
        drawn = sent = deck = 0
        for element in _elements(self.at._tree):
            raw = element.proto.SerializeToString(deterministic=True)
            drawn += len(raw)
            if type(element.proto).__name__ in ("DeckGlJsonChart", "BidiComponent"):
                deck += len(raw)
            if len(raw) >= CACHED_MIN and raw in self.held:
                sent += 100  # a reference
                continue
            if len(raw) >= CACHED_MIN:
                self.held.add(raw)
            sent += len(raw)
        return {"s": seconds, "cpu_s": cpu, "bytes_drawn": drawn, "bytes_sent": sent, "map_bytes": deck}


def _actions(ward_code: str, category: str) -> list[tuple[str, Callable]]:
    def default_view(at):
        at.switch_page("screens/map.py").run()

    def category_change(at):
        at.multiselect(key="f_categories").set_value([category]).run()

    def add_overlap(at):
        at.checkbox(key="lp_on_overlap").check().run()

    def ward_profile(at):
        at.query_params["ward"] = ward_code
        at.switch_page("screens/ward.py").run()

    def back_to_map(at):
        at.switch_page("screens/map.py").run()

    def filter_change(at):
        at.multiselect(key="f_datasets").set_value(["police_crime"]).run()

    return [
        ("default_view", default_view),
        ("category_change", category_change),
        ("add_overlap", add_overlap),
        ("ward_click_to_profile", ward_profile),
        ("back_to_map", back_to_map),
        ("filter_change", filter_change),
    ]


def _variant(baseline: bool) -> None:
    """Switch the map between the baseline (full shapes, indented JSON) and the app as it is."""
    import pydeck as pdk

    import layers.view as view

    if not hasattr(view, "_bench_originals"):
        view._bench_originals = (view.simplify_for_zoom, view.CompactDeck.to_json)
    simplify, to_json = view._bench_originals
    view.simplify_for_zoom = (lambda shapes, zoom, lat: shapes) if baseline else simplify
    view.CompactDeck.to_json = pdk.Deck.to_json if baseline else to_json


def run_pass(app: str, baseline: bool, ward_code: str, category: str) -> dict[str, dict]:
    import streamlit as st

    _variant(baseline)
    st.cache_data.clear()  # each pass starts cold, as a new server would
    st.cache_resource.clear()
    session = Session(app)
    return {name: session.act(step) for name, step in _actions(ward_code, category)}


def filter_pass(app: str, categories: list[str], periods: list[tuple]) -> dict[str, list[dict]]:
    """One session: the default map, then each category in turn (one chosen at a time), the
    categories cleared, then each period in turn."""
    session = Session(app)
    out: dict[str, list[dict]] = {"default_view": [session.act(lambda at: at.run())]}
    out["category_change"] = [
        session.act(lambda at, c=c: at.multiselect(key="f_categories").set_value([c]).run())
        for c in categories
    ]
    session.act(lambda at: at.multiselect(key="f_categories").set_value([]).run())
    out["period_change"] = [
        session.act(lambda at, p=p: at.date_input(key="f_period").set_value(p).run()) for p in periods
    ]
    return out


def _filter_choices(db: str, changes: int) -> tuple[list[str], list[tuple]]:
    """The first ``changes`` categories in alphabetical order and as many periods, all distinct
    (each period a little shorter than the one before, within the data's span)."""
    import datetime as dt

    from app.filters import Filter, categories_in, data_period
    from app.warehouse import connect

    con = connect(db, read_only=True)
    ids = tuple(r[0] for r in con.execute("SELECT id FROM datasets ORDER BY id").fetchall())
    categories = categories_in(con, ids)[:changes]
    first, last = data_period(con, Filter())
    con.close()
    months = max(1, ((last - first).days // 30) // (2 * changes + 2))
    periods = [
        (first + dt.timedelta(days=30 * months * (i + 1)), last - dt.timedelta(days=30 * months * i))
        for i in range(changes)
    ]
    return categories, periods


def filters_main(args) -> None:
    """Filter changes of this app (and of ``--against``), alternated, each pass a new process."""
    roots = [str(REPO)] + ([str(Path(args.against).resolve())] if args.against else [])
    runs: dict[str, dict[str, list[dict]]] = {r: {} for r in roots}
    for i in range(args.repeat):
        for root in roots if i % 2 == 0 else list(reversed(roots)):
            cmd = [sys.executable, __file__, "--one-filter-pass", root, "--db", args.db]
            done = subprocess.run([*cmd, "--changes", str(args.changes)], check=True, capture_output=True)
            for step, rows in json.loads(done.stdout.decode().strip().splitlines()[-1]).items():
                runs[root].setdefault(step, []).extend(rows)
    out: dict = {"bench": "dashboard_filters", "repeat": args.repeat, "changes": args.changes}
    for step in ("default_view", "category_change", "period_change"):
        now = runs[roots[0]][step]
        entry = {
            "server_s": round(statistics.median(r["s"] for r in now), 3),
            "cpu_s": round(statistics.median(r["cpu_s"] for r in now), 3),
            "n": len(now),
        }
        if args.against:
            before = runs[roots[1]][step]
            entry["against_server_s"] = round(statistics.median(r["s"] for r in before), 3)
            entry["against_cpu_s"] = round(statistics.median(r["cpu_s"] for r in before), 3)
            entry["server_vs_against"] = round(entry["server_s"] / entry["against_server_s"], 2)
            entry["cpu_vs_against"] = round(entry["cpu_s"] / entry["against_cpu_s"], 2)
        out[step] = entry
    print(json.dumps(out))


def one_filter_pass(root: str, db: str, changes: int) -> None:
    """One pass of ``filter_pass`` on the app under ``root`` (this process imports its code)."""
    sys.path.insert(0, root)
    os.environ["COMMON_GROUND_DB"] = db
    share_script_cache()
    categories, periods = _filter_choices(db, changes)
    app = str(Path(root) / "app" / "dashboard" / "streamlit_app.py")
    runs = filter_pass(app, categories, periods)
    print(
        json.dumps({step: [{"s": r["s"], "cpu_s": r["cpu_s"]} for r in rows] for step, rows in runs.items()})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", default=str(REPO / "data" / "warehouse.duckdb"))
    parser.add_argument("--filters", action="store_true", help="time filter changes alone")
    parser.add_argument("--changes", type=int, default=8, help="category and period changes a pass")
    parser.add_argument("--against", help="another copy of the app, measured alike (--filters)")
    parser.add_argument("--one-filter-pass", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_filter_pass:
        one_filter_pass(args.one_filter_pass, args.db, args.changes)
        return
    # Loads are idempotent: this builds the warehouse if it is missing or outdated, else skips.
    subprocess.run([sys.executable, "-m", "app", "load", "--db", args.db], cwd=REPO, check=True)
    os.environ["COMMON_GROUND_DB"] = args.db
    if args.filters:
        filters_main(args)
        return
    share_script_cache()

    from app.filters import categories_in
    from app.warehouse import connect

    con = connect(args.db, read_only=True)
    ward_code = con.execute("SELECT min(code) FROM wards").fetchone()[0]
    ids = tuple(r[0] for r in con.execute("SELECT id FROM datasets ORDER BY id").fetchall())
    category = categories_in(con, ids)[0]
    con.close()
    app = str(REPO / "app" / "dashboard" / "streamlit_app.py")
    # Alternated, so that a drift in the machine's speed touches both sides.
    run_pass(app, False, ward_code, category)  # warms DuckDB and the files, for both sides
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for i in range(args.repeat):
        for baseline in (True, False) if i % 2 == 0 else (False, True):
            runs[baseline].append(run_pass(app, baseline, ward_code, category))
    _variant(False)

    def median(baseline: bool, action: str, key: str) -> float:
        return statistics.median(r[action][key] for r in runs[baseline])

    out: dict = {"bench": "dashboard", "repeat": args.repeat}
    for action, _ in _actions(ward_code, category):
        now_s, base_s = median(False, action, "s"), median(True, action, "s")
        now_b, base_b = median(False, action, "bytes_sent"), median(True, action, "bytes_sent")
        out[action] = {
            "server_s": round(now_s, 3),
            "cpu_s": round(median(False, action, "cpu_s"), 3),
            "baseline_server_s": round(base_s, 3),
            "server_vs_baseline": round(now_s / base_s, 2),
            "bytes_sent": int(now_b),
            "baseline_bytes_sent": int(base_b),
            "bytes_vs_baseline": round(now_b / base_b, 3),
            "map_bytes": int(median(False, action, "map_bytes")),
            "baseline_map_bytes": int(median(True, action, "map_bytes")),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
