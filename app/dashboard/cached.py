"""Cached engine calls for the pages: each keyed by the warehouse version and the view, so a
filter change recomputes only what it touches and a reload of the warehouse refreshes all.

The version (``stamp``, from ``ui.db_version``) is an ordinary argument on purpose: Streamlit
leaves arguments whose names begin with an underscore out of the cache key. Each call reads the
warehouse through ``warehouse(stamp)``, the connection of that very version, so a cache miss
never computes on a file a load has renamed into place since the page's run began."""

from __future__ import annotations

import json

import h3
import pandas as pd
import streamlit as st

import layers
from app import aggregate, briefing, emerging, hotspots, overlap, quality, trends
from app.dashboard.ui import MAX_HEXES, warehouse
from app.filters import Filter, comparison
from layers import view as layer_view
from layers.builders import hex_change_frame


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def ward_shapes(stamp) -> pd.DataFrame:
    return quality.ward_shapes(warehouse(stamp))


def scope(f: Filter) -> Filter:
    """The part of a filter that decides which datasets and which period it selects: its
    datasets, kinds, agencies, dates and viewer, without its categories, days, hours and box.

    Which datasets a filter selects, the span each covers, the windows a change compares and
    the note on datasets of different spans depend on nothing else (``filters.datasets_in``
    reads the catalogue, never the records), so they are cached under this key: a category or
    an hour chosen in the sidebar then recomputes the counts alone. The viewer (``access``)
    stays in the key."""
    return f.with_(categories=(), category_scope=None, weekdays=(), hours=(), bbox=None)


def undated(f: Filter) -> Filter:
    """``scope(f)`` without its dates: which datasets a filter selects, and the span they
    cover, do not depend on its period either."""
    return scope(f).with_(start=None, end=None)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def ward_figures(stamp, f: Filter) -> pd.DataFrame:
    """Every ward's released figures (``aggregate.ward_aggregate`` of all the selected datasets
    together), without shapes: the map joins them to outlines simplified for its zoom. The
    data's span and the compared windows are those of the filter's datasets and period
    (``scope``), read once for every choice of categories, days and hours."""
    windows = data_span(stamp, undated(f)), compared(stamp, scope(f))
    return aggregate.ward_aggregate(warehouse(stamp), f, by_dataset=False, windows=windows)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def data_span(stamp, f: Filter):
    """The first and last day the filter's datasets cover, whatever its dates
    (``filters.data_period``); callers pass ``undated(f)``."""
    from app.filters import data_period

    return data_period(warehouse(stamp), f)


def wards(stamp, f: Filter) -> pd.DataFrame:
    """Every ward's released figures with its outline in full detail."""
    return ward_figures(stamp, f).merge(ward_shapes(stamp)[["ward_code", "geojson"]], on="ward_code")


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def ward_by_dataset(stamp, f: Filter) -> pd.DataFrame:
    return aggregate.ward_aggregate(warehouse(stamp), f, by_dataset=True)


def map_res(stamp, f: Filter, res: int) -> tuple[int, str]:
    """The requested resolution, or a coarser one when it would send over 50,000 hexes."""
    requested = res
    while res > 5 and (len(hexes(stamp, f, res)) > MAX_HEXES or _grid_size(stamp, res, f.access) > MAX_HEXES):
        res -= 1
    note = (
        ""
        if res == requested
        else f"shown at resolution {res}: {requested} would draw over {MAX_HEXES:,} hexes"
    )
    return res, note


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def _grid_size(stamp, res: int, access) -> int:
    """Cells of the whole study area as this viewer sees it: the hotspot layers draw from all
    of them."""
    from app.grid import study_area_cells

    return len(study_area_cells(warehouse(stamp), res, access))


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def hexes(stamp, f: Filter, res: int) -> pd.DataFrame:
    return aggregate.hex_totals(warehouse(stamp), f, res)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def hotspot_cells(stamp, f: Filter, res: int, k: int) -> tuple[pd.DataFrame, str | None]:
    frame, result = hotspots.hex_hotspots(warehouse(stamp), f, res, k)
    return frame, result.warning


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def named_hotspot_cells(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    """The hotspot cells with the name of the hotspot area each belongs to (``area``; empty
    for a cell of no area), so that the map's tooltip says the place as the tables do. Only
    the grouping and the names are needed (``areas.areas_for`` without classes or trends), a
    few hundredths of a second on the demo city; kept, as the hotspot layer and every clicked
    hexagon's heading read it."""
    from app import areas

    spots = hotspot_cells(stamp, f, res, k)[0]
    found = areas.areas_for(warehouse(stamp), f, res, spots)
    name_of = {int(c): n for n, cells in zip(found["name"], found["cells"], strict=True) for c in cells}
    return spots.assign(area=[name_of.get(int(h3.str_to_int(c)), "") for c in spots["h3_cell"]])


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def emerging_cells(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    return emerging.emerging_hotspots(warehouse(stamp), f, res, "month", k)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def classes(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    return overlap.cell_classes(warehouse(stamp), f, res, k)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def colocation(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    return overlap.colocation_matrix(warehouse(stamp), f, res, k)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def ward_agencies(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    return overlap.ward_agencies(warehouse(stamp), f, res, k, classes=classes(stamp, f, res, k))


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def trend(stamp, f: Filter, freq: str, ward: str | None = None, cell: str | None = None) -> pd.DataFrame:
    """Released counts per period, agency and kind, for a ward, a cell or the city."""
    series = aggregate.time_series(warehouse(stamp), f, freq, ward=ward, cell=cell)
    return trends.agency_trend(series, freq)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def categories(stamp, f: Filter, ward: str | None = None, cell: str | None = None) -> pd.DataFrame:
    """Records per category (protected) for a ward, a cell or the city."""
    return aggregate.category_counts(warehouse(stamp), f, ward=ward, cell=cell)


def coverage_note(stamp, f: Filter) -> str | None:
    """A warning when the selected datasets cover different parts of the period (the same for
    every choice of categories, days and hours: see ``scope``)."""
    return _coverage_note(stamp, scope(f))


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def _coverage_note(stamp, f: Filter) -> str | None:
    return trends.coverage_note(warehouse(stamp), f)


def selected_datasets(stamp, f: Filter) -> pd.DataFrame:
    """The catalogue rows the filter selects (id, agency, kind, sharing, first and last time)."""
    return _selected_datasets(stamp, undated(f))


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def _selected_datasets(stamp, f: Filter) -> pd.DataFrame:
    from app.filters import datasets_in, validate

    con = warehouse(stamp)
    return datasets_in(con, validate(con, f))


def coarse_locations(reports: list[dict], ids) -> list[dict]:
    """The load reports (``quality.load_report``) of the datasets ``ids`` whose locations are
    coarse (snapped to a grid, or to a few points): their ``location_precision`` says how coarse.
    A warehouse loaded before that key existed has none, so nothing is said of it."""
    wanted = set(ids)
    return [r for r in reports if r.get("id") in wanted and (r.get("location_precision") or {}).get("coarse")]


def precision_warnings(reports: list[dict], ids, res: int) -> list[str]:
    """A warning for each selected dataset drawn finer than its locations support: at a finer
    resolution its hexes show the grid its points were snapped to, not where things happened."""
    out = []
    for r in coarse_locations(reports, ids):
        finest = r["location_precision"].get("finest_res")
        if finest is not None and res > int(finest):
            grid = r["location_precision"].get("grid_m")
            apart = f" (its points lie about {float(grid):,.0f} m apart)" if grid else ""
            out.append(
                f"{r.get('title') or r['id']} is drawn at resolution {res}, but its locations support "
                f"resolution {int(finest)} at the finest{apart}: its hexes here show where its "
                "locations were rounded to, not where things happened."
            )
    return out


def selected_ids(stamp, f: Filter) -> list[str]:
    """The ids of the datasets the filter selects."""
    return [str(i) for i in selected_datasets(stamp, f)["id"]]


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def ward_warnings(stamp, f: Filter) -> pd.DataFrame:
    """Wards and agencies whose latest whole month ran higher than expected (app.early_warning),
    for the filter's datasets; computed once per view and shared by every ward's profile."""
    from app import early_warning

    return early_warning.warnings(warehouse(stamp), f, kinds=("ward",))


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def demand_areas(stamp, f: Filter, res: int, k: int) -> pd.DataFrame | None:
    """The study area's areas of concentrated demand (``app.areas.areas_for``) that a ward
    profile names: Gi* of the selected demand records alone, so that patrols or visits never
    make an area "of demand"; whether interventions reach each comes from every selected
    dataset's own concentration. None when no demand dataset is selected."""
    from app import areas

    if not (selected_datasets(stamp, f)["kind"] == "demand").any():
        return None
    demand = f.with_(kinds=("demand",))
    return areas.areas_for(
        warehouse(stamp),
        demand,
        res,
        hotspot_cells(stamp, demand, res, k)[0],
        classes(stamp, f, res, k),
        emerging_cells(stamp, demand, res, k),
    )


def ward_profiles_shared(stamp, f: Filter, res: int, k: int) -> None:
    """Compute what every ward's profile under ``f`` shares (the briefing's city-wide inputs,
    the areas of demand, the early warnings, the headline table, the hotspot, class and trend
    tables), so that the first ward clicked reads only its own figures
    (``app.dashboard.warm``). The same calls, with the same arguments, as the ward page makes
    with its default comparison."""
    from app import profile

    selected = selected_datasets(stamp, f)
    briefing_inputs(stamp, f, True)
    demand_areas(stamp, f, res, k)
    ward_warnings(stamp, f)
    head_filter = f.with_(kinds=(profile.headline_kind(f.kinds, set(selected["kind"])),))
    wards(stamp, head_filter)
    coverage_note(stamp, head_filter)
    coverage_note(stamp, f)
    hotspot_cells(stamp, f, res, k)
    emerging_cells(stamp, f, res, k)
    ward_agencies(stamp, f, res, k)


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def briefing_inputs(stamp, f: Filter, own: bool) -> briefing.CityInputs:
    """The city-wide parts of every ward's briefing (ranking, each dataset's windows and every
    ward's counts in them, the city's categories), read once per view and shared by every
    ward's profile: a ward click then reads only that ward's categories."""
    return briefing.city_briefing_inputs(warehouse(stamp), f, own_windows=own)


# The map's layers. These live here, not in the page's script: the script runs again on every
# rerun, and a cached function defined in it is set up again each time (Streamlit reads its
# source to key its cache).


# A resource, not data: Streamlit would pickle the parsed outlines (nested lists) on every miss
# and unpickle a copy on every hit. Nothing changes them once made.
@st.cache_resource(ttl=600, max_entries=16, show_spinner=False)
def simplified_shapes(stamp, zoom: int, lat: float) -> pd.DataFrame:
    """Ward shapes with as much detail as the zoom shows (layers.view.simplify_for_zoom), each
    outline also parsed (``geometry``), once, for the layers that draw it."""
    shapes = layer_view.simplify_for_zoom(ward_shapes(stamp), zoom, lat)
    return shapes.assign(geometry=[json.loads(g) for g in shapes["geojson"]])


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def compared(stamp, f: Filter):
    """The windows a change compares (``filters.comparison``): they depend on the datasets and
    the period alone, so callers pass ``scope(f)``."""
    return comparison(warehouse(stamp), f)


def hex_change(stamp, f: Filter, res: int) -> pd.DataFrame:
    """Per cell, the change over the windows the ward change compares."""
    compare = compared(stamp, scope(f))
    if compare.current is None or compare.previous is None:
        return hex_change_frame(hexes(stamp, f, res), None, compare.sentence)
    (a, b), (c, d) = compare.current, compare.previous
    now = hexes(stamp, f.with_(start=a, end=b), res)
    before = hexes(stamp, f.with_(start=c, end=d), res)
    return hex_change_frame(now, before, compare.sentence)


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def higher_than_expected(stamp, f: Filter) -> pd.DataFrame:
    """Wards and hotspot areas whose latest whole month ran above its forecast's interval."""
    from app import early_warning

    con = warehouse(stamp)
    return early_warning.map_frame(con, early_warning.warnings(con, f))


# What each kind of layer is computed from (``layers.LayerSpec.needs``).
MAP_NEEDS = (
    "wards",
    "hexes",
    "hotspots",
    "emerging",
    "classes",
    "intervention_hexes",
    "ward_shapes",
    "hex_change",
    "early_warning",
)


def map_layer(
    stamp, f: Filter, name: str, res: int, k: int, metric: str, zoom: int, lat: float
) -> layers.Built:
    """One map layer, built once for what it depends on: the ward outlines once for a zoom
    whatever the filter, the ward choropleth once per filter, figure and zoom, a layer of
    cells once per filter and resolution. Toggling, moving or fading another layer, picking a
    cell, or changing the filter under the outlines, rebuilds nothing that did not change."""
    needs = layers.REGISTRY[name].needs
    if needs == "ward_shapes":
        return _built_layer(stamp, None, name, 0, 0, "", zoom, lat)
    if needs == "wards":
        return _built_layer(stamp, f, name, 0, 0, metric, zoom, lat)
    return _built_layer(stamp, f, name, res, k, "", 0, 0.0)


# A resource, not data: a built layer's GeoJSON as nested lists would be pickled on every miss
# and unpickled on every rerun, which cost more than drawing the page. Built layers are never
# changed once built: the page draws shallow copies. The key holds the filter, and with it the
# viewer (``Filter.access``); the outlines, the same for every viewer, have none. Held as Python
# objects, a layer of 50,000 cells takes some 21 MB: hence fewer entries than the data caches.
@st.cache_resource(ttl=600, max_entries=48, show_spinner=False)
def _built_layer(
    stamp, f: Filter | None, name: str, res: int, k: int, metric: str, zoom: int, lat: float
) -> layers.Built:
    built = _build_layer(stamp, f, name, res, k, metric, zoom, lat)
    for layer in built.layers:
        layer_view.freeze(layer)  # written to JSON once, however many runs draw it
    return built


def _build_layer(
    stamp, f: Filter | None, name: str, res: int, k: int, metric: str, zoom: int, lat: float
) -> layers.Built:
    spec = layers.REGISTRY[name]
    if spec.needs == "ward_shapes":
        return layers.build(name, simplified_shapes(stamp, zoom, lat))
    if spec.needs == "wards":
        shapes = simplified_shapes(stamp, zoom, lat)[["ward_code", "geojson", "geometry"]]
        return layers.build(name, ward_figures(stamp, f).merge(shapes, on="ward_code"), metric=metric)
    needs = {
        "hexes": lambda: hexes(stamp, f, res),
        "hotspots": lambda: named_hotspot_cells(stamp, f, res, k),
        "emerging": lambda: emerging_cells(stamp, f, res, k),
        "classes": lambda: classes(stamp, f, res, k),
        "intervention_hexes": lambda: hexes(stamp, f.with_(kinds=("intervention",)), res),
        "hex_change": lambda: hex_change(stamp, f, res),
        "early_warning": lambda: higher_than_expected(stamp, f),
    }
    # A layer whose figures the page does not compute brings its own loader (``load=`` when
    # registered): it is called with the warehouse, the filter and the resolution.
    if spec.needs in needs:
        return layers.build(name, needs[spec.needs]())
    return layers.build(name, spec.options["load"](warehouse(stamp), f, res))
