"""The map element: a pydeck deck drawn by deck.gl in the page, reporting back both what was
clicked and where the map has been moved to.

``st.pydeck_chart`` reports clicks only, never the view: a map panned or zoomed by hand could
not be kept in the URL, so a copied link or a visit to another page lost it. This element draws
the same deck JSON with the deck.gl that pydeck itself ships (its Jupyter bundle, served by this
app's server, so nothing but the base map's tiles comes from the internet) and sets two state
values: ``view`` once the map has been still for a moment, and ``pick`` on a click."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydeck
import streamlit as st
import streamlit.components.v1 as components_v1

# pydeck's bundled deck.gl (with its JSON converter and tooltips), served as a static file: the
# folder is declared as a (never drawn) component so that Streamlit's server hands out its files.
_BUNDLE_DIR = Path(pydeck.__file__).parent / "nbextension" / "static"
_ASSETS = components_v1.declare_component("deck_gl_bundle", path=str(_BUNDLE_DIR))
BUNDLE_URL = f"component/{_ASSETS.name}/index.js"
_JS = (Path(__file__).with_name("deck_map.js")).read_text(encoding="utf-8")
_CSS = """
.deck-map { position: relative; width: 100%; overflow: hidden; }
.deck-map-zoom { position: absolute; top: 10px; right: 10px; z-index: 2; display: flex;
  flex-direction: column; border-radius: 4px; box-shadow: 0 0 0 1px rgba(0, 0, 0, 0.15); }
.deck-map-zoom button { width: 29px; height: 29px; border: 0; background: #fff; cursor: pointer;
  font: 600 18px/1 sans-serif; color: #333; }
.deck-map-zoom button + button { border-top: 1px solid #ddd; }
.deck-map-zoom button:hover { background: #f2f2f2; }
.mapboxgl-ctrl-bottom-right { position: absolute; right: 0; bottom: 0; z-index: 2; }
.mapboxgl-ctrl-attrib { font: 11px sans-serif; background: rgba(255, 255, 255, 0.7); padding: 0 4px; }
.mapboxgl-ctrl-logo, .mapboxgl-ctrl-attrib-button, .mapboxgl-ctrl-attrib:not(:has(a)) { display: none; }
"""
_MAP = st.components.v2.component("common_ground.deck_map", js=_JS, css=_CSS)


@dataclass(frozen=True)
class MapEvent:
    """What the map reported: the view it shows once moved by hand (latitude, longitude, zoom),
    and the last object clicked (its layer's id and its fields), or None for each."""

    view: dict[str, float] | None
    pick: dict[str, Any] | None


def deck_map(
    deck: pydeck.Deck,
    *,
    key: str,
    height: int,
    tooltip: dict | None = None,
    limits: dict[str, float] | None = None,
) -> MapEvent:
    """Draw ``deck`` and return what the map reported on its last interaction. Each report
    reruns the page, as a widget does. ``limits`` (``layers.view.view_limits``) hold a view
    moved by hand near the study area."""
    data = {"spec": deck.to_json(), "tooltip": tooltip or False, "height": height, "bundle": BUNDLE_URL}
    result = _MAP(
        key=key,
        data={**data, "limits": limits},
        default={"view": None, "pick": None},
        on_view_change=_noop,
        on_pick_change=_noop,
        height=height,
    )
    return MapEvent(view=_view(result.get("view")), pick=_pick(result.get("pick")))


def moved_view(key: str) -> dict[str, float] | None:
    """The view the map under ``key`` was moved to by hand, if it has been moved since this was
    last asked (then once only): the page keeps it, and may later replace it (a search, "whole
    area") without the map's unchanged report bringing it back."""
    state = st.session_state.get(key)
    report = state.get("view") if isinstance(state, Mapping) else None
    view = _view(report)
    seen = f"{key}__seen"
    if view is None or st.session_state.get(seen) == report:
        return None
    st.session_state[seen] = report
    return view


def forget_moves(key: str) -> None:
    """Take the map's last report as seen, for a callback that sets the view itself ("whole
    area", a place found): a move by hand reported just before, in the same run, must not
    undo it."""
    state = st.session_state.get(key)
    if isinstance(state, Mapping):
        st.session_state[f"{key}__seen"] = state.get("view")


def _noop() -> None:
    """A state value is only kept for the keys that have a callback."""


def _view(value: Any) -> dict[str, float] | None:
    """The reported view, if it is one: three finite numbers (the browser is not trusted)."""
    if not isinstance(value, dict):
        return None
    try:
        view = {k: float(value[k]) for k in ("latitude", "longitude", "zoom")}
    except (KeyError, TypeError, ValueError):
        return None
    return view if all(abs(v) < 1e3 for v in view.values()) else None


def _pick(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not isinstance(value.get("layer"), str):
        return None
    fields = value.get("object")
    return {"layer": value["layer"], "object": fields if isinstance(fields, dict) else {}}
