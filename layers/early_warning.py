"""The "Higher than expected" map layer: places whose latest whole month ran above the
prediction interval of a forecast made without it (``app.early_warning``).

Wards are outlined and filled, hotspot areas drawn as their cells, in one warning colour
(red with a dark outline, used by no other layer); the tooltip
is the sentence a service manager reads: "Higher than expected: 42 records in October 2024
against 10 to 25 expected"."""

from __future__ import annotations

import json

import pandas as pd
import pydeck as pdk

from layers import Built, LegendItem, register

WARNING_FILL = (230, 0, 0)  # a red no other layer uses (CIE76 distance 28 from the nearest)
WARNING_LINE = (80, 0, 0)
TOOLTIP = "{tip}"


def tip(row) -> str:
    """Place, dataset and agency, then the sentence."""
    return f"{row.place_name}\n{row.dataset_title} ({row.agency})\n{row.sentence}"


@register("early_warning", "Higher than expected", needs="early_warning")
def early_warning(frame: pd.DataFrame, threshold: int = 5) -> Built:
    """Wards and hotspot areas flagged higher than expected, one tooltip line per agency."""
    frame = frame[frame["higher_than_expected"].astype(bool)] if len(frame) else frame
    layers: list[pdk.Layer] = []
    wards = frame[frame["place_kind"] == "ward"] if len(frame) else frame
    if len(wards):
        tips: dict[str, str] = {}
        for r in wards.itertuples():
            tips[r.place_id] = f"{tips[r.place_id]}\n\n{tip(r)}" if r.place_id in tips else tip(r)
        shapes = wards.drop_duplicates("place_id")
        features = [
            {
                "type": "Feature",
                "geometry": json.loads(g),
                "properties": {"tip": tips[p], "color": [*WARNING_FILL, 120]},
            }
            for p, g in zip(shapes["place_id"], shapes["geojson"], strict=True)
        ]
        layers.append(
            pdk.Layer(
                "GeoJsonLayer",
                {"type": "FeatureCollection", "features": features},
                id="early-warning-wards",
                get_fill_color="properties.color",
                get_line_color=[*WARNING_LINE, 230],
                line_width_min_pixels=2,
                stroked=True,
                filled=True,
                pickable=True,
            )
        )
    areas = frame[frame["place_kind"] != "ward"] if len(frame) else frame
    if len(areas):
        rows = [
            {"h3_cell": cell, "place_id": r.place_id, "tip": tip(r)}
            for r in areas.itertuples()
            for cell in r.h3_cells
        ]
        cells = pd.DataFrame(rows, columns=["h3_cell", "place_id", "tip"])
        cells = cells.groupby("h3_cell", as_index=False).agg(tip=("tip", "\n\n".join))
        cells["color"] = [[*WARNING_FILL, 200]] * len(cells)
        layers.append(
            pdk.Layer(
                "H3HexagonLayer",
                cells,
                id="early-warning-areas",
                get_hexagon="h3_cell",
                get_fill_color="color",
                get_line_color=[*WARNING_LINE, 230],
                line_width_min_pixels=1.5,
                stroked=True,
                extruded=False,
                pickable=True,
            )
        )
    note = "" if layers else "No place ran higher than expected in its latest whole month."
    legend = [LegendItem("Higher than expected (above the forecast's 99 % interval)", WARNING_FILL)]
    return Built(layers, legend, "Higher than expected", TOOLTIP, note=note)
