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


@pytest.mark.parametrize("res", [0, 4, 9, 12, 15])
def test_vectorised_port_matches_h3_worldwide(res):
    from app.h3vec import _scalar, latlng_to_cells_vec

    rng = np.random.default_rng(res)
    n = 100_000
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))  # uniform on the sphere
    lng = rng.uniform(-180, 180, n)
    np.testing.assert_array_equal(latlng_to_cells_vec(lat, lng, res), _scalar(lat, lng, res))


def test_pentagons_and_face_edges_fall_back_correctly():
    from app.h3vec import _scalar, latlng_to_cells_vec

    rng = np.random.default_rng(9)
    lat, lng = [], []
    for pentagon in h3.get_pentagons(2):
        plat, plng = h3.cell_to_latlng(pentagon)
        lat.append(plat + rng.normal(0, 0.5, 2000))
        lng.append(plng + rng.normal(0, 0.5, 2000))
    lat = np.clip(np.concatenate(lat), -89.9, 89.9)
    lng = (np.concatenate(lng) + 180) % 360 - 180
    np.testing.assert_array_equal(latlng_to_cells_vec(lat, lng, 15), _scalar(lat, lng, 15))


def test_a_disagreeing_sample_makes_the_whole_call_exact(monkeypatch):
    import app.h3vec as h3vec

    lat = np.linspace(51.3, 51.4, 1000)
    lng = np.linspace(-2.5, -2.4, 1000)
    monkeypatch.setattr(h3vec, "_chunk", lambda a, b, r: np.zeros(len(a), dtype=np.uint64))
    np.testing.assert_array_equal(h3vec.latlng_to_cells_vec(lat, lng, 15), h3vec._scalar(lat, lng, 15))
