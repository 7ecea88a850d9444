"""The ward briefing says only what its figures say: ranks from released rates, changes over
each dataset's own last twelve months called rising or falling only past the corrected test,
datasets too short to compare left out and named, categories more common here by a tested
location quotient, hotspot areas and whether interventions reach them, and protected figures
in words that never tell zero from one to four."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from app import briefing
from app.disclosure import DEFAULT_RULE
from app.filters import Filter
from app.ingest import load
from app.stats import bh_fdr
from app.warehouse import connect

# Two wards side by side around (51.5, -0.1): West (1,000 residents) and East (2,000).
WARDS = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"code": "W1", "name": "West", "pop": 1000},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[-0.2, 51.45], [-0.1, 51.45], [-0.1, 51.55], [-0.2, 51.55], [-0.2, 51.45]]],
            },
        },
        {
            "type": "Feature",
            "properties": {"code": "E1", "name": "East", "pop": 2000},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[-0.1, 51.45], [0.0, 51.45], [0.0, 51.55], [-0.1, 51.55], [-0.1, 51.45]]],
            },
        },
    ],
}
WEST, EAST = (51.5, -0.15), (51.5, -0.05)

HEADER = """
[study_area]
name = "Tiny"
boundaries = "wards.geojson"
code_field = "code"
name_field = "name"
population_field = "pop"
"""


def dataset(ds_id: str, title: str, agency: str, kind: str = "demand", sharing: str = "open") -> str:
    keys = {
        "id": ds_id,
        "title": title,
        "agency": agency,
        "kind": kind,
        "path": f"{ds_id}.csv",
        "lat": "lat",
        "lon": "lon",
        "time": "when",
        "category": "type",
        "sharing": sharing,
    }
    return "\n[[datasets]]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in keys.items()) + "\n"


def months(first: str, last: str) -> list[pd.Period]:
    return list(pd.period_range(first, last, freq="M"))


def spread(place: tuple[float, float], category: str, n: int, first: str, last: str) -> list[str]:
    """``n`` records of one category at one place, spread over the months ``first`` to ``last``
    (mid-month days, so a dataset's span is set by its own marker records)."""
    span = months(first, last)
    rows = []
    for i in range(n):
        month = span[i % len(span)]
        day = 10 + (i // len(span)) % 10
        rows.append(f"{place[0]},{place[1]},{month.start_time.date().replace(day=day)} 12:00:00,{category}")
    return rows


def markers(first: str, last: str) -> list[str]:
    """One record on the first day of the first month and one late in the last, in East, so
    that the dataset covers exactly these whole months."""
    start = pd.Period(first, "M").start_time.date()
    end = pd.Period(last, "M").end_time.date().replace(day=28)
    return [f"{EAST[0]},{EAST[1]},{start} 09:00:00,marker", f"{EAST[0]},{EAST[1]},{end} 09:00:00,marker"]


def csv(rows: list[str]) -> str:
    return "lat,lon,when,type\n" + "\n".join(rows) + "\n"


def tiny_city(root: Path, west_referrals: int = 3) -> Path:
    """Calls (open, Jan 2023 to Dec 2024), fires (open, ending in Jun 2024), a council dataset
    of twelve months only, children's referrals (restricted) and patrols (open interventions)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wards.geojson").write_text(json.dumps(WARDS))
    files = {
        "calls": markers("2023-01", "2024-12")
        + spread(WEST, "noise", 20, "2023-01", "2023-12")
        + spread(WEST, "noise", 60, "2024-01", "2024-12")
        + spread(WEST, "theft", 30, "2023-01", "2023-12")
        + spread(WEST, "theft", 30, "2024-01", "2024-12")
        + spread(WEST, "litter", 5, "2023-01", "2023-12")
        + spread(WEST, "litter", 15, "2024-01", "2024-12")
        + spread(EAST, "noise", 20, "2023-01", "2024-12")
        + spread(EAST, "theft", 200, "2023-01", "2024-12"),
        "fires": markers("2022-01", "2024-06")
        + spread(WEST, "fire", 10, "2022-01", "2022-06")
        + spread(WEST, "fire", 50, "2022-07", "2023-06")
        + spread(WEST, "fire", 10, "2023-07", "2024-06")
        + spread(EAST, "fire", 60, "2022-01", "2024-06"),
        "council": markers("2024-01", "2024-12")
        + spread(WEST, "graffiti", 30, "2024-01", "2024-12")
        + spread(EAST, "graffiti", 30, "2024-01", "2024-12"),
        "referrals": markers("2023-01", "2024-12")
        + spread(WEST, "neglect", west_referrals, "2023-01", "2024-12")
        + spread(EAST, "neglect", 60, "2023-01", "2024-12"),
        "patrols": markers("2023-01", "2024-12") + spread(WEST, "patrol", 24, "2023-01", "2024-12"),
    }
    for name, rows in files.items():
        (root / f"{name}.csv").write_text(csv(rows))
    catalog = (
        HEADER
        + dataset("calls", "Calls", "Police")
        + dataset("fires", "Fires", "Fire Service")
        + dataset("council", "Council reports", "Council")
        + dataset("referrals", "Referrals", "Children's Services", sharing="restricted")
        + dataset("patrols", "Patrols", "Police", kind="intervention")
    )
    (root / "catalog.toml").write_text(catalog)
    db = root / "w.duckdb"
    load(root / "catalog.toml", db, now=dt.datetime(2025, 6, 1))
    return db


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    return tiny_city(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def west(city) -> briefing.Briefing:
    with connect(city, read_only=True) as con:
        return briefing.ward_briefing(con, Filter(), "W1")


def sentences(b: briefing.Briefing, topic: str) -> list[briefing.Sentence]:
    return [s for s in b.sentences if s.topic == topic]


def every_figure_is_in_its_sentence(b: briefing.Briefing) -> None:
    for s in b.sentences:
        for value in s.figures.values():
            assert value in s.text, (value, s.text)


# --- Ranking ------------------------------------------------------------------------------------


def test_rank_sentence_rests_on_the_ranking_of_every_ward(west):
    every_figure_is_in_its_sentence(west)
    ranking = west.ranking
    overall = ranking[ranking["measure"] == briefing.ALL_DEMAND].set_index("ward_code")
    assert set(overall.index) == {"W1", "E1"} and (overall["ranked"] == 2).all()
    rank = sentences(west, "rank")[0]
    row = overall.loc["W1"]
    assert rank.figures["rank"] == briefing.ordinal(int(row["rank"]))
    assert rank.figures["rate per 1,000"] == f"{1000 * row['records'] / 1000:,.1f}"
    assert rank.figures["records"] == f"{row['records']:,.0f}"
    assert rank.text.startswith(f"It ranks {rank.figures['rank']} of 2 wards for demand per 1,000 residents")
    # Rank 1 is the highest rate.
    assert overall.sort_values("rate_per_1000", ascending=False)["rank"].tolist() == [1, 2]


def test_ranking_counts_demand_only_and_is_exact_for_open_data(city):
    with connect(city, read_only=True) as con:
        ranking = briefing.ward_ranking(con, Filter(datasets=("calls", "fires", "patrols")))
    assert set(ranking["measure"]) == {briefing.ALL_DEMAND, "Police", "Fire Service"}
    overall = ranking[ranking["measure"] == briefing.ALL_DEMAND].set_index("ward_code")
    west_calls = 20 + 60 + 30 + 30 + 5 + 15
    west_fires = 10 + 50 + 10
    assert overall.loc["W1", "records"] == west_calls + west_fires  # no patrols in it
    assert overall.loc["W1", "rate_per_1000"] == pytest.approx(west_calls + west_fires)
    police = ranking[ranking["measure"] == "Police"].set_index("ward_code")
    assert police.loc["W1", "records"] == west_calls  # the police's demand, not its patrols


def test_no_rank_without_populations_or_demand():
    frame = pd.DataFrame(
        {
            "measure": [briefing.ALL_DEMAND] * 2,
            "ward_code": ["A", "B"],
            "ward_name": ["A", "B"],
            "population": [np.nan, np.nan],
            "records": [10.0, 20.0],
            "suppressed": [False, False],
            "label": ["10", "20"],
            "rate_per_1000": [np.nan, np.nan],
            "rank": pd.array([pd.NA, pd.NA], dtype="Int64"),
            "ranked": [0, 0],
        }
    )
    (said,) = briefing.rank_sentences(frame, "A", "2024")
    assert "the boundary file gives no populations" in said.text
    (none,) = briefing.rank_sentences(frame.iloc[0:0], "A", "2024")
    assert none.text.startswith("No demand dataset is selected")


# --- Changes ----------------------------------------------------------------------------------------


def test_each_dataset_is_compared_over_its_own_last_twelve_months(west):
    windows = west.windows.set_index("id")
    assert windows.loc["calls", "current"] == (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert windows.loc["calls", "previous"] == (dt.date(2023, 1, 1), dt.date(2023, 12, 31))
    assert windows.loc["fires", "current"] == (dt.date(2023, 7, 1), dt.date(2024, 6, 30))
    assert windows.loc["fires", "previous"] == (dt.date(2022, 7, 1), dt.date(2023, 6, 30))
    said = " ".join(s.text for s in sentences(west, "windows"))
    assert "end at different dates, so each is compared over its own last twelve months" in said
    assert "Fires: Jul 2023 to Jun 2024 against Jul 2022 to Jun 2023" in said


def test_a_dataset_under_24_months_is_left_out_and_said(west):
    windows = west.windows.set_index("id")
    assert windows.loc["council", "current"] is None
    assert "council" not in set(west.changes["dataset"])
    said = " ".join(s.text for s in sentences(west, "windows"))
    assert (
        "Council reports is left out of the changes: it covers only Jan 2024 to Dec 2024 (12 months), "
        "under the 24 a year against the year before needs." in said
    )


def test_changes_are_counted_in_each_window_and_tested(west):
    changes = west.changes.set_index(["dataset", "category"], drop=False)
    noise = changes.loc[("calls", "noise")]
    assert (noise["current"], noise["previous"]) == (60, 20)
    assert noise["p"] == pytest.approx(binomtest(60, 80, 0.5).pvalue)
    assert noise["verdict"] == "rising"
    theft = changes.loc[("calls", "theft")]
    assert (theft["current"], theft["previous"]) == (30, 30) and theft["verdict"] == "no clear change"
    fires = west.changes[(west.changes["dataset"] == "fires") & (west.changes["level"] == "dataset")].iloc[0]
    assert (fires["current"], fires["previous"]) == (10, 50) and fires["verdict"] == "falling"
    # Benjamini-Hochberg over every change tested, at 5 %.
    tested = west.changes[west.changes["tested"]]
    assert np.allclose(tested["q"], bh_fdr(tested["p"].to_numpy()))
    called = tested["verdict"].isin(["rising", "falling"])
    assert (called == (tested["q"] < 0.05)).all()


def test_a_change_significant_alone_is_not_called_after_the_correction(west):
    """Litter, 5 then 15: p = 0.041 on its own, but not once the other changes are counted."""
    litter = west.changes.set_index(["dataset", "category"]).loc[("calls", "litter")]
    assert litter["p"] < 0.05 <= litter["q"]
    assert litter["verdict"] == "no clear change"
    assert not any("litter" in s.text for s in sentences(west, "change"))


def test_the_test_threshold_is_five_per_cent():
    def one(current: float, previous: float) -> str:
        frame = pd.DataFrame(
            {
                "current": [current],
                "previous": [previous],
                "current_suppressed": [False],
                "previous_suppressed": [False],
                "share": [0.5],
            }
        )
        return briefing._test(frame, DEFAULT_RULE).iloc[0]

    assert binomtest(15, 20, 0.5).pvalue < 0.05 and one(15, 5)["verdict"] == "rising"
    assert binomtest(14, 19, 0.5).pvalue > 0.05 and one(14, 5)["verdict"] == "no clear change"
    assert one(5, 15)["verdict"] == "falling"
    assert one(0, 0)["verdict"] == "no records in either window"


def test_windows_of_unequal_length_are_tested_in_proportion_to_their_days():
    year = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    before = (dt.date(2023, 1, 1), dt.date(2023, 12, 31))
    assert briefing._share_of_current(year, before) == 0.5
    days = briefing._share_of_current(
        (dt.date(2024, 1, 5), dt.date(2024, 1, 14)), (dt.date(2024, 1, 1), dt.date(2024, 1, 4))
    )
    assert days == pytest.approx(10 / 14)


def test_change_sentences_name_the_rise_and_the_fall_with_their_figures(west):
    said = {s.text: s.figures for s in sentences(west, "change")}
    rise = next(t for t in said if t.startswith("noise in Calls rose"))
    assert rise == (
        "noise in Calls rose: 60 records in Jan 2024 to Dec 2024 against 20 in the twelve months before "
        "(+200 %)."
    )
    assert said[rise] == {
        "records": "60",
        "previous records": "20",
        "change": "+200 %",
        "window": "Jan 2024 to Dec 2024",
    }
    fall = next(t for t in said if t.startswith("Fires fell"))
    assert "10 records in Jul 2023 to Jun 2024 against 50" in fall and "(-80 %)" in fall
    every_figure_is_in_its_sentence(west)


def test_nothing_called_when_nothing_passes(city):
    with connect(city, read_only=True) as con:
        b = briefing.ward_briefing(con, Filter(datasets=("calls",), categories=("theft",)), "W1")
    (said,) = sentences(b, "change")
    assert said.text.startswith("Nothing rose or fell by more than chance would explain")


def test_the_filters_period_can_be_compared_instead(city):
    with connect(city, read_only=True) as con:
        f = Filter(datasets=("calls",), start=dt.date(2024, 7, 1), end=dt.date(2024, 12, 31))
        b = briefing.ward_briefing(con, f, "W1", own_windows=False)
    window = b.windows.set_index("id").loc["calls"]
    assert window["current"] == (dt.date(2024, 7, 1), dt.date(2024, 12, 31))
    assert window["previous"] == (dt.date(2024, 1, 1), dt.date(2024, 6, 30))
    assert "Changes compare Jul 2024 to Dec 2024 with Jan 2024 to Jun 2024." in b.text()


# --- Protected figures --------------------------------------------------------------------------


def test_protected_figures_are_words_and_never_tested_when_suppressed(west):
    referrals = west.changes[west.changes["dataset"] == "referrals"]
    west_level = referrals[referrals["level"] == "dataset"].iloc[0]
    assert west_level["verdict"] == "not tested: a figure is suppressed"
    assert west_level["current_label"] == "fewer than 5" and np.isnan(west_level["current"])
    unranked = [s for s in sentences(west, "rank") if "not ranked for" in s.text]
    assert unranked and "Children's Services" in unranked[0].text
    assert "fewer than 5 records here" in unranked[0].text
    assert not any("Referrals" in s.text for s in sentences(west, "change"))


def test_zero_and_three_protected_records_read_alike(tmp_path):
    """Whether a restricted dataset has no record in the ward or three, the briefing's words and
    its tested changes of that dataset are the same."""
    said = []
    for n in (0, 3):
        db = tiny_city(tmp_path / f"n{n}", west_referrals=n)
        with connect(db, read_only=True) as con:
            b = briefing.ward_briefing(con, Filter(datasets=("referrals", "calls")), "W1")
        mine = b.changes[b.changes["dataset"] == "referrals"].drop(columns=["p", "q"])
        said.append(
            (
                [s.text for s in b.sentences if "Children" in s.text or "Referrals" in s.text],
                mine.astype(str).to_dict("records"),  # NaN as "nan": equal where both are
                b.ranking[(b.ranking["measure"] == "Children's Services") & (b.ranking["ward_code"] == "W1")][
                    ["records", "suppressed", "label", "rank"]
                ]
                .astype(str)
                .to_dict("records"),
            )
        )
    assert said[0] == said[1]


def test_count_words_follow_the_rule():
    assert briefing.count_words(np.nan, True) == "fewer than 5"
    assert briefing.count_words(0.0, True) == "fewer than 5"
    assert briefing.count_words(1234.0, False) == "1,234"


# --- Categories more common here ------------------------------------------------------------------


def test_location_quotient_is_tested_against_the_rest_of_the_city(west):
    lq = west.quotients.set_index(["dataset", "category"])
    noise = lq.loc[("calls", "noise")]
    here, city = 80 / 160, (80 + 20) / (160 + 222)  # East: 220 records and its two markers
    assert noise["share_here"] == pytest.approx(here)
    assert noise["share_city"] == pytest.approx(city)
    assert noise["lq"] == pytest.approx(here / city)
    rest = binomtest(80, 160, 20 / 222, alternative="greater").pvalue
    assert noise["p"] == pytest.approx(rest)
    assert noise["more_common"]
    assert not lq.loc[("calls", "theft"), "more_common"]  # less common here
    said = [s for s in sentences(west, "categories") if s.text.startswith("noise is more common here")]
    assert said and said[0].figures["share here"] == "50 %" and said[0].figures["share in the city"] == "26 %"


# --- Hotspot areas ----------------------------------------------------------------------------------


def areas_frame() -> pd.DataFrame:
    """Rows as ``app.areas.hotspot_areas`` gives them (the columns the briefing reads)."""
    return pd.DataFrame(
        {
            "name": ["Old Market", "Northgate estate", "Quiet Lane", "Far Away"],
            "side": ["hot", "hot", "cold", "hot"],
            "cls": ["hot spot, 99 % confidence"] * 2
            + ["cold spot, 95 % confidence", "hot spot, 95 % confidence"],
            "ward_codes": [["W1"], ["W1", "E1"], ["W1"], ["E1"]],
            "n_cells": [5, 3, 2, 4],
            "intervention_status": ["served", "unserved", "", "served"],
        }
    )


def test_areas_touching_the_ward_are_named_with_their_coverage():
    mine = briefing.areas_in_ward(areas_frame(), "W1")
    assert mine["name"].tolist() == ["Old Market", "Northgate estate"]  # hot ones touching W1
    areas, coverage = briefing.area_sentences(mine, interventions=True)
    assert areas.text == "It has 2 areas of concentrated demand: Old Market and Northgate estate."
    assert areas.figures == {"areas": "2"}
    assert coverage.text == "Concentrated interventions reach Old Market and do not reach Northgate estate."
    assert coverage.figures == {"Old Market": "served", "Northgate estate": "unserved"}
    _, none = briefing.area_sentences(mine, interventions=False)
    assert "No intervention data is selected" in none.text
    (empty,) = briefing.area_sentences(briefing.areas_in_ward(areas_frame(), "Z9"), interventions=True)
    assert empty.text.startswith("It has no area of concentrated demand")


def test_briefing_carries_the_areas_it_is_given(city):
    with connect(city, read_only=True) as con:
        b = briefing.ward_briefing(con, Filter(), "W1", areas=areas_frame())
    assert b.areas["name"].tolist() == ["Old Market", "Northgate estate"]
    assert "It has 2 areas of concentrated demand" in b.text()
    with pytest.raises(ValueError, match="no ward has the code"), connect(city, read_only=True) as con:
        briefing.ward_briefing(con, Filter(), "NOPE")


# --- The page -----------------------------------------------------------------------------------


def test_the_ward_page_opens_with_the_summary_and_folds_the_analyst_detail(small_demo_db, monkeypatch):
    from conftest import REPO
    from streamlit.testing.v1 import AppTest

    db, _ = small_demo_db
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    at = AppTest.from_file(str(REPO / "app" / "dashboard" / "streamlit_app.py"), default_timeout=180)
    at.query_params["ward"] = "E05900002"
    at.switch_page("screens/ward.py").run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    assert at.subheader[0].value == "Summary"
    with connect(db, read_only=True) as con:
        expected = briefing.ward_briefing(con, Filter(), "E05900002")
    shown = at.markdown[0].value.replace("\\", "")
    for sentence in expected.sentences:
        if sentence.topic != "areas" and sentence.topic != "coverage":  # areas: the page's own cache
            assert f"- {sentence.text}" in shown
    assert at.selectbox(key="ward_compare").value == "own"
    folded = {c for e in at.expander for d in e.dataframe for c in d.value.columns}
    assert {"h3_cell", "z", "p_fdr"} <= folded
    in_the_open = [d for d in at.main.dataframe if not any(d is x for e in at.expander for x in e.dataframe)]
    for frame in in_the_open:
        assert not {"h3_cell", "p_fdr", "hot_demand_agencies", "z"} & set(frame.value.columns)
    ranking = next(d.value for d in in_the_open if "Rank" in d.value.columns)
    assert "E05900002" in set(ranking["ward_code"])
