"""Hotspot areas: touching significant cells grouped, named for people, their totals protected."""

from __future__ import annotations

import json

import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from app.areas import (
    areas_for,
    cell_ward_split,
    connected_areas,
    hotspot_areas,
    intervention_words,
    trend_words,
)
from app.disclosure import DEFAULT_RULE
from app.filters import Filter
from app.hotspots import hex_hotspots
from app.warehouse import connect

RES = 9
WEST = shapely.box(-0.2, 51.45, -0.1, 51.55)
EAST = shapely.box(-0.1, 51.45, 0.0, 51.55)
WARDS = pd.DataFrame(
    {
        "code": ["W1", "E1"],
        "name": ["West", "East"],
        "geom": [WEST, EAST],
        "lat": [51.5, 51.5],
        "lon": [-0.15, -0.05],
    }
)


def cell(lat: float, lon: float) -> int:
    return h3.str_to_int(h3.latlng_to_cell(lat, lon, RES))


def disk(centre: int, k: int) -> list[int]:
    return [h3.str_to_int(c) for c in h3.grid_disk(h3.int_to_str(centre), k)]


def ring(centre: int, k: int) -> list[int]:
    return [h3.str_to_int(c) for c in h3.grid_ring(h3.int_to_str(centre), k)]


def frame(bins: dict[int, int], exact: dict[int, int] | None = None) -> pd.DataFrame:
    """A grid of cells with Gi* bins, and (optionally) exact counts and record keys."""
    cells = sorted(bins)
    out = pd.DataFrame({"h3": np.array(cells, dtype=np.uint64), "bin": [bins[c] for c in cells]})
    out["z"] = out["bin"] * 1.5
    counts = [(exact or {}).get(c, 10) for c in cells]
    out["count"] = counts
    out["exact_count"] = counts
    out["cell_key"] = np.array([(c * 2654435761) % (1 << 63) for c in cells], dtype=np.uint64)
    return out


# ---------------------------------------------------------------------------------------------
# Connected cells


def test_a_ring_of_cells_is_one_area_and_its_hole_no_part_of_it():
    centre = cell(51.5, -0.15)
    cells = np.array(ring(centre, 2), dtype=np.uint64)
    labels = connected_areas(cells)
    assert len(set(labels)) == 1

    bins = {c: 0 for c in disk(centre, 3)}
    bins.update({c: 3 for c in ring(centre, 2)})
    areas = hotspot_areas(frame(bins), res=RES, wards=WARDS)
    assert len(areas) == 1
    assert areas["n_cells"].iloc[0] == 12 and centre not in areas["cells"].iloc[0]


def test_cells_apart_are_separate_areas_with_stable_ids():
    a, b = cell(51.5, -0.17), cell(51.5, -0.03)
    bins = {c: 0 for c in disk(a, 3) + disk(b, 3)}
    bins.update({c: 3 for c in disk(a, 1)})
    bins.update({c: 2 for c in disk(b, 1)})
    areas = hotspot_areas(frame(bins), res=RES, wards=WARDS)
    assert len(areas) == 2
    # An area's id is its side and its smallest cell: the same cells give the same id.
    for row in areas.itertuples():
        assert row.area_id == f"hot-{h3.int_to_str(min(row.cells))}"
    shuffled = frame(bins).sample(frac=1, random_state=1)
    assert sorted(hotspot_areas(shuffled, res=RES, wards=WARDS)["area_id"]) == sorted(areas["area_id"])


def test_touching_hot_and_cold_cells_stay_apart():
    centre = cell(51.5, -0.15)
    cold = ring(centre, 2)[:4]  # four cells of the second ring, touching the hot disk
    bins = {c: 0 for c in disk(centre, 3)}
    bins.update({c: 3 for c in disk(centre, 1)})
    bins.update({c: -3 for c in cold})
    areas = hotspot_areas(frame(bins), res=RES, wards=WARDS)
    assert sorted(zip(areas["side"], areas["n_cells"], strict=True)) == [("cold", 4), ("hot", 7)]
    assert areas["side"].iloc[0] == "hot"  # hot areas first
    assert areas["cls"].tolist() == ["hot spot, 99 % confidence", "cold spot, 99 % confidence"]


def test_confidence_levels_stay_together_unless_asked_to_split():
    centre = cell(51.5, -0.15)
    bins = {c: 0 for c in disk(centre, 3)}
    bins.update({c: 2 for c in ring(centre, 1)})
    bins[centre] = 3
    together = hotspot_areas(frame(bins), res=RES, wards=WARDS)
    assert len(together) == 1 and together["level"].iloc[0] == 3
    apart = hotspot_areas(frame(bins), res=RES, wards=WARDS, split_confidence=True)
    assert sorted(apart["n_cells"]) == [1, 6]
    assert {i.split("-")[0] for i in apart["area_id"]} == {"hot99", "hot95"}
    # Cells at 90 % are not significant hotspots: no area of them.
    assert hotspot_areas(frame({c: 1 for c in disk(centre, 2)}), res=RES, wards=WARDS).empty


# ---------------------------------------------------------------------------------------------
# Names


def test_an_area_is_named_by_the_gazetteer_place_it_covers():
    centre = cell(51.5, -0.15)
    bins = {c: 0 for c in disk(centre, 3)}
    bins.update({c: 3 for c in disk(centre, 1)})
    lat, lon = h3.cell_to_latlng(h3.int_to_str(ring(centre, 1)[0]))
    places = pd.DataFrame(
        {
            "name": ["Mill Lane", "Far Away Park"],
            "kind": ["street", "park"],
            "lat": [lat, 51.46],
            "lon": [lon, -0.19],
            "ward_code": ["W1", "W1"],
            "geom": [None, None],
        }
    )
    areas = hotspot_areas(frame(bins), res=RES, wards=WARDS, places=places)
    assert areas["name"].tolist() == ["Mill Lane"]
    assert areas["ward_codes"].iloc[0] == ["W1"] and areas["wards"].iloc[0] == "West"


def _points(names: list[str], cells: list[int]) -> pd.DataFrame:
    where = [h3.cell_to_latlng(h3.int_to_str(c)) for c in cells]
    return pd.DataFrame(
        {
            "name": names,
            "kind": ["street"] * len(names),
            "lat": [p[0] for p in where],
            "lon": [p[1] for p in where],
            "geom": [None] * len(names),
        }
    )


def test_an_area_over_two_places_names_both_and_over_more_says_and_nearby():
    centre = cell(51.5, -0.15)
    bins = {c: 0 for c in disk(centre, 4)}
    bins.update({c: 3 for c in disk(centre, 2)})
    bins[centre] = 3
    frame_ = frame(bins)
    frame_.loc[frame_["h3"] == np.uint64(centre), "z"] = 9.0  # the peak, where the first name is
    near, far, farther = centre, ring(centre, 1)[0], ring(centre, 2)[0]
    two = hotspot_areas(
        frame_, res=RES, wards=WARDS, places=_points(["Old Market", "Queens Wharf"], [near, far])
    )
    assert two["name"].tolist() == ["Old Market and Queens Wharf"]
    three = _points(["Old Market", "Queens Wharf", "Castle Street"], [near, far, farther])
    named = hotspot_areas(frame_, res=RES, wards=WARDS, places=three)["name"].tolist()
    assert named == ["Old Market, Queens Wharf and nearby"]


def test_without_a_gazetteer_an_area_is_named_by_ward_and_direction():
    north = cell(51.53, -0.15)
    bins = {c: 0 for c in disk(north, 3)}
    bins.update({c: 3 for c in disk(north, 1)})
    areas = hotspot_areas(frame(bins), res=RES, wards=WARDS, places=None)
    assert areas["name"].tolist() == ["north of West ward centre"]


def test_an_area_across_a_ward_boundary_names_both_wards():
    edge = cell(51.5, -0.1)
    bins = {c: 0 for c in disk(edge, 4)}
    bins.update({c: 3 for c in disk(edge, 2)})
    areas = hotspot_areas(frame(bins), res=RES, wards=WARDS)
    assert sorted(areas["ward_codes"].iloc[0]) == ["E1", "W1"]
    row = areas.iloc[0]
    assert row["min_lon"] < -0.1 < row["max_lon"] and row["min_lat"] < row["lat"] < row["max_lat"]
    assert 11 <= row["zoom"] <= 17


def test_two_areas_of_one_name_are_told_apart():
    a, b = cell(51.52, -0.15), cell(51.53, -0.12)
    bins = {c: 0 for c in disk(a, 3) + disk(b, 3)}
    bins[a] = bins[b] = 3
    places = pd.DataFrame(
        {"name": ["Hill Street"], "kind": ["street"], "lat": [51.525], "lon": [-0.135], "geom": [None]}
    )
    areas = hotspot_areas(frame(bins), res=RES, wards=WARDS, places=places, max_km=5)
    assert sorted(areas["name"]) == ["Hill Street", "Hill Street (2)"]


# ---------------------------------------------------------------------------------------------
# Released totals


def test_an_area_total_is_released_afresh_from_exact_counts():
    centre = cell(51.5, -0.15)
    hot = disk(centre, 1)
    bins = {c: 0 for c in disk(centre, 3)}
    bins.update({c: 3 for c in hot})
    # Seven cells of 1 to 3 records: each would be suppressed, but together they are 14.
    exact = {c: 1 + i % 3 for i, c in enumerate(hot)}
    total = sum(exact.values())
    areas = hotspot_areas(frame(bins, exact), res=RES, wards=WARDS, sharing="partners")
    row = areas.iloc[0]
    assert not row["records_suppressed"] and row["records"] % 5 == 0 and row["records"] > 0
    keys = frame(bins, exact).set_index("h3").loc[np.array(hot, dtype=np.uint64), "cell_key"].to_numpy()
    expected, _ = DEFAULT_RULE.release(np.array([total]), True, np.bitwise_xor.reduce(keys)[None])
    assert row["records"] == expected[0] and row["records_label"] == f"{expected[0]:,.0f}"

    # An area of fewer than five records reads "<5", its figure empty.
    few = {c: (1 if c == centre else 0) for c in hot}
    row = hotspot_areas(frame(bins, few), res=RES, wards=WARDS, sharing="restricted").iloc[0]
    assert row["records_suppressed"] and np.isnan(row["records"]) and row["records_label"] == "<5"

    # Open data is exact.
    row = hotspot_areas(frame(bins, exact), res=RES, wards=WARDS, sharing="open").iloc[0]
    assert row["records"] == total and not row["records_suppressed"]


def test_a_protected_area_without_exact_counts_is_refused():
    centre = cell(51.5, -0.15)
    bins = {c: 3 for c in disk(centre, 1)}
    cells = frame(bins).drop(columns=["exact_count", "cell_key"])
    with pytest.raises(ValueError, match="exact_count"):
        hotspot_areas(cells, res=RES, wards=WARDS, sharing="partners")
    # The level a hotspot frame was released at is read from it when not given.
    with pytest.raises(ValueError, match="areas_for"):
        hotspot_areas(cells.assign(sharing="restricted"), res=RES, wards=WARDS)
    assert len(hotspot_areas(cells.assign(sharing="open"), res=RES, wards=WARDS)) == 1


# ---------------------------------------------------------------------------------------------
# Plain words


def test_intervention_status_and_trend_in_words():
    assert intervention_words(["served hotspot", "served hotspot"]) == "served"
    assert intervention_words(["multi-agency intervention", "served hotspot"]) == "served by several agencies"
    assert intervention_words(["served hotspot", "unserved hotspot", "unserved hotspot"]) == (
        "partly served (1 of 3 cells)"
    )
    assert intervention_words(["unserved hotspot"]) == "unserved"
    assert intervention_words(["no intervention data selected"]) == "no intervention data selected"
    assert trend_words(["intensifying hot spot"] * 3 + ["no pattern"]) == ("intensifying hot spot", "rising")
    assert (
        trend_words(["new hot spot", "new hot spot", "persistent hot spot"])[1] == "new in the latest month"
    )
    assert trend_words(["persistent hot spot"] + ["no pattern"] * 5) == ("no pattern", "no clear trend")
    assert trend_words(["diminishing cold spot"] * 2, side="cold")[1] == "less quiet than before"


# ---------------------------------------------------------------------------------------------
# The demo city


@pytest.mark.parametrize("spot", ["industrial_estate", "northgate_estate", "town_centre"])
def test_the_demo_gazetteer_names_the_planted_hotspots(small_demo, small_demo_db, spot):
    planted = json.loads((small_demo / "demo" / "planted.json").read_text())
    where = planted["spots"][spot]
    f = Filter(datasets=tuple(sorted(where["datasets"])))
    with connect(small_demo_db[0], read_only=True) as con:
        spots, _ = hex_hotspots(con, f, 8)
        areas = areas_for(con, f, 8, spots)
    near = {h3.str_to_int(c) for c in h3.grid_disk(h3.latlng_to_cell(where["lat"], where["lon"], 8), 1)}
    holding = areas[[bool(near & set(cells)) for cells in areas["cells"]]]
    assert len(holding), f"no hotspot area at {spot}"
    assert planted["gazetteer"][spot] in holding["name"].iloc[0]


def test_a_cell_split_by_a_ward_boundary_shows_its_part_beside_its_total(small_demo_db):
    with connect(small_demo_db[0], read_only=True) as con:
        f = Filter(datasets=("council_env",))  # open: figures are exact, so they can be checked
        spots, _ = hex_hotspots(con, f, 8)
        areas = areas_for(con, f, 8, spots)
        top = areas.iloc[0]
        ward = top["ward_codes"][0]
        split = cell_ward_split(con, f, top["cells"], ward)
        exact = con.execute(
            "SELECT count(*) FROM events WHERE dataset = 'council_env' AND ward_code = ?", [ward]
        ).fetchall()[0][0]
        wkb = dict(con.execute("SELECT code, geom_wkb FROM wards").fetchall())
        protected = cell_ward_split(con, Filter(datasets=("police_crime",)), top["h3_cells"], ward)
    assert len(split) == top["n_cells"]
    assert (split["in_ward"] <= split["total"]).all() and split["in_ward"].sum() <= exact
    assert split["spans_wards"].any()
    # Whether a cell spans wards is its outline's business, never its counts'.
    ward_shape = shapely.from_wkb(bytes(wkb[ward]))
    for row in split.itertuples():
        hexagon = shapely.Polygon([(b, a) for a, b in h3.cell_to_boundary(row.h3_cell)])
        inside = hexagon.intersection(ward_shape).area / hexagon.area
        assert inside < 0.99 if row.spans_wards else inside > 0.95
        assert ward not in row.other_wards
    # Protected figures are released: multiples of five, or "<5" with no figure.
    for value, suppressed, label in zip(
        protected["in_ward"], protected["in_ward_suppressed"], protected["in_ward_label"], strict=True
    ):
        assert (suppressed and np.isnan(value) and label == "<5") or (value % 5 == 0 and value >= 5)


@pytest.mark.slow
def test_the_full_demo_names_its_merged_centre_and_harbour_mill_where_it_is_significant(full_demo):
    """At resolution 8 over the whole period Old Market and Queens Wharf station touch and are one
    area, named after both. Harbour Mill's rise began in mid-2024: over the whole period it is
    not significant among every dataset's records, but it is an area of the datasets it rose in,
    and of every dataset since it began."""
    import datetime as dt

    _, db, planted = full_demo
    with connect(db, read_only=True) as con:

        def names(f: Filter) -> list[str]:
            spots, _ = hex_hotspots(con, f, 8)
            found = areas_for(con, f, 8, spots)
            return found.loc[found["side"] == "hot", "name"].tolist()

        everything = names(Filter())
        since = names(Filter(start=dt.date(2024, 7, 1)))
        own = names(Filter(datasets=tuple(sorted(planted["spots"]["industrial_estate"]["datasets"]))))
    assert "Old Market and Queens Wharf station" in everything
    mill = planted["gazetteer"]["industrial_estate"]
    assert any(mill in n for n in since) and any(mill in n for n in own)
