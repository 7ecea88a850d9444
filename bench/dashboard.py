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


class Session:
    """One browser session: an AppTest and the large elements the browser already holds."""

    def __init__(self, app: str) -> None:
        from streamlit.testing.v1 import AppTest

        self.at = AppTest.from_file(app, default_timeout=300)
        self.held: set[bytes] = set()

    def act(self, step: Callable) -> dict:
        t = time.perf_counter()
        step(self.at)
        seconds = time.perf_counter() - t
        assert not self.at.exception, self.at.exception
        drawn = sent = deck = 0
        for element in _elements(self.at._tree):
            raw = element.proto.SerializeToString(deterministic=True)
            drawn += len(raw)
            if type(element.proto).__name__ == "DeckGlJsonChart":
                deck += len(raw)
            if len(raw) >= CACHED_MIN and raw in self.held:
                sent += 100  # a reference
                continue
            if len(raw) >= CACHED_MIN:
                self.held.add(raw)
            sent += len(raw)
        return {"s": seconds, "bytes_drawn": drawn, "bytes_sent": sent, "map_bytes": deck}


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
    session = Session(app)
    return {name: session.act(step) for name, step in _actions(ward_code, category)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", default=str(REPO / "data" / "warehouse.duckdb"))
    args = parser.parse_args()
    # Loads are idempotent: this builds the warehouse if it is missing or outdated, else skips.
    subprocess.run([sys.executable, "-m", "app", "load", "--db", args.db], cwd=REPO, check=True)
    os.environ["COMMON_GROUND_DB"] = args.db

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
