"""The detail panel of a picked hex cell: time series per agency, categories, hotspot and
trend status. The map shows it in a narrow column beside the map, so its figures stack in
two columns rather than three."""

from __future__ import annotations

import h3
import shapely
import streamlit as st

from app import overlap
from app.briefing import category_label
from app.dashboard import cached, ui
from app.disclosure import DEFAULT_RULE
from app.filters import Filter
from layers.builders import BIN_LABELS


def cell_place(version, f: Filter, cell: str, res: int, k: int) -> str:
    """Where a hexagon lies, as people say it: the hotspot area it belongs to, else the ward
    holding its centre (else "outside the wards")."""
    named = cached.named_hotspot_cells(version, f, res, k)
    area = named.loc[named["h3_cell"] == cell, "area"]
    if len(area) and area.iloc[0]:
        return str(area.iloc[0])
    lat, lon = h3.cell_to_latlng(cell)
    centre = shapely.Point(lon, lat)
    shapes = cached.ward_shapes(version)
    for name, outline in zip(shapes["ward_name"], shapes["geojson"], strict=True):
        if outline and shapely.from_geojson(outline).covers(centre):
            return str(name)
    return "outside the wards"


def cell_detail(version, f: Filter, cell: str, res: int, k: int) -> None:
    spots, _ = cached.hotspot_cells(version, f, res, k)
    row = spots.set_index("h3_cell").loc[cell] if cell in set(spots["h3_cell"]) else None
    trend = cached.emerging_cells(version, f, res, k).set_index("h3_cell")
    # The place in words; the cell's id is the analyst's detail, under it.
    st.subheader(ui.plain(f"Hexagon in {cell_place(version, f, cell, res, k)}"))
    st.caption(f"Cell {cell} (H3 resolution {res})")
    if row is not None:
        label = BIN_LABELS.get(int(row["bin"]), "Neither a hot nor a cold spot")
        c1, c2 = st.columns(2)
        c1.metric("Records", DEFAULT_RULE.label(row["count"], row["suppressed"]))
        c2.metric(
            "Hot or cold spot",
            label.split(",")[0] if row["bin"] else "Neither",  # the narrow column's width
            help=(
                f"{label}, for all the records selected together, over the whole period; "
                f"z = {row['z']:.2f}, FDR p = {row['p_fdr']:.3f}"
            ),
        )
    if cell in trend.index:  # a pattern over the period's months, not the whole period at once
        st.caption(f"Over the months: {trend.loc[cell, 'pattern']}.")
    st.caption(ui.plain(meeting(cached.classes(version, f, res, k), cell)))
    ui.trend_chart(cached.trend(version, f, "month", cell=cell), key=f"cell-series-{cell}", narrow=True)
    cats = cached.categories(version, f, cell=cell)
    cats["records"] = [
        DEFAULT_RULE.label(v, s) for v, s in zip(cats["count"], cats["suppressed"], strict=True)
    ]
    cats["category"] = cats["category"].map(category_label)
    st.dataframe(cats[["agency", "kind", "dataset", "category", "records"]], hide_index=True, width="stretch")


def meeting(classes, cell: str) -> str:
    """Whose demand is hot in the cell (each agency a file names per row counts as itself),
    whose interventions are concentrated there, and against which interventions that was judged."""
    row = classes.set_index("h3_cell").loc[cell] if cell in set(classes["h3_cell"]) else None
    considered = overlap.interventions_considered(classes)
    if row is None:
        return considered
    hot = row["hot_demand_agencies"] or "none"
    served = row["intervention_agencies"] or "none"
    status = "" if row["class"] == "none" else f" Status: {row['class']}."
    # Each agency's demand is tested on its own, so a cell can be hot for one agency and not for
    # all the records together: said, so that the two never read as a contradiction.
    return (
        f"Agencies whose own demand is hot here: {hot}. Interventions concentrated: {served}."
        f"{status} {considered}"
    ).strip()
