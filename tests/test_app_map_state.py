"""The map's state through streamlit.testing: its layer panel and view kept in the URL and
across pages, the place search, and the change layer on the demo city."""

from __future__ import annotations

import pytest
from conftest import REPO, map_deck
from streamlit.testing.v1 import AppTest

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")


@pytest.fixture
def open_map(small_demo_db, monkeypatch):
    db, _ = small_demo_db
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))

    def open_page(page: str = "screens/map.py", **params) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page(page).run()
        assert not at.exception, at.exception[0].message if at.exception else ""
        return at

    return open_page


def deck(at: AppTest) -> dict:
    return map_deck(at)


def ids(at: AppTest) -> list[str]:
    return [layer["id"] for layer in deck(at)["layers"]]


def param(at: AppTest, key: str) -> str | None:
    value = at.query_params.get(key)
    return value[0] if isinstance(value, list) else value


def test_a_link_opens_the_same_layers_order_opacity_and_view(open_map):
    at = open_map(
        layers="wards,density", order="wards,density", opacity="wards:40", lat="52.35", lon="-0.9", zoom="13"
    )
    # "order" is top first: the wards are drawn above the cells, at 40 %.
    assert ids(at)[:3] == ["density", "wards", "ward-lines"]
    by_id = {layer["id"]: layer for layer in deck(at)["layers"]}
    assert by_id["wards"]["opacity"] == pytest.approx(0.4) and by_id["density"]["opacity"] == pytest.approx(
        0.75
    )
    start = deck(at)["initialViewState"]
    assert (start["latitude"], start["longitude"], start["zoom"]) == (52.35, -0.9, 13)
    assert at.checkbox(key="lp_on_wards").value and not at.checkbox(key="lp_on_hotspots").value
    assert at.slider(key="lp_op_wards").value == 40
    assert (param(at, "layers"), param(at, "opacity")) == ("wards,density", "wards:40")
    assert param(at, "lat") == "52.35000" and param(at, "zoom") == "13"


def test_a_show_on_map_link_says_what_the_map_is_centred_on(open_map):
    """A hotspot area's link names the area; the map says it in plain words, keeps it while the
    view stays, and a hostile name is shown as text, never as markup."""
    at = open_map(layers="hotspots", lat="52.35", lon="-0.9", zoom="14", area="Old Market")
    captions = " ".join(str(c.value) for c in at.caption)
    assert "Centred on Old Market." in captions and param(at, "area") == "Old Market"
    at.button(key="map_whole_area").click().run()
    assert "Centred on" not in " ".join(str(c.value) for c in at.caption) and param(at, "area") is None
    hostile = open_map(lat="52.35", lon="-0.9", zoom="14", area="<b>x</b> [y](http://e.vil) " + "z" * 300)
    shown = next(str(c.value) for c in hostile.caption if "Centred on" in str(c.value))
    assert "<b>" not in shown and "](http" not in shown and len(shown) < 200
    ignored = open_map(lat="999", lon="-0.9", zoom="14", area="Old Market")  # no valid view: no name
    assert "Centred on" not in " ".join(str(c.value) for c in ignored.caption)


def test_the_ward_layer_says_it_hides_the_cells_below_it(open_map):
    at = open_map(layers="wards,density", order="wards,density")
    assert any("hides it" in i.value for i in at.info)
    at = open_map(layers="wards,density")  # the default order draws cells above the wards
    assert not any("hides it" in i.value for i in at.info)


def test_panel_changes_land_in_the_url_and_the_map(open_map):
    at = open_map(layers="density,outlines")
    at.checkbox(key="lp_on_hotspots").check().run()
    assert "hotspots" in ids(at) and "hotspots" in param(at, "layers").split(",")
    at.slider(key="lp_op_density").set_value(30).run()
    assert param(at, "opacity") == "density:30"
    assert {layer["id"]: layer for layer in deck(at)["layers"]}["density"]["opacity"] == pytest.approx(0.3)
    before = ids(at)
    at.button(key="lp_up_density").click().run()
    after = ids(at)
    assert after.index("density") > before.index("density")  # drawn later: higher
    assert param(at, "order").split(",").index("density") < param(at, "order").split(",").index("hotspots")
    at.checkbox(key="lp_on_density").uncheck().run()
    assert "density" not in ids(at) and "density" not in param(at, "layers").split(",")
    # Legends only for the layers drawn.
    legends = " ".join(m.value for m in at.markdown if "cg-legend" in m.value)
    assert "Records per cell" not in legends and "Gi* hot and cold spots" in legends


def test_the_map_comes_back_as_it_was_after_another_page(open_map):
    at = open_map(layers="density,outlines", opacity="density:50", lat="52.36", lon="-0.91", zoom="12.5")
    wanted = {k: param(at, k) for k in ("layers", "opacity", "lat", "lon", "zoom")}
    at.query_params["ward"] = "E05900002"
    at.switch_page("screens/ward.py").run()
    assert not at.exception
    for key in list(at.query_params):  # the navigation link carries no map parameters
        if key in wanted:
            del at.query_params[key]
    at.switch_page("screens/map.py").run()
    assert not at.exception
    assert {k: param(at, k) for k in wanted} == wanted
    start = deck(at)["initialViewState"]
    assert (start["latitude"], start["zoom"]) == (52.36, 12.5)
    assert at.slider(key="lp_op_density").value == 50


def report(at: AppTest, view: object = None, pick: object = None) -> AppTest:
    """The map reports a move by hand (``view``) or a click (``pick``), as the browser does."""
    at.session_state["map"] = {"view": view, "pick": pick}
    at.run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


def test_a_view_moved_by_hand_is_kept_in_the_url_and_across_pages(open_map):
    at = open_map(layers="wards,outlines", lat="52.35", lon="-0.9", zoom="14", area="Old Market")
    report(at, {"latitude": 52.3612345, "longitude": -0.9123456, "zoom": 12.25, "at": 1})
    assert (param(at, "lat"), param(at, "lon"), param(at, "zoom")) == ("52.36123", "-0.91235", "12.25")
    start = deck(at)["initialViewState"]
    assert (start["latitude"], start["longitude"], start["zoom"]) == (52.36123, -0.91235, 12.25)
    # No longer centred on the area its link named, and the whole area is a click away.
    assert param(at, "area") is None and "Centred on" not in " ".join(str(c.value) for c in at.caption)
    assert at.button(key="map_whole_area")
    at.switch_page("screens/ward.py").run()
    for key in ("lat", "lon", "zoom", "layers"):
        del at.query_params[key]
    at.switch_page("screens/map.py").run()
    assert (param(at, "lat"), param(at, "zoom")) == ("52.36123", "12.25")
    # The whole area again: the view the map reported earlier does not come back with it.
    report(at, {"latitude": 52.34, "longitude": -0.88, "zoom": 13, "at": 2})
    at.button(key="map_whole_area").click().run()
    assert param(at, "lat") is None
    at.run()
    assert param(at, "lat") is None


def test_a_view_or_click_the_browser_reports_is_checked(open_map):
    """What the map reports comes from the browser: a view off the study area, or one that is
    not numbers, is not kept, and a click naming no known object opens nothing."""
    at = open_map(layers="wards,outlines")
    report(at, {"latitude": 0, "longitude": 0, "zoom": 12, "at": 1})
    assert param(at, "lat") is None and not at.warning
    for hostile in ({"latitude": "x", "longitude": [], "zoom": None}, "<b>", {"latitude": 1e308}, 7):
        report(at, hostile, {"layer": "wards", "object": {"ward_code": None}})
        assert param(at, "lat") is None and param(at, "ward") is None
    report(at, None, {"layer": ["wards"], "object": "E05900002"})
    report(at, None, {"layer": "hotspots", "object": {"h3_cell": "8819436d59fffff"}})  # not drawn
    at = open_map(layers="density,wards")
    for cell in ("zz<b>", "8019fffffffffff", 881943):  # not a cell; a cell of another resolution
        report(at, None, {"layer": "density", "object": {"h3_cell": cell}})
    assert not [h for h in at.subheader if "Hexagon" in h.value]


def test_a_click_on_the_map_opens_a_ward_or_a_hexagon(open_map):
    at = open_map(layers="density,wards")
    cell = next(layer for layer in deck(at)["layers"] if layer["id"] == "density")["data"][0]["h3_cell"]
    report(at, None, {"layer": "density", "object": {"h3_cell": cell, "count": 1}})
    assert any(cell in str(c.value) for c in at.caption)  # the hexagon's detail, beside the map
    report(at, None, {"layer": "wards", "object": {"ward_code": "E05900002", "ward_name": "x"}})
    assert param(at, "ward") == "E05900002"


def test_place_search_centres_the_map_and_offers_the_ward_profile(open_map):
    at = open_map()
    fitted = deck(at)["initialViewState"]
    at.text_input(key="map_search").input("E05900002").run()
    pick = at.selectbox(key="map_search_pick")
    assert pick.options  # the ward, found by its code
    pick.select_index(0).run()
    assert not at.exception
    start = deck(at)["initialViewState"]
    assert start["zoom"] > fitted["zoom"] and param(at, "lat") is not None
    assert "place" in ids(at)  # a marker where the place is
    at.button(key="map_open_ward").click().run()
    assert not at.exception
    assert param(at, "ward") == "E05900002"


def test_a_search_with_no_match_says_so(open_map):
    at = open_map()
    at.text_input(key="map_search").input("zzqx nowhere").run()
    assert any("No ward, place or postcode matches" in c.value for c in at.caption)
    assert not [s for s in at.selectbox if s.key == "map_search_pick"]


def test_a_bad_view_or_opacity_in_a_link_is_named_not_a_failure(open_map):
    at = open_map(layers="wards,nonsense", opacity="wards:150", lat="0", lon="0", zoom="12")
    warning = " ".join(w.value for w in at.warning)
    assert "nonsense" in warning and "opacity" in warning and "outside the study area" in warning
    assert ids(at)[0] == "wards" and param(at, "lat") is None


def test_the_change_layer_draws_cells_in_the_change_palette(open_map):
    from layers.builders import CHANGE, NO_CHANGE_FIGURE, NO_PREVIOUS

    at = open_map(layers="change", res="7")
    cells = deck(at)["layers"][0]["data"]
    allowed = {*CHANGE.values(), NO_CHANGE_FIGURE.color, NO_PREVIOUS.color}
    assert cells and {tuple(c["color"]) for c in cells} <= allowed
    assert all("records" in c["tip"] and "Change: " in c["tip"] for c in cells)
    assert any("Change compares" in c.value for c in at.caption), [c.value for c in at.caption]
