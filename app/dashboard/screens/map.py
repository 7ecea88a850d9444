"""Map page: layered pydeck map with a layer panel, legends, tooltips, picking and provenance."""

from __future__ import annotations

import pydeck as pdk
import streamlit as st

import layers
from app import quality
from app.dashboard import cached, ui
from app.dashboard.ui import plain
from layers.view import fit_view

view = ui.current_view()
con = ui.warehouse()
version = ui.db_version()
f = view.filter

st.title("Map")
METRICS = {
    "count": "Records",
    "rate_per_1000": "Rate per 1,000 residents",
    "change_pct": "Change on the previous period",
}
names = list(layers.REGISTRY)
asked = [n for n in (st.query_params.get("layers") or "wards,outlines").split(",") if n]
wanted = [n for n in asked if n in names]
unknown = [f"layer {n}" for n in asked if n not in names]
if st.query_params.get("metric", "count") not in METRICS:
    unknown.append(f"ward figure {st.query_params['metric']}")
if unknown:
    st.warning(f"Left out of this link, as the map has no such {ui.plain(' or '.join(unknown))}")
left, right = st.columns([3, 1])
with right:
    chosen = st.multiselect(
        "Layers", names, default=wanted, format_func=lambda n: layers.REGISTRY[n].title, key="map_layers"
    )
    metric = st.query_params.get("metric", "count")
    metric = metric if metric in METRICS else "count"
    if "wards" in chosen:  # the figure only colours the ward layer: asked only when it is drawn
        # A rate needs populations: a boundary file without them would paint every ward 0.
        with_population = bool(cached.wards(version, f)["population"].gt(0).any())
        metrics = {m: t for m, t in METRICS.items() if m != "rate_per_1000" or with_population}
        if metric not in metrics:
            st.caption("Rate per 1,000 residents is not offered: the ward boundaries carry no populations.")
        index = list(metrics).index(metric) if metric in metrics else 0
        metric = st.radio("Ward figure", list(metrics), index, format_func=metrics.get, key="map_metric")
st.query_params["layers"] = ",".join(chosen)
st.query_params["metric"] = metric

res, res_note = cached.map_res(version, f, view.res)
needs = {
    "wards": lambda: cached.wards(version, f),
    "hexes": lambda: cached.hexes(version, f, res),
    "hotspots": lambda: cached.hotspot_cells(version, f, res, view.k)[0],
    "emerging": lambda: cached.emerging_cells(version, f, res, view.k),
    "classes": lambda: cached.classes(version, f, res, view.k),
    "intervention_hexes": lambda: cached.hexes(version, f.with_(kinds=("intervention",)), res),
    "ward_shapes": lambda: cached.ward_shapes(version),
}
built = []
with st.spinner("Drawing"):
    for name in chosen:
        spec = layers.REGISTRY[name]
        kwargs = {"metric": metric} if name == "wards" else {}
        built.append(layers.build(name, needs[spec.needs](), **kwargs))

deck = pdk.Deck(
    layers=layers.stack(built),
    initial_view_state=fit_view(quality.study_area(con)["bounds"]),
    map_provider="carto",
    map_style="light",
    tooltip={
        "text": "{tip}",
        "style": {"backgroundColor": "white", "color": "black", "fontSize": "12px", "whiteSpace": "pre-line"},
    },
)
with left:
    event = st.pydeck_chart(deck, on_select="rerun", selection_mode="single-object", key="map", height=620)
with right:
    if res_note:
        st.info(
            f"Drawn at resolution {res}, not {view.res}: {view.res} would draw over {ui.MAX_HEXES:,} hexes."
        )
    for b in built:
        ui.legend(b.title, b.legend)
        if b.note:
            st.caption(plain(b.note))
    warning = cached.hotspot_cells(version, f, res, view.k)[1] if "hotspots" in chosen else None
    coverage = cached.coverage_note(version, f)  # any layer can combine datasets of different spans
    coarse = cached.precision_warnings(quality.load_report(con), cached.selected_ids(version, f), res)
    for message in (warning, coverage, *coarse):
        if message:
            st.warning(plain(message))

ui.provenance(con, view, [layers.REGISTRY[n].title for n in chosen], res_note, res=res)

picked = (event.selection or {}).get("objects", {}) if event else {}
ward_pick = next((o for lid in ("wards",) for o in picked.get(lid, [])), None)
hex_pick = next(
    (
        o
        for lid in ("density", "hotspots", "emerging", "overlap", "interventions")
        for o in picked.get(lid, [])
    ),
    None,
)
if ward_pick:
    # The profile opens with the same filter, so carry the whole URL along with the ward.
    code = ward_pick.get("properties", ward_pick).get("ward_code")
    carried = {k: v for k, v in st.query_params.to_dict().items() if k not in ("layers", "metric")}
    st.switch_page("pages/ward.py", query_params={**carried, "ward": code})
if hex_pick:
    cell = hex_pick["h3_cell"]
    st.subheader(f"Cell {cell}")
    from app.dashboard.cell_detail import cell_detail

    cell_detail(version, f, cell, res, view.k)
