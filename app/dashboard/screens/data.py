"""Data page (analysts): the catalogue, the load report, quarantined rows by reason, and
downloads of the aggregates that follow the filter and the disclosure rule."""

from __future__ import annotations

import json

import streamlit as st

from app import export, quality
from app.dashboard import ui

view = ui.current_view()
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
counts = ["rows read", "loaded", "quarantined", "empty category"]
st.dataframe(
    report,
    hide_index=True,
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format="localized") for c in counts if c in report},
)

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

st.subheader("Add a dataset")
st.caption(
    "Upload a CSV, Parquet or GeoJSON file, map its columns, check them, and load it through the "
    "same engine as `python -m app load`. Nothing already loaded is touched if it fails."
)
for line in quality.skipped_uploads():
    st.warning(f"Not loaded: {ui.plain(line)}")
upload = st.file_uploader("File", type=["csv", "parquet", "geojson", "json"], key="up_file")
if upload is not None:
    from app import uploads
    from app.catalog import CatalogError
    from app.db import catalog_path, warehouse_path
    from app.readers import SourceError

    try:
        saved = uploads.save_upload(warehouse_path(), upload.name, upload.getvalue())
        raw = uploads.raw_preview(saved)
    except (ValueError, SourceError) as exc:
        st.error(str(exc))
        st.stop()
    st.dataframe(raw, hide_index=True, width="stretch")
    columns = [c for c in raw.columns if c != "geometry"]
    geometry = "geometry" in raw.columns
    with st.form("up_form"):
        a, b = st.columns(2)
        entry = {
            "id": a.text_input("Id (lower case, digits, _)", key="up_id"),
            "title": b.text_input("Title", key="up_title"),
            "agency": a.text_input("Agency", key="up_agency"),
            "kind": b.selectbox("Kind", ["demand", "intervention"], key="up_kind"),
            "sharing": a.selectbox("Sharing", ["partners", "restricted", "open"], key="up_sharing"),
            "licence": b.text_input("Licence", key="up_licence"),
            "attribution": a.text_input("Attribution", key="up_attribution"),
            "path": str(saved),
        }
        modes = ["latitude and longitude", "x and y (projected)"]
        modes = (["the file's own points"] if geometry else []) + modes
        mode = b.radio("Place", modes, key="up_mode")
        if mode == "latitude and longitude":
            entry["lat"] = a.selectbox("Latitude column", columns, key="up_lat")
            entry["lon"] = b.selectbox("Longitude column", columns, key="up_lon")
        elif mode == "x and y (projected)":
            entry["x"] = a.selectbox("x / easting column", columns, key="up_x")
            entry["y"] = b.selectbox("y / northing column", columns, key="up_y")
            entry["crs"] = a.text_input("CRS", "EPSG:27700", key="up_crs")
        entry["time"] = a.selectbox("Time column", columns, key="up_time")
        entry["time_format"] = b.text_input(
            "Time format (strptime, blank for ISO 8601)", key="up_time_format"
        )
        entry["category"] = a.selectbox("Category column", columns, key="up_category")
        weight = b.selectbox("Weight column (optional)", ["(none)", *columns], key="up_weight")
        entry["weight"] = None if weight == "(none)" else weight
        checked = st.form_submit_button("Check")
        loaded = st.form_submit_button("Check and load")
    entry = {k: v for k, v in entry.items() if v not in (None, "")}
    if checked or loaded:
        try:
            _, counts, preview = uploads.check(catalog_path(), warehouse_path(), entry)
        except (CatalogError, SourceError, ValueError) as exc:
            st.error(str(exc).replace(str(catalog_path()) + ": ", ""))
            st.stop()
        st.success("The mapping reads: " + ", ".join(f"{k}: {v:,}" for k, v in counts.items()))
        st.dataframe(preview, hide_index=True, width="stretch")
        if loaded:
            try:
                with st.spinner("Loading"):
                    result = uploads.add(catalog_path(), warehouse_path(), entry)
            except (CatalogError, SourceError, ValueError) as exc:
                result = {"status": "failed", "error": str(exc)}
            if result.get("status") == "loaded":
                loaded_rows, quarantined = result["rows_loaded"], result["rows_quarantined"]
                st.success(f"Loaded {loaded_rows:,} rows; quarantined {quarantined:,}.")
                st.cache_data.clear()
            else:
                st.error(f"Not loaded, nothing changed: {result.get('error')}")
