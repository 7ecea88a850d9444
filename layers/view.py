"""Where the map opens: the study area fitted to the map's size, in Web Mercator."""

from __future__ import annotations

import math

import pydeck as pdk

WORLD_PX = 512  # deck.gl's world width in pixels at zoom 0
MAP_PX = (660, 620)  # the map's width (three quarters of a wide page) and height, in pixels


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
