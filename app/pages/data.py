"""Data page (analysts): the catalogue, the load report and quarantined rows by reason."""

from __future__ import annotations

import streamlit as st

from app import quality
from app.db import connect, version, warehouse_path


@st.cache_resource(max_entries=2)
def _connection(path: str, _version: tuple[int, int]):
    return connect(path)


def _con():
    path = warehouse_path()
    if not path.exists():
        st.error(f"No warehouse at {path}. Run `make run` (or `python -m app load`) first.")
        st.stop()
    return _connection(str(path), version(path))


con = _con()
area = quality.study_area(con)
st.title("Data")
st.caption(
    f"{area.get('name', '')} · {area.get('wards', 0)} wards"
    + (f" · {area['population']:,.0f} residents" if area.get("population") else "")
    + (f" · boundaries: {area['vintage']}" if area.get("vintage") else "")
)

st.subheader("Catalogue")
st.dataframe(quality.catalogue(con), hide_index=True, width="stretch")

st.subheader("Load report")
report = quality.report_table(con)
totals = report[["rows read", "loaded", "quarantined"]].sum()
c1, c2, c3 = st.columns(3)
c1.metric("Rows read", f"{totals['rows read']:,}")
c2.metric("Loaded", f"{totals['loaded']:,}")
c3.metric("Quarantined", f"{totals['quarantined']:,}")
st.dataframe(report, hide_index=True, width="stretch")

st.subheader("Quarantined rows")
by_reason = quality.quarantine_by_reason(con)
st.dataframe(by_reason, hide_index=True, width="stretch")
datasets = report["dataset"].tolist()
if datasets:
    left, right = st.columns(2)
    chosen = left.selectbox("Dataset", datasets, key="q_dataset")
    reasons = by_reason.loc[by_reason["dataset"] == chosen, "reason"].tolist()
    reason = right.selectbox("Reason", ["(all)", *reasons], key="q_reason")
    sample = quality.quarantine_sample(con, chosen, None if reason == "(all)" else reason)
    st.dataframe(sample, hide_index=True, width="stretch")
