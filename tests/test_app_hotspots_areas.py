"""The hotspots page ranks named areas, each with a link that opens it on the map."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import REPO, map_deck
from streamlit.testing.v1 import AppTest

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")
CELL_ID = re.compile(r"\b8[0-9a-f]{14}\b")


@pytest.fixture
def page(small_demo_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(small_demo_db[0]))

    def open_page(**params) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=180)
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page("screens/hotspots.py").run()
        assert not at.exception, at.exception[0].message if at.exception else ""
        return at

    return open_page


def test_areas_are_ranked_by_name_with_plain_columns(page):
    at = page()
    areas = at.dataframe[0].value
    assert list(areas.columns) == [
        "Area",
        "Show on map",
        "Records",
        "Trend",
        "Intervention status",
        "Wards",
        "Agencies involved",
    ]
    assert len(areas) > 0
    assert any("Northgate estate" in name for name in areas["Area"])
    # What a councillor reads holds no cell id, z-score or p-value.
    shown = areas.drop(columns="Show on map").astype(str).to_string()
    assert not CELL_ID.search(shown)
    records = [int(r.replace(",", "")) for r in areas["Records"] if r != "<5"]
    assert records == sorted(records, reverse=True)
    assert set(areas["Intervention status"]) <= {
        "served",
        "served by several agencies",
        "unserved",
        "no intervention data selected",
        "no single agency's demand is hot here",
    } | {s for s in areas["Intervention status"] if s.startswith("partly served (")}


def test_show_on_map_opens_the_map_on_the_area_under_the_same_filter(page):
    at = page(ds="police_crime,police_asb", res="8")
    areas = at.dataframe[0].value
    assert len(areas)
    for link in areas["Show on map"]:
        url = urlsplit(link)
        assert url.path in ("./", "/", "")
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert params["ds"] == "police_crime,police_asb"
        assert "hotspots" in params["layers"].split(",")
        lat, lon, zoom = float(params["lat"]), float(params["lon"]), int(params["zoom"])
        assert 52.2 < lat < 52.5 and -1.1 < lon < -0.7 and 11 <= zoom <= 17


def test_cell_detail_is_folded_for_analysts_and_downloads_keep_cells(page):
    at = page()
    expander = next(e for e in at.expander if "Analyst detail" in e.label)
    detail = expander.dataframe[0].value
    assert {"h3_cell", "z", "p_fdr", "area_name"} <= set(detail.columns)
    assert detail["z"].is_monotonic_decreasing
    named = detail["area_name"].fillna("")
    assert (named != "").all()  # every significant hot cell belongs to an area
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download hotspot areas (CSV)" in labels and "Download hotspot cells (CSV)" in labels
    assert len(at.get("plotly_chart")) == 1  # the co-location matrix is still there


def test_the_downloads_are_snake_case_with_numbers_as_numbers(small_demo_db):
    import pandas as pd

    from app import areas, hotspots, overlap
    from app.emerging import emerging_hotspots
    from app.filters import Filter
    from app.warehouse import connect

    with connect(small_demo_db[0], read_only=True) as con:
        f = Filter()
        spots, _ = hotspots.hex_hotspots(con, f, 8)
        classes = overlap.cell_classes(con, f, 8)
        trend = emerging_hotspots(con, f, 8)
        found = areas.areas_for(con, f, 8, spots, classes, trend)
        table = hotspots.ranked_hotspots(spots, classes, trend)
        cells = areas.area_cells(found, overlap.hotspot_export(con, table, spots, classes))
    assert list(cells.columns[:3]) == ["area_id", "area_name", "h3_cell"]
    assert all(re.fullmatch(r"[a-z0-9_]+", c) for c in cells.columns)
    assert pd.api.types.is_integer_dtype(cells["records"])
    hot = found[found["side"] == "hot"]
    assert set(cells["area_id"]) <= set(hot["area_id"]) | {""}


def test_a_picked_area_opens_the_map_in_the_same_tab(page):
    at = page(ds="police_crime")
    first = at.dataframe[0].value.iloc[0]
    at.session_state["hotspot_areas"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    link = at.get("page_link")[0].proto
    assert link.page in ("", "map") and first["Area"] in link.label  # the map is the root page
    params = {k: v[0] for k, v in parse_qs(link.query_string).items()}
    assert params["ds"] == "police_crime" and "hotspots" in params["layers"]
    assert f"lat={params['lat']}" in first["Show on map"]  # the same place as the row's link
    assert params["area"] == first["Area"]  # the map says what it is centred on


def test_large_area_totals_read_with_thousands_separators(page):
    """An area's records are a released figure as people read it ("12,345", "<5"); the file
    keeps the plain number (``test_the_downloads_are_snake_case_with_numbers_as_numbers``)."""
    records = page(res="7").dataframe[0].value["Records"]
    assert all(re.fullmatch(r"<5|\d{1,3}(,\d{3})*", r) for r in records)
    assert any("," in r for r in records)


def test_records_without_a_category_read_not_recorded_and_still_filter(page):
    """Ingest stores "unknown" for a record whose file gives no category: the filter offers it
    as "Not recorded", and picking it filters on the stored value (the link keeps that)."""
    at = page()
    before = at.dataframe[0].value
    picker = at.multiselect(key="f_categories")
    assert "Not recorded" in picker.options and "unknown" not in picker.options
    picker.set_value(["unknown"]).run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    assert at.multiselect(key="f_categories").value == ["unknown"]
    assert at.query_params["cat"] in ("unknown", ["unknown"])
    assert "The categories narrow" in " ".join(str(c.value) for c in at.sidebar.caption)
    assert not at.dataframe[0].value["Records"].equals(before["Records"])  # the filter applied


def test_a_briefing_names_records_without_a_category_in_plain_words():
    from types import SimpleNamespace

    from app.briefing import category_label, unit_words

    row = SimpleNamespace(
        level="category", category="unknown", title="Recorded crime", several_agencies=False
    )
    assert unit_words(row) == "records with no category in Recorded crime"
    assert (
        unit_words(SimpleNamespace(**{**vars(row), "category": "Burglary"})) == "Burglary in Recorded crime"
    )
    assert category_label("unknown") == "Not recorded" and category_label("Burglary") == "Burglary"


def test_the_maps_hotspot_tooltips_name_the_areas_the_page_lists(page, small_demo_db):
    """A hotspot cell's tooltip says first the area it belongs to, by the name the hotspots
    page gives it; a cell of no area says no place."""

    listed = set(page().dataframe[0].value["Area"])
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["layers"] = "hotspots,outlines"
    at.switch_page("screens/map.py").run()
    assert not at.exception
    drawn = map_deck(at)["layers"]
    cells = next(layer for layer in drawn if layer["id"] == "hotspots")["data"]
    named = {tip.split("\n")[0] for tip in (c["tip"] for c in cells) if not tip.startswith(("Hot", "Cold"))}
    assert named and named <= listed
    assert all(c["tip"].split("\n")[0] in listed or c["tip"].startswith(("Hot", "Cold")) for c in cells)
