"""The store: one layout both engines write, one reader for a warehouse file or a store folder,
the aggregate cube answering the map's questions with the records' own figures, and one seam
through which every read of the records passes."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from app import export, store
from app.access import LOCAL, AccessContext
from app.filters import Filter, validate, with_period
from app.store import layout
from app.store.duckdb import open_any
from app.warehouse import open_readonly, session


@pytest.fixture(scope="module")
def demo_store(small_demo_db, tmp_path_factory) -> Path:
    db, _ = small_demo_db
    out = tmp_path_factory.mktemp("store") / "fairhaven"
    with open_readonly(db) as con:
        layout.write_store(con, out)
    return out


def test_spill_files_go_beside_the_store_and_are_removed(small_demo_db, tmp_path, monkeypatch):
    """A read-only warehouse spills its temporary cube beside the store, not into the folder the
    process happened to start in, and nothing of it is left once the store is written."""
    db, _ = small_demo_db
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "stores" / "city"
    with open_readonly(db) as con:
        layout.write_store(con, out)
        spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
    assert spill.parent == out.parent and spill.name.endswith("-spill")
    assert not spill.exists() and not (tmp_path / ".tmp").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["city"]


def test_layout_and_manifest(demo_store, small_demo_db):
    manifest = json.loads((demo_store / layout.MANIFEST).read_text())
    assert manifest["format"] == "common-ground-store"
    assert manifest["version"] == 1 and manifest["engine"] == "duckdb" and manifest["schema_version"] == 4
    assert manifest["built_at"].endswith("Z")
    for name in layout.TABLES:
        assert (demo_store / f"{name}.parquet").is_file()
    assert {p.name.split("=")[0] for p in (demo_store / "events").iterdir()} == {"dataset"}
    assert {p.name.split("=")[0] for p in (demo_store / "cube").iterdir()} == {"dataset"}
    db, _ = small_demo_db
    with open_readonly(db) as con:
        total = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    assert manifest["tables"]["events"]["rows"] == total
    assert not list(demo_store.parent.glob(".*writing*"))  # written beside, renamed into place


def test_store_files_follow_the_arrow_schemas(demo_store):
    import pyarrow.parquet as pq

    for name in layout.TABLES:
        assert pq.read_schema(demo_store / f"{name}.parquet").names == layout.SCHEMAS[name].names
    for name in ("events", "cube", "rollup"):
        file = next((demo_store / name).rglob("*.parquet"))
        schema = pq.read_schema(file)
        assert schema.names == layout.SCHEMAS[name].names
        for field in layout.SCHEMAS[name]:
            assert schema.field(field.name).type == field.type, (name, field.name)


def test_cells_keys_and_counts_read_back_alike(demo_store, small_demo_db):
    db, _ = small_demo_db
    query = "SELECT count(*), bit_xor(rkey), sum(h3), min(h3), count(DISTINCT ward_code) FROM events"
    with open_readonly(db) as wh, open_any(demo_store) as st:
        assert wh.execute(query).fetchall() == st.execute(query).fetchall()
        cube = st.execute(f"SELECT sum(n), {store.CUBE_KEY_SQL.replace('e.', '')} FROM cube").fetchall()
        assert cube == wh.execute("SELECT count(*), bit_xor(rkey) FROM events").fetchall()
        parents = st.execute(
            "SELECT count(*) FROM cube c WHERE c.cell11 <> "
            "((c.cell11 & ~(15::UBIGINT << 52)) | (11::UBIGINT << 52) | 4095)"
        ).fetchall()[0][0]
        assert parents == 0


def test_parent_bits_match_h3():
    import h3

    cell = h3.str_to_int(h3.latlng_to_cell(51.38, -2.36, 15))
    for res in (5, 9, 11):
        assert layout.parent_bits(cell, res) == h3.str_to_int(h3.cell_to_parent(h3.int_to_str(cell), res))


@pytest.mark.parametrize(
    ("what", "res"),
    [("hexes", 7), ("hexes", 8), ("hexes", 9), ("hexes", 10), ("wards", 8), ("hotspots", 8), ("emerging", 8)],
)
def test_exports_from_warehouse_and_store_are_byte_identical(demo_store, small_demo_db, what, res):
    db, _ = small_demo_db
    out = []
    for source in (db, demo_store):
        with open_any(source) as con:
            built = export.build(con, what, Filter(), res=res)
            out.append(export.to_bytes(con, built, "csv"))
    assert out[0] == out[1]
    assert len(out[0]) > 200


FILTERS = [
    Filter(),
    Filter(start=dt.date(2024, 3, 1), end=dt.date(2024, 8, 31)),  # whole months: the roll-up
    Filter(start=dt.date(2024, 3, 5), end=dt.date(2024, 3, 19)),  # days: the fine cube
    Filter(hours=(22, 23, 0, 1)),
    Filter(weekdays=(6, 7), kinds=("demand",)),
    Filter(datasets=("police_asb", "fire_incidents")),
    Filter(start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31), categories=("Nuisance", "Noise")),
]


@pytest.mark.parametrize("f", FILTERS, ids=range(len(FILTERS)))
@pytest.mark.parametrize("res", [7, 9, 11])
def test_cube_answers_equal_the_records(demo_store, small_demo_db, f, res):
    db, _ = small_demo_db
    with open_readonly(db) as wh, open_any(demo_store) as st:
        fw, fs = validate(wh, f), validate(st, f)
        assert store.cube_source(wh, fw, res) is None
        assert store.cube_source(st, fs, res) in ("cube", "rollup", store.CELL_ROLLUP, store.CELL_TOTALS)
        _same(store.hex_counts(wh, fw, res), store.hex_counts(st, fs, res))
        ids = sorted({r[0] for r in wh.execute("SELECT id FROM datasets").fetchall()})
        for by_dataset in (True, False):
            _same(store.ward_counts(wh, fw, by_dataset, ids), store.ward_counts(st, fs, by_dataset, ids))


def test_which_aggregate_answers(demo_store):
    year = Filter(start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31))
    with open_any(demo_store) as st:
        assert store.cube_source(st, Filter(), 8) == store.CELL_TOTALS
        assert store.cube_source(st, year, 9) == store.CELL_ROLLUP
        assert store.cube_source(st, year, None) == store.WARD_ROLLUP
        assert store.cube_source(st, validate(st, year.with_(categories=("Noise",))), 9) == "rollup"
        assert store.cube_source(st, Filter(), 10) == "cube"
        assert store.cube_source(st, Filter(hours=(1,)), 8) == "cube"
        assert store.cube_source(st, Filter(start=dt.date(2024, 1, 2)), 8) == "cube"
        assert store.cube_source(st, Filter(bbox=(-2.5, 51.3, -2.3, 51.4)), 8) is None


def test_a_period_beyond_the_data_reads_the_rollups(demo_store, small_demo_db):
    """A period from before the data's first day to after its last (as the ward aggregate
    closes a filter without dates, by the data's own first and last day) holds every record,
    so the roll-ups answer it, whole months or not, with the records' figures."""
    db, _ = small_demo_db
    with open_readonly(db) as wh, open_any(demo_store) as st:
        span = with_period(wh, validate(wh, Filter()))
        closed = span.with_(start=span.start - dt.timedelta(days=3), end=span.end + dt.timedelta(days=5))
        assert store.cube_source(st, closed, 9) == store.CELL_TOTALS
        assert store.cube_source(st, closed, None) == store.WARD_ROLLUP
        _same(store.hex_counts(wh, closed, 9), store.hex_counts(st, closed, 9))
        ids = sorted({r[0] for r in wh.execute("SELECT id FROM datasets").fetchall()})
        _same(store.ward_counts(wh, closed, True, ids), store.ward_counts(st, closed, True, ids))
        # A day inside the data is a day boundary: the fine cube answers it.
        inside = span.with_(start=span.start + dt.timedelta(days=3))
        assert store.cube_source(st, inside, 9) == "cube"
        _same(store.hex_counts(wh, inside, 9), store.hex_counts(st, inside, 9))


def test_catalogue_answers_are_kept_per_store(demo_store, small_demo_db, tmp_path):
    """A store's catalogue answers are worked out once and shared by its cursors (the dashboard
    reads through a new cursor per call); they equal the answers asked afresh. So are a
    warehouse file's opened read-only (it reads its snapshot while open); a warehouse opened
    for writing is asked every time."""
    from app.store import facts
    from app.warehouse import connect

    db, _ = small_demo_db
    viewer = AccessContext(visible=("police_asb", "police_crime"), local=False)
    with open_any(demo_store) as st, open_readonly(db) as wh:
        cursor = st.cursor()
        assert facts.of(st) is not None and facts.of(cursor) is facts.of(st)
        assert facts.of(wh) is not None and facts.of(session(wh.cursor())) is facts.of(wh)
        assert facts.of(wh) is not facts.of(st)
        copy = tmp_path / "writable.duckdb"
        shutil.copy(db, copy)
        with connect(copy) as writable:
            assert facts.of(writable) is None
        for access in (None, viewer):
            kept = _catalogue(cursor, access)
            with facts.bypassed():
                assert facts.of(st) is not None  # the store is known; its answers are not used
                fresh = _catalogue(st, access)
            assert _catalogue(st, access) == kept == fresh == _catalogue(wh, access)
        frame = store.datasets(cursor)
        frame.loc[0, "title"] = "changed by a caller"
        assert store.datasets(cursor).loc[0, "title"] != "changed by a caller"


def _catalogue(con, access) -> tuple:
    return (
        sorted(store.agencies(con, access)),
        store.category_counts_by_dataset(con, access),
        store.agency_counts_by_dataset(con, access),
        sorted(store.cells_with_events(con, 8, access).tolist()),
        store.datasets(con, access).to_dict("list"),
        store.units(con, ["police_asb", "fire_incidents"], Filter(access=access or LOCAL)).to_dict("list"),
    )


def test_derived_rollups_sum_the_rollup(demo_store):
    """The roll-ups a store derives on opening hold the roll-up's own totals, exactly."""
    totals = "sum(n)::BIGINT, {key}, count(DISTINCT dataset)".format(key=store.CUBE_KEY_SQL.replace("e.", ""))
    with open_any(demo_store) as st:
        expected = st.execute(f"SELECT {totals} FROM rollup").fetchall()
        for name in (store.WARD_ROLLUP, store.CELL_ROLLUP, store.CELL_TOTALS):
            assert st.execute(f"SELECT {totals} FROM {name}").fetchall() == expected, name
        by_ward = "SELECT ward_code, month, dataset, sum(n)::BIGINT FROM {} GROUP BY ALL ORDER BY ALL"
        rolled = st.execute(by_ward.format(store.WARD_ROLLUP)).fetchall()
        assert st.execute(by_ward.format("rollup")).fetchall() == rolled


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b) and len(a) > 0
    for col in a.columns:
        if col == "weight":
            assert np.allclose(a[col].to_numpy(float), b[col].to_numpy(float))
        elif col in ("h3", "cell_key"):
            assert (a[col].to_numpy(np.uint64) == b[col].to_numpy(np.uint64)).all(), col
        else:
            assert a[col].tolist() == b[col].tolist(), col


# Files that write the records (the load, in either engine) may name the event tables; every
# reader reaches them through app/store.
_WRITERS = ("app/store/", "app/ingest.py", "app/warehouse.py", "app/placement.py", "app/spark/")
_EVENT_SQL = re.compile(r"FROM\s+events\b|event_rows|events\s+e\b")


def test_no_event_sql_outside_the_store():
    offenders = []
    for path in sorted((REPO / "app").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(_WRITERS):
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _EVENT_SQL.search(line):
                offenders.append(f"{rel}:{no}: {line.strip()}")
    assert not offenders, "event SQL outside app/store:\n" + "\n".join(offenders)


@pytest.mark.parametrize("by_dataset", [True, False])
def test_window_counts_equal_one_count_per_window(demo_store, small_demo_db, by_dataset):
    """A ward aggregate's period and comparison windows counted in one statement give each
    window's own ``ward_counts``, from the records and from the store."""
    db, _ = small_demo_db
    windows = ((dt.date(2024, 3, 1), dt.date(2025, 2, 28)), (dt.date(2024, 3, 5), dt.date(2024, 6, 20)))
    for f in (Filter(), Filter(start=dt.date(2025, 3, 1), end=dt.date(2025, 12, 31), kinds=("demand",))):
        for source in (db, demo_store):
            with open_any(source) as con:
                g = validate(con, f)
                ids = sorted({r[0] for r in con.execute("SELECT id FROM datasets").fetchall()})
                both = store.ward_window_counts(con, g, by_dataset, ids, windows)
                base = store.ward_counts(con, g, by_dataset, ids)
                assert list(both.columns) == [*base.columns, "count_1", "cell_key_1", "count_2", "cell_key_2"]
                _same(both[list(base.columns)], base)
                for i, (start, end) in enumerate(windows, 1):
                    alone = store.ward_counts(con, g.with_(start=start, end=end), by_dataset, ids)
                    got = both[[*base.columns[:-2], f"count_{i}", f"cell_key_{i}"]]
                    _same(got.set_axis(list(alone.columns), axis=1), alone)
