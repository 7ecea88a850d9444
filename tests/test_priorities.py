"""Priorities: places ranked by weighted expected demand, with interventions beside them, and
protected figures as released."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app import priorities as pr
from app.disclosure import DEFAULT_RULE


@pytest.fixture(scope="module")
def con(small_demo_db):
    from app.warehouse import connect

    c = connect(small_demo_db[0], read_only=True)
    yield c
    c.close()


def test_wards_ranked_by_weighted_expected_demand(con):
    one = pr.rank(con, {"Fairhaven Fire and Rescue": 1.0})
    three = pr.rank(con, {"Fairhaven Fire and Rescue": 3.0})
    wards = con.execute("SELECT count(*) FROM wards").fetchone()[0]
    assert len(one.frame) == wards and one.frame["rank"].tolist() == list(range(1, wards + 1))
    assert one.frame["score"].is_monotonic_decreasing
    both = one.frame.merge(three.frame, on="place_id", suffixes=("_1", "_3"))
    np.testing.assert_allclose(both["score_3"], 3 * both["score_1"], atol=0.2)  # scores to 0.1
    np.testing.assert_allclose(one.frame["score"], one.frame["expected_fire_incidents"], atol=0.051)
    assert (
        "expected next month, of Fire and rescue incidents (Fairhaven Fire and Rescue) alone"
        in one.description
    )
    assert one.units["method"].iloc[0] and one.units["backtest_pai_1"].iloc[0] > 0


def test_status_and_interventions_are_named_per_place(con):
    result = pr.rank(con, {"Fairhaven Homes": 1.0, "Fairhaven Police": 1.0})
    frame = result.frame
    assert set(frame["intervention_status"]) <= set(pr.STATUS_ORDER)
    northgate = frame[frame["place_name"] == "Northgate"].iloc[0]
    assert northgate["intervention_status"] == "unserved"  # planted: unserved hotspot
    assert northgate["rank"] <= 3
    # Protected interventions are named only with a released figure (a multiple of 5, 5 or more).
    for text in frame["interventions"]:
        for part in text.split("; "):
            if "(Fairhaven Police)" in part:
                figure = int(part.rsplit(": ", 1)[1].replace(",", ""))
                assert figure >= DEFAULT_RULE.threshold and figure % DEFAULT_RULE.base == 0


def test_protected_forecasts_enter_as_released_figures(con):
    frame = pr.rank(con, {"Midshire Ambulance Service": 1.0}).frame
    shown = frame[~frame["suppressed_ambulance"].astype(bool)]
    assert (shown["expected_ambulance"] % DEFAULT_RULE.base == 0).all()
    small = frame[frame["suppressed_ambulance"].astype(bool)]
    assert small["expected_ambulance"].isna().all()
    assert (small["score"] == 2.0).all() and small["expected_demand"].str.contains("fewer than 5").all()


def test_areas_and_bad_choices(con):
    areas = pr.rank(con, {"Fairhaven City Council": 1.0}, kind="area")
    assert len(areas.frame) >= 1 and areas.description.startswith("Hotspot areas are ranked")
    with pytest.raises(ValueError, match="at least one agency"):
        pr.rank(con, {"Fairhaven City Council": 0})
    with pytest.raises(ValueError, match="horizon"):
        pr.rank(con, {"Fairhaven City Council": 1}, horizon="next year")


def _units(weights: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": [f"{a} records" for a in weights],
            "agency": list(weights),
            "weight": list(weights.values()),
        }
    )


def test_the_description_says_equal_weights_when_every_agency_counts_alike():
    equal = pr.describe(_units({"Police": 1.0, "Fire": 1.0, "Council": 1.0}), "ward", "next month")
    assert "summed with equal weights over Police records (Police), Fire records (Fire), Council" in equal
    assert "×" not in equal
    weighted = pr.describe(_units({"Police": 1.0, "Fire": 3.0}), "area", "next quarter")
    assert weighted.startswith("Hotspot areas are ranked by the records expected next quarter, summed over ")
    assert "Fire records (Fire) × 3" in weighted and "equal weights" not in weighted
