"""The ward profile says only what is true: a change compares periods that every dataset covers,
a trend never adds up datasets that count different things, a headline counts one kind of
record, and a figure from datasets of different years says so."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from conftest import CATALOGS, REPO
from streamlit.testing.v1 import AppTest

from app import profile
from app.aggregate import category_counts, time_series, ward_aggregate
from app.filters import (
    Filter,
    compare_within,
    last_year_against_the_one_before,
    period_words,
)
from app.trends import agency_trend, coverage_note
from app.warehouse import connect

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")
D = dt.date


def spans(*rows: tuple[str, dt.date, dt.date]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["title", "first", "last"])


# --- The windows a change compares -------------------------------------------------------------


def test_without_dates_the_last_twelve_months_are_compared_with_the_twelve_before():
    both = spans(("Crime", D(2023, 1, 1), D(2025, 2, 28)), ("Fires", D(2022, 6, 1), D(2025, 6, 30)))
    got = last_year_against_the_one_before(both)
    assert got.current == (D(2024, 3, 1), D(2025, 2, 28))  # the months both datasets cover
    assert got.previous == (D(2023, 3, 1), D(2024, 2, 29))
    assert got.sentence == "Mar 2024 to Feb 2025 against Mar 2023 to Feb 2024"


def test_no_change_where_no_month_is_covered_by_every_dataset():
    """Bath's police: collisions end in 2013, street crime covers five months of 2018-19."""
    police = spans(
        ("Road traffic collisions", D(1996, 1, 1), D(2013, 12, 31)),
        ("Street crime", D(2018, 10, 1), D(2019, 2, 28)),
    )
    got = last_year_against_the_one_before(police)
    assert got.current is None and got.previous is None
    assert got.sentence.startswith("no previous period: no month is covered by every selected dataset")
    assert "Street crime Oct 2018 to Feb 2019" in got.sentence


def test_no_change_where_the_data_is_shorter_than_two_years():
    got = last_year_against_the_one_before(spans(("Street crime", D(2018, 10, 1), D(2019, 2, 28))))
    assert got.previous is None
    assert "the data covers only Oct 2018 to Feb 2019" in got.sentence


def test_a_period_is_compared_only_where_every_dataset_covers_both_windows():
    two = spans(("Fires", D(2009, 4, 1), D(2014, 8, 31)), ("Collisions", D(1996, 1, 1), D(2013, 12, 31)))
    inside = compare_within(two, (D(2012, 1, 1), D(2012, 12, 31)), (D(2011, 1, 1), D(2011, 12, 31)))
    assert inside.sentence == "Jan 2012 to Dec 2012 against Jan 2011 to Dec 2011"
    late = compare_within(two, (D(2013, 12, 1), D(2014, 2, 28)), (D(2013, 9, 1), D(2013, 11, 30)))
    assert late.current is None and "Collisions ends in Dec 2013" in late.sentence
    early = compare_within(two, (D(2009, 6, 1), D(2009, 8, 31)), (D(2009, 3, 1), D(2009, 5, 31)))
    assert early.previous is None and "Fires begins in Apr 2009" in early.sentence


def test_a_period_of_whole_months_is_compared_with_as_many_whole_months_before():
    f = Filter(start=D(2012, 1, 1), end=D(2012, 12, 31))
    assert (f.previous().start, f.previous().end) == (D(2011, 1, 1), D(2011, 12, 31))
    odd = Filter(start=D(2012, 1, 5), end=D(2012, 1, 14))
    assert (odd.previous().start, odd.previous().end) == (D(2011, 12, 26), D(2012, 1, 4))
    assert period_words(D(2024, 3, 1), D(2025, 2, 28)) == "Mar 2024 to Feb 2025"
    assert period_words(D(2024, 3, 4), D(2024, 3, 9)) == "4 Mar 2024 to 9 Mar 2024"


def test_ward_change_by_default_is_the_last_year_against_the_year_before(small_demo_db):
    db, _ = small_demo_db
    f = Filter(datasets=("council_env",))  # open: exact counts
    with connect(db, read_only=True) as con:
        wards = ward_aggregate(con, f, by_dataset=False)
        last = ward_aggregate(con, f.with_(start=D(2025, 1, 1), end=D(2025, 12, 31)), by_dataset=False)
        before = ward_aggregate(con, f.with_(start=D(2024, 1, 1), end=D(2024, 12, 31)), by_dataset=False)
    assert (wards["comparison"] == "Jan 2025 to Dec 2025 against Jan 2024 to Dec 2024").all()
    assert (wards["previous_start"] == D(2024, 1, 1)).all() and (
        wards["previous_end"] == D(2024, 12, 31)
    ).all()
    assert wards["compared_count"].tolist() == last["count"].tolist()
    assert wards["previous_count"].tolist() == before["count"].tolist()
    assert wards["change"].tolist() == (last["count"] - before["count"]).tolist()
    assert wards["change_pct"].notna().all()  # not every ward in the top class
    assert wards["count"].sum() > wards["compared_count"].sum()  # the count is still the whole period


def test_ward_change_is_missing_and_says_why_before_the_data_begins(small_demo_db):
    db, _ = small_demo_db
    with connect(db, read_only=True) as con:
        wards = ward_aggregate(con, Filter(start=D(2023, 1, 1), end=D(2023, 6, 30)))
    assert wards["previous_start"].isna().all() and wards["previous_end"].isna().all()
    assert wards[["previous_count", "change", "change_pct"]].isna().all().all()
    assert wards["comparison"].str.startswith("no previous period: the data begins in Jan 2023").all()


@pytest.fixture(scope="module")
def banes(tmp_path_factory):
    from app.ingest import load

    db = tmp_path_factory.mktemp("banes") / "w.duckdb"
    load(CATALOGS / "bath-banes.toml", db)
    return db


@pytest.mark.realdata
def test_banes_police_change_is_not_made_of_missing_months(banes):
    """Collisions end in 2013 and street crime covers five months of 2018-19: no month has both,
    so there is no change to show, rather than +67 % from months the data does not cover."""
    with connect(banes, read_only=True) as con:
        police = ward_aggregate(con, Filter(agencies=("Avon and Somerset Police",)), by_dataset=False)
        recent = Filter(agencies=("Avon and Somerset Police",), start=D(2018, 12, 1), end=D(2019, 2, 28))
        winter = ward_aggregate(con, recent, by_dataset=False)
        fire = ward_aggregate(con, Filter(datasets=("fire_incidents",)), by_dataset=False)
    assert police["change_pct"].isna().all() and police["previous_start"].isna().all()
    assert "no month is covered by every selected dataset" in police["comparison"].iloc[0]
    assert "Street-level crime and anti-social behaviour Oct 2018 to Feb 2019" in police["comparison"].iloc[0]
    assert winter["change_pct"].isna().all()
    assert "Road traffic collisions (STATS19) ends in Dec 2013" in winter["comparison"].iloc[0]
    assert (fire["comparison"] == "Sep 2013 to Aug 2014 against Sep 2012 to Aug 2013").all()
    assert fire["change_pct"].notna().any()


@pytest.mark.realdata
def test_banes_ward_trend_draws_collisions_and_street_crime_apart(banes):
    with connect(banes, read_only=True) as con:
        abbey = con.execute("SELECT code FROM wards WHERE name = 'Abbey'").fetchall()[0][0]
        trend = agency_trend(time_series(con, Filter(), "month", ward=abbey), "month")
        note = coverage_note(con, Filter())
    police = trend[trend["agency"] == "Avon and Somerset Police"]
    assert set(police["line"]) == {
        "Avon and Somerset Police: Road traffic collisions (STATS19)",
        "Avon and Somerset Police: Street-level crime and anti-social behaviour",
    }
    collisions = police[police["dataset"] == "road_collisions"]
    assert collisions["period"].max() == pd.Timestamp("2013-12-01")  # no surge into 2018
    assert not police.duplicated(["period", "dataset"]).any()
    assert note and "Road traffic collisions (STATS19): Jan 1996 to Dec 2013" in note
    assert "Street-level crime and anti-social behaviour: Oct 2018 to Feb 2019" in note


# --- The trend: one line per dataset ------------------------------------------------------------


def series(rows: list[tuple[str, str, str, str, float]]) -> pd.DataFrame:
    """A ``time_series`` frame: (month, dataset, title, agency, count), all open demand."""
    frame = pd.DataFrame(rows, columns=["period", "dataset", "title", "agency", "count"])
    return frame.assign(
        period=pd.to_datetime(frame["period"]), kind="demand", sharing="open", suppressed=False
    )


def test_trend_never_adds_up_datasets_of_one_agency():
    frame = series(
        [
            ("2018-10-01", "collisions", "Road collisions", "Police", 5.0),
            ("2018-10-01", "street", "Street crime", "Police", 250.0),
            ("2018-11-01", "collisions", "Road collisions", "Police", 4.0),
            ("2018-11-01", "street", "Street crime", "Police", 260.0),
        ]
    )
    trend = agency_trend(frame, "month")
    assert len(trend) == 4 and trend["count"].max() == 260  # never 255 or 264
    assert set(trend["line"]) == {"Police: Road collisions", "Police: Street crime"}


def test_a_file_of_several_agencies_gives_a_line_per_agency():
    frame = series(
        [
            ("2020-01-01", "nyc311", "311 requests", "NYPD", 10.0),
            ("2020-01-01", "nyc311", "311 requests", "DSNY", 30.0),
            ("2020-02-01", "nyc311", "311 requests", "NYPD", 12.0),
            ("2020-02-01", "nyc311", "311 requests", "DSNY", 31.0),
        ]
    )
    trend = agency_trend(frame, "month")
    assert sorted(trend["line"].unique()) == ["DSNY: 311 requests", "NYPD: 311 requests"]
    assert trend.set_index(["agency", "period"]).loc[("NYPD", pd.Timestamp("2020-02-01")), "count"] == 12


def test_a_suppressed_month_stays_a_gap_in_its_own_line():
    frame = series([("2020-01-01", "a", "A", "X", 40.0), ("2020-02-01", "a", "A", "X", np.nan)])
    frame.loc[1, ["sharing", "suppressed"]] = ["partners", True]
    frame["sharing"] = "partners"
    trend = agency_trend(frame, "month").set_index("period")
    assert np.isnan(trend.loc["2020-02-01", "count"]) and trend.loc["2020-02-01", "label"] == "<5"


# --- Headline, labels, coverage ------------------------------------------------------------------


def test_headline_counts_demand_unless_interventions_are_picked():
    assert profile.headline_kind((), {"demand", "intervention"}) == "demand"
    assert profile.headline_kind(("intervention",), {"intervention"}) == "intervention"
    assert profile.headline_kind(("demand", "intervention"), {"demand", "intervention"}) == "demand"
    assert profile.headline_kind((), {"intervention"}) == "intervention"


def wards_frame(population: list[float]) -> pd.DataFrame:
    n = len(population)
    return pd.DataFrame(
        {
            "ward_code": [f"W{i}" for i in range(n)],
            "ward_name": [f"W{i}" for i in range(n)],
            "count": 10.0,
            "suppressed": False,
            "population": population,
            "rate_per_1000": [1000 * 10 / p if p == p else np.nan for p in population],
            "compared_count": 5.0,
            "previous_count": 4.0,
            "change_pct": 25.0,
            "comparison": "Jan 2025 to Dec 2025 against Jan 2024 to Dec 2024",
        }
    )


def test_no_rate_without_populations_and_n_a_for_one_missing():
    none = profile.headline(wards_frame([np.nan, np.nan]), "W0")
    assert none["rates"] is False
    one = profile.headline(wards_frame([1000.0, np.nan]), "W1")
    assert one["rates"] is True and np.isnan(one["rate_per_1000"]) and one["city_rate_per_1000"] == 10
    empty = pd.DataFrame()
    assert "per 1,000" not in profile.to_html(
        profile.WardProfile("W0", none, "", empty, empty, empty, {}, "p")
    )


def test_a_ward_without_a_name_is_listed_by_its_code_once():
    assert profile.ward_label("E05001935", "Abbey") == "Abbey (E05001935)"
    assert profile.ward_label("1", "1") == "1"
    assert profile.ward_label("1", None) == "1" and profile.ward_label("1", np.nan) == "1"


def test_coverage_says_when_no_intervention_data_is_selected():
    assert profile.coverage_sentence({"unserved hotspot": 1}, interventions=False).startswith(
        "no intervention data is selected"
    )
    assert profile.coverage_sentence({"unserved hotspot": 1}, interventions=True) == "unserved hotspot: 1"


def test_printable_profile_says_what_it_compares_and_names_each_dataset(small_demo_db):
    db, _ = small_demo_db
    f = Filter(datasets=("council_env",))
    with connect(db, read_only=True) as con:
        code = "E05900002"
        head = profile.headline(ward_aggregate(con, f, by_dataset=False), code)
        trend = agency_trend(time_series(con, f, "month", ward=code), "month")
        cats = category_counts(con, f, ward=code)
    cats = cats[["agency", "title", "kind", "category", "count"]].rename(columns={"title": "dataset"})
    ward = profile.WardProfile(
        code, head, "", trend, cats, pd.DataFrame(), {}, "p", "spans differ", interventions=False
    )
    page = profile.to_html(ward)
    assert "Jan 2025 to Dec 2025 against Jan 2024 to Dec 2024" in page
    assert "Demand records" in page and "<th>Dataset</th>" in page  # plain headers
    assert "Environmental reports" in page and "no intervention data is selected" in page
    assert "spans differ" in page
    json.loads(profile.to_json(ward))


# --- The page ---------------------------------------------------------------------------------


@pytest.fixture
def app(small_demo_db, monkeypatch):
    db, _ = small_demo_db
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))

    def open_page(**params) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page("screens/ward.py").run()
        assert not at.exception, at.exception[0].message if at.exception else ""
        return at

    return open_page


def chart(at: AppTest) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_ward_page_headline_trend_and_categories_say_what_they_are(app):
    at = app(ward="E05900002")
    assert [m.label for m in at.metric] == [
        "Demand records",
        "Demand per 1,000 residents",
        "Change on the previous period",
    ]
    captions = " ".join(c.value for c in at.caption)
    assert "Jan 2025 to Dec 2025 against Jan 2024 to Dec 2024" in captions.replace("\\", "")
    spec = chart(at)
    assert spec["layout"]["yaxis"]["title"]["text"] == "Records (partners' figures protected)"
    names = [trace["name"] for trace in spec["data"]]
    assert "Recorded crime" in names and len(names) == len(set(names))
    assert "Fairhaven Police" in {trace["legendgroup"] for trace in spec["data"]}
    assert "dataset" in at.dataframe[-1].value.columns
    # Children's early-help referrals are suppressed in every month here: not in the legend,
    # but named under the chart.
    assert "Children's early-help referrals" not in names
    assert "Not drawn, as every month of it is suppressed" in captions and "early" in captions


def test_ward_page_for_interventions_and_for_open_data_only(app):
    picked = app(ward="E05900002", kinds="intervention")
    assert picked.metric[0].label == "Intervention records"
    assert picked.metric[1].label == "Interventions per 1,000 residents"
    open_only = app(ward="E05900002", ds="council_env")
    assert chart(open_only)["layout"]["yaxis"]["title"]["text"] == "Records"
    text = " ".join(m.value for m in open_only.markdown).replace("\\", "")
    assert "no intervention data is selected" in text and "unserved hotspot: 1" not in text


@pytest.mark.realdata
def test_banes_ward_page_tells_each_datasets_span_and_why_there_is_no_change(banes, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(banes))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["ward"] = "E05001935"
    at.switch_page("screens/ward.py").run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    captions = [c.value.replace("\\", "") for c in at.caption]
    assert at.metric[2].value == "n/a"
    assert any("n/a, as no month is covered by every selected dataset" in c for c in captions)
    spans = [c for c in captions if "Road traffic collisions (STATS19): Jan 1996 to Dec 2013" in c]
    assert len(spans) == 2  # under the headline and under the trend


def test_change_sentence_says_what_is_compared_or_why_not():
    head = {"comparison": "Jan 2025 to Dec 2025 against Jan 2024 to Dec 2024", "change_pct": 10.0}
    assert profile.change_sentence(head | {"compared_count": 11.0, "previous_count": 10.0}).startswith(
        "Jan 2025"
    )
    none = {"comparison": "no previous period: the data begins in Jan 2023", "change_pct": np.nan}
    assert profile.change_sentence(none | {"compared_count": np.nan, "previous_count": np.nan}) == (
        "n/a, as the data begins in Jan 2023."
    )
    zero = head | {"change_pct": np.nan, "compared_count": 3.0, "previous_count": 0.0}
    assert profile.change_sentence(zero).endswith("n/a, as the earlier count is zero.")


@pytest.fixture(scope="module")
def bare_boundaries(small_demo, tmp_path_factory):
    """The small demo's environmental reports over wards whose file gives no name but the code
    and no population."""
    from app.ingest import load

    text = (small_demo / "catalog.toml").read_text()
    head, *blocks = text.split("[[datasets]]")
    head = head.replace('name_field = "ward_name"', 'name_field = "ward_code"')
    head = "\n".join(line for line in head.splitlines() if not line.startswith("population_field"))
    council = next(b for b in blocks if 'id = "council_env"' in b)
    folder = tmp_path_factory.mktemp("bare")
    catalog = folder / "catalog.toml"  # beside its own warehouse; the demo's files by full path
    catalog.write_text(f"{head}\n[[datasets]]{council}".replace('"demo/', f'"{small_demo}/demo/'))
    db = folder / "w.duckdb"
    load(catalog, db)
    return db


def test_ward_page_without_names_or_populations(bare_boundaries, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(bare_boundaries))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["ward"] = "E05900002"
    at.switch_page("screens/ward.py").run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    assert at.title[0].value.replace("\\", "") == "Ward profile: E05900002"
    picker = at.selectbox(key="ward_pick")
    assert picker.format_func("E05900002") == "E05900002"
    assert [m.label for m in at.metric] == ["Demand records", "Change on the previous period"]


def test_a_change_that_rounds_to_nothing_reads_zero_not_minus_zero():
    assert profile.change_text({"change_pct": -0.22}) == "0 %"
    assert profile.change_text({"change_pct": 1234.4}) == "+1,234 %"
    assert profile.change_text({"change_pct": -7.6}) == "-8 %"
    assert profile.change_text({"change_pct": float("nan")}) == "n/a"
