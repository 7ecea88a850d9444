"""The analytics engine on the full-size demo city: aggregates add up, and the planted patterns
(persistent, emerging and fading hotspots, overlap, unserved hotspots, interventions far from
need) come out."""

from __future__ import annotations

import datetime as dt
import json

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import profile
from app.aggregate import (
    category_counts,
    hex_aggregate,
    hex_totals,
    raw_hex_counts,
    time_series,
    ward_aggregate,
    xor_by,
)
from app.disclosure import DEFAULT_RULE
from app.emerging import emerging_hotspots
from app.filters import Filter, FilterError, categories_in, data_period, where
from app.grid import study_area_cells
from app.h3cells import parent_sql
from app.hotspots import hex_hotspots, ranked_hotspots, ward_hotspots
from app.overlap import cell_classes, colocation_matrix, ward_agencies
from app.profile import hotspots_in_ward
from app.quality import ward_shapes
from app.trends import agency_trend

OPEN = Filter(datasets=("council_env",))  # an open dataset: figures are exact


def cell(planted: dict, spot: str, res: int) -> str:
    s = planted["spots"][spot]
    return h3.latlng_to_cell(s["lat"], s["lon"], res)


def total(con, f: Filter) -> int:
    sql, params = where(f)
    return con.execute(f"SELECT count(*) FROM events e WHERE {sql}", params).fetchall()[0][0]


@pytest.mark.parametrize("res", [5, 7, 9, 11])
def test_hex_counts_add_up_at_every_resolution(full_con, res):
    frame = hex_aggregate(full_con, OPEN, res)
    assert frame["count"].sum() == total(full_con, OPEN)
    assert (frame["resolution"] == res).all()
    assert set(frame.columns) >= {
        "h3_cell",
        "cell_lat",
        "cell_lng",
        "dataset",
        "agency",
        "kind",
        "count",
        "suppressed",
    }
    assert all(h3.get_resolution(c) == res for c in frame["h3_cell"].head(50))


def test_parent_counts_are_the_sum_of_their_children(full_con):
    fine = hex_aggregate(full_con, OPEN, 9)
    coarse = hex_aggregate(full_con, OPEN, 8).set_index("h3_cell")["count"]
    fine["parent"] = [h3.cell_to_parent(c, 8) for c in fine["h3_cell"]]
    rolled = fine.groupby("parent")["count"].sum()
    assert rolled.to_dict() == coarse.to_dict()


def test_filters_by_weekday_hour_category_and_period(full_con):
    f = OPEN.with_(
        weekdays=(6,),
        hours=(9, 10),
        categories=("Noise",),
        start=dt.date(2024, 1, 1),
        end=dt.date(2024, 12, 31),
    )
    sql = """SELECT count(*) FROM events WHERE dataset = 'council_env' AND isodow(ts) = 6
             AND hour(ts) IN (9, 10) AND category = 'Noise' AND ts >= '2024-01-01' AND ts < '2025-01-01'"""
    expected = full_con.execute(sql).fetchall()[0][0]
    assert expected > 0
    assert hex_aggregate(full_con, f, 7)["count"].sum() == expected


def test_filter_errors(full_con):
    with pytest.raises(FilterError, match="unknown dataset 'nope'"):
        hex_aggregate(full_con, Filter(datasets=("nope",)), 8)
    with pytest.raises(FilterError, match="reversed"):
        hex_aggregate(full_con, Filter(start=dt.date(2025, 1, 2), end=dt.date(2025, 1, 1)), 8)
    with pytest.raises(ValueError, match="resolution"):
        hex_aggregate(full_con, OPEN, 12)


def test_ward_labels_lie_inside_their_wards(full_con):
    import shapely

    from app.quality import ward_shapes

    shapes = ward_shapes(full_con)
    assert len(shapes) == 32 and shapes["ward_code"].is_unique
    for row in shapes.itertuples():
        outline = shapely.from_geojson(row.geojson)
        assert outline.contains(shapely.Point(row.label_lng, row.label_lat)), row.ward_code


def _label_box(lng: float, lat: float, size_m: float, chars: int, scale: float = 1.0):
    import shapely

    half_w = 0.6 * chars * size_m * scale / 2 / (111_320 * np.cos(np.radians(lat)))
    half_h = size_m * scale / 2 / 111_320
    return shapely.box(lng - half_w, lat - half_h, lng + half_w, lat + half_h)


def test_ward_names_fit_inside_their_wards_so_none_overlap(full_con):
    import shapely

    from app.quality import ward_shapes

    shapes = ward_shapes(full_con)
    boxes = [
        _label_box(r.label_lng, r.label_lat, r.label_m, len(r.ward_name), 0.98) for r in shapes.itertuples()
    ]
    for row, box in zip(shapes.itertuples(), boxes, strict=True):
        assert shapely.from_geojson(row.geojson).contains(box), row.ward_name
        assert row.label_m > 100  # every ward of the demo city is over a kilometre across
    assert not any(a.intersects(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_a_long_ward_gets_a_long_name_and_a_crescent_one_inside_it():
    import shapely

    from app.quality import label_place

    strip = shapely.box(-1.0, 51.0, -0.9, 51.01)  # about 7 km by 1.1 km
    lng, lat, size = label_place(strip, len("Long Ward"))
    assert strip.contains(_label_box(lng, lat, size, 9, 0.98))
    assert size > 900  # the box fills the strip's height, where a circle would allow 200 m
    crescent = shapely.Point(0, 51).buffer(0.05).difference(shapely.Point(0.015, 51).buffer(0.045))
    lng, lat, size = label_place(crescent, len("Crescent"))
    assert crescent.contains(_label_box(lng, lat, size, 8, 0.98)) and size > 0
    assert not crescent.centroid.within(crescent)  # where a centroid label would have gone


def test_no_coverage_warning_when_every_dataset_spans_the_period(full_con):
    from app.trends import coverage_note

    assert coverage_note(full_con, Filter()) is None  # Fairhaven's datasets all run 2023 to 2025
    late = Filter(start=dt.date(2025, 1, 1), end=dt.date(2025, 12, 31))
    assert coverage_note(full_con, late) is None


def test_filter_by_agency_and_unknown_agency(full_con):
    agency = full_con.execute("SELECT agency FROM datasets WHERE id = 'council_env'").fetchall()[0][0]
    f = Filter(agencies=(agency,))
    expected = full_con.execute("SELECT count(*) FROM events WHERE agency = ?", [agency]).fetchall()[0][0]
    assert expected > 0
    assert raw_hex_counts(full_con, f, 7)["count"].sum() == expected
    assert time_series(full_con, f.with_(datasets=("council_env",)), "month")["count"].sum() == total(
        full_con, f.with_(datasets=("council_env",))
    )
    with pytest.raises(FilterError, match="unknown agency"):
        hex_aggregate(full_con, Filter(agencies=("Ministry of Nothing",)), 8)


def test_data_period_is_what_the_selected_datasets_cover(full_con):
    """The period a filter without dates stands for is what its datasets cover, whatever else
    it chooses: the first and last record of a category or an hour would tell, for a partner's
    dataset, when its rare records happened."""
    for f in (Filter(), OPEN):
        sql, params = where(f)
        lo, hi = full_con.execute(f"SELECT min(ts), max(ts) FROM events e WHERE {sql}", params).fetchall()[0]
        assert data_period(full_con, f) == (lo.date(), hi.date())
        assert data_period(full_con, f.with_(categories=("Noise",), hours=(3,))) == (lo.date(), hi.date())
    assert data_period(full_con, Filter(agencies=("Ministry of Nothing",))) is None


def test_category_counts_add_up_and_name_their_datasets(full_con):
    frame = category_counts(full_con, OPEN)
    assert frame["count"].sum() == total(full_con, OPEN)
    assert list(frame["count"]) == sorted(frame["count"], reverse=True)
    assert set(frame["category"]) == set(categories_in(full_con, ("council_env",)))
    assert (
        frame["agency"]
        == full_con.execute("SELECT agency FROM datasets WHERE id = 'council_env'").fetchall()[0][0]
    ).all()
    ward = full_con.execute("SELECT code FROM wards ORDER BY code LIMIT 1").fetchall()[0][0]
    in_ward = category_counts(full_con, OPEN, ward=ward)
    expected = full_con.execute(
        "SELECT count(*) FROM events WHERE dataset = 'council_env' AND ward_code = ?", [ward]
    ).fetchall()[0][0]
    assert in_ward["count"].sum() == expected > 0


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 2**64 - 1)), max_size=60),
)
def test_xor_by_matches_a_group_by_xor(rows):
    frame = pd.DataFrame(rows, columns=["h3", "cell_key"]).astype({"h3": "uint64", "cell_key": "uint64"})
    expected = [
        np.bitwise_xor.reduce(g.to_numpy(dtype=np.uint64))
        for _, g in frame.groupby("h3", sort=True)["cell_key"]
    ]
    assert xor_by(frame, "h3").tolist() == [int(e) for e in expected]


def test_ward_aggregate_rates_shares_and_change(full_con):
    f = OPEN.with_(start=dt.date(2025, 1, 1), end=dt.date(2025, 6, 30))
    wards = ward_aggregate(full_con, f)
    assert len(wards) == full_con.execute("SELECT count(*) FROM wards").fetchall()[0][0]
    assert wards["count"].sum() == total(full_con, f)
    assert wards["share"].sum() == pytest.approx(1.0)
    row = wards.iloc[0]
    assert row["rate_per_1000"] == pytest.approx(1000 * row["count"] / row["population"])
    assert row["per_km2"] == pytest.approx(row["count"] / row["area_km2"])
    assert f.previous().start == dt.date(2024, 7, 1)  # six whole months before, the same length
    assert wards["previous_count"].sum() == total(full_con, f.previous())
    assert (wards["change"] == wards["count"] - wards["previous_count"]).all()


def test_ward_totals_over_all_selected_datasets(full_con):
    f = Filter(datasets=("council_env", "early_help"))
    wards = ward_aggregate(full_con, f, by_dataset=False)
    assert (wards["dataset"] == "(selected)").all() and len(wards) == 32
    assert (wards["sharing"] == "restricted").all()  # the most restrictive of the two
    shown = wards.loc[~wards["suppressed"], "count"]
    assert (shown % 5 == 0).all()
    assert abs(wards["count"].sum() - total(full_con, f)) <= 5 * 32


def test_time_series_city_ward_and_cell(full_con, full_demo):
    _, _, planted = full_demo
    city = time_series(full_con, OPEN, "month")
    assert city["count"].sum() == total(full_con, OPEN)
    assert len(city) == 36
    ward = full_con.execute("SELECT code FROM wards ORDER BY code LIMIT 1").fetchall()[0][0]
    by_ward = time_series(full_con, OPEN, "week", ward=ward)
    in_ward = full_con.execute(
        "SELECT count(*) FROM events WHERE dataset = 'council_env' AND ward_code = ?", [ward]
    ).fetchall()[0][0]
    assert by_ward["count"].sum() == in_ward > 0
    spot = cell(planted, "industrial_estate", 8)
    series = time_series(full_con, OPEN.with_(categories=("Fly-tipping",)), "month", cell=spot)
    before = series.loc[series["period"] < pd.Timestamp("2024-07-01"), "count"].sum() / 18
    after = series.loc[series["period"] >= pd.Timestamp("2024-07-01"), "count"].sum() / 18
    assert after > 5 * before  # the industrial estate's fly-tipping emerged in mid-2024


def test_agency_trend_shows_suppressed_months_as_gaps_not_zeros(full_con):
    """In a small cell, children's early-help referrals (restricted) fall below 5 in most months;
    the trend must show those months as gaps labelled "<5", and sum only released figures."""
    cell_9 = full_con.execute(
        f"""SELECT {parent_sql("h3", 9)} AS c FROM events WHERE dataset = 'early_help'
            GROUP BY c HAVING count(*) BETWEEN 20 AND 60 ORDER BY c LIMIT 1"""
    ).fetchall()[0][0]
    f = Filter(datasets=("early_help", "council_env"))
    series = time_series(full_con, f, "month", cell=h3.int_to_str(cell_9))
    trend = agency_trend(series, "month")
    early = trend[trend["agency"] == "Fairhaven Children's Services"]
    assert len(early)
    gaps = early[early["suppressed_datasets"] == early["datasets"]]
    assert len(gaps) > 0, "the test cell should have suppressed months"
    assert gaps["count"].isna().all() and (gaps["label"] == "<5").all()
    shown = early.dropna(subset=["count"])
    assert ((shown["count"] >= 5) & (shown["count"] % 5 == 0)).all()
    # Every month from the dataset's first to its last is there: none silently skipped.
    months = pd.to_datetime(early["period"])
    assert len(early) == (months.max().to_period("M") - months.min().to_period("M")).n + 1
    council = trend[trend["agency"] == "Fairhaven City Council"]
    released = series.loc[series["dataset"] == "council_env", "count"].sum()
    assert council["count"].sum() == released  # open figures are summed as they are, zeros filled


def test_agency_trend_draws_no_line_across_years_without_data():
    """Two files of one agency (collisions to 2013, street crime from 2018) are two lines, each
    over its own months only: nothing is drawn across the years between, and months inside a
    file's coverage with no record here are zeros."""
    frame = pd.DataFrame(
        {
            "period": pd.to_datetime(["2013-01-01", "2013-03-01", "2018-10-01"]),
            "dataset": ["collisions", "collisions", "street"],
            "agency": "Police",
            "kind": "demand",
            "sharing": "open",
            "count": [3.0, 2.0, 40.0],
            "suppressed": False,
            "covered_from": pd.to_datetime(["2013-01-01", "2013-01-01", "2018-10-01"]),
            "covered_to": pd.to_datetime(["2013-12-01", "2013-12-01", "2018-12-01"]),
        }
    )
    trend = agency_trend(frame, "month")
    collisions = trend[trend["dataset"] == "collisions"].set_index("period")
    street = trend[trend["dataset"] == "street"].set_index("period")
    assert len(collisions) == 12 and len(street) == 3 and len(trend) == 15
    assert collisions.loc["2013-02-01", "count"] == 0 and collisions.loc["2013-12-01", "count"] == 0
    assert street.loc["2018-12-01", "count"] == 0  # covered, nothing recorded here
    assert not trend["period"].between("2014-01-01", "2018-09-01").any()
    assert set(trend["line"]) == {"Police: collisions", "Police: street"}


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 11), st.sampled_from("abcd"), st.one_of(st.none(), st.integers(0, 40))),
        min_size=1,
        max_size=30,
        unique_by=lambda t: (t[0], t[1]),
    )
)
def test_agency_trend_invariants(rows):
    """Whatever the mix: each dataset's line holds its own released figures, never summed with
    another's, missing only where suppressed, and no period of a dataset's span is dropped."""
    sharing = {"a": "open", "b": "restricted", "c": "partners", "d": "open"}
    agency = {"a": "X", "b": "X", "c": "Y", "d": "X"}
    kind = {"a": "demand", "b": "demand", "c": "demand", "d": "intervention"}
    suppressed = [c is None and sharing[d] != "open" for _, d, c in rows]  # open: never suppressed
    frame = pd.DataFrame(
        {
            "period": [pd.Timestamp(2024, 1, 1) + pd.DateOffset(months=m) for m, _, _ in rows],
            "dataset": [d for _, d, _ in rows],
            "agency": [agency[d] for _, d, _ in rows],
            "kind": [kind[d] for _, d, _ in rows],
            "sharing": [sharing[d] for _, d, _ in rows],
            "count": [np.nan if s else float(c or 0) for (_, _, c), s in zip(rows, suppressed, strict=True)],
            "suppressed": suppressed,
        }
    )
    trend = agency_trend(frame, "month").set_index(["period", "dataset", "agency"])
    assert not trend.index.duplicated().any()
    for key, group in frame.groupby(["period", "dataset", "agency"]):
        row = trend.loc[key]
        if np.isnan(row["count"]):
            assert group["suppressed"].all() and row["label"] == "<5"
            assert row["suppressed_datasets"] == row["datasets"]
        else:
            assert row["count"] == group["count"].sum()  # filled periods add 0 or nothing
            assert row["label"].startswith(f"{row['count']:,.0f}")
    months = frame.groupby("dataset")["period"].agg(["min", "max"])
    span = (months["max"].dt.to_period("M") - months["min"].dt.to_period("M")).map(lambda d: d.n + 1)
    assert trend["datasets"].sum() == span.sum()


def test_protected_figures_never_show_small_counts(full_con):
    restricted = Filter(datasets=("early_help",))
    for frame in (
        hex_aggregate(full_con, restricted, 10),
        hex_totals(full_con, Filter(), 10),
        time_series(full_con, restricted, "day"),
        ward_aggregate(full_con, restricted),
    ):
        shown = frame.loc[~frame["suppressed"], "count"]
        assert ((shown == 0) | (shown >= 5)).all() and (shown % 5 == 0).all()
        assert frame.loc[frame["suppressed"], "count"].isna().all()


def test_hotspots_cover_the_whole_grid_and_find_the_town_centre(full_con, full_demo):
    _, _, planted = full_demo
    frame, result = hex_hotspots(full_con, Filter(datasets=("ambulance",)), 8)
    assert len(frame) == len(study_area_cells(full_con, 8))
    # An open dataset shows its empty cells as 0 (a protected one shows them as "<5").
    open_frame, _ = hex_hotspots(full_con, OPEN, 8)
    assert len(open_frame) == len(frame)
    assert (open_frame["count"] == 0).sum() > 0  # zero-filled, not just cells with events
    hot = frame.set_index("h3_cell")["bin"]
    for spot in ("town_centre", "northgate_estate", "station_quarter"):
        assert hot[cell(planted, spot, 8)] == 3
    assert hot[cell(planted, "leafy_oakhurst", 8)] <= 0
    assert result.warning is None


def test_ranked_hotspots_and_each_wards_share_of_them(full_con, full_demo):
    """The hotspot table (service managers) ranks the significant cells, and the ward profiles
    (councillors) split exactly those cells between the wards that hold their centres."""
    _, _, planted = full_demo
    f = Filter(datasets=("early_help",))  # restricted: released figures only
    spots, _ = hex_hotspots(full_con, f, 8)
    classes, trend = cell_classes(full_con, f, 8), emerging_hotspots(full_con, f, 8, "month")
    ranked = ranked_hotspots(spots, classes, trend)
    assert len(ranked) == (spots["bin"] >= 2).sum() > 0
    assert ranked["z"].is_monotonic_decreasing and (ranked["bin"] >= 2).all()
    shown = spots.set_index("h3_cell").loc[ranked["h3_cell"]]
    assert ranked["records"].tolist() == [
        "<5" if s else f"{c:,.0f}" for c, s in zip(shown["count"], shown["suppressed"], strict=True)
    ]
    assert cell(planted, "northgate_estate", 8) in set(ranked["h3_cell"])
    assert ranked["pattern"].notna().all() and ranked["intervention status"].notna().all()
    seen = []
    for shape in ward_shapes(full_con).itertuples():
        table, coverage = hotspots_in_ward(spots, classes, trend, shape.geojson)
        seen += table["h3_cell"].tolist()
        assert table["z"].is_monotonic_decreasing
        assert "none" not in coverage and all(n > 0 for n in coverage.values())
        # The coverage line counts the table's own cells: never "no hotspot" above "unserved: 5".
        assert sum(coverage.values()) == (table["intervention status"].fillna("none") != "none").sum()
    assert len(seen) == len(set(seen))  # no hotspot in two wards
    outside = set(ranked["h3_cell"]) - set(seen)
    assert len(outside) <= 0.05 * len(ranked)  # only cells whose centre lies beyond the boundary
    agency_hot = set(classes.loc[classes["demand_hot"], "h3_cell"])  # an agency's own hotspots too
    assert len(agency_hot - set(seen)) <= 0.05 * len(agency_hot)


def test_ward_profile_downloads_carry_released_figures_only(full_con):
    """The printable profile and its JSON hold the trend, categories and hotspots as the page
    shows them: a suppressed figure is "<5" (and null in JSON), never a number or NaN."""
    code = full_con.execute(
        """SELECT ward_code FROM events WHERE dataset = 'early_help' GROUP BY 1 ORDER BY count(*) LIMIT 1"""
    ).fetchall()[0][0]
    f = Filter(datasets=("early_help", "fire_safety_visits"))
    head = profile.headline(ward_aggregate(full_con, f, by_dataset=False), code)
    trend = agency_trend(time_series(full_con, f, "month", ward=code), "month")
    cats = category_counts(full_con, f, ward=code)
    assert trend["count"].isna().any(), "the quietest ward should have suppressed months"
    spots, _ = hex_hotspots(full_con, f, 8)
    shape = ward_shapes(full_con).set_index("ward_code").loc[code, "geojson"]
    table, coverage = hotspots_in_ward(
        spots, cell_classes(full_con, f, 8), emerging_hotspots(full_con, f, 8), shape
    )
    ward = profile.WardProfile(code, head, "", trend, cats, table, coverage, "2023 to 2025")
    text = profile.to_json(ward, DEFAULT_RULE)
    data = json.loads(text)  # to_json refuses NaN, so this is strict JSON
    assert data["ward"] == code and data["disclosure"]["threshold"] == 5
    assert len(data["trend"]) == len(trend) and len(data["categories"]) == len(cats)
    for row in data["trend"]:
        assert (row["count"] is None) == (row["label"] == "<5")
        assert row["count"] is None or row["kind"] == "intervention" or row["count"] % 5 == 0
    page = profile.to_html(ward, DEFAULT_RULE)
    recent = profile.recent_trend(trend)
    assert list(recent.columns[:3]) == ["agency", "dataset", "kind"] and len(recent.columns) == 15
    assert "The last twelve months per dataset" in page and "&lt;5" in page
    assert "nan" not in page.lower().replace("fairhaven", "")


def test_ward_hotspots(full_con):
    frame, result = ward_hotspots(full_con, Filter(datasets=("housing_repairs",)))
    top = frame.sort_values("z", ascending=False)["ward_name"].head(2).tolist()
    assert "Northgate" in top
    assert frame.set_index("ward_name").loc["Northgate", "z"] > 1.96
    assert len(frame) == 32 and result.warning is None


@pytest.mark.parametrize(
    "f, spot, patterns",
    [
        (Filter(datasets=("ambulance",)), "town_centre", {"persistent hot spot", "intensifying hot spot"}),
        (
            Filter(datasets=("council_env",), categories=("Fly-tipping",)),
            "industrial_estate",
            {"new hot spot", "consecutive hot spot", "intensifying hot spot"},
        ),
        (
            Filter(datasets=("police_crime",), categories=("Burglary",)),
            "eastgate_burglary",
            {"diminishing hot spot", "historical hot spot"},
        ),
    ],
)
def test_planted_emerging_and_fading_hotspots(full_con, full_demo, f, spot, patterns):
    _, _, planted = full_demo
    frame = emerging_hotspots(full_con, f, 8, "month")
    assert frame.set_index("h3_cell").loc[cell(planted, spot, 8), "pattern"] in patterns
    assert (frame["steps"] == 36).all()


def test_planted_overlap_and_coverage(full_con, full_demo):
    _, _, planted = full_demo
    classes = cell_classes(full_con, Filter(), 8).set_index("h3_cell")
    northgate = classes.loc[cell(planted, "northgate_estate", 8)]
    assert northgate["class"] == "unserved hotspot"
    assert len(northgate["hot_demand_agencies"].split(", ")) >= 4  # many agencies' demand meets there
    assert classes.loc[cell(planted, "industrial_estate", 8), "class"] == "unserved hotspot"
    assert classes.loc[cell(planted, "town_centre", 8), "class"] in {
        "multi-agency intervention",
        "served hotspot",
    }
    assert classes.loc[cell(planted, "leafy_oakhurst", 8), "class"] == "intervention outside need"


def test_colocation_matrix(full_con):
    matrix = colocation_matrix(
        full_con, Filter(datasets=("ambulance", "police_crime", "fire_safety_visits")), 8
    )
    m = matrix.set_index(["dataset_a", "dataset_b"])
    assert m.loc[("ambulance", "ambulance"), "jaccard"] == 1.0
    assert m.loc[("ambulance", "police_crime"), "jaccard"] == m.loc[("police_crime", "ambulance"), "jaccard"]
    assert m.loc[("ambulance", "police_crime"), "spearman"] > 0.3
    assert (
        m.loc[("ambulance", "police_crime"), "jaccard"]
        > m.loc[("ambulance", "fire_safety_visits"), "jaccard"]
    )


def test_ward_agencies(full_con):
    frame = ward_agencies(full_con, Filter()).set_index("ward_name")
    assert frame.loc["Northgate", "agencies_hot"] >= 4
    assert np.issubdtype(frame["agencies_hot"].dtype, np.integer)


def test_bbox_limits_to_the_visible_area(full_con):
    west, south, east, north = -0.95, 52.33, -0.90, 52.38
    frame = hex_aggregate(full_con, OPEN.with_(bbox=(west, south, east, north)), 11)
    expected = full_con.execute(
        "SELECT count(*) FROM events WHERE dataset = 'council_env' "
        "AND lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?",
        [west, east, south, north],
    ).fetchall()[0][0]
    assert frame["count"].sum() == expected > 0
    with pytest.raises(FilterError, match="bbox"):
        hex_aggregate(full_con, OPEN.with_(bbox=(1.0, 52.0, 0.0, 53.0)), 8)
