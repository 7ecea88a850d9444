"""The dashboard's entry point: page set-up and navigation. Each page draws the shared sidebar
filter (app.ui.sidebar) and calls the engine; nothing here computes figures."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

st.set_page_config(page_title="Common Ground", page_icon=":material/hub:", layout="wide")

pages = [
    st.Page("screens/map.py", title="Map", icon=":material/map:", default=True, url_path="map"),
    st.Page("screens/ward.py", title="Ward profile", icon=":material/location_city:", url_path="ward"),
    st.Page(
        "screens/hotspots.py",
        title="Hotspots and overlap",
        icon=":material/local_fire_department:",
        url_path="hotspots",
    ),
    st.Page("screens/data.py", title="Data", icon=":material/table:", url_path="data"),
]
st.navigation(pages).run()
