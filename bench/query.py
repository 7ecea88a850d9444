"""Query benchmark: the map's questions at 10M events, from the records and from the store.

N synthetic events (``bench/scale.py``'s input: three datasets, six categories, three years)
are loaded into a warehouse and written as a store folder. The map's questions are then asked
three ways in one run: of the warehouse's records (``events``: how the map was answered
before the cube), of the store with its catalogue answers asked afresh every time
(``store_uncached``: the cube and roll-ups alone), and of the store as the dashboard reads it
(``store``). The questions:

- ``hex_res9_year``, ``hex_res8_year``: the map's hexes (``aggregate.hex_totals``, disclosure
  applied, cell centres) at resolution 9 and 8 for a year of whole months, every dataset;
- ``hex_res9_all``: the same with the default filter (no dates: all the data);
- ``hex_query_res9_year``: the store's query alone behind the first (``raw_hex_counts``);
- ``ward_map``: the map's ward layer (``aggregate.ward_aggregate``, all datasets together,
  with the change on the previous year, which takes two more counts);
- ``ward_by_dataset``: the same per dataset and agency;
- ``ward_query_map``: the store's query alone behind ``ward_map`` (``store.ward_window_counts``:
  the period and both comparison windows in one statement);
- ``hex_res11_view``: resolution 11 over a visible area (a bounding box: the records in both).

Every figure is the median of ``--repeat`` runs after one warm-up run, as both wall time and
CPU time (``time.process_time``) with DuckDB on one thread: on a shared machine wall time
moves with other people's work, CPU time far less, and one thread approximates a single
query's latency on an idle core. ``numpy_res9`` is a fixed yardstick measured in the same run
(parent cells of every record by bit arithmetic, counted with ``np.unique``), so figures from
different runs can be compared by their ratio to it. ``within_goal`` says, by CPU time,
whether each map question of the store meets the 50 ms goal.

    python bench/query.py [--events 10000000] [--repeat 7] [--keep FOLDER]

``--keep`` writes the input, warehouse and store in FOLDER and reuses them when present. The
last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scale import write_input  # bench/ is the script's own folder, first on the path

from app import store
from app.aggregate import hex_totals, raw_hex_counts, ward_aggregate
from app.filters import Filter, comparison, datasets_in, validate, with_period
from app.h3cells import parent_np
from app.ingest import load
from app.store import facts
from app.store.duckdb import open_store
from app.store.layout import is_store, write_store
from app.warehouse import open_readonly

REPO = Path(__file__).resolve().parent.parent

GOAL_MS = 50
YEAR = Filter(start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31))
MAP_QUESTIONS = (
    "hex_res9_year",
    "hex_res8_year",
    "hex_res9_all",
    "hex_query_res9_year",
    "ward_map",
    "ward_by_dataset",
    "ward_query_map",
)


def measure(fn: Callable[[], object], repeat: int) -> dict:
    """Median wall and CPU milliseconds of ``repeat`` runs of ``fn`` after one warm-up run."""
    fn()  # caches warm, as a dashboard would have them
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {
        "wall_ms": round(1000 * statistics.median(wall), 1),
        "cpu_ms": round(1000 * statistics.median(cpu), 1),
    }


def questions(con, view: Filter) -> dict[str, Callable[[], object]]:
    closed = with_period(con, validate(con, Filter()))
    compare = comparison(con, closed)
    windows = tuple(w for w in (compare.current, compare.previous) if w is not None)
    ids = datasets_in(con, closed)["id"].tolist()
    return {
        "hex_res9_year": lambda: hex_totals(con, YEAR, 9),
        "hex_res8_year": lambda: hex_totals(con, YEAR, 8),
        "hex_res9_all": lambda: hex_totals(con, Filter(), 9),
        "hex_query_res9_year": lambda: raw_hex_counts(con, YEAR, 9),
        "ward_map": lambda: ward_aggregate(con, Filter(), by_dataset=False),
        "ward_by_dataset": lambda: ward_aggregate(con, Filter(), by_dataset=True),
        "ward_query_map": lambda: store.ward_window_counts(con, closed, False, ids, windows),
        "hex_res11_view": lambda: raw_hex_counts(con, view, 11),
    }


def prepare(folder: Path, events: int) -> tuple[Path, Path, dict]:
    """The warehouse and store in ``folder``, built unless already there; with build times."""
    built: dict = {}
    if not (folder / "catalog.toml").exists():
        write_input(folder, events)
    db, out = folder / "w.duckdb", folder / "store"
    if not db.exists():
        t = time.perf_counter()
        load(folder / "catalog.toml", db)
        built["load_s"] = round(time.perf_counter() - t, 1)
    if not is_store(out):
        t = time.perf_counter()
        with open_readonly(db) as con:
            write_store(con, out)
        built["store_write_s"] = round(time.perf_counter() - t, 1)
    return db, out, built


def visible_area(con) -> Filter:
    """The middle third of the study area, as a map zoomed in at resolution 11 shows."""
    west, south, east, north = json.loads(
        con.execute("SELECT value FROM meta WHERE key = 'study_area'").fetchall()[0][0]
    )["bounds"]
    return Filter(
        bbox=(
            west + 0.35 * (east - west),
            south + 0.35 * (north - south),
            west + 0.65 * (east - west),
            south + 0.65 * (north - south),
        )
    )


def run(folder: Path, events: int, repeat: int) -> dict:
    db, out, figures = prepare(folder, events)
    wh = open_readonly(db)
    t = time.perf_counter()
    st = open_store(out)
    figures["store_open_s"] = round(time.perf_counter() - t, 2)
    for con in (wh, st):
        con.execute("SET threads = 1")
    view = visible_area(wh)
    figures["events"] = wh.execute("SELECT count(*) FROM events").fetchall()[0][0]
    figures["datasets"] = wh.execute("SELECT count(*) FROM datasets").fetchall()[0][0]
    for name in ("cube", "rollup", store.CELL_ROLLUP, store.CELL_TOTALS, store.WARD_ROLLUP):
        figures[f"{name}_rows"] = st.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
    cells = next(iter(wh.execute("SELECT h3 FROM events").fetchnumpy().values())).astype(np.uint64)
    figures["numpy_res9"] = measure(lambda: np.unique(parent_np(cells, 9), return_counts=True), repeat)
    asked = {"events": questions(wh, view), "store": questions(st, view)}
    results: dict[str, dict] = {}
    for name in asked["store"]:
        row = {"events": measure(asked["events"][name], repeat)}
        with facts.bypassed():
            row["store_uncached"] = measure(asked["store"][name], repeat)
        row["store"] = measure(asked["store"][name], repeat)
        ratio = row["events"]["cpu_ms"] / max(row["store"]["cpu_ms"], 0.1)
        row["cpu_ratio_events_to_store"] = round(ratio, 1)
        results[name] = row
    results["hex_res9_year"]["source"] = store.cube_source(st, validate(st, YEAR), 9)
    results["hex_res9_all"]["source"] = store.cube_source(st, validate(st, Filter()), 9)
    results["ward_map"]["source"] = store.cube_source(st, validate(st, Filter()), None)
    wh.close()
    st.close()
    return {
        "bench": "query",
        **figures,
        "repeat": repeat,
        "duckdb_threads": 1,
        "questions": results,
        "goal_ms": GOAL_MS,
        "within_goal": {name: results[name]["store"]["cpu_ms"] <= GOAL_MS for name in MAP_QUESTIONS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="folder to build in (reused if built)")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(args.keep, args.events, args.repeat)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(Path(tmp), args.events, args.repeat)))


if __name__ == "__main__":
    main()
