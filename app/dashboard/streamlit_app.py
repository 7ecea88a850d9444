"""The dashboard's entry point: page set-up, navigation, and the shared sidebar filter, drawn
once here (as Streamlit's multipage apps prefer) so every page reads the same view through
``ui.current_view()``. Nothing here computes figures."""

from __future__ import annotations

import streamlit as st

from app.dashboard import ui

st.set_page_config(page_title="Common Ground", page_icon=":material/hub:", layout="wide")

pages = [
    st.Page("pages/map.py", title="Map", icon=":material/map:", default=True, url_path="map"),
    st.Page("pages/ward.py", title="Ward profile", icon=":material/location_city:", url_path="ward"),
    st.Page(
        "pages/hotspots.py",
        title="Hotspots and overlap",
        icon=":material/local_fire_department:",
        url_path="hotspots",
    ),
    st.Page("pages/data.py", title="Data", icon=":material/table:", url_path="data"),
]
navigation = st.navigation(pages)
ui.sidebar()
navigation.run()
