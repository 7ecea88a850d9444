"""Hotspots and overlap (service managers): hotspot areas ranked by records, each named for
people, with the wards it touches, the agencies involved, whether interventions reach it and
its trend in plain words, and a link that opens it on the map; the cell-level detail (ids, z,
p) folded for analysts; and the dataset-by-dataset co-location matrix for the roles that may
see overlap views. Every file offered is recorded in the audit trail when it is fetched."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from app import access, areas, hotspots, overlap, quality
from app.dashboard import access_ui, cached, ui
from app.dashboard.map_links import area_layers, current_filter_params, link_column, map_link, map_params
from app.dashboard.ui import plain
from app.filters import Filter


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def hotspot_areas(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    """The hotspot areas of the view (``areas.areas_for``): released figures only."""
    spots, _ = cached.hotspot_cells(stamp, f, res, k)
    classes = cached.classes(stamp, f, res, k)
    trend = cached.emerging_cells(stamp, f, res, k)
    return areas.areas_for(ui.warehouse(stamp), f, res, spots, classes, trend)


def area_download(frame: pd.DataFrame) -> pd.DataFrame:
    """The areas as a file: snake_case headers, numbers as numbers (a suppressed figure is
    empty, with ``records_suppressed`` true), lists written out as text."""
    out = frame.drop(columns=["cells", "level", "side"]).copy()
    out["records"] = pd.array(out["records"].round(), dtype="Int64")
    for col in ("h3_cells", "ward_codes", "ward_names"):
        out[col] = [" ".join(v) if col == "h3_cells" else "; ".join(v) for v in out[col]]
    return out.drop(columns=["records_label", "wards"]).rename(columns={"cls": "gi_class"})


ctx = access_ui.require("hotspots")
view = ui.current_view()
version = ui.db_version()
con = ui.warehouse()
f = view.filter
described = f.describe()
map_layers = area_layers(ctx)
st.title("Hotspots and overlap" if access.may(ctx, "overlap") else "Hotspots")

spots, warning = cached.hotspot_cells(version, f, view.res, view.k)
classes = cached.classes(version, f, view.res, view.k)
table = hotspots.ranked_hotspots(spots, classes, cached.emerging_cells(version, f, view.res, view.k))
found = hotspot_areas(version, f, view.res, view.k)
hot = found[found["side"] == "hot"].reset_index(drop=True)

st.subheader(f"Hotspot areas ({len(hot)})")
st.caption(
    "Neighbouring hexagons where records are significantly concentrated (Gi*, 95 % confidence or "
    "more) are grouped into one area, named after the place it covers or by its ward and its "
    "direction from the ward's centre. Ranked by records."
)
reports = quality.load_report(con, f.access)
coarse = cached.precision_warnings(reports, cached.selected_ids(version, f), view.res)
for note in (warning, cached.coverage_note(version, f), *coarse):
    if note:
        st.warning(plain(note))
if considered := overlap.interventions_considered(classes):
    st.caption(plain(considered))

if len(hot):
    filter_params = current_filter_params()
    # What a reader scans first comes first; the long lists of wards and agencies last.
    shown = pd.DataFrame(
        {
            "Area": hot["name"],
            "Show on map": [map_link(r, filter_params, map_layers) for _, r in hot.iterrows()],
            "Records": hot["records_label"],
            "Trend": hot["trend"],
            "Intervention status": hot["intervention_status"],
            "Wards": hot["wards"],
            "Agencies involved": hot["agencies"].replace("", "none named"),
        }
    )
    picked = st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        key="hotspot_areas",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "Area": st.column_config.TextColumn("Area", width="medium", pinned=True),
            "Show on map": link_column(),
            "Records": st.column_config.TextColumn("Records", width="small"),
            "Trend": st.column_config.TextColumn(
                "Trend", help="From each hexagon's monthly hotspot pattern (emerging hotspot analysis)"
            ),
            "Wards": st.column_config.TextColumn("Wards", width="medium"),
            "Agencies involved": st.column_config.TextColumn(
                "Agencies involved",
                width="large",
                help="Agencies whose demand is hot here, or whose interventions are concentrated here",
            ),
        },
    )
    rows = picked.selection.rows if picked is not None else []
    if rows:  # a picked row opens the map in this tab, keeping the session's state
        row = hot.iloc[int(rows[0])]
        st.page_link(
            "screens/map.py",
            label=f"Show {plain(row['name'])} on the map",
            icon=":material/map:",
            query_params=map_params(row, filter_params, map_layers),
        )
    else:
        st.caption("Pick a row to open its area on the map here, or use its link (it opens a new tab).")
else:
    st.info("No hotspot area under this filter: no group of hexagons stands out at 95 % confidence.")

cells_export = areas.area_cells(hot, overlap.hotspot_export(con, table, spots, classes))
left, right = st.columns(2)
with left:
    access_ui.download_button(
        "Download hotspot areas (CSV)",
        lambda: area_download(hot).to_csv(index=False),
        "hotspot_areas.csv",
        "text/csv",
        key="hotspot_areas_csv",
        what="hotspot areas",
        filter=described,
        rows=len(hot),
        ctx=ctx,
    )
with right:
    access_ui.download_button(
        "Download hotspot cells (CSV)",
        lambda: cells_export.to_csv(index=False),
        "hotspots.csv",
        "text/csv",
        key="hotspots_csv",
        what="hotspot cells",
        filter=described,
        rows=len(cells_export),
        ctx=ctx,
        help="One row per hexagon, with the area it belongs to: for analysts and other tools",
    )

with st.expander("Analyst detail: hexagons, z-scores and p-values"):
    st.caption(
        f"{len(table)} significant hexagons (95 % or more) at resolution {view.res}, strongest first. "
        f"{int((found['side'] == 'cold').sum())} cold-spot area(s) are not listed above."
    )
    detail = table.merge(cells_export[["h3_cell", "area_name"]], on="h3_cell", how="left")
    ui.hotspot_table(detail, key="hotspot_table")

shown_parts = ["hotspot areas", "hotspots"]
# The co-location matrix is an overlap view: only for the roles that may see those.
matrix = cached.colocation(version, f, view.res, view.k) if access.may(ctx, "overlap") else None
if matrix is not None:
    st.subheader("Which datasets' hotspots coincide")
    shown_parts.append("co-location")
if matrix is not None and len(matrix):
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
    access_ui.download_button(
        "Download co-location matrix (CSV)",
        lambda: matrix.to_csv(index=False),
        "colocation.csv",
        "text/csv",
        key="colocation_csv",
        what="co-location matrix",
        filter=described,
        rows=len(matrix),
        ctx=ctx,
    )
ui.provenance(con, view, shown_parts)
