"""The map, its layers and the hotspots page say only what is true: the resolution drawn, what a
change compares, where a rate has no population, which interventions "served" was judged
against, how coarse a dataset's locations are, and when datasets cover different years."""

from __future__ import annotations

import json
import re
import shutil

import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import CATALOGS, REALDATA, REPO, map_deck
from streamlit.testing.v1 import AppTest

from app import overlap
from app.filters import Filter
from app.warehouse import connect

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")
COARSE_NOTE = "Locations are rounded to a 1 km grid by the publisher."


def _open(db, page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page).run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


@pytest.fixture
def app(small_demo_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(small_demo_db[0]))
    return lambda page, **params: _open(small_demo_db[0], page, **params)


@pytest.fixture(scope="module")
def doctored_db(small_demo_db, tmp_path_factory):
    """The small demo with what newer loads report: one dataset's locations are coarse, one
    dataset's records end after six months, and an attribution holds Markdown."""
    db = tmp_path_factory.mktemp("doctored") / "warehouse.duckdb"
    shutil.copy(small_demo_db[0], db)
    con = connect(db)
    reports = {i: json.loads(r) for i, r in con.execute("SELECT id, report_json FROM datasets").fetchall()}
    reports["police_asb"]["location_precision"] = {
        "coarse": True,
        "rows": 1000,
        "distinct_points": 120,
        "grid_m": 1000.0,
        "finest_res": 7,
        "note": COARSE_NOTE,
    }
    reports["council_env"]["time_max"] = "2023-06-30T00:00:00"
    for dataset in ("police_asb", "council_env"):
        con.execute(
            "UPDATE datasets SET report_json = $r WHERE id = $id",
            {"r": json.dumps(reports[dataset]), "id": dataset},
        )
    con.execute(
        "UPDATE datasets SET attribution = $a WHERE id = 'police_crime'", {"a": "[click me](x) *now*"}
    )
    con.close()
    return db


@pytest.fixture(scope="module")
def bare_db(small_demo, tmp_path_factory):
    """Two demand datasets of the demo under ward boundaries that carry no populations: no
    rate can be worked out, and no intervention data is loaded."""
    root = tmp_path_factory.mktemp("bare")
    demo = small_demo / "demo"
    text = (small_demo / "catalog.toml").read_text()
    head, *entries = text.split("[[datasets]]")
    head = head.replace('population_field = "population"\n', "")
    kept = [e for e in entries if re.search(r'id = "(police_crime|council_env)"', e)]
    catalog = "[[datasets]]".join([head, *kept]).replace('"demo/', f'"{demo}/')
    (root / "catalog.toml").write_text(catalog)
    from app.ingest import load

    load(root / "catalog.toml", root / "warehouse.duckdb")
    return root / "warehouse.duckdb"


def _captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def _markdown(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def _warnings(at: AppTest) -> str:
    return " ".join(w.value for w in at.warning)


def _deck(at: AppTest) -> dict:
    return map_deck(at)


# The resolution drawn


def test_the_map_names_the_resolution_it_draws_when_it_steps_down(app):
    """Resolution 11 over the whole demo city is more than 50,000 hexes: the map draws 10 and
    must say so, where it used to say 11 (the note was overwritten before it was shown)."""
    at = app("screens/map.py", layers="density", res="11")
    hexes = _deck(at)["layers"][0]["data"]
    drawn = {h3.get_resolution(cell["h3_cell"]) for cell in hexes}
    assert drawn == {10}
    assert "resolution 10" in _captions(at) and "resolution 11 ·" not in _captions(at)
    assert any("Drawn at resolution 10, not 11" in i.value for i in at.info)


# Change on the previous period


def test_a_change_with_no_previous_period_is_grey_and_says_so(app):
    at = app("screens/map.py", layers="wards", metric="change_pct", to="2023-06-30")
    fills = {tuple(f["properties"]["color"][:3]) for f in _deck(at)["layers"][0]["data"]["features"]}
    tips = [f["properties"]["tip"] for f in _deck(at)["layers"][0]["data"]["features"]]
    from layers.builders import NO_PREVIOUS

    assert fills == {NO_PREVIOUS.color}
    assert all("Change: no previous period" in t for t in tips)
    assert "No previous period" in _markdown(at) and "up 25 %" not in _markdown(at)
    assert "No previous period\\: the data begins" in _captions(at)


def test_the_change_legend_states_what_it_compares(app):
    at = app("screens/map.py", layers="wards", metric="change_pct")
    assert "Change compares" in _captions(at) and "against" in _captions(at)
    assert "up 25 % or more" in _markdown(at)


# Rates need populations


def test_rate_is_not_offered_without_populations(bare_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(bare_db))
    at = _open(bare_db, "screens/map.py", layers="wards", metric="rate_per_1000")
    radio = at.radio(key="map_metric")
    assert not any("Rate" in o or "rate" in o for o in radio.options) and radio.value == "count"
    assert "Rate per 1,000 residents" not in _markdown(at)
    assert "carry no populations" in _captions(at)


def test_rate_is_offered_with_populations(app):
    at = app("screens/map.py", layers="wards", metric="rate_per_1000")
    assert at.radio(key="map_metric").value == "rate_per_1000"


# Which interventions were considered


def test_classes_name_the_interventions_considered(small_demo_db):
    with connect(small_demo_db[0], read_only=True) as con:
        some = overlap.cell_classes(con, Filter(datasets=("police_crime", "police_patrols")), 8)
        every = overlap.cell_classes(con, Filter(), 8)
    assert overlap.interventions_considered(some) == (
        "Interventions considered: Police patrol points (Fairhaven Police)."
    )
    sentence = overlap.interventions_considered(every)
    assert sentence.startswith("Interventions considered: ") and sentence.count("(") == 3


def test_without_intervention_data_no_hotspot_reads_unserved(small_demo_db):
    with connect(small_demo_db[0], read_only=True) as con:
        classes = overlap.cell_classes(con, Filter(kinds=("demand",)), 8)
    assert classes["demand_hot"].any()
    assert "unserved hotspot" not in set(classes["class"])
    assert set(classes.loc[classes["demand_hot"], "class"]) == {overlap.NO_INTERVENTIONS}
    assert overlap.interventions_considered(classes).startswith("No intervention data selected")


def test_hotspots_page_without_intervention_data_says_so(bare_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(bare_db))
    at = _open(bare_db, "screens/hotspots.py")
    areas = at.dataframe[0].value
    assert len(areas) and not areas["Intervention status"].str.contains("unserved", case=False).any()
    cells = next(e for e in at.expander if "Analyst detail" in e.label).dataframe[0].value
    assert len(cells) and "unserved hotspot" not in set(cells["intervention status"])
    assert "No intervention data selected" in _captions(at)
    at = _open(bare_db, "screens/map.py", layers="overlap")
    assert "No intervention data selected" in _markdown(at) and "Unserved hotspot" not in _markdown(at)


def test_hotspots_page_names_the_interventions_considered(app):
    at = app("screens/hotspots.py")
    assert "Interventions considered\\: " in _captions(at)
    assert "Police patrol points \\(Fairhaven Police\\)" in _captions(at)


# Coarse locations and different spans


def test_a_coarse_dataset_drawn_too_fine_is_named_beside_the_map(doctored_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(doctored_db))
    at = _open(doctored_db, "screens/map.py", layers="density", res="9")
    assert "Anti\\-social behaviour" in _warnings(at)  # named, escaped for Markdown
    assert "support resolution 7 at the finest" in _warnings(at)
    assert "rounded to a 1 km grid" in _captions(at)
    at = _open(doctored_db, "screens/map.py", layers="density", res="7")
    assert "at the finest" not in _warnings(at)
    assert "rounded to a 1 km grid" in _captions(at)  # the note stays under every map


def test_the_hotspots_page_shows_coarse_locations(doctored_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(doctored_db))
    at = _open(doctored_db, "screens/hotspots.py", res="9")
    assert "support resolution 7 at the finest" in _warnings(at)
    assert "rounded to a 1 km grid" in _captions(at)


def test_a_warehouse_without_location_precision_warns_of_nothing(small_demo_db):
    from app import quality
    from app.dashboard import cached

    with connect(small_demo_db[0], read_only=True) as con:
        reports = quality.load_report(con)
    older = [{k: v for k, v in r.items() if k != "location_precision"} for r in reports]
    assert cached.precision_warnings(older, [r["id"] for r in older], 11) == []
    assert cached.coarse_locations(older, [r["id"] for r in older]) == []


def test_different_spans_are_named_under_the_map_whatever_the_layers(doctored_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(doctored_db))
    at = _open(doctored_db, "screens/map.py", layers="wards")
    assert "council" in _warnings(at).lower() and "cover" in _warnings(at)


def test_names_from_files_are_escaped_in_the_provenance(doctored_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(doctored_db))
    at = _open(doctored_db, "screens/map.py", layers="wards")
    assert "\\[click me\\]\\(x\\) \\*now\\*" in _captions(at)


# The hotspots file


def test_the_hotspots_csv_has_numbers_snake_case_headers_wards_and_centres(small_demo_db):
    from app import hotspots, quality
    from app.emerging import emerging_hotspots

    with connect(small_demo_db[0], read_only=True) as con:
        spots, _ = hotspots.hex_hotspots(con, Filter(), 8)
        classes = overlap.cell_classes(con, Filter(), 8)
        table = hotspots.ranked_hotspots(spots, classes, emerging_hotspots(con, Filter(), 8, "month"))
        export = overlap.hotspot_export(con, table, spots, classes)
        shapes = quality.ward_shapes(con)
    assert len(export) == len(table) > 0
    assert all(re.fullmatch(r"[a-z0-9_]+", c) for c in export.columns)
    assert pd.api.types.is_integer_dtype(export["records"])
    assert export.loc[~export["records_suppressed"], "records"].notna().all()
    csv = export.to_csv(index=False)
    assert not re.search(r'"\d{1,3},\d{3}"', csv)  # no "43,860"
    # Each cell's ward is the one whose polygon holds its centre.
    polygons = [shapely.geometry.shape(json.loads(g)) for g in shapes["geojson"]]
    for row in export.head(20).itertuples():
        point = shapely.Point(row.cell_lng, row.cell_lat)
        holding = [c for c, p in zip(shapes["ward_code"], polygons, strict=True) if p.contains(point)]
        assert [row.ward_code] == holding
        lat, lng = h3.cell_to_latlng(row.h3_cell)
        assert np.isclose(row.cell_lat, lat, atol=1e-5) and np.isclose(row.cell_lng, lng, atol=1e-5)
    assert set(export["ward_name"]) <= set(shapes["ward_name"])


# Agencies named per row


@pytest.mark.realdata
@pytest.mark.skipif(not REALDATA.exists(), reason="no real data")
def test_hot_demand_names_each_rows_agency_not_the_catalogues(tmp_path):
    """New York's 311 file names the agency of each request: where its demand is hot, the
    agencies named are those of the requests (NYPD, DOT, ...), never the catalogue's "NYC 311"."""
    from app.ingest import load

    report = load(CATALOGS / "nyc-311-nypd.toml", tmp_path / "w.duckdb")
    with connect(report["db"], read_only=True) as con:
        row_agencies = {
            a
            for (a,) in con.execute("SELECT DISTINCT agency FROM events WHERE dataset = 'nyc_311'").fetchall()
        }
        classes = overlap.cell_classes(con, Filter(datasets=("nyc_311",)), 8)
    named = {a for cell in classes["hot_demand_agencies"] if cell for a in cell.split(", ")}
    assert named and named <= row_agencies and "NYC 311" not in named
    assert len(named) > 1
    assert "unserved hotspot" not in set(classes["class"])


def test_the_cell_detail_names_each_agency_and_what_was_considered():
    from app.dashboard.cell_detail import meeting

    classes = pd.DataFrame(
        {
            "h3_cell": ["a", "b"],
            "hot_demand_agencies": ["DOT, NYPD", ""],
            "intervention_agencies": ["", ""],
            "class": [overlap.NO_INTERVENTIONS, "none"],
            "interventions_considered": "No intervention data selected: a demand hotspot cannot be called "
            "served or unserved.",
        }
    )
    said = meeting(classes, "a")
    assert said.startswith(
        "Agencies whose own demand is hot here: DOT, NYPD. Interventions concentrated: none."
    )
    assert "Status: no intervention data selected." in said and "No intervention data selected:" in said
    assert meeting(classes, "b").startswith("Agencies whose own demand is hot here: none.")
