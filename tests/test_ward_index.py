"""The cell-first ward index gives exactly the answer of a point-in-polygon test."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from conftest import REALDATA
from hypothesis import given, settings
from hypothesis import strategies as st

from app.boundaries import read_wards
from app.catalog import StudyArea
from app.h3cells import latlng_to_cells
from app.ward_index import WardIndex


def brute_force(wards, lat, lng) -> np.ndarray:
    """The first ward (in index order) whose polygon holds each point, else -1."""
    out = np.full(len(lat), -1)
    for w in range(len(wards.geoms) - 1, -1, -1):
        hit = shapely.intersects_xy(wards.geoms[w], lng, lat)
        out[hit] = w
    return out


@pytest.fixture(scope="module")
def demo_wards(small_demo):
    return read_wards(StudyArea("d", small_demo / "demo" / "wards.geojson", "ward_code", "ward_name"))


@pytest.fixture(scope="module")
def demo_index(demo_wards):
    return WardIndex(demo_wards)


def _near_boundaries(wards, rng, n):
    """Points within a few metres of ward edges, where a shortcut would go wrong."""
    rings = shapely.get_exterior_ring(np.array(wards.geoms, dtype=object))
    lines = shapely.line_merge(shapely.union_all(rings))
    dist = rng.uniform(0, lines.length, n)
    pts = shapely.line_interpolate_point(lines, dist)
    jitter = rng.normal(0, 2e-5, (n, 2))
    return shapely.get_y(pts) + jitter[:, 0], shapely.get_x(pts) + jitter[:, 1]


def test_random_and_boundary_points_match_brute_force(demo_wards, demo_index):
    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = demo_wards.bounds
    lat = np.concatenate([rng.uniform(miny, maxy, 100_000), _near_boundaries(demo_wards, rng, 50_000)[0]])
    lng = np.concatenate([rng.uniform(minx, maxx, 100_000), _near_boundaries(demo_wards, rng, 50_000)[1]])
    got = demo_index.assign(latlng_to_cells(lat, lng), lat, lng)
    np.testing.assert_array_equal(got, brute_force(demo_wards, lat, lng))
    assert demo_index.interior_cells.size > demo_index.edge_cells.size  # the shortcut does work


def test_vertices_exactly_on_boundaries_get_one_ward(demo_wards, demo_index):
    xy = shapely.get_coordinates(np.array(demo_wards.geoms, dtype=object))[::7]
    lat, lng = xy[:, 1], xy[:, 0]
    got = demo_index.assign(latlng_to_cells(lat, lng), lat, lng)
    assert (got >= 0).all()
    np.testing.assert_array_equal(got, brute_force(demo_wards, lat, lng))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=200))
def test_property_any_points_in_the_bounding_box(demo_wards, demo_index, unit_points):
    minx, miny, maxx, maxy = demo_wards.bounds
    pts = np.array(unit_points)
    lat = miny - 0.01 + pts[:, 1] * (maxy - miny + 0.02)
    lng = minx - 0.01 + pts[:, 0] * (maxx - minx + 0.02)
    got = demo_index.assign(latlng_to_cells(lat, lng), lat, lng)
    np.testing.assert_array_equal(got, brute_force(demo_wards, lat, lng))


@pytest.mark.realdata
def test_small_detailed_polygons_of_inner_london():
    wards = read_wards(
        StudyArea("l", REALDATA / "london-met-2018" / "lsoa-2011-inner-london.shp", "LSOA11CD", "LSOA11NM")
    )
    index = WardIndex(wards)
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = wards.bounds
    lat, lng = rng.uniform(miny, maxy, 100_000), rng.uniform(minx, maxx, 100_000)
    got = index.assign(latlng_to_cells(lat, lng), lat, lng)
    np.testing.assert_array_equal(got, brute_force(wards, lat, lng))


@pytest.mark.realdata
def test_detailed_coastlines_are_simplified_without_losing_a_point():
    """New York's council districts have tens of thousands of coastline vertices: the index
    buffers simplified outlines, and must still send every point near a shore to its ward."""
    wards = read_wards(StudyArea("nyc", REALDATA / "nyc-311-nypd" / "nycc_20a.shp", "CounDist", "CounDist"))
    index = WardIndex(wards)
    rng = np.random.default_rng(8)
    minx, miny, maxx, maxy = wards.bounds
    near_lat, near_lng = _near_boundaries(wards, rng, 100_000)
    lat = np.concatenate([rng.uniform(miny, maxy, 100_000), near_lat])
    lng = np.concatenate([rng.uniform(minx, maxx, 100_000), near_lng])
    got = index.assign(latlng_to_cells(lat, lng), lat, lng)
    np.testing.assert_array_equal(got, brute_force(wards, lat, lng))
