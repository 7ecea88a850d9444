"""Links that open the map on one place of a table's row: a hotspot area, a hexagon or a ward.

Every page's table of places offers "show on map" the same way, so a link copied from any of
them opens the map as the hotspots page's does: under the shared filter of the page it came
from (the filter's own URL parameters are carried over), centred and zoomed on the place, with
its name shown as what the map is centred on, and with a layer the viewer's role may see (a
layer it may not see would open the map with nothing drawn). Only the view is worked out here;
the places and their figures come from the engine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

import h3
import shapely
import streamlit as st

from app import access
from app.access import AccessContext
from app.dashboard.ui import FILTER_PARAMS
from app.places import zoom_for_bounds

MAP_LAYERS = "hotspots,outlines"  # the hotspot layer, with the ward outlines to read it by
# For a role without hotspot layers (councillors): the records' density under the same outlines.
PLAIN_MAP_LAYERS = "density,outlines"
# A ward is read by its figure: the ward choropleth, whose boundary lines the outlines draw.
WARD_MAP_LAYERS = "wards,outlines"
# As wide as a link ever opens (``app.areas`` uses the same floor for an area's zoom): further out,
# the place the row names is lost among the study area's other wards.
MIN_ZOOM = 11
LINK_HEADER = "Show on map"


def view_params(lat: float, lon: float, zoom: float) -> dict[str, str]:
    """A view as the map's URL holds it: a centre to about a metre, a zoom as short as it can
    be. Links, the place search and a view moved by hand all write it so."""
    return {"lat": f"{lat:.5f}", "lon": f"{lon:.5f}", "zoom": f"{zoom:g}"}


def area_layers(ctx: AccessContext) -> str:
    """The layers a link to a hotspot area or a hexagon turns on: the hotspot layer where the
    viewer's role may see hotspot layers, otherwise the records' density (the map leaves a
    layer the role may not see out of its panel)."""
    return MAP_LAYERS if access.may(ctx, "hotspot_layers") else PLAIN_MAP_LAYERS


def map_params(row: Mapping, filter_params: dict, map_layers: str = MAP_LAYERS) -> dict:
    """The map page's URL parameters that centre and zoom it on a place (``row``: its ``lat``,
    ``lon``, ``zoom`` and ``name``) with ``map_layers`` on, under the same filter (the filter's
    own parameters are carried over). The name goes as ``area``: the map says what it is
    centred on."""
    return {
        **filter_params,
        **view_params(row["lat"], row["lon"], int(row["zoom"])),
        "area": str(row["name"]),
        "layers": map_layers,
    }


def map_link(row: Mapping, filter_params: dict, map_layers: str = MAP_LAYERS) -> str:
    """A link to the map (the app's root page) on a place: it opens in a new tab, and can be
    copied and sent."""
    return "./?" + urlencode(map_params(row, filter_params, map_layers), doseq=True)


def current_filter_params() -> dict:
    """The shared filter's parameters as the URL holds them now (a parameter given more than
    once stays a list), for a link to open the map under the same filter."""
    out: dict = {}
    for key in FILTER_PARAMS:
        values = st.query_params.get_all(key)
        if values:
            out[key] = values if len(values) > 1 else values[0]
    return out


def bounds_view(min_lat: float, min_lon: float, max_lat: float, max_lon: float) -> dict:
    """Where the map opens to show a box whole: its middle, at the zoom an area's link uses
    (``app.areas``): ``zoom_for_bounds`` fits a web map of 256-pixel tiles, and this map, whose
    world is 512 pixels wide at zoom 0, shows the same ground a step further out; never wider
    than ``MIN_ZOOM``."""
    return {
        "lat": (min_lat + max_lat) / 2,
        "lon": (min_lon + max_lon) / 2,
        "zoom": max(zoom_for_bounds(min_lat, min_lon, max_lat, max_lon) - 1, MIN_ZOOM),
    }


def cells_view(cells: Iterable[str]) -> dict | None:
    """The view that shows H3 cells (ids as strings) whole: one hexagon of resolution 8 opens
    at zoom 14, of 9 at 15, so its streets can be read. None without a cell."""
    corners = [point for cell in cells for point in h3.cell_to_boundary(str(cell))]
    if not corners:
        return None
    lats, lons = [p[0] for p in corners], [p[1] for p in corners]
    return bounds_view(min(lats), min(lons), max(lats), max(lons))


def shape_view(geojson: str | None) -> dict | None:
    """The view that shows a ward's outline (GeoJSON) whole; None without an outline."""
    if not geojson:
        return None
    shape = shapely.from_geojson(geojson)
    if shape.is_empty:
        return None
    min_lon, min_lat, max_lon, max_lat = shape.bounds
    return bounds_view(min_lat, min_lon, max_lat, max_lon)


def place_link(name: str, view: dict | None, filter_params: dict, map_layers: str) -> str | None:
    """A link to the map centred on ``view`` (``bounds_view``), naming the place ``name``;
    None (an empty cell in the table) when the place has no view to open on."""
    if view is None:
        return None
    return map_link({**view, "name": name}, filter_params, map_layers)


def link_column() -> dict:
    """The "Show on map" column as every table shows it: the same short words on each row,
    never the URL."""
    return st.column_config.LinkColumn(LINK_HEADER, display_text="show on map", width=110)
