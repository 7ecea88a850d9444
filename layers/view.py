"""Where the map opens and what it sends: the study area fitted to the map's size (Web
Mercator), ward shapes simplified to what that zoom can show, and the map's JSON without
the whitespace pydeck pads it with."""

from __future__ import annotations

import functools
import json
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pydeck as pdk
import shapely
from pydeck.bindings import deck as _pydeck_deck
from pydeck.bindings.json_tools import default_serialize

WORLD_PX = 512  # deck.gl's world width in pixels at zoom 0
MAP_PX = (660, 620)  # the map's width (three quarters of a wide page) and height, in pixels
EARTH_M = 2 * math.pi * 6_378_137  # the equator's length in Web Mercator metres
METRES_PER_DEGREE = 111_320.0
MAX_DECIMALS = 5  # about a metre: no map zoom the dashboard offers shows finer
ZOOMS = (1.0, 20.0)


def _mercator_y(lat: float) -> float:
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def fit_view(
    bounds: tuple[float, float, float, float], size: tuple[int, int] = MAP_PX, margin: float = 0.05
) -> pdk.ViewState:
    """A flat view centred on ``bounds`` (minx, miny, maxx, maxy, degrees) at the zoom that fits
    them in ``size`` pixels with ``margin`` to spare on every side: the whole study area at
    once, as large as it fits (pydeck's compute_view leaves a wide border and ignores the
    map's shape)."""
    minx, miny, maxx, maxy = bounds
    width_px = WORLD_PX * max(maxx - minx, 1e-9) / 360
    height_px = WORLD_PX * max(_mercator_y(maxy) - _mercator_y(miny), 1e-9) / (2 * math.pi)
    room = 1 - 2 * margin
    zoom = math.log2(min(size[0] * room / width_px, size[1] * room / height_px))
    centre_y = (_mercator_y(maxy) + _mercator_y(miny)) / 2
    latitude = math.degrees(2 * math.atan(math.exp(centre_y)) - math.pi / 2)
    return pdk.ViewState(
        latitude=latitude, longitude=(minx + maxx) / 2, zoom=round(min(zoom, 18.0), 2), pitch=0, bearing=0
    )


def view_limits(bounds: tuple[float, float, float, float]) -> dict[str, float]:
    """Where a map's centre may be (near the study area: within its own width and height again
    on every side) and how far it may zoom. A link's view is checked against them, and the map
    holds a view moved by hand within them, so that every view it reports can be linked to."""
    minx, miny, maxx, maxy = bounds
    dx, dy = maxx - minx, maxy - miny
    return {
        "west": minx - dx,
        "east": maxx + dx,
        "south": miny - dy,
        "north": maxy + dy,
        "min_zoom": ZOOMS[0],
        "max_zoom": ZOOMS[1],
    }


def linked_view(
    params: Mapping[str, str], bounds: tuple[float, float, float, float], ignored: list[str] | None = None
) -> pdk.ViewState | None:
    """The view a link asks for (``lat``, ``lon``, ``zoom``), or None when it asks for none.

    A centre must lie near the study area (within its own width again on every side) and a zoom
    between 1 and 20: a hand-edited or foreign link then opens on the study area, with the
    reason added to ``ignored``, instead of on an empty ocean."""
    asked = {k: params.get(k) for k in ("lat", "lon", "zoom")}
    if not any(asked.values()):
        return None
    if not (asked["lat"] and asked["lon"]):
        if ignored is not None:
            ignored.append("map view (lat and lon must be given together)")
        return None
    try:
        lat, lon = float(asked["lat"]), float(asked["lon"])
        zoom = float(asked["zoom"]) if asked["zoom"] else None
    except (TypeError, ValueError):
        lat = lon = math.nan
    if not all(map(math.isfinite, (lat, lon))):
        if ignored is not None:
            ignored.append("map view (lat, lon and zoom must be numbers)")
        return None
    limits = view_limits(bounds)
    if not (limits["west"] <= lon <= limits["east"] and limits["south"] <= lat <= limits["north"]):
        if ignored is not None:
            ignored.append(f"map centre {lat:g}, {lon:g} (outside the study area)")
        return None
    fitted = fit_view(bounds).zoom
    if zoom is None or not math.isfinite(zoom) or not ZOOMS[0] <= zoom <= ZOOMS[1]:
        if zoom is not None and ignored is not None:
            ignored.append(f"map zoom {asked['zoom']} (from {ZOOMS[0]:g} to {ZOOMS[1]:g})")
        zoom = fitted
    return pdk.ViewState(latitude=lat, longitude=lon, zoom=round(zoom, 2), pitch=0, bearing=0)


def metres_per_pixel(zoom: float, lat: float) -> float:
    """Ground metres one screen pixel covers at ``zoom`` and latitude ``lat`` (deck.gl's
    512-pixel world)."""
    return EARTH_M * math.cos(math.radians(lat)) / (WORLD_PX * 2**zoom)


def detail_for_zoom(zoom: float, lat: float) -> tuple[float, int]:
    """How much detail a ward outline needs at ``zoom``: the simplification tolerance in metres
    and the decimals of a coordinate. Both are set one zoom step deeper than the view, so that
    zooming in once still shows every corner within a pixel, and a coordinate's rounding
    (under half a tolerance) never shows."""
    tolerance = metres_per_pixel(zoom + 1, lat)
    degrees = tolerance / METRES_PER_DEGREE
    decimals = int(min(MAX_DECIMALS, max(1, math.ceil(-math.log10(degrees)))))
    return tolerance, decimals


def simplify_for_zoom(shapes: pd.DataFrame, zoom: float, lat: float) -> pd.DataFrame:
    """``shapes`` (ward_code, geojson, ...) with each outline simplified for ``zoom``, in metres
    of a local projection, and its coordinates cut to the decimals that zoom shows.

    The city's boundaries, in full detail on every rerun, were most of what the map sent. The
    wards are simplified together as a coverage (shapely's coverage_simplify), so a boundary
    two wards share stays one line, with no gap or overlap opening between them; a set of
    shapes that is not a clean coverage is simplified ward by ward, keeping each one's
    topology. No ward disappears: one that would is kept as it was."""
    if shapes.empty:
        return shapes
    tolerance, decimals = detail_for_zoom(zoom, lat)
    geoms = shapely.from_geojson(shapes["geojson"].tolist())
    lon0 = float(np.mean([g.centroid.x for g in geoms]))
    scale = np.array([METRES_PER_DEGREE * math.cos(math.radians(lat)), METRES_PER_DEGREE])
    local = shapely.transform(geoms, lambda xy: (xy - [lon0, lat]) * scale)
    try:
        valid = bool(shapely.coverage_is_valid(local))
    except shapely.errors.GEOSException:
        valid = False
    if valid:
        simple = shapely.coverage_simplify(local, tolerance)
    else:
        simple = shapely.simplify(local, tolerance, preserve_topology=True)
    back = shapely.transform(simple, lambda xy: np.round(xy / scale + [lon0, lat], decimals))
    out = shapes.copy()
    out["geojson"] = [
        _compact_geojson(b) if not b.is_empty and b.area > 0 else text
        for b, text in zip(back, shapes["geojson"], strict=True)
    ]
    return out


def _compact_geojson(geom: shapely.Geometry) -> str:
    """GeoJSON of ``geom`` with no padding and coordinates as already rounded."""
    return json.dumps(json.loads(shapely.to_geojson(geom)), separators=(",", ":"))


# The JSON of layer data that is never changed once built (``freeze``), by the data's id: the
# entry holds the data itself, so no other object can take its id while the entry lasts.
_FROZEN: OrderedDict[int, tuple[object, str | None]] = OrderedDict()
_FROZEN_MAX = 64  # a few maps of every session: each entry holds a layer's data and its text
_FROZEN_LOCK = threading.Lock()  # every session's thread draws maps


def freeze(layer: pdk.Layer) -> pdk.Layer:
    """Promise that ``layer``'s data will never change, so that ``CompactDeck`` writes its JSON
    once and reuses the text on every later run (a cached layer's outlines, say)."""
    data = layer.data
    with _FROZEN_LOCK:
        if data is not None and not isinstance(data, str) and id(data) not in _FROZEN:
            _FROZEN[id(data)] = (data, None)
            while len(_FROZEN) > _FROZEN_MAX:
                _FROZEN.popitem(last=False)
    return layer


def _frozen_json(data: object) -> str | None:
    """The JSON of frozen ``data``, written the first time it is asked for; None when the data
    is not frozen (or has left the cache), to be written as part of the deck."""
    with _FROZEN_LOCK:
        entry = _FROZEN.get(id(data))
        if entry is None or entry[0] is not data:
            return None
        _FROZEN.move_to_end(id(data))
    if entry[1] is None:
        text = json.dumps(data, sort_keys=True, default=default_serialize, separators=(",", ":"))
        with _FROZEN_LOCK:
            if id(data) in _FROZEN:
                _FROZEN[id(data)] = (data, text)
        return text
    return entry[1]


# pydeck asks, on every Deck it makes, whether its Jupyter widget can be imported (five failed
# imports a map, each a search of the file system); the answer does not change while the
# process runs, so it is worked out once.
if not hasattr(_pydeck_deck.has_jupyter_extra, "cache_info"):
    _pydeck_deck.has_jupyter_extra = functools.cache(_pydeck_deck.has_jupyter_extra)


class CompactDeck(pdk.Deck):
    """A pydeck Deck whose JSON has no indentation. pydeck writes every number of every
    coordinate on a line of its own, indented: the demo city's ward outlines came to 1.34 MB
    sent on every rerun, of which 0.3 MB was the outlines themselves.

    The data of a frozen layer (``freeze``) is written once and its text reused: the same
    options write the same text, inside the deck or on its own."""

    def to_json(self) -> str:
        token = uuid.uuid4().hex
        holes: dict[str, str] = {}

        def serialise(o):
            attrs = default_serialize(o)
            if isinstance(o, pdk.Layer) and isinstance(attrs, dict) and "data" in attrs:
                text = _frozen_json(attrs["data"])
                if text is not None:
                    hole = f"{token}-{len(holes)}"
                    holes[json.dumps(hole)] = text
                    attrs["data"] = hole
            return attrs

        text = json.dumps(self, sort_keys=True, default=serialise, separators=(",", ":"))
        for hole, data in holes.items():
            text = text.replace(hole, data, 1)
        return text


# The layer panel's state, as the map's URL holds it: which layers are drawn (``layers``), the
# drawing order of all of them, top first (``order``, only when not the default), and each
# opacity that differs from the layer's own, in per cent (``opacity=density:60,wards:40``).
PANEL_PARAMS = ("layers", "order", "opacity")
DEFAULT_VISIBLE = ("wards", "outlines")
ON_TOP = ("outlines", "interventions")  # lines and outlines above fills, whatever else is drawn


@dataclass
class Panel:
    """The layer panel: every layer top first, the drawn ones, and opacities changed from
    each layer's own (per cent)."""

    order: list[str]
    visible: list[str]
    opacity: dict[str, int] = field(default_factory=dict)

    def drawn_bottom_first(self) -> list[str]:
        """The drawn layers in the order deck.gl draws them: the bottom one first."""
        return [n for n in reversed(self.order) if n in self.visible]

    def moved(self, name: str, step: int) -> list[str]:
        """The order with ``name`` moved past the next drawn layer above it (``step`` -1) or
        below it (1): passing a layer that is not drawn would change nothing on the map."""
        order = list(self.order)
        drawn = [n for n in order if n in self.visible or n == name]
        k = drawn.index(name) + step
        if not 0 <= k < len(drawn):
            return order
        order.remove(name)
        j = order.index(drawn[k])
        order.insert(j if step < 0 else j + 1, name)
        return order


def default_order(names: list[str]) -> list[str]:
    """Top first: outlines, then the other layers newest registered first, the ward
    choropleth (which covers the whole area) at the bottom."""
    rest = [n for n in reversed(names) if n not in ON_TOP]
    return [n for n in ON_TOP if n in names] + rest


def parse_panel(params: Mapping[str, str], names: list[str], ignored: list[str] | None = None) -> Panel:
    """The panel a link asks for. Unknown layers and opacities that are not whole per cents
    from 0 to 100 are left out and named in ``ignored``; a link without ``layers`` draws the
    ward choropleth and outlines; an ``order`` that names some layers puts those first."""
    notes: list[str] = [] if ignored is None else ignored
    asked = params.get("layers")
    listed = [n for n in (asked if asked is not None else ",".join(DEFAULT_VISIBLE)).split(",") if n]
    visible = [n for n in listed if n in names]
    unknown = [n for n in listed if n not in names]
    base = default_order(names)
    ordered = [n for n in (params.get("order") or "").split(",") if n]
    unknown += [n for n in ordered if n not in names and n not in unknown]
    ordered = [n for n in dict.fromkeys(ordered) if n in names]
    order = ordered + [n for n in base if n not in ordered]
    opacity: dict[str, int] = {}
    for item in [i for i in (params.get("opacity") or "").split(",") if i]:
        name, _, value = item.partition(":")
        if name in names and value.isdigit() and 0 <= int(value) <= 100:
            opacity[name] = int(value)
        else:
            notes.append(f"layer opacity {item} (a layer and a whole per cent, 0 to 100)")
    if unknown:
        notes.append(f"layer {', '.join(unknown)}")
    return Panel(order=order, visible=[n for n in order if n in visible], opacity=opacity)


def panel_params(panel: Panel, names: list[str]) -> dict[str, str]:
    """The URL parameters that reopen ``panel``: ``layers`` always (empty when nothing is
    drawn), ``order`` and ``opacity`` only when they differ from the defaults."""
    out = {"layers": ",".join(panel.visible)}
    if panel.order != default_order(names):
        out["order"] = ",".join(panel.order)
    if panel.opacity:
        out["opacity"] = ",".join(f"{n}:{v}" for n, v in panel.opacity.items() if n in names)
    return out
