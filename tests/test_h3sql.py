"""H3 cells computed in DuckDB SQL are h3-py's, and points it cannot place come back NULL."""

from __future__ import annotations

import duckdb
import h3
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.h3sql import _fine_groups, _pair_table, cells_sql, flag_sql, plan_for_region

REGIONS = {
    "fairhaven-like": (-1.2, 52.2, -0.7, 52.6),
    "inner london": (-0.25, 51.45, 0.05, 51.6),
    "new york": (-74.3, 40.5, -73.7, 40.95),
    "southern hemisphere": (151.0, -34.1, 151.4, -33.7),
    "across the antimeridian's neighbour": (179.2, -17.0, 179.9, -16.4),
}


def _sql_cells(plan, lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    con = duckdb.connect()
    points = pa.table({"rid": np.arange(len(lat)), "lat": lat, "lng": lng})  # noqa: F841
    cells = plan.table  # noqa: F841
    con.execute("CREATE TABLE p AS SELECT * FROM points")
    con.execute("CREATE TABLE c AS SELECT * FROM cells")
    sql, params = cells_sql(plan, "p", "lat", "lng", ["rid"], "c", [])
    got = con.execute(f"SELECT coalesce(__h3, 0) AS h FROM ({sql}) ORDER BY rid", params).fetchnumpy()["h"]
    return np.asarray(got, dtype=np.uint64)


def _h3py(lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    return np.array(
        [h3.str_to_int(h3.latlng_to_cell(a, b, 15)) for a, b in zip(lat, lng, strict=True)], dtype=np.uint64
    )


@pytest.mark.parametrize(
    ("region", "res"),
    [
        ("fairhaven-like", 7),
        ("fairhaven-like", 10),
        ("inner london", 11),
        ("new york", 8),
        ("new york", 9),
        ("southern hemisphere", 9),
        ("across the antimeridian's neighbour", 7),
    ],
)
def test_sql_cells_equal_h3py(region, res):
    minx, miny, maxx, maxy = REGIONS[region]
    plan = plan_for_region(REGIONS[region], res)
    rng = np.random.default_rng(res)
    n = 4000
    lat, lng = rng.uniform(miny, maxy, n), rng.uniform(minx, maxx, n)
    got = _sql_cells(plan, lat, lng)
    expected = _h3py(lat, lng)
    placed = got != 0
    assert placed.mean() > 0.99, "nearly every point of an ordinary region is placed in SQL"
    np.testing.assert_array_equal(got[placed], expected[placed])


@settings(max_examples=40, deadline=None)
@given(
    st.floats(min_value=-1.2, max_value=-0.7, allow_nan=False),
    st.floats(min_value=52.2, max_value=52.6, allow_nan=False),
)
def test_any_point_in_the_region_is_exact(lng, lat):
    plan = _fairhaven_plan()
    got = _sql_cells(plan, np.array([lat]), np.array([lng]))
    assert got[0] in (0, _h3py(np.array([lat]), np.array([lng]))[0])


_PLANS: dict = {}


def _fairhaven_plan():
    if "f" not in _PLANS:
        _PLANS["f"] = plan_for_region(REGIONS["fairhaven-like"], 9)
    return _PLANS["f"]


def test_points_outside_the_box_get_null():
    plan = _fairhaven_plan()
    got = _sql_cells(plan, np.array([10.0, 52.4, 52.4]), np.array([-1.0, 5.0, -1.0]))
    assert got[0] == 0 and got[1] == 0 and got[2] != 0


def test_a_region_at_a_face_edge_is_left_to_the_exact_path():
    # Near the edge between two icosahedron faces H3 needs its overage rules: the plan holds no
    # coarse cells there, so every point comes back NULL rather than wrong.
    region = (-66.5, 18.05, -66.1, 18.45)
    plan = plan_for_region(region, 9)
    rng = np.random.default_rng(1)
    lat, lng = rng.uniform(18.05, 18.45, 2000), rng.uniform(-66.5, -66.1, 2000)
    got = _sql_cells(plan, lat, lng)
    expected = _h3py(lat, lng)
    assert np.all((got == 0) | (got == expected))


def test_points_on_cell_edges_are_exact_or_left_to_numpy():
    """The SQL projects with dot products, not H3's own trigonometry, and defers a point whose
    rounding is too close to call: vertices and edge midpoints of resolution-15 cells, where
    the two could round differently, come back NULL or as h3-py's cell, never another."""
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = REGIONS["inner london"]
    plan = plan_for_region(REGIONS["inner london"], 10)
    lat, lng = [], []
    for a, b in zip(rng.uniform(miny, maxy, 300), rng.uniform(minx, maxx, 300), strict=True):
        ring = h3.cell_to_boundary(h3.latlng_to_cell(a, b, 15))
        for (la1, ln1), (la2, ln2) in zip(ring, ring[1:] + ring[:1], strict=True):
            lat += [la1, (la1 + la2) / 2]
            lng += [ln1, (ln1 + ln2) / 2]
    lat, lng = np.array(lat), np.array(lng)
    got = _sql_cells(plan, lat, lng)
    expected = _h3py(lat, lng)
    placed = got != 0
    np.testing.assert_array_equal(got[placed], expected[placed])
    assert placed.mean() < 0.5, "points on an edge are deferred, not guessed"


def test_many_random_points_equal_h3py():
    plan = plan_for_region(REGIONS["new york"], 9)
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = REGIONS["new york"]
    lat, lng = rng.uniform(miny, maxy, 200_000), rng.uniform(minx, maxx, 200_000)
    got = _sql_cells(plan, lat, lng)
    placed = got != 0
    assert placed.mean() > 0.999
    np.testing.assert_array_equal(got[placed], _h3py(lat[placed], lng[placed]))


@pytest.mark.parametrize(("region", "res"), [((-10.0, 40.0, 30.0, 60.0), 5), (REGIONS["new york"], 9)])
def test_cell_flags_read_from_the_bitmap_are_the_flags_set(region, res):
    """The bit string ``flag_sql`` binds answers for every key of the plan (on one face or
    several) exactly as the flags say, and no for keys the plan lacks."""
    plan = plan_for_region(region, res)
    keys = np.asarray(plan.table["key"], dtype=np.int64)
    flags = np.random.default_rng(4).random(len(keys)) < 0.5
    sql, params = flag_sql(plan, flags, "k")
    con = duckdb.connect()
    probe = pa.table({"k": np.concatenate([keys, [-1, 3 << 50, keys.max() + 1]])})  # noqa: F841
    got = con.execute(f"SELECT {sql} AS f FROM probe", params).fetchnumpy()["f"]
    assert len(plan.faces) > 1 or region == REGIONS["new york"]
    np.testing.assert_array_equal(got[: len(keys)], flags)
    assert not got[len(keys) :].any()


@pytest.mark.parametrize("top", [15, 14, 3, 2])
def test_two_level_offsets_are_a_complete_residue_system(top):
    oi, oj, digits = _pair_table(top)
    assert len({(int(a) % 7, int(b) % 7) for a, b in zip(oi, oj, strict=True)}) == 49
    assert len({tuple(d) for d in digits.tolist()}) == 49


@pytest.mark.parametrize("res", range(1, 15))
def test_fine_groups_cover_every_level_once(res):
    levels = [top - q for top, n in _fine_groups(res) for q in range(n)]
    assert levels == list(range(15, res, -1))
