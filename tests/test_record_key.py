"""The record key is defined by bytes and integer arithmetic, so any engine reproduces it bit for
bit, and it does not depend on the folder the data lives in."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO_CATALOG

from app.record_key import record_key, record_keys, seed, source_name

# Computed once from the definition in app/record_key.py's docstring.
REFERENCE = [
    ("police_crime", "demo/police_crime.csv", 1, 6498857628948349872, 17013764335348560386),
    ("police_crime", "demo/police_crime.csv", 2, 6498857628948349872, 15127209069553080734),
    ("fire", "a/b c/ü.csv", 123456789, 3451954260525314551, 7067377539965076098),
    ("x", "y", 0, 10094301739370350121, 10097109121473507782),
]


@pytest.mark.parametrize(("dataset", "name", "row", "want_seed", "want_key"), REFERENCE)
def test_reference_values(dataset, name, row, want_seed, want_key):
    assert seed(dataset, name) == want_seed
    assert record_key(dataset, name, row) == want_key
    assert int(record_keys(dataset, name, np.array([row]))[0]) == want_key


def test_vectorised_equals_scalar():
    rows = np.array([0, 1, 2, 3, 17, 65_535, 2**31, 2**40 + 7, 10**12], dtype=np.int64)
    keys = record_keys("ds", "sub/file.csv", rows)
    assert keys.dtype == np.uint64
    assert [int(k) for k in keys] == [record_key("ds", "sub/file.csv", int(r)) for r in rows]


def test_keys_differ_by_dataset_file_and_row():
    rows = np.arange(1, 1001)
    a = record_keys("a", "f.csv", rows)
    assert len(set(a.tolist())) == len(rows)
    assert not set(a.tolist()) & set(record_keys("b", "f.csv", rows).tolist())
    assert not set(a.tolist()) & set(record_keys("a", "g.csv", rows).tolist())


def test_source_name_is_relative_and_posix(tmp_path):
    assert source_name(tmp_path / "data" / "x.csv", tmp_path) == "data/x.csv"
    assert source_name(tmp_path / "x.csv", tmp_path / "cat") == "../x.csv"


def _load_copy(root: Path, events: int) -> Path:
    from app.demo_city import generate
    from app.ingest import load

    generate(root / "demo", events=events, seed=11)
    shutil.copy(DEMO_CATALOG, root / "catalog.toml")
    db = root / "warehouse.duckdb"
    load(root / "catalog.toml", db)
    return db


def test_same_keys_and_released_figures_whatever_the_folder(tmp_path):
    from app import aggregate
    from app.filters import Filter
    from app.warehouse import open_readonly

    first = _load_copy(tmp_path / "one", 4_000)
    second = _load_copy(tmp_path / "elsewhere" / "two", 4_000)
    released = []
    for db in (first, second):
        with open_readonly(db) as con:
            keys = con.execute(
                "SELECT dataset, source_row, rkey FROM events ORDER BY dataset, source_file, source_row"
            ).df()
            hexes = aggregate.hex_aggregate(con, Filter(), 8)
            wards = aggregate.ward_aggregate(con, Filter())
            released.append((keys, hexes, wards))
    (k1, h1, w1), (k2, h2, w2) = released
    assert k1.equals(k2)
    with open_readonly(first) as con:  # the warehouse beside the catalogue: names stay relative
        row = con.execute("SELECT dataset, source_file, source_row, rkey FROM events LIMIT 1").fetchall()[0]
    name = source_name(row[1], tmp_path / "one")
    assert name.startswith("demo/")
    assert int(row[3]) == record_key(row[0], name, int(row[2]))
    assert h1.equals(h2)
    assert w1.equals(w2)


def test_stored_keys_follow_the_definition(small_demo, small_demo_db):
    """The load's vectorised key (inside DuckDB) is the definition's, file by file."""
    from app.warehouse import open_readonly

    db, _ = small_demo_db
    with open_readonly(db) as con:
        rows = con.execute("SELECT dataset, source_file, source_row, rkey FROM events USING SAMPLE 500").df()
    assert len(rows)
    for r in rows.itertuples():
        name = source_name(r.source_file, small_demo)
        assert not name.startswith("/")
        assert int(r.rkey) == record_key(r.dataset, name, int(r.source_row))
