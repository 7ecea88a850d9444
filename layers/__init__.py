"""Map layers: pure builders from an aggregate (a DataFrame) to pydeck layers and a legend.

Each builder is registered by name with the inputs it needs, so the map page offers exactly the
layers the registry holds, and tests can build every layer without Streamlit. pydeck draws no
legends, so every builder returns its own, and a tooltip template naming its figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pydeck as pdk


@dataclass
class LegendItem:
    label: str
    color: tuple[int, int, int]


@dataclass
class Built:
    layers: list[pdk.Layer]
    legend: list[LegendItem]
    title: str
    tooltip: str  # text with {field} placeholders, as pydeck's tooltip expects
    note: str = ""
    # Layer id -> the id of another map layer that draws the same thing, making this one needless.
    drawn_by: dict[str, str] = field(default_factory=dict)


@dataclass
class LayerSpec:
    name: str
    title: str
    needs: str  # which aggregate the page must compute: "wards", "hexes", "hotspots", ...
    build: Callable[..., Built]
    options: dict = field(default_factory=dict)


REGISTRY: dict[str, LayerSpec] = {}


def register(
    name: str, title: str, needs: str, **options
) -> Callable[[Callable[..., Built]], Callable[..., Built]]:
    def wrap(fn: Callable[..., Built]) -> Callable[..., Built]:
        REGISTRY[name] = LayerSpec(name, title, needs, fn, options)
        return fn

    return wrap


def build(name: str, frame: pd.DataFrame, **kwargs) -> Built:
    if name not in REGISTRY:
        raise KeyError(f"no layer named '{name}'; known: {', '.join(REGISTRY)}")
    return REGISTRY[name].build(frame, **kwargs)


def stack(built: list[Built]) -> list[pdk.Layer]:
    """The pydeck layers of the chosen map layers, in order, leaving out any that another chosen
    layer already draws: with the outlines layer on, the ward choropleth's own boundary lines
    would draw, and send to the browser, every ward's outline a second time."""
    ids = {layer.id for b in built for layer in b.layers}
    return [layer for b in built for layer in b.layers if b.drawn_by.get(layer.id) not in ids]


# Importing the builders registers them.
from layers import builders, early_warning  # noqa: E402,F401
