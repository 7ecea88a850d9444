"""Map page: a pydeck map with a layer panel (visibility, drawing order, opacity, a legend for
each drawn layer), a place search, and the detail of a picked cell beside the map.

The map's view and panel live in the URL (``layers``, ``order``, ``opacity``, ``metric``,
``lat``, ``lon``, ``zoom``) and in the session, so a copied link opens the same map and a visit
to another page comes back to it. A view moved by hand is reported by the map
(``app.dashboard.deck_map``) and kept the same way. What the map sends is kept small (ward shapes simplified
for the zoom, JSON without padding), and each layer is built, and written to JSON, once for
what it depends on (``cached.map_layer``): a filter change recomputes the counts it changes and
nothing else."""

from __future__ import annotations

import copy

import pydeck as pdk
import shapely
import streamlit as st

import layers
from app import access, places, quality
from app.dashboard import access_ui, cached, ui, warm
from app.dashboard.deck_map import deck_map, forget_moves, moved_view
from app.dashboard.map_links import view_params
from app.dashboard.ui import plain
from app.h3cells import is_cell_at
from layers.view import (
    PANEL_PARAMS,
    CompactDeck,
    Panel,
    fit_view,
    linked_view,
    panel_params,
    parse_panel,
    view_limits,
)

METRICS = {
    "count": "Records",
    "rate_per_1000": "Rate per 1,000 residents",
    "change_pct": "Change on the previous period",
}
VIEW_PARAMS = ("lat", "lon", "zoom", "area")  # area: the name of what a link centres on
MAP_PARAMS = (*PANEL_PARAMS, "metric", *VIEW_PARAMS)
AREA_NAME_MAX = 120
SAVED = "map_saved"  # the map's last URL parameters, for coming back from another page
MAP_KEY = "map"
PLACE = "map_place"  # the place last found, drawn as a marker
PLACE_ZOOM = 13  # a place or postcode found: its streets and the neighbourhood around them
HEX_LAYERS = ("density", "hotspots", "emerging", "overlap", "interventions", "change")
# Layers whose fill covers the whole study area (or all of its cells with records): drawn above
# another layer without transparency, they hide it.
COVERING = ("wards", "density", "change")
# The layers of a role without hotspot layers (councillors): released counts and their change.
# The hotspot, emerging, overlap, intervention and early-warning layers are not in its panel.
PLAIN_LAYERS = ("wards", "density", "change", "outlines")
TOOLTIP = {
    "text": "{tip}",
    "style": {"backgroundColor": "white", "color": "black", "fontSize": "12px", "whiteSpace": "pre-line"},
}


def drawable(name: str) -> bool:
    spec = layers.REGISTRY[name]
    return spec.needs in cached.MAP_NEEDS or callable(spec.options.get("load"))


def own_opacity(name: str) -> int:
    """A layer's opacity as its builder set it, in per cent (deck.gl's default is opaque)."""
    return {"density": 75, "hotspots": 80, "emerging": 80, "overlap": 80, "change": 80}.get(name, 100)


def move(name: str, step: int) -> None:
    """Move a layer up (-1) or down (1) the drawing order, in the URL the page reads."""
    panel = parse_panel(st.query_params.to_dict(), names)
    st.query_params["order"] = ",".join(panel.moved(name, step))


def found_view(hit: dict) -> tuple[float, float, float]:
    """Where the map goes for a place found by the search: a ward fitted whole to the map, with
    its neighbours at the edges; a place or postcode at street level with its neighbourhood
    around it (``PLACE_ZOOM``; the search's own zoom, made for a web map's 256-pixel tiles, is
    a step deeper on this map, whose world is 512 pixels wide at zoom 0)."""
    if hit.get("kind") == "ward" and hit.get("ward_code"):
        shapes = cached.ward_shapes(ui.db_version())
        outline = shapes.loc[shapes["ward_code"] == hit["ward_code"], "geojson"]
        if len(outline):
            fitted = fit_view(shapely.from_geojson(outline.iloc[0]).bounds)
            return fitted.latitude, fitted.longitude, fitted.zoom
    return hit["lat"], hit["lon"], min(float(hit["zoom"]) - 1, PLACE_ZOOM)


def set_params(changes: dict[str, str | None]) -> None:
    """Change the URL's parameters at once (None removes one): each change sent on its own
    would be a step of the browser's history, and Back would stop at views made of one new
    and two old coordinates."""
    now = st.query_params.to_dict()
    wanted = {k: v for k, v in {**now, **changes}.items() if v is not None}
    if wanted != now:
        st.query_params.from_dict(wanted)


def go_to(hit: dict) -> None:
    """Centre the map on a place found by the search (the URL holds the view); the map no
    longer centres on the area a link named."""
    lat, lon, zoom = found_view(hit)
    set_params({**view_params(lat, lon, zoom), "area": None})
    forget_moves(MAP_KEY)
    st.session_state[PLACE] = {**hit, "centred": True}


def chosen_place() -> None:
    index = st.session_state.get("map_search_pick")
    hits = st.session_state.get("map_search_hits") or []
    if index is not None and index < len(hits):
        go_to(hits[index])


def whole_area() -> None:
    set_params(dict.fromkeys(VIEW_PARAMS))
    forget_moves(MAP_KEY)
    st.session_state.pop(PLACE, None)


def hides(panel: Panel, opacity: dict[str, int]) -> list[str]:
    """Sentences for drawn layers that cover another drawn layer below them."""
    notes = []
    drawn = [n for n in panel.order if n in panel.visible]
    for i, name in enumerate(drawn):
        if name not in COVERING or opacity[name] < 60:
            continue
        # The wards cover everything below them; a cell layer covers only other cells.
        under = [n for n in drawn[i + 1 :] if n != "outlines" and (name == "wards" or n in HEX_LAYERS)]
        below = [layers.REGISTRY[n].title for n in under]
        if below:
            notes.append(
                f"{layers.REGISTRY[name].title} is drawn above {', '.join(below)} and hides "
                "it: move it down or make it more transparent."
            )
    return notes


ctx = access_ui.require("map")
view = ui.current_view()
con = ui.warehouse()
version = ui.db_version()
f = view.filter
# A layer the role may not see is not in the panel: a link naming it reads as naming no layer.
names = [n for n in layers.REGISTRY if n in PLAIN_LAYERS or access.may(ctx, "hotspot_layers")]
bounds = quality.study_area(con)["bounds"]

# Back from another page, the URL has lost the map's parameters: the session still has them.
params = st.query_params.to_dict()
if not any(k in params for k in ("layers", *VIEW_PARAMS)) and SAVED in st.session_state:
    params = {**st.session_state[SAVED], **params}
# A view moved by hand replaces the one the URL held (and the area a link centred on), once per
# move; a view the map reports far off the study area is not kept.
moved = moved_view(MAP_KEY)
if moved:
    asked = view_params(moved["latitude"], moved["longitude"], moved["zoom"])
    if linked_view(asked, bounds):
        params = {k: v for k, v in params.items() if k != "area"} | asked
        if st.session_state.get(PLACE):
            st.session_state[PLACE] = {**st.session_state[PLACE], "centred": False}
ignored: list[str] = []
panel = parse_panel(params, names, ignored)
linked = linked_view(params, bounds, ignored)
# A hotspot's "show on map" names the area it centres on; a link's text is shown only as plain,
# short text, and only with a valid view.
area_name = " ".join(str(params.get("area", "")).split())[:AREA_NAME_MAX] if linked else ""
if params.get("metric", "count") not in METRICS:
    ignored.append(f"ward figure {params['metric']}")
if ignored:
    st.warning(f"Left out of this link, as the map has no such {plain('; '.join(ignored))}.")

st.title("Map")
map_col, side = st.columns([3, 1.35], gap="medium")
with map_col:
    find, found = st.columns([2, 3], vertical_alignment="bottom")
    text = find.text_input(
        "Find a place", key="map_search", placeholder="Ward, place or postcode", help="Centres the map on it."
    )
    hits: list[dict] = []
    if text.strip():
        try:
            hits = places.search(con, text)
        except Exception:  # a search must never break the map: say so in one sentence
            found.warning("The search could not be run; the map is unchanged.")
        st.session_state["map_search_hits"] = hits
        if hits:
            found.selectbox(
                "Places found",
                range(len(hits)),
                index=None,
                key="map_search_pick",
                format_func=lambda i: (
                    f"{hits[i]['name']} ({hits[i]['kind']}"
                    + (
                        f", {hits[i]['ward_name']})"
                        if hits[i].get("ward_name") and hits[i]["kind"] != "ward"
                        else ")"
                    )
                ),
                placeholder=f"{len(hits)} found: choose one to centre the map",
                on_change=chosen_place,
            )
        elif text.strip() and len(text.strip()) >= 2:
            found.caption(f"No ward, place or postcode matches {plain(text.strip())}.")
    place = st.session_state.get(PLACE)
    if place and linked:
        go, profile, reset = st.columns([3, 2, 2], vertical_alignment="center")
        said = "Centred on {}." if place.get("centred") else "{} is marked on the map."
        go.caption(plain(said.format(place["name"])))
        if place.get("ward_code") and profile.button("Open ward profile", key="map_open_ward"):
            carried = {k: v for k, v in st.query_params.to_dict().items() if k not in MAP_PARAMS}
            st.switch_page("screens/ward.py", query_params={**carried, "ward": place["ward_code"]})
        reset.button("Whole area", key="map_whole_area", on_click=whole_area)
    elif linked:
        if area_name:
            st.caption(f"Centred on {plain(area_name)}.")
        st.button("Show the whole area", key="map_whole_area", on_click=whole_area)

with side:
    detail = st.container()  # a picked cell's detail, filled once the map has reported the pick
    st.subheader("Layers")
    st.caption("Top of the list is drawn on top.")
    visible, opacity, slots = [], {}, {}
    # Which layers are drawn after this run's clicks (a checkbox holds its new value already).
    shown = [n for n in panel.order if st.session_state.get(f"lp_on_{n}", n in panel.visible) and drawable(n)]
    for name in panel.order:
        spec = layers.REGISTRY[name]
        with st.container(key=f"lp_{name}"):
            on = st.checkbox(
                spec.title,
                value=name in panel.visible and drawable(name),
                key=f"lp_on_{name}",
                disabled=not drawable(name),
                help=None if drawable(name) else "This layer cannot be drawn on this map.",
            )
            if not on or not drawable(name):
                opacity[name] = panel.opacity.get(name, own_opacity(name))
                continue
            visible.append(name)
            # On a row of their own, wide enough to read and to hit: beside the layer's name,
            # in the panel's narrow column, they were a sliver each.
            up, down = st.columns(2, gap="small")
            up.button(
                "↑ Higher",
                key=f"lp_up_{name}",
                on_click=move,
                args=(name, -1),
                disabled=not shown or name == shown[0],
                help="Draw this layer above the next drawn layer",
                width="stretch",
            )
            down.button(
                "↓ Lower",
                key=f"lp_down_{name}",
                on_click=move,
                args=(name, 1),
                disabled=not shown or name == shown[-1],
                help="Draw this layer below the next drawn layer",
                width="stretch",
            )
            opacity[name] = st.slider(
                f"Opacity of {spec.title}",
                0,
                100,
                panel.opacity.get(name, own_opacity(name)),
                step=5,
                format="%d %%",
                key=f"lp_op_{name}",
                label_visibility="collapsed",
            )
            slots[name] = st.container()

panel = Panel(
    order=panel.order,
    visible=visible,
    opacity={n: v for n, v in opacity.items() if v != own_opacity(n)},
)
metric = params.get("metric", "count")
metric = metric if metric in METRICS else "count"
if "wards" in panel.visible:  # the figure only colours the ward layer: asked only when it is drawn
    with slots["wards"]:
        # A rate needs populations: a boundary file without them would paint every ward 0.
        with_population = bool(cached.ward_figures(version, f)["population"].gt(0).any())
        metrics = {m: t for m, t in METRICS.items() if m != "rate_per_1000" or with_population}
        if metric not in metrics:
            st.caption("Rate per 1,000 residents is not offered: the ward boundaries carry no populations.")
        index = list(metrics).index(metric) if metric in metrics else 0
        metric = st.radio("Ward figure", list(metrics), index, format_func=metrics.get, key="map_metric")

fitted = fit_view(bounds)
start = linked or fitted
zoom_key = round(max(start.zoom, fitted.zoom))  # shapes are never coarser than the whole view
# Only cells have a resolution: without a cell layer, counting cells would only cost time.
with_cells = any(layers.REGISTRY[n].needs not in ("wards", "ward_shapes") for n in panel.visible)
res, res_note = cached.map_res(version, f, view.res) if with_cells else (view.res, "")
built: dict[str, layers.Built] = {}
with st.spinner("Drawing"):
    for name in panel.drawn_bottom_first():
        built[name] = cached.map_layer(
            version, f, name, res, view.k, metric, zoom_key, round(fitted.latitude, 3)
        )
stacked = []
for layer in layers.stack(list(built.values())):
    owner = next(n for n, b in built.items() if any(x is layer for x in b.layers))
    drawn = copy.copy(layer)  # the cached layer is shared by every session: its copy is faded
    drawn.opacity = opacity[owner] / 100
    stacked.append(drawn)
place = st.session_state.get(PLACE)
if place and linked:
    stacked.append(
        pdk.Layer(
            "ScatterplotLayer",
            [{"lng": place["lon"], "lat": place["lat"]}],
            id="place",
            get_position=["lng", "lat"],
            get_radius=7,
            radius_units=pdk.types.String("pixels"),
            get_fill_color=[255, 255, 255, 255],
            get_line_color=[0, 0, 0, 255],
            line_width_min_pixels=3,
            stroked=True,
            pickable=False,
        )
    )
deck = CompactDeck(layers=stacked, initial_view_state=start, map_provider="carto", map_style="light")
with map_col:
    event = deck_map(deck, key=MAP_KEY, height=620, tooltip=TOOLTIP, limits=view_limits(bounds))

with side:
    for name, b in built.items():
        with slots[name]:
            ui.legend(b.title, b.legend)
            if b.note:
                st.caption(plain(b.note))
    for b in built.values():
        for by in b.drawn_by.values():
            if by in built:
                st.caption(
                    plain(
                        f"{b.title}: its boundary lines are left to {layers.REGISTRY[by].title}, "
                        "which draws them once for both."
                    )
                )
    for sentence in hides(panel, opacity):
        st.info(plain(sentence))
    if res_note:
        st.info(
            f"Drawn at resolution {res}, not {view.res}: {view.res} would draw over {ui.MAX_HEXES:,} hexes."
        )
    warning = cached.hotspot_cells(version, f, res, view.k)[1] if "hotspots" in built else None
    coverage = cached.coverage_note(version, f)  # any layer can combine datasets of different spans
    reports = quality.load_report(con, f.access) if with_cells else []  # only cells can be drawn too fine
    coarse = cached.precision_warnings(reports, cached.selected_ids(version, f), res) if reports else []
    for message in (warning, coverage, *coarse):
        if message:
            st.warning(plain(message))

# The URL and the session keep the map as it is now drawn.
wanted = panel_params(panel, names) | {"metric": metric}
if linked:
    wanted |= view_params(linked.latitude, linked.longitude, linked.zoom)
    if area_name:
        wanted["area"] = area_name
set_params({key: wanted.get(key) for key in MAP_PARAMS})
st.session_state[SAVED] = wanted

ui.provenance(con, view, [layers.REGISTRY[n].title for n in reversed(list(built))], res_note, res=res)

# A click on a layer no longer drawn is forgotten, as is a click beside every shape.
pick = event.pick if event.pick and event.pick["layer"] in built else None
ward_pick = pick["object"] if pick and pick["layer"] == "wards" and pick["object"].get("ward_code") else None
hex_pick = (
    pick["object"]
    if pick and pick["layer"] in HEX_LAYERS and is_cell_at(pick["object"].get("h3_cell"), res)
    else None
)
if ward_pick:
    # The profile opens with the same filter, so carry the filter along with the ward.
    code = ward_pick["ward_code"]
    carried = {k: v for k, v in st.query_params.to_dict().items() if k not in MAP_PARAMS}
    st.switch_page("screens/ward.py", query_params={**carried, "ward": code})
if hex_pick:
    from app.dashboard.cell_detail import cell_detail

    with detail:
        cell_detail(version, f, hex_pick["h3_cell"], res, view.k)

# A ward clicked next finds what every ward's profile shares ready (``app.dashboard.warm``).
warm.ward_profiles(version, f, view.res, view.k)
