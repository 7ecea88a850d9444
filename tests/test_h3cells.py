"""H3 parent arithmetic (numpy and SQL) agrees with h3-py for every resolution."""

from __future__ import annotations

import duckdb
import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.h3cells import check_res, latlng_to_cells, parent_np, parent_sql

lats = st.floats(min_value=-89.9, max_value=89.9, allow_nan=False)
lngs = st.floats(min_value=-179.9, max_value=179.9, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(lat=lats, lng=lngs, res=st.integers(min_value=0, max_value=15))
def test_parent_matches_h3(lat, lng, res):
    cell = h3.latlng_to_cell(lat, lng, 15)
    expected = h3.str_to_int(h3.cell_to_parent(cell, res))
    fine = np.array([h3.str_to_int(cell)], dtype=np.uint64)
    assert int(parent_np(fine, res)[0]) == expected
    sql = f"SELECT {parent_sql('c', res)} FROM (SELECT ?::UBIGINT AS c)"
    got = duckdb.connect().execute(sql, [int(fine[0])]).fetchall()[0][0]
    assert got == expected


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(lats, lngs), min_size=1, max_size=50))
def test_vectorised_cells_match_scalar(points):
    lat = np.array([p[0] for p in points])
    lng = np.array([p[1] for p in points])
    got = latlng_to_cells(lat, lng)
    assert [int(c) for c in got] == [h3.str_to_int(h3.latlng_to_cell(a, b, 15)) for a, b in points]


def test_parallel_path_matches_serial():
    rng = np.random.default_rng(3)
    lat, lng = rng.uniform(51, 52, 500_000), rng.uniform(-1, 0, 500_000)
    cells = latlng_to_cells(lat, lng)
    sample = rng.choice(len(lat), 500, replace=False)
    for i in sample:
        assert int(cells[i]) == h3.str_to_int(h3.latlng_to_cell(lat[i], lng[i], 15))


@pytest.mark.parametrize("bad", [-1, 16, 2.5, "9"])
def test_resolution_is_validated(bad):
    with pytest.raises(ValueError):
        check_res(bad)
