"""The dashboard's entry point: page set-up, sign-in, navigation, and the shared sidebar filter,
drawn once here (as Streamlit's multipage apps prefer) so every page reads the same view through
``ui.current_view()``. Nothing here computes figures.

Who is looking is decided first (``access_ui.viewer``): with sign-in configured, a person who is
not signed in, or not granted by the access file, sees only the sign-in or refusal page. The
menu then holds only the pages the viewer's role may open."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import access
from app.dashboard import access_ui, ui

st.set_page_config(page_title="Common Ground", page_icon=":material/hub:", layout="wide")


@st.cache_data(ttl=600, show_spinner=False)
def datasets_frame(stamp: tuple[int, int]) -> pd.DataFrame:
    """The warehouse's datasets (id, owning agency, sharing level) that access rules read."""
    return access.datasets_frame(ui.warehouse())


ctx = access_ui.viewer(lambda: datasets_frame(ui.db_version()))

PAGES = {
    "map": st.Page("screens/map.py", title="Map", icon=":material/map:", default=True, url_path="map"),
    "ward": st.Page(
        "screens/ward.py", title="Ward profile", icon=":material/location_city:", url_path="ward"
    ),
    "hotspots": st.Page(
        "screens/hotspots.py",
        title="Hotspots and overlap",
        icon=":material/local_fire_department:",
        url_path="hotspots",
    ),
    "priorities": st.Page(
        "screens/priorities.py",
        title="Priorities",
        icon=":material/format_list_numbered:",
        url_path="priorities",
    ),
    "early_warning": st.Page(
        "screens/early_warning.py",
        title="Early warning",
        icon=":material/notification_important:",
        url_path="early_warning",
    ),
    "data": st.Page("screens/data.py", title="Data", icon=":material/table:", url_path="data"),
    "admin": st.Page(
        "screens/admin.py", title="Access and audit", icon=":material/shield_person:", url_path="admin"
    ),
}
navigation = st.navigation([PAGES[name] for name in access.pages(ctx)])
access_ui.account(ctx)
view = ui.sidebar()
if not ctx.local and getattr(view.filter, "access", None) != ctx:
    # The filter must carry the viewer's rights into every engine call; one that does not would
    # show figures computed for nobody in particular, so the page is refused instead.
    st.error("This dashboard cannot yet restrict figures to the signed-in viewer; nothing is shown.")
    st.stop()
frame = datasets_frame(ui.db_version())
shown = set(view.filter.datasets) if view.filter.datasets else set(ctx.visible or frame["id"])
restricted = sorted(set(frame.loc[frame["sharing"] == "restricted", "id"]) & shown)
access_ui.record_view(ctx, navigation.url_path or "map", view.filter.describe(), restricted)
navigation.run()
