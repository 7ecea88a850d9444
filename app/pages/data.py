"""Data page (analysts): the catalogue, the load report, quarantined rows by reason, and
downloads of the aggregates that follow the filter and the disclosure rule."""

from __future__ import annotations

import json

import streamlit as st

from app import export, quality, ui

view = ui.sidebar()
con = ui.warehouse()
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

st.subheader("Downloads")
st.caption(f"Following the filter, at resolution {view.res}. {export.DEFAULT_RULE.describe()}")
kind = st.radio(
    "Table",
    list(export.KINDS),
    horizontal=True,
    key="dl_kind",
    format_func={
        "hexes": "Hexes",
        "wards": "Wards",
        "hotspots": "Hotspots",
        "emerging": "Emerging hotspots",
    }.get,
)
fmt = st.radio("Format", ["csv", "geojson"], horizontal=True, key="dl_format")
built = export.build(con, kind, view.filter, res=view.res, k=view.k)
name = f"common-ground-{kind}-res{view.res}" if kind != "wards" else "common-ground-wards"
st.download_button(
    f"Download {kind} ({fmt.upper()}, {len(built.frame):,} rows)",
    export.to_bytes(con, built, fmt),
    file_name=f"{name}.{fmt}",
    mime="text/csv" if fmt == "csv" else "application/geo+json",
    key="dl_data",
)
st.download_button(
    "Download its metadata (JSON)",
    json.dumps(built.metadata, indent=2, default=str),
    file_name=f"{name}.{fmt}.json",
    mime="application/json",
    key="dl_meta",
)
