"""Every table row of a hotspot area, a hexagon or a ward has "show on map": a link that opens
the map centred and zoomed on it, under the page's filter, with a layer the viewer may see."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import h3
import pytest
import shapely
from conftest import REPO, map_deck
from streamlit.testing.v1 import AppTest
from test_app_roles import run, signed_in, signed_in_setting

from app.access import LOCAL, AccessContext
from app.dashboard import map_links

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")
CELL_ID = re.compile(r"\b[89][0-9a-f]{14}\b")
LINK = map_links.LINK_HEADER
FILTER = {"ds": "police_crime,police_asb,council_env,fire_incidents", "dow": "1,2,3,4,5"}
AREA_LAYERS = {"hotspots", "outlines"}
PLAIN_LAYERS = {"density", "outlines"}
WARD_LAYERS = {"wards", "outlines"}


@pytest.fixture(scope="module")
def study(small_demo_db):
    """The study area's bounds and every ward's outline, as the warehouse holds them."""
    from app import quality
    from app.warehouse import connect

    with connect(small_demo_db[0], read_only=True) as con:
        bounds = quality.study_area(con)["bounds"]
        shapes = quality.ward_shapes(con)
    outlines = {str(r.ward_code): shapely.from_geojson(r.geojson) for r in shapes.itertuples()}
    names = {str(r.ward_code): str(r.ward_name) for r in shapes.itertuples()}
    return bounds, outlines, names


@pytest.fixture
def page(small_demo_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(small_demo_db[0]))

    def open_page(name: str, **params) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=180)
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page(f"screens/{name}.py").run()
        assert not at.exception, at.exception[0].message if at.exception else ""
        return at

    return open_page


def link_params(link: str) -> dict[str, str]:
    url = urlsplit(link)
    assert url.path in ("./", "/", "")
    return {k: v[0] for k, v in parse_qs(url.query).items()}


def check_link(link: str, name: str, filter_params: dict, layers: set[str], bounds) -> dict[str, str]:
    """The link opens the map under ``filter_params``, centred in the study area at a zoom that
    shows a neighbourhood, naming ``name``, with ``layers`` on; returns its parameters."""
    params = link_params(link)
    assert {k: params.get(k) for k in filter_params} == filter_params
    assert set(params) == set(filter_params) | {"lat", "lon", "zoom", "area", "layers"}
    minx, miny, maxx, maxy = bounds
    lat, lon, zoom = float(params["lat"]), float(params["lon"]), int(params["zoom"])
    assert miny <= lat <= maxy and minx <= lon <= maxx
    assert 11 <= zoom <= 16
    assert params["area"] == name
    assert set(params["layers"].split(",")) == layers
    return params


def filter_of(at: AppTest) -> dict[str, str]:
    """The shared filter's parameters as the page's URL holds them (a default is left out)."""
    from app.dashboard.ui import FILTER_PARAMS

    out = {}
    for key in FILTER_PARAMS:
        if key in at.query_params:
            value = at.query_params[key]
            out[key] = value[0] if isinstance(value, list) else value
    assert {k: out.get(k) for k in FILTER} == FILTER  # the filter the page was opened with
    return out


def table_with(at: AppTest, column: str):
    """The first table drawn with ``column``."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a {column!r} column")


def ward_with_areas(at: AppTest, names: dict[str, str]) -> str:
    """Pick the first ward (in the picker's order, by name) that a hotspot area touches; its code."""
    for code in sorted(names, key=names.get):
        at.selectbox(key="ward_pick").set_value(code).run()
        assert not at.exception, at.exception[0].message if at.exception else ""
        if any("Area" in f.value.columns for f in at.dataframe):
            assert at.selectbox(key="ward_pick").value == code
            return code
    raise AssertionError("no ward has a hotspot area")


def opened(link: str) -> AppTest:
    """The map, opened from ``link`` as a new tab opens it."""
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in link_params(link).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


# The module's functions ---------------------------------------------------------------------


def test_map_params_carry_the_filter_the_view_and_the_name():
    row = {"lat": 52.312345678, "lon": -0.91234567, "zoom": 14.7, "name": "Northgate estate"}
    params = map_links.map_params(row, {"ds": "police_crime", "dow": ["0", "1"]}, map_links.PLAIN_MAP_LAYERS)
    assert params == {
        "ds": "police_crime",
        "dow": ["0", "1"],
        "lat": "52.31235",
        "lon": "-0.91235",
        "zoom": "14",
        "area": "Northgate estate",
        "layers": "density,outlines",
    }
    link = map_links.map_link(row, {"ds": "police_crime", "dow": ["0", "1"]})
    assert link.startswith("./?")
    query = parse_qs(urlsplit(link).query)
    assert query["dow"] == ["0", "1"] and query["layers"] == ["hotspots,outlines"]
    assert query["area"] == ["Northgate estate"]  # spaces and all, read back as written


def test_a_hexagon_opens_at_street_level_centred_on_itself():
    lat, lon = 52.35, -0.9
    for res, zoom in ((8, 14), (9, 15)):
        cell = h3.latlng_to_cell(lat, lon, res)
        view = map_links.cells_view([cell])
        centre = h3.cell_to_latlng(cell)
        assert view["zoom"] == zoom
        assert abs(view["lat"] - centre[0]) < 1e-3 and abs(view["lon"] - centre[1]) < 1e-3
    assert map_links.cells_view([]) is None


def test_several_cells_open_wider_than_one_and_never_wider_than_the_floor():
    cell = h3.latlng_to_cell(52.35, -0.9, 8)
    ring = list(h3.grid_disk(cell, 3))
    assert map_links.cells_view(ring)["zoom"] < map_links.cells_view([cell])["zoom"]
    assert map_links.bounds_view(51.0, -2.0, 53.0, 0.0)["zoom"] == map_links.MIN_ZOOM


def test_a_ward_is_fitted_whole_by_its_outline():
    square = shapely.box(-0.95, 52.30, -0.93, 52.32)
    view = map_links.shape_view(shapely.to_geojson(square))
    assert view["lat"] == pytest.approx(52.31) and view["lon"] == pytest.approx(-0.94)
    assert 11 <= view["zoom"] <= 16
    assert map_links.shape_view(None) is None and map_links.shape_view("") is None


def test_a_place_without_a_view_has_no_link():
    assert map_links.place_link("Somewhere", None, {}, map_links.WARD_MAP_LAYERS) is None
    link = map_links.place_link("Abbey", {"lat": 52.3, "lon": -0.9, "zoom": 13}, {}, "wards,outlines")
    assert link_params(link) == {
        "lat": "52.30000",
        "lon": "-0.90000",
        "zoom": "13",
        "area": "Abbey",
        "layers": "wards,outlines",
    }


def test_the_hotspot_layer_only_for_roles_that_may_see_it():
    assert map_links.area_layers(LOCAL) == map_links.MAP_LAYERS
    for role, layers in (
        ("councillor", map_links.PLAIN_MAP_LAYERS),
        ("service_manager", map_links.MAP_LAYERS),
        ("analyst", map_links.MAP_LAYERS),
    ):
        ctx = AccessContext(email="a@x.example", agency="Fairhaven Police", role=role, local=False)
        assert map_links.area_layers(ctx) == layers


def test_every_layer_a_link_turns_on_is_one_the_map_draws():
    import layers

    for value in (map_links.MAP_LAYERS, map_links.PLAIN_MAP_LAYERS, map_links.WARD_MAP_LAYERS):
        assert set(value.split(",")) <= set(layers.REGISTRY)


# The pages ----------------------------------------------------------------------------------


def test_ward_profile_areas_and_cells_open_on_the_map(page, study):
    bounds, _, names = study
    at = page("ward", **FILTER)
    wanted = filter_of(at)
    code = ward_with_areas(at, names)
    areas = table_with(at, "Area")
    assert list(areas.columns[:2]) == ["Area", LINK] and len(areas)
    for name, link in zip(areas["Area"], areas[LINK], strict=True):
        check_link(link, name, wanted, AREA_LAYERS, bounds)

    expander = next(e for e in at.expander if "Analyst detail: hotspot cells" in e.label)
    cells = expander.dataframe[0].value
    assert list(cells.columns[:2]) == ["h3_cell", LINK] and len(cells)
    places = {f"hexagon in {n}" for n in [*areas["Area"], names[code]]}
    for cell, link in zip(cells["h3_cell"], cells[LINK], strict=True):
        params = link_params(link)
        assert params["area"] in places and not CELL_ID.search(params["area"])
        check_link(link, params["area"], wanted, AREA_LAYERS, bounds)
        assert params["zoom"] == "14"  # one hexagon of resolution 8: its streets readable
        lat, lng = h3.cell_to_latlng(cell)
        assert abs(float(params["lat"]) - lat) < 2e-3 and abs(float(params["lon"]) - lng) < 2e-3
    # A hexagon of a listed area is named by the area, not only by the ward.
    assert {link_params(link)["area"] for link in cells[LINK]} - {f"hexagon in {names[code]}"}

    # The link opens the map there, saying what it is centred on.
    shown = opened(cells[LINK].iloc[0])
    assert f"Centred on {link_params(cells[LINK].iloc[0])['area']}." in [c.value for c in shown.caption]
    assert not shown.warning


def test_a_councillors_ward_profile_links_to_layers_a_councillor_sees(
    small_demo_db, tmp_path, monkeypatch, study
):
    bounds, _, names = study
    signed_in_setting(small_demo_db, tmp_path, monkeypatch)
    councillor = signed_in(None, agency="council", roles=["councillor"])
    at = run(councillor, "screens/ward.py", **FILTER)
    wanted = filter_of(at)
    ward_with_areas(at, names)
    areas = table_with(at, "Area")
    for name, link in zip(areas["Area"], areas[LINK], strict=True):
        check_link(link, name, wanted, PLAIN_LAYERS, bounds)
    expander = next(e for e in at.expander if "Analyst detail: hotspot cells" in e.label)
    cells = expander.dataframe[0].value[LINK]
    for link in cells:
        assert set(link_params(link)["layers"].split(",")) == PLAIN_LAYERS
    # The councillor's map opens there with the layers on: none is left out of the link.
    for link in (areas[LINK].iloc[0], cells.iloc[0]):
        shown = run(councillor, None, **link_params(link))
        assert f"Centred on {link_params(link)['area']}." in [c.value for c in shown.caption]
        assert not shown.warning, shown.warning[0].value


def test_early_warning_rows_open_their_area_or_ward_on_the_map(page, study, small_demo_db):
    from app import early_warning as ew
    from app.filters import Filter
    from app.warehouse import connect

    bounds, outlines, names = study
    code_of = {n: c for c, n in names.items()}
    at = page("early_warning", **FILTER)
    wanted = filter_of(at)
    with connect(small_demo_db[0], read_only=True) as con:
        months = ew.months_available(con, Filter())
    kinds_seen: set[str] = set()
    for option in months:  # the months one by one, latest first, until both kinds have been seen
        at.selectbox(key="ew_month").set_value(option).run()
        assert not at.exception, at.exception[0].message if at.exception else ""
        if not any(LINK in f.value.columns for f in at.dataframe):
            continue
        table = table_with(at, LINK)
        assert list(table.columns[:2]) == ["Place", LINK]
        for name, link, kind in zip(table["Place"], table[LINK], table["Kind"], strict=True):
            if kind == "Ward":
                params = check_link(link, name, wanted, WARD_LAYERS, bounds)
                minx, miny, maxx, maxy = outlines[code_of[name]].bounds
                assert miny < float(params["lat"]) < maxy and minx < float(params["lon"]) < maxx
            else:
                assert kind == "Hotspot area"
                with connect(small_demo_db[0], read_only=True) as con:
                    flags = ew.warnings(con, Filter(), month=option)
                row = flags[flags["place_name"] == name].iloc[0]
                # An area is its dataset's own: the map opens on that dataset, whose hotspot
                # layer then shows the area's hot cells.
                params = check_link(link, name, {"ds": row["dataset"]}, AREA_LAYERS, bounds)
                cells = row["h3_cells"]
                if "Hotspot area" not in kinds_seen:  # opened: the area's own hot cells are drawn
                    deck = map_deck(opened(link))
                    hot = next(layer for layer in deck["layers"] if layer["id"] == "hotspots")["data"]
                    assert set(cells) & {c["h3_cell"] for c in hot}, "the area's cells are not drawn hot"
                view = map_links.cells_view(cells)  # centred on the area's own cells
                assert (params["lat"], params["lon"]) == (f"{view['lat']:.5f}", f"{view['lon']:.5f}")
            kinds_seen.add(kind)
        if kinds_seen == {"Ward", "Hotspot area"}:
            break
    assert kinds_seen == {"Ward", "Hotspot area"}


def test_priorities_rows_open_their_ward_or_area_on_the_map(page, study, small_demo_db):
    from app import early_warning as ew
    from app import priorities as pr
    from app.filters import Filter
    from app.warehouse import connect

    bounds, outlines, names = study
    at = page("priorities", **FILTER)
    wanted = filter_of(at)
    wards = table_with(at, LINK)
    assert list(wards.columns[:3]) == ["Rank", "Place", LINK] and len(wards) == len(names)
    code_of = {n: c for c, n in names.items()}
    for name, link in zip(wards["Place"], wards[LINK], strict=True):
        params = check_link(link, name, wanted, WARD_LAYERS, bounds)
        # Centred on the ward: the middle of its outline's box, which its outline spans.
        minx, miny, maxx, maxy = outlines[code_of[name]].bounds
        assert miny < float(params["lat"]) < maxy and minx < float(params["lon"]) < maxx

    at.radio(key="pr_kind").set_value("Hotspot areas").run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    areas = table_with(at, LINK)
    assert len(areas)
    # The areas ranked (every demand agency counts at first), each centred on its own cells.
    with connect(small_demo_db[0], read_only=True) as con:
        demand = ew.units(con, Filter(agencies=tuple(pr.demand_agencies(con))))
        found = ew.hotspot_areas(con, Filter(datasets=tuple(sorted(set(demand["dataset"])))))
    cells = {str(n): list(c) for n, c in zip(found["name"], found["h3_cells"], strict=True)}
    found_in = {"ds": ",".join(sorted(set(demand["dataset"])))}  # the areas' own datasets
    for name, link in zip(areas["Place"], areas[LINK], strict=True):
        params = check_link(link, name, found_in, AREA_LAYERS, bounds)
        view = map_links.cells_view(cells[name])
        assert (params["lat"], params["lon"]) == (f"{view['lat']:.5f}", f"{view['lon']:.5f}")
