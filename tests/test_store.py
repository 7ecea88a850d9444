"""The store: one layout both engines write, one reader for a warehouse file or a store folder,
the aggregate cube answering the map's questions with the records' own figures, and one seam
through which every read of the records passes."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from app import export, store
from app.filters import Filter, validate
from app.store import layout
from app.store.duckdb import open_any
from app.warehouse import open_readonly


@pytest.fixture(scope="module")
def demo_store(small_demo_db, tmp_path_factory) -> Path:
    db, _ = small_demo_db
    out = tmp_path_factory.mktemp("store") / "fairhaven"
    with open_readonly(db) as con:
        layout.write_store(con, out)
    return out


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
]


@pytest.mark.parametrize("f", FILTERS, ids=range(len(FILTERS)))
@pytest.mark.parametrize("res", [7, 9, 11])
def test_cube_answers_equal_the_records(demo_store, small_demo_db, f, res):
    db, _ = small_demo_db
    with open_readonly(db) as wh, open_any(demo_store) as st:
        fw, fs = validate(wh, f), validate(st, f)
        assert store.cube_source(wh, fw, res) is None
        assert store.cube_source(st, fs, res) in ("cube", "rollup")
        _same(store.hex_counts(wh, fw, res), store.hex_counts(st, fs, res))
        ids = sorted({r[0] for r in wh.execute("SELECT id FROM datasets").fetchall()})
        for by_dataset in (True, False):
            _same(store.ward_counts(wh, fw, by_dataset, ids), store.ward_counts(st, fs, by_dataset, ids))


def test_which_aggregate_answers(demo_store):
    with open_any(demo_store) as st:
        assert store.cube_source(st, Filter(), 8) == "rollup"
        assert store.cube_source(st, Filter(), 10) == "cube"
        assert store.cube_source(st, Filter(hours=(1,)), 8) == "cube"
        assert store.cube_source(st, Filter(start=dt.date(2024, 1, 2)), 8) == "cube"
        assert store.cube_source(st, Filter(bbox=(-2.5, 51.3, -2.3, 51.4)), 8) is None


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
