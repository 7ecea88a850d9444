"""Hotspots and overlap (service managers): ranked current hotspots with the agencies involved
and their intervention status, and the dataset-by-dataset co-location matrix."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from app import hotspots, overlap, quality
from app.dashboard import cached, ui
from app.dashboard.ui import plain

view = ui.current_view()
version = ui.db_version()
con = ui.warehouse()
f = view.filter
st.title("Hotspots and overlap")

spots, warning = cached.hotspot_cells(version, f, view.res, view.k)
classes = cached.classes(version, f, view.res, view.k)
table = hotspots.ranked_hotspots(spots, classes, cached.emerging_cells(version, f, view.res, view.k))
st.subheader(f"Current hotspots ({len(table)})")
coarse = cached.precision_warnings(quality.load_report(con), cached.selected_ids(version, f), view.res)
for note in (warning, cached.coverage_note(version, f), *coarse):
    if note:
        st.warning(plain(note))
if considered := overlap.interventions_considered(classes):
    st.caption(plain(considered))
ui.hotspot_table(table, key="hotspot_table")
st.download_button(
    "Download hotspots (CSV)",
    overlap.hotspot_export(con, table, spots, classes).to_csv(index=False),
    "hotspots.csv",
    "text/csv",
    key="hotspots_csv",
)

st.subheader("Which datasets' hotspots coincide")
matrix = cached.colocation(version, f, view.res, view.k)
if len(matrix):
    grid = matrix.pivot(index="dataset_a", columns="dataset_b", values="jaccard")
    heat = px.imshow(
        grid,
        color_continuous_scale="Viridis",
        zmin=0,
        zmax=1,
        text_auto=".2f",
        labels={"color": "Jaccard of hotspots"},
    )
    st.plotly_chart(heat, width="stretch", key="colocation_heatmap")
    st.download_button(
        "Download co-location matrix (CSV)",
        matrix.to_csv(index=False),
        "colocation.csv",
        "text/csv",
        key="colocation_csv",
    )
ui.provenance(con, view, ["hotspots", "co-location"])
