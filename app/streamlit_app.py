"""The dashboard's entry point: shared set-up and navigation; each page lives in app/pages."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

st.set_page_config(page_title="Common Ground", page_icon=":material/hub:", layout="wide")

pages = [
    st.Page("pages/data.py", title="Data", icon=":material/table:", default=True),
]
st.navigation(pages).run()
