"""Data page (analysts): the catalogue, the load report, quarantined rows by reason, and
downloads of the aggregates that follow the filter and the disclosure rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

import streamlit as st

from app import export, quality
from app.dashboard import access_ui, cached, ui
from app.suggest import ISO_8601, describe_format
from app.uploads import agency_space as uploads_space

MODES = {
    "latlon": "latitude and longitude",
    "xy": "x and y (projected)",
    "point": 'one "(latitude, longitude)" text column',
    "geometry": "the file's own points",
}
OTHER_FORMAT = "another format (type it below)"
NONE = "(none)"
PREVIEW_ROWS = 1_000


def read_upload(upload) -> dict:
    """Save the file, read its first rows and suggest its mapping, once per file: a rerun of
    the page (any widget) must not save and read it again. A new file prefills the mapping."""
    from app import uploads
    from app.db import warehouse_path
    from app.suggest import suggest

    known = st.session_state.get("up_read")
    if known and known["file"] == upload.file_id:
        return known
    saved = uploads.save_upload(warehouse_path(), upload.name, upload.getvalue())
    sample = uploads.raw_preview(saved, rows=PREVIEW_ROWS)
    geometry = "geometry" in sample.columns
    suggestion = suggest(sample, geometry=geometry)
    read = {
        "file": upload.file_id,
        "saved": saved,
        "raw": sample.head(20),
        "columns": [str(c) for c in sample.columns if c != "geometry"],
        "geometry": geometry,
        "suggestion": suggestion,
    }
    st.session_state["up_read"] = read
    st.session_state.pop("up_checked", None)
    prefill(read, Path(upload.name).stem)
    return read


def prefill(read: dict, stem: str) -> None:
    """Put the suggestion into the mapping's widgets; the analyst changes what is wrong."""
    s = read["suggestion"]
    columns = read["columns"]

    def column(name: str | None) -> str | None:
        return name if name in columns else None

    ident = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    state = st.session_state
    state["up_id"] = ident if re.match(r"^[a-z]", ident) else f"upload_{ident}".strip("_")
    state["up_title"] = stem
    state["up_mode"] = MODES.get(s.place or ("geometry" if read["geometry"] else "latlon"))
    for key, name in {"lat": s.lat, "lon": s.lon, "x": s.x, "y": s.y, "point": s.point}.items():
        state[f"up_{key}"] = column(name)
    state["up_crs"] = s.crs or ""
    state["up_time"] = column(s.time)
    # Ambiguous dates leave the format unset: the analyst chooses, nothing is picked for them.
    state["up_time_format"] = s.time_format if s.time_format else (None if s.time_ambiguous else ISO_8601)
    state["up_time_format_other"] = ""
    state["up_tod"] = column(s.time_of_day) or NONE
    state["up_tod_format"] = s.time_of_day_format or "%H:%M:%S"
    state["up_category"] = column(s.category)
    state["up_record_id"] = column(s.record_id) or NONE
    state["up_weight"] = NONE


def upload_section(upload, version, ctx) -> None:
    """The file's first rows, the suggested mapping, the form, and after a check the preview
    map, the rows that would be quarantined and the button that loads."""
    from app import uploads
    from app.catalog import CatalogError
    from app.readers import SourceError

    try:
        read = read_upload(upload)
    except (ValueError, SourceError) as exc:
        st.error(str(exc))
        return
    st.dataframe(read["raw"], hide_index=True, width="stretch")
    s = read["suggestion"]
    st.markdown(
        f"**Suggested mapping** (from the first {s.rows:,} rows; check each):  \n"
        + "  \n".join(f"- {ui.plain(line)}" for line in s.sentences())
    )
    columns = read["columns"]
    modes = [m for k, m in MODES.items() if k != "geometry" or read["geometry"]]
    mode = st.radio("Place", modes, key="up_mode", horizontal=True)
    formats = list(dict.fromkeys([*s.time_formats, ISO_8601, OTHER_FORMAT]))
    # Signed in, a person adds datasets as their own agency, with ids in its own space: what
    # they add is never another agency's, and an id they choose never tells of one.
    own = None if ctx.local else ctx.agency
    with st.form("up_form"):
        a, b = st.columns(2)
        entry = {
            "id": a.text_input(
                "Id (lower case, digits, _)",
                key="up_id",
                help=None if own is None else f"Saved as {uploads_space(own)}<id>: your agency's own ids.",
            ),
            "title": b.text_input("Title", key="up_title"),
            "agency": own if own is not None else a.text_input("Agency", key="up_agency"),
            "kind": b.selectbox("Kind", ["demand", "intervention"], key="up_kind"),
            "sharing": a.selectbox("Sharing", ["partners", "restricted", "open"], key="up_sharing"),
            "licence": b.text_input("Licence", key="up_licence"),
            "attribution": a.text_input("Attribution", key="up_attribution"),
            "path": str(read["saved"]),
        }
        pick = {"placeholder": "Choose a column"}
        if mode == MODES["latlon"]:
            entry["lat"] = a.selectbox("Latitude column", columns, key="up_lat", **pick)
            entry["lon"] = b.selectbox("Longitude column", columns, key="up_lon", **pick)
        elif mode == MODES["xy"]:
            entry["x"] = a.selectbox("x / easting column", columns, key="up_x", **pick)
            entry["y"] = b.selectbox("y / northing column", columns, key="up_y", **pick)
            entry["crs"] = a.text_input(
                "CRS (an EPSG code; suggested from the values' ranges)",
                key="up_crs",
                placeholder="EPSG:27700",
            )
        elif mode == MODES["point"]:
            entry["point"] = a.selectbox('"(latitude, longitude)" column', columns, key="up_point", **pick)
        entry["time"] = a.selectbox("Time column", columns, key="up_time", **pick)
        time_format = b.selectbox(
            "Time format",
            formats,
            key="up_time_format",
            format_func=describe_format,
            placeholder="Choose: day first or month first",
        )
        other = b.text_input("Another time format (strptime)", key="up_time_format_other")
        tod = a.selectbox("Time of day column (optional)", [NONE, *columns], key="up_tod")
        tod_format = b.text_input("Time of day format", key="up_tod_format")
        entry["category"] = a.selectbox("Category column", columns, key="up_category", **pick)
        record_id = b.selectbox("Record id column (optional)", [NONE, *columns], key="up_record_id")
        weight = a.selectbox("Weight column (optional)", [NONE, *columns], key="up_weight")
        checked = st.form_submit_button("Check")
    if tod != NONE:
        entry["time_of_day"], entry["time_of_day_format"] = tod, tod_format
    entry["record_id"] = None if record_id == NONE else record_id
    entry["weight"] = None if weight == NONE else weight
    entry = {k: v for k, v in entry.items() if v not in (None, "")}
    if own is not None and entry.get("id"):
        entry["id"] = uploads.upload_id(entry["id"], own)
    if checked:
        if time_format is None:
            st.error("Choose the time format: the dates read both day first and month first.")
            return
        if time_format == OTHER_FORMAT and not other.strip():
            st.error("Type the time format, or choose one of those listed.")
            return
        if time_format == OTHER_FORMAT:
            entry["time_format"] = other.strip()
        elif time_format != ISO_8601:
            entry["time_format"] = time_format
        run_check(entry, mode, version, CatalogError, SourceError)
    checked_state = st.session_state.get("up_checked")
    if (
        checked_state
        and checked_state["mode"] == mode
        and checked_state["entry"]["path"] == str(read["saved"])
    ):
        show_check(checked_state, version)


def run_check(entry: dict, mode: str, version, *errors: type[Exception]) -> None:
    """Check the mapping on the whole file (nothing is loaded) and keep the outcome for the
    preview and the load button."""
    from app import uploads
    from app.db import catalog_path, warehouse_path

    st.session_state.pop("up_checked", None)
    try:
        with st.spinner("Checking"):
            ds, counts, preview = uploads.check(catalog_path(), warehouse_path(), entry, rows=PREVIEW_ROWS)
    except (*errors, ValueError) as exc:
        st.error(str(exc).replace(str(catalog_path()) + ": ", ""))
        return
    st.session_state["up_checked"] = {
        "entry": entry,
        "mode": mode,
        "counts": counts,
        "points": uploads.preview_points(ds, preview),
        "problems": uploads.preview_problems(preview),
        "previewed": len(preview),
    }


def show_check(checked: dict, version) -> None:
    """What the check found: counts per outcome, the rows read on a small map with the wards,
    the rows that would be quarantined and why, and the button that loads."""
    import pydeck as pdk

    import layers
    from layers.view import fit_view

    counts, points, problems = checked["counts"], checked["points"], checked["problems"]
    st.success("The mapping reads: " + ", ".join(f"{k}: {v:,}" for k, v in counts.items()))
    st.caption(
        f"Preview of the first {checked['previewed']:,} rows: {len(points):,} read and placed on the map, "
        f"{len(problems):,} would be quarantined (listed below). Rows outside the study area are "
        "found when the dataset loads."
    )
    shapes = cached.ward_shapes(version)
    area = quality.study_area(ui.warehouse(version))
    dots = pdk.Layer(
        "ScatterplotLayer",
        points,
        id="upload-points",
        get_position=["lon", "lat"],
        get_fill_color=[200, 30, 90, 200],
        get_radius=5,
        radius_units=pdk.types.String("pixels"),
        pickable=True,
    )
    outlines = layers.build("outlines", shapes).layers
    deck = pdk.Deck(
        layers=[*outlines, dots],
        initial_view_state=fit_view(area["bounds"], size=(700, 360)),
        map_provider="carto",
        map_style="light",
        tooltip={"text": "row {row}\n{time}\n{category}"},
    )
    st.pydeck_chart(deck, key="up_map", height=360)
    if len(problems):
        st.markdown("**Rows that would be quarantined**")
        st.dataframe(problems, hide_index=True, width="stretch", key="up_problems")
    if st.button("Load this dataset", key="up_load", type="primary"):
        load_checked(checked["entry"])


def load_checked(entry: dict) -> None:
    """Add the checked entry and load (the analyst has confirmed it)."""
    from app import audit, uploads
    from app.catalog import CatalogError
    from app.db import catalog_path, warehouse_path
    from app.readers import SourceError

    source = Path(entry["path"])
    files = []
    if source.is_file():  # rows counted as the load's own check counts them, without reading them
        rows = uploads.count_rows(source)
        files = [audit.file_entry(source.name, rows, audit.sha256_of(source))]
    what = str(entry.get("id", source.name))
    if not access_ui.record_action("upload", what=what, files=files):
        return
    try:
        with st.spinner("Loading"):
            result = uploads.add(catalog_path(), warehouse_path(), entry)
    except (CatalogError, SourceError, ValueError) as exc:
        result = {"status": "failed", "error": str(exc)}
    outcome = {k: result.get(k) for k in ("status", "rows_loaded", "rows_quarantined") if k in result}
    # The load has happened either way: its outcome is recorded, and a trail that cannot take
    # the line is said on the page (record_action) but cannot undo the load.
    access_ui.record_action("load", what=what, files=files, extra={"outcome": outcome})
    if result.get("status") == "loaded":
        loaded_rows, quarantined = result["rows_loaded"], result["rows_quarantined"]
        st.success(f"Loaded {loaded_rows:,} rows; quarantined {quarantined:,}.")
        st.session_state.pop("up_checked", None)
        st.cache_data.clear()
    else:
        st.error(f"Not loaded, nothing changed: {result.get('error')}")


ctx = access_ui.require("data")
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
st.dataframe(quality.catalogue(con, ctx), hide_index=True, width="stretch")

st.subheader("Load report")
report = quality.report_table(con, ctx)
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
by_reason = quality.quarantine_by_reason(con, ctx)
st.dataframe(by_reason, hide_index=True, width="stretch")
datasets = report["dataset"].tolist()
if datasets:
    left, right = st.columns(2)
    chosen = left.selectbox("Dataset", datasets, key="q_dataset")
    reasons = by_reason.loc[by_reason["dataset"] == chosen, "reason"].tolist()
    reason = right.selectbox("Reason", ["(all)", *reasons], key="q_reason")
    sample = quality.quarantine_sample(con, chosen, None if reason == "(all)" else reason, access=ctx)
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
access_ui.download_button(
    f"Download {kind} ({fmt.upper()}, {len(built.frame):,} rows)",
    export.to_bytes(con, built, fmt),
    file_name=f"{name}.{fmt}",
    mime="text/csv" if fmt == "csv" else "application/geo+json",
    key="dl_data",
    what=f"{kind} export",
    filter=view.filter.describe(),
    rows=len(built.frame),
)
access_ui.download_button(
    "Download its metadata (JSON)",
    json.dumps(built.metadata, indent=2, default=str),
    file_name=f"{name}.{fmt}.json",
    mime="application/json",
    key="dl_meta",
    what=f"{kind} export metadata",
    filter=view.filter.describe(),
)

st.subheader("Add a dataset")
st.caption(
    "Upload a CSV, Parquet or GeoJSON file. Its columns are suggested from its first rows; check "
    "the mapping, see the rows read on a map and those that would be quarantined, then load it "
    "through the same engine as `python -m app load`. Nothing is loaded until you confirm, and "
    "nothing already loaded is touched if it fails."
)
skipped = quality.skipped_uploads()
if not ctx.local:  # only what the person's own agency added: another agency's are not theirs to see
    space = f"'{uploads_space(ctx.agency)}"
    skipped = [line for line in skipped if space in line]
for line in skipped:
    st.warning(f"Not loaded: {ui.plain(line)}")
upload = st.file_uploader("File", type=["csv", "parquet", "geojson", "json"], key="up_file")
if upload is not None:
    upload_section(upload, ui.db_version(), ctx)
