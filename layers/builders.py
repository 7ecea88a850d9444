"""The map's layers. Palettes are colour-blind safe and no two layers that can be drawn together
share a colour for different meanings (tests/test_layers.py checks every pair): viridis for
amounts per cell, purples for amounts per ward, purple-orange for the change on the previous
period, red-blue for Gi* hot and cold spots, yellow-brown and green-blue for the emerging
patterns, and a categorical set for where demand and interventions meet. Every tooltip shows
released figures only (a suppressed count reads "<5")."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pydeck as pdk

from layers import Built, LegendItem, register

VIRIDIS = [(68, 1, 84), (65, 68, 135), (42, 120, 142), (34, 168, 132), (122, 209, 81), (253, 231, 37)]
# ColorBrewer's purples, three classes moved off the change palette's purples: the cells' change
# layer can be drawn over the ward counts, so no class of one may look like a class of the other.
PURPLES = [(224, 218, 236), (194, 196, 226), (148, 142, 194), (128, 125, 186), (106, 81, 163), (74, 20, 134)]
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
# The "change" palette: diverging purple (down) to orange (up), centred on a neutral "within 5 %".
CHANGE = {
    "down 25 % or more": (94, 60, 153),
    "down 5–25 %": (178, 171, 210),
    "within 5 %": (247, 247, 247),
    "up 5–25 %": (253, 184, 99),
    "up 25 % or more": (230, 97, 1),
}
# Wards without a figure are drawn in greys of their own, never as the lowest class or a zero.
NO_PREVIOUS = LegendItem("No previous period", (150, 150, 150))
NO_CHANGE_FIGURE = LegendItem("No figure (previous count zero or under 5)", (185, 185, 185))
NO_RATE = LegendItem("No figure (population unknown or count under 5)", (185, 185, 185))
SUPPRESSED_WARD = LegendItem("Fewer than 5, zero included (suppressed)", (245, 235, 220))
PATTERN_COLORS = {
    "new hot spot": (255, 255, 153),
    "consecutive hot spot": (254, 196, 79),
    "intensifying hot spot": (255, 127, 0),
    "persistent hot spot": (103, 0, 13),
    "diminishing hot spot": (251, 154, 153),
    "sporadic hot spot": (255, 235, 205),
    "oscillating hot spot": (166, 86, 40),
    "historical hot spot": (140, 110, 100),
    "new cold spot": (204, 235, 197),
    "consecutive cold spot": (127, 201, 191),
    "intensifying cold spot": (1, 102, 94),
    "persistent cold spot": (0, 40, 80),
    "diminishing cold spot": (166, 206, 227),
    "sporadic cold spot": (178, 226, 210),
    "oscillating cold spot": (90, 174, 97),
    "historical cold spot": (100, 110, 140),
}
CLASS_COLORS = {
    "unserved hotspot": (204, 0, 153),
    "served hotspot": (0, 120, 50),
    "intervention outside need": (86, 180, 233),
    "multi-agency intervention": (102, 102, 102),
    "no intervention data selected": (215, 215, 205),
}
INTERVENTION_OUTLINE = (0, 0, 0)
WARD_LINE = (30, 30, 30)


TOOLTIP = "{tip}"  # each row carries its own plain-text tip, lines separated by newlines


def count_label(value: float, suppressed: bool, threshold: int = 5) -> str:
    if suppressed:
        return f"<{threshold}"
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "no figure"
    return f"{value:,.0f}"


def sequential(
    values: pd.Series, palette=VIRIDIS, fmt: str = "{:,.0f}"
) -> tuple[list[tuple[int, int, int]], list[LegendItem]]:
    """Quantile classes of the values (suppressed/NaN get the lowest class), labelled with
    ``fmt`` (a rate of 0.3 per 1,000 is not "0")."""
    v = values.astype(float).fillna(0).to_numpy()
    positive = v[v > 0]
    if len(positive) == 0:
        return [palette[0]] * len(v), [LegendItem("0", palette[0])]
    edges = np.unique(np.quantile(positive, np.linspace(0, 1, len(palette) + 1)))
    classes = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
    colors = [palette[min(c, len(palette) - 1)] for c in classes]
    legend = [
        LegendItem(f"{fmt.format(edges[i])} – {fmt.format(edges[i + 1])}", palette[min(i, len(palette) - 1)])
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
    """Wards coloured by count, rate per 1,000 residents or change against the previous period.

    A ward without the figure (no population, no previous period) has a grey of its own and a
    tooltip that says so: drawn as the lowest class, it would read as a zero."""
    frame = frame.copy()
    note = ""
    if metric == "change_pct":
        colors, legend = change_classes(frame)
        note = comparison_note(frame)
        title = "Change on the previous period"
    elif metric == "rate_per_1000":
        colors, legend = classes_with_gaps(frame["rate_per_1000"], rate_known(frame), PURPLES, NO_RATE)
        title = "Rate per 1,000 residents"
    else:
        # A suppressed ward has a colour of its own: in the lowest class it would read as 5.
        shown = ~frame.get("suppressed", pd.Series(False, index=frame.index)).fillna(False).astype(bool)
        colors, legend = classes_with_gaps(
            frame["count"], shown.to_numpy(), PURPLES, SUPPRESSED_WARD, "{:,.0f}"
        )
        title = "Records per ward"
    features = [
        {
            "type": "Feature",
            "geometry": geometry,
            "properties": {
                "ward_code": row.ward_code,
                "ward_name": row.ward_name,
                "tip": ward_tip(row, known_rate, previous, threshold),
                "color": [*color, 170],
            },
        }
        for row, geometry, color, known_rate, previous in zip(
            frame.itertuples(index=False),
            geometries(frame),
            colors,
            rate_known(frame),
            has_previous(frame),
            strict=True,
        )
    ]
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
    lines = _outline_layer("ward-lines", collection, [*WARD_LINE, 200], 1)
    return Built([fill, lines], legend, title, TOOLTIP, note=note, drawn_by={"ward-lines": "outlines"})


def geometries(frame: pd.DataFrame) -> list:
    """Each row's outline as a GeoJSON geometry: the parsed ``geometry`` column when the caller
    has parsed the outlines once already (the map keeps them parsed per zoom), else each
    ``geojson`` text parsed here. The layers share these objects and never change them."""
    if "geometry" in frame:
        return frame["geometry"].tolist()
    return [json.loads(g) for g in frame["geojson"]]


def has_previous(frame: pd.DataFrame) -> np.ndarray:
    """Per ward, whether a comparable previous period exists (``previous_start`` from
    ``aggregate.ward_aggregate``). A frame without that column tells it only by every change
    being missing."""
    if "previous_start" in frame:
        return pd.notna(frame["previous_start"]).to_numpy()
    change = frame.get("change_pct", pd.Series(np.nan, index=frame.index)).astype(float)
    return np.full(len(frame), bool(change.notna().any()))


def rate_known(frame: pd.DataFrame) -> np.ndarray:
    """Per ward, whether its rate is a figure: a population to divide by and a released count."""
    rate = frame.get("rate_per_1000", pd.Series(np.nan, index=frame.index)).astype(float)
    population = frame.get("population", pd.Series(1.0, index=frame.index)).astype(float)
    suppressed = frame.get("suppressed", pd.Series(False, index=frame.index)).fillna(False).astype(bool)
    return ((population > 0) & rate.notna() & ~suppressed).to_numpy()


def classes_with_gaps(
    values: pd.Series, known: np.ndarray, palette: list, missing: LegendItem, fmt: str = "{:,.1f}"
) -> tuple[list[tuple[int, int, int]], list[LegendItem]]:
    """Quantile classes of the known values; the others in the ``missing`` colour."""
    values = values.astype(float).reset_index(drop=True)
    colors, legend = sequential(values[known], palette, fmt) if known.any() else ([], [])
    out, it = [], iter(colors)
    for k in known:
        out.append(next(it) if k else missing.color)
    return out, legend + ([missing] if not known.all() else [])


def change_classes(frame: pd.DataFrame) -> tuple[list[tuple[int, int, int]], list[LegendItem]]:
    """The change on the previous period in five classes centred on 0, plus "no previous
    period" and "no figure" where there is nothing to compare."""
    change = frame["change_pct"].astype(float).to_numpy()
    previous = has_previous(frame)
    labels = list(CHANGE)
    bins = np.select([change <= -25, change <= -5, change < 5, change < 25], [0, 1, 2, 3], 4)
    colors = [
        CHANGE[labels[b]] if p and not np.isnan(c) else (NO_CHANGE_FIGURE if p else NO_PREVIOUS).color
        for b, c, p in zip(bins, change, previous, strict=True)
    ]
    legend = [LegendItem(label, color) for label, color in CHANGE.items()] if previous.any() else []
    if (previous & np.isnan(change)).any():
        legend.append(NO_CHANGE_FIGURE)
    if not previous.all():
        legend.append(NO_PREVIOUS)
    return colors, legend


def comparison_note(frame: pd.DataFrame) -> str:
    """What the change compares, in words, for the legend."""
    sentence = str(frame["comparison"].iloc[0]) if "comparison" in frame and len(frame) else ""
    if sentence.startswith("no previous period"):
        return f"{sentence[0].upper()}{sentence[1:]}."
    if sentence:
        return f"Change compares {sentence}."
    return "" if has_previous(frame).any() else "No previous period to compare with."


def ward_tip(row, known_rate: bool, previous: bool, threshold: int) -> str:
    """A ward's tooltip: its name, its count, its rate and its change, each as a figure or as
    the reason there is none."""
    suppressed = bool(getattr(row, "suppressed", False))
    lines = [
        f"{row.ward_name} ({row.ward_code})",
        f"Records: {count_label(row.count, suppressed, threshold)}",
    ]
    if known_rate:
        lines.append(f"Rate per 1,000: {row.rate_per_1000:,.1f}")
    elif not suppressed and "rate_per_1000" in row._fields:
        lines.append("Rate per 1,000: n/a (no population figure)")
    change = getattr(row, "change_pct", np.nan)
    if not previous:
        lines.append("Change: no previous period")
    elif pd.notna(change):
        lines.append(f"Change: {change:+.0f} %")
    elif "change_pct" in row._fields:
        lines.append("Change: no figure (previous count zero or under 5)")
    return "\n".join(lines)


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


def hex_change_frame(
    current: pd.DataFrame, previous: pd.DataFrame | None, comparison: str = ""
) -> pd.DataFrame:
    """Per cell, the released count of this period and of the previous one
    (``aggregate.hex_totals`` of each window, or None without a previous period), and the change.

    Those tables list a protected cell only where its figure is released, so a cell missing
    from one of them holds fewer than the threshold, zero included: its change has no figure
    and it reads "<5", never 0. An open dataset's missing cell is a true zero: a cell that
    emptied is down 100 %, one that was empty before has no figure (nothing to divide by)."""
    cols = ["h3_cell", "count", "sharing"]
    now = current[cols] if len(current) else pd.DataFrame(columns=cols)
    sharing = str(now["sharing"].iloc[0]) if len(now) else "open"
    if previous is None:
        out = now[["h3_cell", "count"]].copy()
        out["suppressed"] = False
        out["previous_count"] = np.nan
        out["previous_suppressed"] = False
        out["change_pct"] = np.nan
        out["previous_start"] = pd.NaT
        out["comparison"] = comparison
        return out.reset_index(drop=True)
    before = previous[cols] if len(previous) else pd.DataFrame(columns=cols)
    if len(before) and not len(now):
        sharing = str(before["sharing"].iloc[0])
    protected = sharing in ("partners", "restricted")
    out = now[["h3_cell", "count"]].merge(
        before[["h3_cell", "count"]].rename(columns={"count": "previous_count"}), on="h3_cell", how="outer"
    )
    out["suppressed"] = out["count"].isna() & protected
    out["previous_suppressed"] = out["previous_count"].isna() & protected
    if not protected:
        out[["count", "previous_count"]] = out[["count", "previous_count"]].fillna(0.0)
    count, prev = out["count"].astype(float), out["previous_count"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["change_pct"] = np.where(prev > 0, 100 * (count - prev) / prev, np.nan)
    out["previous_start"] = pd.Timestamp("1970-01-01")  # a previous window exists
    out["comparison"] = comparison
    return out.sort_values("h3_cell", ignore_index=True)


@register("change", "Change on the previous period (cells)", needs="hex_change")
def hex_change(frame: pd.DataFrame, threshold: int = 5) -> Built:
    """Each cell coloured by its change on the previous period, in the wards' change classes
    and palette, with "no previous period" and "no figure" greys of their own."""
    frame = frame.reset_index(drop=True).copy()
    colors, legend = change_classes(frame)
    frame["color"] = [list(c) for c in colors]
    sentence = str(frame["comparison"].iloc[0]) if "comparison" in frame and len(frame) else ""
    previous = has_previous(frame)
    windows = sentence.split(" against ", 1) if previous.any() and " against " in sentence else []
    windows = windows if len(windows) == 2 else ["This period", "Previous period"]
    tips = []
    for row, known in zip(frame.itertuples(index=False), previous, strict=True):
        lines = [f"{windows[0]}: {count_label(row.count, bool(row.suppressed), threshold)} records"]
        if not known:
            lines.append("Change: no previous period")
        else:
            lines.append(
                f"{windows[1]}: {count_label(row.previous_count, bool(row.previous_suppressed), threshold)}"
                " records"
            )
            lines.append(
                f"Change: {row.change_pct:+.0f} %"
                if pd.notna(row.change_pct)
                else "Change: no figure (previous count zero or under 5)"
            )
        lines.append(f"Cell {row.h3_cell}")
        tips.append("\n".join(lines))
    frame["tip"] = tips
    built = _hex_built("change", frame, legend, "Change on the previous period (cells)", opacity=0.8)
    built.note = comparison_note(frame)
    return built


@register("hotspots", "Significant hotspots (Gi*)", needs="hotspots")
def hotspots(frame: pd.DataFrame, threshold: int = 5) -> Built:
    frame = frame[frame["bin"] != 0].copy()
    frame["color"] = [list(HOT_COLD[int(b)]) for b in frame["bin"]]
    # The place first, as the tables name it (an ``area`` column, when the page gives one).
    places = frame["area"].fillna("").astype(str) if "area" in frame else pd.Series("", index=frame.index)
    frame["tip"] = [
        (f"{a}\n" if a else "")  # a tooltip of text, not HTML: names shown as written
        + f"{BIN_LABELS[int(b)]}\nRecords: {count_label(v, s, threshold)}\nz = {z:.2f}, FDR p = {p:.3f}"
        for a, b, v, s, z, p in zip(
            places, frame["bin"], frame["count"], frame["suppressed"], frame["z"], frame["p_fdr"], strict=True
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
    legend = [LegendItem(p.capitalize(), PATTERN_COLORS[p]) for p in present]
    built = _hex_built("emerging", frame, legend, "Emerging hotspot patterns")
    built.note = "" if present else "No cell shows an emerging pattern."
    return built


@register("overlap", "Demand and interventions", needs="classes")
def overlap(frame: pd.DataFrame, threshold: int = 5) -> Built:
    """Where demand is hot and whether interventions are concentrated there. The legend names
    the interventions the classes considered; with none selected, a demand hotspot is "no
    intervention data selected", never "unserved"."""
    considered = str(frame["interventions_considered"].iloc[0]) if "interventions_considered" in frame else ""
    none_selected = considered.startswith("No intervention data")
    frame = frame[frame["class"] != "none"].copy()
    frame["color"] = [list(CLASS_COLORS[c]) for c in frame["class"]]
    frame["tip"] = [
        f"{c.capitalize()}\nHot demand: {d or 'none'}\nInterventions concentrated: {i or 'none'}"
        for c, d, i in zip(
            frame["class"], frame["hot_demand_agencies"], frame["intervention_agencies"], strict=True
        )
    ]
    shown = ["no intervention data selected"] if none_selected else list(CLASS_COLORS)[:4]
    legend = [LegendItem(c.capitalize(), CLASS_COLORS[c]) for c in shown]
    built = _hex_built("overlap", frame, legend, "Where demand and interventions meet")
    built.note = considered
    return built


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
        get_line_color=[*INTERVENTION_OUTLINE, 230],
        line_width_min_pixels=1.5,
        stroked=True,
        filled=True,
        extruded=False,
        pickable=True,
    )
    return Built(
        [layer],
        [LegendItem("Cell with interventions (outline)", INTERVENTION_OUTLINE)],
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
            "geometry": g,
            "properties": {"ward_code": c, "ward_name": n, "tip": f"{n} ({c})"},
        }
        for c, n, g in zip(frame["ward_code"], frame["ward_name"], geometries(frame), strict=True)
    ]
    lines = _outline_layer(
        "outlines", {"type": "FeatureCollection", "features": features}, [*WARD_LINE, 220], 1.2
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
    return Built([lines, names], [LegendItem("Ward boundary", WARD_LINE)], "Wards", TOOLTIP)
