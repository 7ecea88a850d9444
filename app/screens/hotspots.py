"""Hotspots and overlap (service managers): ranked current hotspots with the agencies involved
and their intervention status, and the dataset-by-dataset co-location matrix."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from app import hotspots, ui, views

view = ui.sidebar()
version = ui.db_version()
f = view.filter
st.title("Hotspots and overlap")

spots, warning = views.hotspot_cells(version, f, view.res, view.k)
table = hotspots.ranked_hotspots(
    spots, views.classes(version, f, view.res, view.k), views.emerging_cells(version, f, view.res, view.k)
)
st.subheader(f"Current hotspots ({len(table)})")
for note in (warning, views.coverage_note(version, f)):
    if note:
        st.warning(note)
ui.hotspot_table(table, key="hotspot_table")
st.download_button(
    "Download hotspots (CSV)", table.to_csv(index=False), "hotspots.csv", "text/csv", key="hotspots_csv"
)

st.subheader("Which datasets' hotspots coincide")
matrix = views.colocation(version, f, view.res, view.k)
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
ui.provenance(ui.warehouse(), view, ["hotspots", "co-location"])
