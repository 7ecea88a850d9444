"""The map's layers. Palettes are colour-blind safe: viridis for amounts, a red-blue diverging
scheme for hot and cold, Okabe-Ito for categories. Every tooltip shows released figures only
(a suppressed count reads "<5")."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pydeck as pdk

from layers import Built, LegendItem, register

VIRIDIS = [(68, 1, 84), (65, 68, 135), (42, 120, 142), (34, 168, 132), (122, 209, 81), (253, 231, 37)]
HOT_COLD = {
    -3: (33, 102, 172),
    -2: (103, 169, 207),
    -1: (209, 229, 240),
    1: (253, 219, 199),
    2: (239, 138, 98),
    3: (178, 24, 43),
}
BIN_LABELS = {
    3: "Hot spot, 99 % confidence",
    2: "Hot spot, 95 %",
    1: "Hot spot, 90 %",
    -1: "Cold spot, 90 %",
    -2: "Cold spot, 95 %",
    -3: "Cold spot, 99 % confidence",
}
OKABE_ITO = [
    (213, 94, 0),
    (230, 159, 0),
    (0, 114, 178),
    (86, 180, 233),
    (0, 158, 115),
    (204, 121, 167),
    (240, 228, 66),
    (100, 100, 100),
]
PATTERN_COLORS = {
    "new hot spot": (240, 228, 66),
    "consecutive hot spot": (230, 159, 0),
    "intensifying hot spot": (213, 94, 0),
    "persistent hot spot": (178, 24, 43),
    "diminishing hot spot": (204, 121, 167),
    "sporadic hot spot": (253, 219, 199),
    "oscillating hot spot": (239, 138, 98),
    "historical hot spot": (120, 60, 60),
    "new cold spot": (209, 229, 240),
    "consecutive cold spot": (103, 169, 207),
    "intensifying cold spot": (33, 102, 172),
    "persistent cold spot": (0, 60, 120),
    "diminishing cold spot": (86, 180, 233),
    "sporadic cold spot": (180, 210, 230),
    "oscillating cold spot": (0, 158, 115),
    "historical cold spot": (60, 60, 120),
}
CLASS_COLORS = {
    "unserved hotspot": (213, 94, 0),
    "served hotspot": (0, 158, 115),
    "intervention outside need": (86, 180, 233),
    "multi-agency intervention": (204, 121, 167),
}


TOOLTIP = "{tip}"  # each row carries its own plain-text tip, lines separated by newlines


def count_label(value: float, suppressed: bool, threshold: int = 5) -> str:
    if suppressed:
        return f"<{threshold}"
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "no figure"
    return f"{value:,.0f}"


def sequential(values: pd.Series, palette=VIRIDIS) -> tuple[list[tuple[int, int, int]], list[LegendItem]]:
    """Quantile classes of the values (suppressed/NaN get the lowest class)."""
    v = values.astype(float).fillna(0).to_numpy()
    positive = v[v > 0]
    if len(positive) == 0:
        return [palette[0]] * len(v), [LegendItem("0", palette[0])]
    edges = np.unique(np.quantile(positive, np.linspace(0, 1, len(palette) + 1)))
    classes = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
    colors = [palette[min(c, len(palette) - 1)] for c in classes]
    legend = [
        LegendItem(f"{edges[i]:,.0f} – {edges[i + 1]:,.0f}", palette[min(i, len(palette) - 1)])
        for i in range(len(edges) - 1)
    ]
    return colors, legend


def _hex_built(
    layer_id: str, frame: pd.DataFrame, legend: list[LegendItem], title: str, opacity: float = 0.8
) -> Built:
    """A hex layer from rows already given their colour and tip, with its legend."""
    layer = _hex_layer(layer_id, frame[["h3_cell", "color", "tip"]], opacity)
    return Built([layer], legend, title, TOOLTIP)


def _hex_layer(layer_id: str, frame: pd.DataFrame, opacity: float = 0.75, **kw) -> pdk.Layer:
    return pdk.Layer(
        "H3HexagonLayer",
        frame,
        id=layer_id,
        get_hexagon="h3_cell",
        get_fill_color="color",
        get_line_color=[255, 255, 255, 80],
        line_width_min_pixels=0.5,
        extruded=False,
        pickable=True,
        opacity=opacity,
        **kw,
    )


@register("wards", "Ward choropleth", needs="wards")
def ward_choropleth(frame: pd.DataFrame, metric: str = "count", threshold: int = 5) -> Built:
    """Wards coloured by count, rate per 1,000 residents or change against the previous period."""
    frame = frame.copy()
    labels = {"count": "Records", "rate_per_1000": "Rate per 1,000 residents", "change_pct": "Change, %"}
    if metric == "change_pct":
        change = frame["change_pct"].astype(float)
        bins = np.select([change <= -25, change <= -5, change < 5, change < 25], [-3, -1, 0, 1], 3)
        colors = [HOT_COLD.get(int(b), (240, 240, 240)) for b in bins]
        legend = [
            LegendItem("down 25 % or more", HOT_COLD[-3]),
            LegendItem("down 5–25 %", HOT_COLD[-1]),
            LegendItem("within 5 %", (240, 240, 240)),
            LegendItem("up 5–25 %", HOT_COLD[1]),
            LegendItem("up 25 % or more", HOT_COLD[3]),
        ]
    else:
        colors, legend = sequential(frame[metric])
    features = []
    for row, color in zip(frame.itertuples(index=False), colors, strict=True):
        suppressed = bool(getattr(row, "suppressed", False))
        rate = getattr(row, "rate_per_1000", np.nan)
        change = getattr(row, "change_pct", np.nan)
        tip = (
            f"{row.ward_name} ({row.ward_code})"
            f"\nRecords: {count_label(row.count, suppressed, threshold)}"
            + (f"\nRate per 1,000: {rate:,.1f}" if pd.notna(rate) and not suppressed else "")
            + (f"\nChange: {change:+.0f} %" if pd.notna(change) else "")
        )
        features.append(
            {
                "type": "Feature",
                "geometry": json.loads(row.geojson),
                "properties": {
                    "ward_code": row.ward_code,
                    "ward_name": row.ward_name,
                    "tip": tip,
                    "color": [*color, 170],
                },
            }
        )
    collection = {"type": "FeatureCollection", "features": features}
    # Fill and outline are separate layers so that only the fill is drawn again when a pointer
    # picks: an outline in the picking pass made every hover and click cost about 300 ms in a
    # software-rendered browser (16 ms without), and deck.gl reads a press over 250 ms as a long
    # press, not a click, so a click on a ward could go unnoticed.
    fill = pdk.Layer(
        "GeoJsonLayer",
        collection,
        id="wards",
        get_fill_color="properties.color",
        pickable=True,
        stroked=False,
        filled=True,
    )
    lines = _outline_layer("ward-lines", collection, [40, 40, 40, 200], 1)
    title = labels.get(metric, metric)
    return Built([fill, lines], legend, title, TOOLTIP, drawn_by={"ward-lines": "outlines"})


@register("density", "Hex density", needs="hexes")
def hex_density(frame: pd.DataFrame, threshold: int = 5) -> Built:
    frame = frame.copy()
    colors, legend = sequential(frame["count"])
    frame["color"] = [list(c) for c in colors]
    frame["tip"] = [
        f"Cell {c}\nRecords: {count_label(v, s, threshold)}"
        for c, v, s in zip(frame["h3_cell"], frame["count"], frame["suppressed"], strict=True)
    ]
    return _hex_built("density", frame, legend, "Records per cell", opacity=0.75)


@register("hotspots", "Significant hotspots (Gi*)", needs="hotspots")
def hotspots(frame: pd.DataFrame, threshold: int = 5) -> Built:
    frame = frame[frame["bin"] != 0].copy()
    frame["color"] = [list(HOT_COLD[int(b)]) for b in frame["bin"]]
    frame["tip"] = [
        f"{BIN_LABELS[int(b)]}\nRecords: {count_label(v, s, threshold)}\nz = {z:.2f}, FDR p = {p:.3f}"
        for b, v, s, z, p in zip(
            frame["bin"], frame["count"], frame["suppressed"], frame["z"], frame["p_fdr"], strict=True
        )
    ]
    legend = [LegendItem(BIN_LABELS[b], HOT_COLD[b]) for b in (3, 2, 1, -1, -2, -3)]
    return _hex_built("hotspots", frame, legend, "Gi* hot and cold spots (FDR)")


@register("emerging", "Emerging hotspot patterns", needs="emerging")
def emerging(frame: pd.DataFrame, threshold: int = 5) -> Built:
    frame = frame[frame["pattern"] != "no pattern"].copy()
    frame["color"] = [list(PATTERN_COLORS.get(p, (150, 150, 150))) for p in frame["pattern"]]
    frame["tip"] = [
        f"{p.capitalize()}\nHot in {h} of {n} steps\nTrend z = {t:+.2f}"
        for p, h, n, t in zip(
            frame["pattern"], frame["hot_steps"], frame["steps"], frame["trend_z"], strict=True
        )
    ]
    present = [p for p in PATTERN_COLORS if p in set(frame["pattern"])]
    legend = [LegendItem(p.capitalize(), PATTERN_COLORS[p]) for p in present] or [
        LegendItem("No emerging pattern", (200, 200, 200))
    ]
    return _hex_built("emerging", frame, legend, "Emerging hotspot patterns")


@register("overlap", "Demand and interventions", needs="classes")
def overlap(frame: pd.DataFrame, threshold: int = 5) -> Built:
    frame = frame[frame["class"] != "none"].copy()
    frame["color"] = [list(CLASS_COLORS[c]) for c in frame["class"]]
    frame["tip"] = [
        f"{c.capitalize()}\nHot demand: {d or 'none'}\nInterventions concentrated: {i or 'none'}"
        for c, d, i in zip(
            frame["class"], frame["hot_demand_agencies"], frame["intervention_agencies"], strict=True
        )
    ]
    legend = [LegendItem(c.capitalize(), col) for c, col in CLASS_COLORS.items()]
    return _hex_built("overlap", frame, legend, "Where demand and interventions meet")


@register("interventions", "Intervention footprints", needs="intervention_hexes")
def interventions(frame: pd.DataFrame, threshold: int = 5) -> Built:
    frame = frame.copy()
    frame["color"] = [[0, 0, 0, 0]] * len(frame)
    frame["tip"] = [
        f"Interventions\nRecords: {count_label(v, s, threshold)}"
        for v, s in zip(frame["count"], frame["suppressed"], strict=True)
    ]
    layer = pdk.Layer(
        "H3HexagonLayer",
        frame[["h3_cell", "color", "tip"]],
        id="interventions",
        get_hexagon="h3_cell",
        get_fill_color="color",
        get_line_color=[20, 20, 20, 230],
        line_width_min_pixels=1.5,
        stroked=True,
        filled=True,
        extruded=False,
        pickable=True,
    )
    return Built(
        [layer],
        [LegendItem("Cell with interventions (outline)", (20, 20, 20))],
        "Intervention footprints",
        TOOLTIP,
    )


def _outline_layer(layer_id: str, collection: dict, color: list[int], width: float) -> pdk.Layer:
    """Ward boundaries as lines that are never picked: a stroked layer in deck.gl's picking pass
    is what made pointing at a ward slow (see ward_choropleth)."""
    return pdk.Layer(
        "GeoJsonLayer",
        collection,
        id=layer_id,
        get_line_color=color,
        line_width_min_pixels=width,
        stroked=True,
        filled=False,
        pickable=False,
    )


@register("outlines", "Ward outlines and names", needs="ward_shapes")
def ward_outlines(frame: pd.DataFrame, threshold: int = 5) -> Built:
    features = [
        {
            "type": "Feature",
            "geometry": json.loads(g),
            "properties": {"ward_code": c, "ward_name": n, "tip": f"{n} ({c})"},
        }
        for c, n, g in zip(frame["ward_code"], frame["ward_name"], frame["geojson"], strict=True)
    ]
    lines = _outline_layer(
        "outlines", {"type": "FeatureCollection", "features": features}, [30, 30, 30, 220], 1.2
    )
    # Sized in metres to fit inside its ward (app.quality.ward_shapes): a small ward's name is
    # small at the city's zoom and grows as the user zooms in, never over a neighbour's.
    names = pdk.Layer(
        "TextLayer",
        frame[["ward_name", "label_lng", "label_lat", "label_m"]],
        id="ward-names",
        get_position=["label_lng", "label_lat"],
        get_text="ward_name",
        get_size="label_m",
        size_units=pdk.types.String("meters"),
        size_max_pixels=13,
        get_color=[20, 20, 20, 255],
        background=True,
        get_background_color=[255, 255, 255, 170],
        pickable=False,
    )
    return Built([lines, names], [LegendItem("Ward boundary", (30, 30, 30))], "Wards", TOOLTIP)
