"""Early warning: the planted Harbour Mill hotspot is caught soon after it starts, the
persistent hotspots are not flagged for being busy as usual, no month sees itself, and a
protected month below the threshold is never higher than expected."""

from __future__ import annotations

import json

import h3
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from app import early_warning as ew
from app import forecast as fc
from app.disclosure import DEFAULT_RULE


@pytest.fixture(scope="module")
def demo(small_demo, small_demo_db):
    from app.warehouse import connect

    con = connect(small_demo_db[0], read_only=True)
    planted = json.loads((small_demo / "demo" / "planted.json").read_text())
    yield con, planted
    con.close()


def _ward_of(con, lat: float, lon: float) -> str:
    import shapely

    for name, wkb in con.execute("SELECT name, geom_wkb FROM wards").fetchall():
        if shapely.from_wkb(bytes(wkb)).covers(shapely.Point(lon, lat)):
            return name
    raise AssertionError("planted spot outside every ward")


def _months_after_start() -> list[str]:
    """The three whole months after the emerging profile switches on (t = 0.55 of the span)."""
    from app.demo_city import DAYS, START

    start = pd.Timestamp(START + int(0.55 * (DAYS - 1)))
    return [f"{start + pd.DateOffset(months=k):%Y-%m}" for k in (1, 2, 3)]


def test_harbour_mill_flagged_within_three_months_and_persistent_hotspots_not(demo):
    con, planted = demo
    spots = planted["spots"]
    (emerging,) = planted["patterns"]["emerging_hotspots"]
    harbour = _ward_of(con, spots[emerging]["lat"], spots[emerging]["lon"])
    persistent = {
        _ward_of(con, spots[s]["lat"], spots[s]["lon"]) for s in planted["patterns"]["persistent_hotspots"]
    }
    assert harbour == "Harbour Mill" and len(persistent) == 3
    months = _months_after_start()
    flagged = pd.concat([ew.warnings(con, month=m) for m in months], ignore_index=True)
    caught = flagged[flagged["place_name"].str.contains(harbour)]
    assert not caught.empty, f"Harbour Mill not flagged in {months}"
    assert set(caught["dataset"]) & set(spots[emerging]["datasets"])  # caught in its own data
    assert (caught["observed"] > caught["upper"]).all()
    first = caught.sort_values("month").iloc[0]
    assert first["sentence"].startswith("Higher than expected: ")
    busy_as_usual = flagged[(flagged["place_kind"] == "ward") & flagged["place_name"].isin(persistent)]
    assert busy_as_usual.empty, busy_as_usual[["place_name", "dataset", "sentence"]].to_string()
    # Nor the hotspot areas over the persistent hotspots (an area holding a spot's centre).
    centres = {
        h3.latlng_to_cell(spots[s]["lat"], spots[s]["lon"], ew.AREA_RES)
        for s in planted["patterns"]["persistent_hotspots"]
    }
    areas = flagged[flagged["place_kind"] == "area"]
    over = areas[[bool(centres & set(cells)) for cells in areas["h3_cells"]]]
    assert over.empty, over[["place_name", "dataset", "sentence"]].to_string()
    # Harbour Mill's own area is flagged too, in its own data, within the three months.
    harbour_cell = h3.latlng_to_cell(spots[emerging]["lat"], spots[emerging]["lon"], ew.AREA_RES)
    near = {harbour_cell, *h3.grid_disk(harbour_cell, 1)}
    assert any(near & set(cells) for cells in areas["h3_cells"]), areas[["place_name", "month"]].to_string()


def test_latest_month_checks_every_ward_for_every_demand_unit(demo):
    con, _ = demo
    frame = ew.checks(con, kinds=("ward",))
    wards = con.execute("SELECT count(*) FROM wards").fetchone()[0]
    assert set(frame.groupby(["dataset", "agency"]).size()) == {wards}
    protected = frame[frame["dataset"].isin(["police_crime", "ambulance", "housing_repairs", "early_help"])]
    shown = protected[~protected["observed_suppressed"]]
    assert (shown["observed"] % DEFAULT_RULE.base == 0).all() and (shown["observed"] >= 5).all()
    assert protected.loc[protected["observed_suppressed"], "observed"].isna().all()
    assert not protected.loc[protected["observed_suppressed"], "higher_than_expected"].any()
    forecast_shown = protected[~protected["expected_suppressed"]]
    assert (forecast_shown[["expected", "lower", "upper"]] % DEFAULT_RULE.base == 0).all().all()


def test_a_quiet_latest_month_gives_way_to_the_most_recent_month_with_flags(demo):
    con, _ = demo
    latest = ew.months_available(con)[0]
    assert ew.warnings(con).empty  # the demo's latest whole month is quiet
    found = ew.recent_warnings(con)
    assert found.latest == [latest] and found.month is not None and found.month < latest
    assert len(found.frame) and {f"{m:%Y-%m}" for m in pd.to_datetime(found.frame["month"])} == {found.month}
    between = [m for m in ew.months_available(con) if found.month < m < latest]
    assert all(ew.warnings(con, month=m).empty for m in between)  # none more recent was skipped
    assert found.searched == len(between) + 2
    pd.testing.assert_frame_equal(found.frame, ew.warnings(con, month=found.month))
    assert ew.month_words(found.month) == f"{pd.Timestamp(found.month + '-01'):%B %Y}"
    # Looking back no further than the latest month finds nothing, and says which it judged.
    none = ew.recent_warnings(con, back=1)
    assert none.month is None and none.frame.empty and none.latest == [latest]


# Synthetic series ---------------------------------------------------------------------------


def _place_series(values: np.ndarray, protected: bool = False) -> ew.PlaceSeries:
    places = np.array([f"P{i}" for i in range(values.shape[0])], dtype=object)
    months = np.arange(np.datetime64("2022-01"), np.datetime64("2022-01") + values.shape[1])
    series = fc.Series(places, months, values, sp.csr_matrix((len(places), len(places))), protected)
    suppressed = np.zeros(values.shape, dtype=bool)
    shown = values.astype(float).copy()
    if protected:
        suppressed = values == 2.0
        shown[suppressed] = np.nan
    return ew.PlaceSeries(series, shown, suppressed)


def test_a_month_is_judged_by_a_forecast_that_never_saw_it_or_later_months():
    rng = np.random.default_rng(3)
    values = rng.poisson(rng.gamma(2.0, 5.0, 40)[:, None], (40, 30)).astype(float)
    at = 24
    changed = values.copy()
    changed[:, at:] = rng.poisson(50, changed[:, at:].shape)
    first, second = (ew.check(_place_series(v), at) for v in (values, changed))
    for col in ("expected", "lower", "upper", "method"):
        assert first[col].tolist() == second[col].tolist()
    assert second["higher_than_expected"].sum() > first["higher_than_expected"].sum()


def test_a_steady_busy_place_is_not_flagged_and_a_new_rise_is():
    rng = np.random.default_rng(5)
    values = rng.poisson(8.0, (30, 30)).astype(float)
    values[0] = rng.poisson(120.0, 30)  # a persistent hotspot, busy as usual
    values[1, -1] = 60  # a place of about 8 a month with 60 in its latest month
    out = ew.check(_place_series(values), 29)
    assert not out.loc[0, "higher_than_expected"]
    assert out.loc[1, "higher_than_expected"]
    assert out.loc[1, "observed"] > out.loc[1, "upper"]


def test_a_protected_month_below_the_threshold_is_never_higher_than_expected():
    values = np.full((20, 30), 2.0)  # every month suppressed: the stand-in everywhere
    values[:, -1] = 2.0
    values[0, -1] = 15.0  # a released 15 where fewer than 5 were expected
    out = ew.check(_place_series(values, protected=True), 29)
    assert out.loc[0, "higher_than_expected"] and out.loc[0, "expected_suppressed"]
    assert not out.loc[1:, "higher_than_expected"].any()
    assert out.loc[1:, "observed"].isna().all()
    words = ew.sentence(next(out.assign(dataset_title="x").iloc[[0]].itertuples(index=False)))
    assert words == "Higher than expected: 15 records in June 2024 against fewer than 5 expected"


def test_sentences_read_as_a_councillor_would_say_them():
    row = pd.Series(
        {
            "month": pd.Timestamp("2024-10-01"),
            "observed": 42.0,
            "observed_suppressed": False,
            "expected": 17.0,
            "lower": 10.0,
            "upper": 25.0,
            "expected_suppressed": False,
            "higher_than_expected": True,
        }
    )
    tup = next(pd.DataFrame([row]).itertuples(index=False))
    assert ew.sentence(tup) == "Higher than expected: 42 records in October 2024 against 10 to 25 expected"


def test_ward_sentence_names_what_ran_higher_or_is_none(demo):
    con, _ = demo
    flags = pd.DataFrame(
        [
            {
                "place_kind": "ward",
                "place_id": "W1",
                "dataset_title": "Fire and rescue incidents",
                "agency": "Fairhaven Fire and Rescue",
                "month": pd.Timestamp("2024-10-01").date(),
                "observed": 42.0,
                "lower": 10.0,
                "upper": 25.0,
                "expected_suppressed": False,
            }
        ]
    )
    assert ew.ward_sentence(con, "W2", flags) is None
    assert ew.ward_sentence(con, "W1", flags) == (
        "Higher than expected in October 2024: Fire and rescue incidents (Fairhaven Fire and Rescue), "
        "42 records against 10 to 25 expected."
    )


def test_the_map_layer_draws_flagged_wards_and_areas_with_plain_tooltips():
    import layers

    ward = json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [0, 0]]]})
    frame = pd.DataFrame(
        {
            "place_kind": ["ward", "area", "ward"],
            "place_id": ["W1", "hot-1", "W2"],
            "place_name": ["Harbour Mill", "Harbour Mill industrial estate", "Quiet"],
            "dataset_title": ["Fire and rescue incidents"] * 3,
            "agency": ["Fairhaven Fire and Rescue"] * 3,
            "sentence": ["Higher than expected: 42 records in October 2024 against 10 to 25 expected"] * 3,
            "higher_than_expected": [True, True, False],
            "geojson": [ward, None, ward],
            "h3_cells": [[], ["88194368c3fffff"], []],
        }
    )
    built = layers.build("early_warning", frame)
    assert "early_warning" in layers.REGISTRY and built.title == "Higher than expected"
    ids = [layer.id for layer in built.layers]
    assert ids == ["early-warning-wards", "early-warning-areas"]
    features = built.layers[0].data["features"]
    assert len(features) == 1  # the ward that is not higher than expected is not drawn
    assert features[0]["properties"]["tip"].endswith("against 10 to 25 expected")
    assert "Harbour Mill" in features[0]["properties"]["tip"]
    empty = layers.build("early_warning", frame.assign(higher_than_expected=False))
    assert not empty.layers and empty.note.startswith("No place ran higher")
