"""The priorities and early-warning pages through streamlit.testing, opened from their files."""

from __future__ import annotations

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

PAGES = REPO / "app" / "dashboard" / "screens"


@pytest.fixture
def open_page(small_demo_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(small_demo_db[0]))

    def run(name: str) -> AppTest:
        at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=180).run()
        assert not at.exception, at.exception[0].message if at.exception else ""
        return at

    return run


def _text(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.markdown, *at.info, *at.caption, *at.success, *at.error])


def test_priorities_opens_with_every_demand_agency_at_equal_weight(open_page, small_demo_db):
    from app import priorities as pr
    from app.warehouse import connect

    with connect(small_demo_db[0], read_only=True) as con:
        every = pr.demand_agencies(con)
    at = open_page("priorities")
    assert len(every) > 1 and list(at.multiselect(key="pr_agencies").value) == every
    assert [at.number_input(key=f"pr_w_{a}").value for a in every] == [1.0] * len(every)
    text = _text(at)
    assert "are ranked by the records expected next month, summed with equal weights over" in text
    assert all(f"({a})" in text for a in every) and "×" not in text
    # The score reads with thousands separators; the table keeps the number (it sorts as one).
    assert '"%,.1f"' in at.dataframe[0].proto.columns
    assert at.dataframe[0].value["Weighted expected demand"].dtype.kind == "f"


def test_priorities_ranks_places_and_says_how(open_page):
    at = open_page("priorities")
    assert at.title[0].value == "Priorities"
    picker = at.multiselect(key="pr_agencies")
    picker.set_value(["Fairhaven City Council", "Fairhaven Fire and Rescue"]).run()
    at.number_input(key="pr_w_Fairhaven Fire and Rescue").set_value(2.0).run()
    assert not at.exception
    text = _text(at)
    assert "are ranked by the records expected next month" in text and "× 2" in text
    table = at.dataframe[0].value
    assert list(table["Rank"])[:3] == [1, 2, 3]
    assert table["Weighted expected demand"].is_monotonic_decreasing
    assert set(table["Interventions"]) <= {
        "unserved",
        "served",
        "outside need",
        "no intervention data",
        "no hotspot",
    }
    assert table["Expected (estimate, 80 % interval)"].str.contains("expected").all()
    assert "backtest" in at.expander[0].label
    at.radio(key="pr_kind").set_value("Hotspot areas").run()
    assert not at.exception and len(at.dataframe[0].value) >= 1


def test_priorities_without_a_weight_asks_for_one(open_page):
    at = open_page("priorities")
    at.multiselect(key="pr_agencies").set_value(["Fairhaven Police"]).run()
    at.number_input(key="pr_w_Fairhaven Police").set_value(0.0).run()
    assert not at.exception
    assert "Choose at least one agency with a weight above zero." in _text(at)


def test_early_warning_lists_flags_in_words_and_filters(open_page):
    at = open_page("early_warning")
    assert at.title[0].value == "Early warning"
    assert "prediction interval" in _text(at)
    at.selectbox(key="ew_month").set_value("2024-10").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["What happened"].str.startswith("Higher than expected: ").all()
    assert table["What happened"].str.contains("October 2024").all()
    assert table["Place"].str.contains("Harbour Mill").any()  # the planted emerging hotspot
    at.multiselect(key="ew_kinds").set_value(["Ward"]).run()
    assert set(at.dataframe[0].value["Kind"]) == {"Ward"}
    assert at.get("download_button")


def test_early_warning_opens_on_the_most_recent_month_with_flags_and_says_the_latest_had_none(open_page):
    """On the demo the latest whole month (December 2025) has no flag: the page says so in one
    sentence naming it, and shows the most recent month that has flags, named in the heading."""
    at = open_page("early_warning")
    assert at.selectbox(key="ew_month").value == "Latest whole month"
    said = [str(i.value) for i in at.info]
    assert any(
        s.startswith("No place ran higher than expected in December 2025, the latest whole month.")
        for s in said
    ), said
    heading = at.subheader[0].value
    assert (
        heading.startswith("Higher than expected in ") and heading != "Higher than expected in December 2025"
    )
    month = heading.removeprefix("Higher than expected in ")
    assert any(month in s for s in said)  # the sentence names the month shown
    table = at.dataframe[0].value
    assert len(table) and table["What happened"].str.contains(month).all()
    assert table["What happened"].str.startswith("Higher than expected: ").all()
    assert at.get("download_button")
    assert '"%,.0f"' in at.dataframe[1].proto.columns  # the analyst's figures, with separators
    kinds = set(table["Kind"])
    at.multiselect(key="ew_kinds").set_value([sorted(kinds)[0]]).run()
    assert not at.exception and set(at.dataframe[0].value["Kind"]) == {sorted(kinds)[0]}


def test_early_warning_names_a_quiet_month_picked(open_page):
    at = open_page("early_warning")
    at.selectbox(key="ew_month").set_value("2025-11").run()
    assert not at.exception
    assert "No place ran higher than expected in November 2025." in [str(s.value) for s in at.success]
