"""The map's faster filter changes draw the very figures the engine gives: each layer, whether
built for this filter or taken from the cache after another filter, equals the layer built
straight from the engine's own aggregate; and the parts cached under a narrower key (the
filter's datasets and period alone) answer as they would for the whole filter."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import REPO, map_deck
from streamlit.testing.v1 import AppTest

import layers
from app import aggregate, quality, trends
from app.dashboard.cached import scope, undated
from app.filters import Filter, categories_in, comparison, data_period, datasets_in, validate
from app.warehouse import connect
from layers.view import CompactDeck, fit_view, simplify_for_zoom

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")


@pytest.fixture(scope="module")
def con(small_demo_db):
    con = connect(small_demo_db[0], read_only=True)
    yield con
    con.close()


@pytest.fixture
def map_app(small_demo_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(small_demo_db[0]))
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["layers"] = "outlines,density,wards"
    at.switch_page("screens/map.py").run()
    assert not at.exception, at.exception
    return at


def _drawn(at: AppTest) -> dict[str, dict]:
    assert not at.exception, at.exception
    return {layer["id"]: layer for layer in map_deck(at)["layers"]}


def _expected(con, f: Filter) -> dict[str, dict]:
    """The map's layers built straight from the engine, with nothing cached: the ward counts of
    ``aggregate.ward_aggregate``, the cells of ``aggregate.hex_totals`` at resolution 8, and
    the outlines simplified for the zoom the map opens at."""
    fitted = fit_view(quality.study_area(con)["bounds"])
    shapes = simplify_for_zoom(quality.ward_shapes(con), round(fitted.zoom), round(fitted.latitude, 3))
    wards = aggregate.ward_aggregate(con, f, by_dataset=False).merge(
        shapes[["ward_code", "geojson"]], on="ward_code"
    )
    built = [
        layers.build("wards", wards, metric="count"),
        layers.build("density", aggregate.hex_totals(con, f, 8)),
        layers.build("outlines", shapes),
    ]
    deck = json.loads(CompactDeck(layers=layers.stack(built)).to_json())
    return {layer["id"]: layer for layer in deck["layers"]}


def _same_layers(drawn: dict[str, dict], expected: dict[str, dict]) -> None:
    assert set(drawn) == set(expected)
    for name, layer in expected.items():
        assert drawn[name]["data"] == layer["data"], name


def test_category_and_period_changes_draw_the_engine_figures(map_app, con):
    first, second = categories_in(
        con, tuple(r[0] for r in con.execute("SELECT id FROM datasets").fetchall())
    )[:2]
    _same_layers(_drawn(map_app), _expected(con, Filter()))
    # A category, another, then the first again (its layers now come from the cache).
    for category in (first, second, first):
        map_app.multiselect(key="f_categories").set_value([category]).run()
        _same_layers(_drawn(map_app), _expected(con, Filter(categories=(category,))))
    map_app.multiselect(key="f_categories").set_value([]).run()
    start, end = data_period(con, Filter())
    period = (start + dt.timedelta(days=200), end - dt.timedelta(days=100))
    map_app.date_input(key="f_period").set_value(period).run()
    _same_layers(_drawn(map_app), _expected(con, Filter(start=period[0], end=period[1])))


def test_the_outlines_are_the_same_for_every_filter(map_app, con):
    before = _drawn(map_app)["outlines"]
    category = categories_in(con, ("police_crime",))[0]
    map_app.multiselect(key="f_categories").set_value([category]).run()
    assert _drawn(map_app)["outlines"] == before


def test_a_faded_layer_leaves_the_shared_one_as_built(small_demo_db, monkeypatch):
    """Layers are cached for every session: fading one in a session fades its copy only."""
    monkeypatch.setenv("COMMON_GROUND_DB", str(small_demo_db[0]))
    faded = AppTest.from_file(APP, default_timeout=180)
    faded.query_params["opacity"] = "wards:30"
    faded.switch_page("screens/map.py").run()
    assert _drawn(faded)["wards"]["opacity"] == pytest.approx(0.3)
    plain = AppTest.from_file(APP, default_timeout=180)
    plain.switch_page("screens/map.py").run()
    assert _drawn(plain)["wards"]["opacity"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "f",
    [
        Filter(categories=("Fire",), hours=tuple(range(8, 18))),
        Filter(datasets=("police_crime", "council_env"), weekdays=(1, 2)),
        Filter(kinds=("demand",), start=dt.date(2024, 1, 1), end=dt.date(2024, 6, 30), categories=("Fire",)),
    ],
)
def test_what_the_scope_decides_is_the_same_for_the_whole_filter(con, f):
    """Which datasets a filter selects, their span, the windows a change compares and the note
    on datasets of different spans are cached under ``scope(f)`` (the datasets and their span
    under ``undated(f)``, without its dates too): they must not depend on what is left out."""
    known = set(categories_in(con, tuple(r[0] for r in con.execute("SELECT id FROM datasets").fetchall())))
    f = f.with_(categories=tuple(c for c in f.categories if c in known))
    whole = validate(con, f)
    assert scope(f).access == f.access
    assert datasets_in(con, whole).equals(datasets_in(con, undated(f)))
    assert data_period(con, whole.with_(start=None, end=None)) == data_period(con, undated(f))
    assert comparison(con, whole) == comparison(con, scope(f))
    assert trends.coverage_note(con, whole) == trends.coverage_note(con, scope(f))


def test_outlines_parsed_once_build_the_same_layers(con):
    """The map parses each outline once per zoom (a ``geometry`` column); the layers it builds
    are those built from the GeoJSON text."""
    shapes = quality.ward_shapes(con)
    parsed = shapes.assign(geometry=[json.loads(g) for g in shapes["geojson"]])
    wards = aggregate.ward_aggregate(con, Filter(), by_dataset=False)
    for name, frame, with_geometry in (
        ("outlines", shapes, parsed),
        (
            "wards",
            wards.merge(shapes[["ward_code", "geojson"]]),
            wards.merge(parsed[["ward_code", "geojson", "geometry"]]),
        ),
    ):
        a, b = layers.build(name, frame), layers.build(name, with_geometry)
        assert CompactDeck(layers=a.layers).to_json() == CompactDeck(layers=b.layers).to_json()


def test_frozen_layers_write_the_same_json(con):
    """A frozen layer's data is written once and its text reused: the deck reads the same as
    one written whole, and a faded copy of the layer keeps its own opacity."""
    import copy

    from layers.view import freeze

    shapes = quality.ward_shapes(con)
    built = layers.build("outlines", shapes)
    whole = CompactDeck(layers=built.layers).to_json()
    for layer in built.layers:
        freeze(layer)
    assert CompactDeck(layers=built.layers).to_json() == whole
    assert CompactDeck(layers=built.layers).to_json() == whole  # from the kept text
    faded = [copy.copy(layer) for layer in built.layers]
    faded[0].opacity = 0.25
    drawn = json.loads(CompactDeck(layers=faded).to_json())["layers"]
    assert drawn[0]["opacity"] == 0.25 and "opacity" not in json.loads(whole)["layers"][0]
    assert drawn[0]["data"] == json.loads(whole)["layers"][0]["data"]


def _search(at: AppTest, text: str, kind: str) -> dict:
    at.text_input(key="map_search").input(text).run()
    pick = at.selectbox(key="map_search_pick")
    hits = at.session_state["map_search_hits"]
    index = next(i for i, h in enumerate(hits) if h["kind"] == kind)
    pick.select_index(index).run()
    assert not at.exception, at.exception
    return hits[index]


def test_a_ward_found_is_fitted_whole_and_a_place_shown_with_its_neighbourhood(map_app, con):
    ward = _search(map_app, "Old Market", "ward")
    shapes = quality.ward_shapes(con)
    outline = shapes.loc[shapes["ward_code"] == ward["ward_code"], "geojson"].iloc[0]
    import shapely

    fitted = fit_view(shapely.from_geojson(outline).bounds)
    start = map_deck(map_app)["initialViewState"]
    assert start["zoom"] == pytest.approx(fitted.zoom, abs=0.01)
    assert start["latitude"] == pytest.approx(fitted.latitude, abs=1e-4)
    _search(map_app, "Old Market", "town centre")
    start = map_deck(map_app)["initialViewState"]
    assert start["zoom"] <= 13


def test_the_drawing_order_buttons_are_labelled(map_app):
    labels = {b.key: b.label for b in map_app.button if b.key and b.key.startswith(("lp_up_", "lp_down_"))}
    assert labels and all(label in ("↑ Higher", "↓ Lower") for label in labels.values())
