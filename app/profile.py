"""A ward profile as plain data and as a printable HTML page (no Streamlit here)."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from app.briefing import ALL_DEMAND, Briefing, category_label
from app.disclosure import DEFAULT_RULE, Rule
from app.filters import period_words
from app.hotspots import ranked_hotspots


def headline_kind(kinds: tuple[str, ...], selected_kinds: set[str]) -> str:
    """What the headline counts: demand, unless the user picks interventions only (or only
    intervention datasets are selected). Demand and interventions added up (calls for help and
    patrols) measure nothing a councillor can read."""
    if "intervention" in kinds and "demand" not in kinds:
        return "intervention"
    return "demand" if "demand" in selected_kinds or not selected_kinds else "intervention"


MEASURES = {"demand": "Demand", "intervention": "Interventions"}
RECORDS = {"Demand": "Demand records", "Interventions": "Intervention records"}


def headline(wards: pd.DataFrame, code: str, kind: str = "demand") -> dict:
    """The ward's figures beside the city's: records of one kind (``headline_kind``), rate per
    1,000 residents, and change on the previous period (``aggregate.ward_aggregate``'s windows,
    said in words in ``comparison``). ``rates`` is False where the boundaries carry no
    population at all: no rate is offered then; one ward's missing population is a rate n/a."""
    row = wards.set_index("ward_code").loc[code]
    populated = wards["population"].fillna(0) > 0
    shown = wards[~wards["suppressed"] & populated]
    people = shown["population"].sum()
    return {
        "ward_name": row["ward_name"],
        "measure": MEASURES[kind],
        "count": None if row["suppressed"] else row["count"],
        "suppressed": bool(row["suppressed"]),
        "rates": bool(populated.any()),
        "rate_per_1000": row["rate_per_1000"],
        "city_rate_per_1000": 1000 * shown["count"].sum() / people if people else None,
        "compared_count": row.get("compared_count", np.nan),
        "previous_count": row["previous_count"],
        "change_pct": row["change_pct"],
        "comparison": row.get("comparison", ""),
        "population": row["population"],
    }


def ward_label(code: str, name: object) -> str:
    """A ward as the picker lists it: "Abbey (E05001935)", or the code once where the file
    gives no name or a name that is the code."""
    text = "" if name is None or name != name else str(name).strip()
    return code if not text or text == code else f"{text} ({code})"


def change_text(head: dict) -> str:
    """The change on the previous period as a figure, or "n/a" where there is none; a change
    that rounds to nothing reads "0 %", not "-0 %"."""
    if pd.isna(head["change_pct"]):
        return "n/a"
    change = round(float(head["change_pct"]))
    return "0 %" if change == 0 else f"{change:+,d} %"


NO_PREVIOUS = "no previous period: "


def change_sentence(head: dict) -> str:
    """What the change compares, in words, or why there is no figure."""
    said = str(head.get("comparison") or "")
    if said.startswith(NO_PREVIOUS):
        return f"n/a, as {said.removeprefix(NO_PREVIOUS)}."
    if pd.isna(head["change_pct"]):
        reason = (
            "a count is suppressed"
            if pd.isna(head.get("compared_count")) or pd.isna(head["previous_count"])
            else "the earlier count is zero"
        )
        return f"{said}: n/a, as {reason}."
    return f"{said}."


def coverage_sentence(coverage: dict[str, int], interventions: bool) -> str:
    """The intervention coverage of the ward's hotspots, or why there is none to tell."""
    if not interventions:
        return "no intervention data is selected, so coverage cannot be told"
    return ", ".join(f"{k}: {v}" for k, v in coverage.items()) or "no hotspots"


def hotspots_in_ward(
    spots: pd.DataFrame,
    classes: pd.DataFrame,
    trend: pd.DataFrame,
    ward_geojson: str,
    rule: Rule = DEFAULT_RULE,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The ward's hotspots (cells whose centre lies in the ward) and how many of them fall in
    each intervention class, for the profile's coverage line.

    A hotspot here is a cell where the selected records together are significantly
    concentrated, or where some agency's own demand is (``overlap.cell_classes``): the table,
    the agencies whose demand is hot and the coverage line all speak of the same cells, so the
    page never says "no hotspot" above "unserved hotspot: 5"."""
    ward = shapely.from_geojson(ward_geojson)
    inside = shapely.contains_xy(ward, spots["cell_lng"].to_numpy(), spots["cell_lat"].to_numpy())
    cells = set(spots.loc[inside, "h3_cell"])
    agency_hot = cells & set(classes.loc[classes["demand_hot"].astype(bool), "h3_cell"])
    table = ranked_hotspots(spots[inside], classes, trend, rule, also=agency_hot)
    in_table = classes[classes["h3_cell"].isin(set(table["h3_cell"]))]
    coverage = in_table["class"].value_counts().drop("none", errors="ignore")
    return table, {str(k): int(v) for k, v in coverage.items()}


def patterns_in_ward(trend: pd.DataFrame, ward_geojson: str) -> dict[str, int]:
    """How many cells whose centre lies in the ward show each emerging pattern (``no pattern``
    left out), most first: the emerging hotspots a councillor asks about."""
    ward = shapely.from_geojson(ward_geojson)
    inside = shapely.contains_xy(ward, trend["cell_lng"].to_numpy(), trend["cell_lat"].to_numpy())
    counts = trend.loc[inside, "pattern"].value_counts().drop("no pattern", errors="ignore")
    return {str(k): int(v) for k, v in counts.items()}


@dataclass(frozen=True)
class WardProfile:
    """What the ward profile page shows, all of it released figures, for its two downloads."""

    code: str
    head: dict  # ``headline``
    agencies: str  # agencies whose demand is hot in the ward
    trend: pd.DataFrame  # ``trends.agency_trend``
    categories: pd.DataFrame
    hotspots: pd.DataFrame  # ``hotspots_in_ward``
    coverage: dict[str, int]
    period: str
    spans: str = ""  # ``trends.coverage_note`` where the datasets' spans differ
    interventions: bool = True  # whether any intervention dataset is selected
    briefing: Briefing | None = None  # the summary, ranking and areas (``briefing.ward_briefing``)
    ward_geojson: str = ""  # the ward's outline, for the printed map
    neighbours: tuple[tuple[str, str], ...] = ()  # other wards (name, GeoJSON) drawn around it


# Plain headers for the hotspot cells' table, as a councillor may be handed it on paper.
PLAIN_HOTSPOT_HEADERS = {
    "h3_cell": "Cell",
    "records": "Records",
    "z": "Strength (z-score)",
    "p_fdr": "Chance it is random (adjusted)",
    "bin": "Confidence band",
    "pattern": "Pattern over time",
    "hot_demand_agencies": "Agencies whose demand is concentrated",
    "intervention_agencies": "Agencies whose interventions are concentrated",
    "intervention status": "Interventions",
}

PRINT_CSS = """@page{size:A4;margin:14mm 12mm}
body{font-family:"DejaVu Sans",Arial,sans-serif;font-size:10.5pt;margin:2em auto;max-width:48em;color:#111}
h1{font-size:18pt;margin:0 0 .2em} h2{font-size:12.5pt;margin:1.1em 0 .3em;border-bottom:1px solid #999}
.t{border-collapse:collapse;font-size:8.5pt} .t td,.t th{border-bottom:1px solid #ccc;padding:1px 6px;
text-align:left} .t tr.here td{font-weight:bold;background:#fde0c5} small{color:#555}
ul.summary{padding-left:1.2em} ul.summary li{margin:.15em 0} figure{margin:.4em 0} svg{max-width:100%}
section{break-inside:avoid-page} .cols{display:flex;gap:1.5em} .cols>div{flex:1}
@media print{body{margin:0;max-width:none} a{color:inherit;text-decoration:none}}"""


def to_html(p: WardProfile, rule: Rule = DEFAULT_RULE) -> str:
    """A self-contained page a councillor can print on A4 or send on: the summary, a map of the
    ward with its hotspot areas and their names, the trend chart and the ranking of all wards,
    drawn as inline SVG with plain headers. No script and no tiles, so it opens and prints
    anywhere, offline included."""

    def table(frame: pd.DataFrame) -> str:
        return frame.to_html(index=False, border=0, classes="t", na_rep="", escape=True)

    head, spots = p.head, p.hotspots
    if {"z", "p_fdr"} <= set(spots.columns):
        spots = spots.assign(z=spots["z"].round(2), p_fdr=spots["p_fdr"].map("{:.1e}".format))
    spots = spots.rename(columns=PLAIN_HOTSPOT_HEADERS)
    name = html.escape(str(head["ward_name"]))
    measure = html.escape(str(head.get("measure", "Records")))
    count = "&lt;5" if head["suppressed"] else f"{head['count']:,.0f}"
    rate = f"{head['rate_per_1000']:,.1f}" if pd.notna(head["rate_per_1000"]) else "n/a"
    city = f"{head['city_rate_per_1000']:,.1f}" if head["city_rate_per_1000"] else "n/a"
    rates = (
        f" · {measure.lower()} per 1,000 residents <b>{rate}</b> (city {city})"
        if head.get("rates", True)
        else ""
    )
    spans = f"<p><small>{html.escape(p.spans)}</small></p>" if p.spans else ""
    cover = coverage_sentence(p.coverage, p.interventions)
    b = p.briefing
    recent = recent_trend(p.trend).rename(columns=str.capitalize)
    summary = (
        "<section id='summary'><h2>Summary</h2><ul class='summary'>"
        + "".join(f"<li>{html.escape(s.text)}</li>" for s in b.sentences)
        + f"</ul><p><small>{html.escape(b.method)}</small></p></section>"
        if b is not None
        else ""
    )
    areas = b.areas if b is not None else pd.DataFrame()
    drawn = ward_map_svg(p.ward_geojson, areas, p.neighbours) if p.ward_geojson else ""
    map_part = (
        f"<section id='map'><h2>The ward and its hotspot areas</h2><figure>{drawn}</figure>"
        f"{area_table_html(areas, rule)}</section>"
        if drawn
        else ""
    )
    groups = window_groups(b.windows) if b is not None else []
    chart = trend_svg(p.trend, [(current, previous) for current, previous, _ in groups])
    window_note = f"<p><small>{html.escape(windows_note(groups))}</small></p>" if groups else ""
    ranking = ""
    if b is not None and len(b.ranking):
        ranking = (
            "<section id='ranking'><h2>All wards ranked by demand per 1,000 residents</h2>"
            f"{ranking_html(b.ranking, p.code)}</section>"
        )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ward profile: {name}</title>
<style>{PRINT_CSS}</style></head><body>
<h1>{name} <small>({html.escape(p.code)})</small></h1>
<p><small>{html.escape(p.period)}</small></p>
{summary}
<section id="headline"><h2>Headline: {measure.lower()}</h2>
<p>{RECORDS.get(head.get("measure"), "Records")}: <b>{count}</b>{rates} · change on the previous period
<b>{html.escape(change_text(head))}</b> <small>({html.escape(change_sentence(head))})</small></p>{spans}
</section>
{map_part}
<section id="trend"><h2>Records per month</h2><figure>{chart}</figure>{window_note}</section>
{ranking}
<h2>The last twelve months per dataset</h2>{table(recent)}{spans}
<h2>Agencies whose demand is hot here</h2><p>{html.escape(p.agencies or "none")}</p>
<h2>Analyst detail: hotspot cells in the ward and their intervention coverage</h2>
<p>{html.escape(cover)}</p>{table(spots)}
<h2>Categories</h2>{table(_categories_for_people(p.categories))}
<p><small>{html.escape(rule.describe())}</small></p></body></html>"""


def _categories_for_people(cats: pd.DataFrame) -> pd.DataFrame:
    """The ward's categories with plain headers, and "Not recorded" for records with none."""
    if "category" in cats.columns:
        cats = cats.assign(category=cats["category"].map(category_label))
    return cats.rename(columns=str.capitalize)


def window_groups(windows: pd.DataFrame) -> list[tuple[tuple, tuple, tuple[str, ...]]]:
    """The pairs of windows the changes compare (``current``, ``previous``), each with the
    titles of the datasets compared over it, earliest first: files that end at different dates
    each compare their own last year, and the trend chart shades each pair."""
    used = windows[windows["reason"] == ""] if len(windows) else windows
    groups: dict[tuple, list[str]] = {}
    for r in used.itertuples():
        groups.setdefault((r.current, r.previous), []).append(str(r.title))
    return [(c, p, tuple(titles)) for (c, p), titles in sorted(groups.items())]


def windows_note(groups: list[tuple[tuple, tuple, tuple[str, ...]]]) -> str:
    """What the chart's shading marks, in words (plain text)."""
    if len(groups) == 1:
        current, previous, _ = groups[0]
        return (
            f"Shaded: {period_words(*previous)} (lighter) and {period_words(*current)} (darker), "
            "the two years the changes compare."
        )
    each = "; ".join(
        f"{', '.join(titles)}: {period_words(*current)} against {period_words(*previous)}"
        for current, previous, titles in groups
    )
    return (
        "Shaded, darker then lighter, the two years each change compares, as the data end at "
        f"different dates: {each}."
    )


def common_windows(windows: pd.DataFrame) -> tuple[tuple, tuple] | None:
    """The two windows the changes compare when every compared dataset shares them (the chart
    marks them), else None."""
    used = windows[windows["reason"] == ""] if len(windows) else windows
    pairs = {(r.current, r.previous) for r in used.itertuples()}
    return next(iter(pairs)) if len(pairs) == 1 else None


def ranking_table(ranking: pd.DataFrame, measure: str = ALL_DEMAND) -> pd.DataFrame:
    """One measure of ``briefing.ward_ranking`` as the page and the print show it: rank, ward,
    rate per 1,000 and records as released ("fewer than 5"), best ranked first, unranked last."""
    frame = ranking[ranking["measure"] == measure].sort_values(["rank", "ward_name"], na_position="last")
    return pd.DataFrame(
        {
            "Rank": frame["rank"].astype("Int64"),
            "Ward": frame["ward_name"].astype(str),
            "Demand per 1,000 residents": frame["rate_per_1000"].round(1),
            "Demand records": frame["label"],
            "ward_code": frame["ward_code"],
        }
    ).reset_index(drop=True)


def ranking_html(ranking: pd.DataFrame, code: str) -> str:
    frame = ranking_table(ranking)
    rows = []
    for r in frame.itertuples(index=False):
        mark = " class='here'" if r.ward_code == code else ""
        rank = "" if pd.isna(r.Rank) else str(int(r.Rank))
        rate = "n/a" if pd.isna(r[2]) else f"{r[2]:,.1f}"
        rows.append(
            f"<tr{mark}><td>{rank}</td><td>{html.escape(r.Ward)}</td><td>{rate}</td>"
            f"<td>{html.escape(str(r[3]))}</td></tr>"
        )
    return (
        "<table class='t'><thead><tr><th>Rank</th><th>Ward</th><th>Demand per 1,000 residents</th>"
        f"<th>Demand records</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def area_table(areas: pd.DataFrame, rule: Rule = DEFAULT_RULE) -> pd.DataFrame:
    """The hotspot areas touching the ward (``app.areas.hotspot_areas`` rows) with plain
    headers: name, wards, cells, records of the whole area as released ("fewer than 5"), the
    trend and whether interventions reach it."""
    columns = ["Area", "Wards", "Cells", "Records in the area", "Trend", "Interventions"]
    if areas is None or areas.empty:
        return pd.DataFrame(columns=columns)
    hidden = areas["records_suppressed"].astype(bool)
    records = [
        f"fewer than {rule.threshold}" if s else f"{v:,.0f}"
        for v, s in zip(areas["records"], hidden, strict=True)
    ]
    frame = pd.DataFrame(
        {
            "Area": areas["name"].astype(str),
            "Wards": areas["wards"].astype(str),
            "Cells": areas["n_cells"].astype(int),
            "Records in the area": records,
            "Trend": areas["trend"].astype(str),
            "Interventions": areas["intervention_status"].fillna("").astype(str),
        }
    )
    return frame[columns]


def area_table_html(areas: pd.DataFrame, rule: Rule = DEFAULT_RULE) -> str:
    if areas is None or areas.empty:
        return "<p>No area of concentrated demand lies in this ward.</p>"
    return area_table(areas, rule).to_html(index=False, border=0, classes="t", escape=True)


# --- Inline SVG: no script, no tiles -----------------------------------------------------------

AREA_FILL = "#d7301f"
PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
           "#1f78b4", "#b2182b"]  # fmt: skip


def _projector(bounds: tuple[float, float, float, float], width: float, height: float, pad: float):
    """lon/lat to SVG x/y, equirectangular at the middle latitude (right at a ward's scale)."""
    west, south, east, north = bounds
    k = np.cos(np.radians((south + north) / 2))
    span_x, span_y = max((east - west) * k, 1e-9), max(north - south, 1e-9)
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)
    off_x = (width - span_x * scale) / 2
    off_y = (height - span_y * scale) / 2

    def project(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return off_x + (np.asarray(lon) - west) * k * scale, off_y + (north - np.asarray(lat)) * scale

    return project


def _path(geom: shapely.Geometry, project) -> str:
    """An SVG path of a polygon or multipolygon (holes drawn with evenodd)."""
    parts = []
    polygons = getattr(geom, "geoms", [geom])
    for poly in polygons:
        if poly.is_empty or poly.geom_type != "Polygon":
            continue
        for ring in [poly.exterior, *poly.interiors]:
            xy = np.asarray(ring.coords)
            x, y = project(xy[:, 0], xy[:, 1])
            parts.append("M" + " L".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y, strict=True)) + " Z")
    return " ".join(parts)


def area_shapes(areas: pd.DataFrame) -> list[tuple[str, shapely.Geometry]]:
    """Each area's name and outline: the union of its H3 cells' hexagons."""
    import h3

    out = []
    for r in areas.itertuples():
        hexes = []
        for cell in r.cells:
            ring = h3.cell_to_boundary(h3.int_to_str(int(cell)) if not isinstance(cell, str) else cell)
            hexes.append(shapely.Polygon([(lng, lat) for lat, lng in ring]))
        if hexes:
            out.append((str(r.name), shapely.union_all(hexes)))
    return out


def ward_map_svg(
    ward_geojson: str,
    areas: pd.DataFrame,
    others: tuple[tuple[str, str], ...] = (),
    width: int = 640,
    height: int = 420,
) -> str:
    """The ward's outline with its hotspot areas filled and named, and the neighbouring wards
    that the drawing reaches (``others``: name and GeoJSON) outlined in grey and named, so an
    area that spills over the boundary reads against the wards it enters. Inline SVG."""
    ward = shapely.from_geojson(ward_geojson)
    shapes = area_shapes(areas) if areas is not None and len(areas) else []
    bounds = shapely.union_all([ward, *(g for _, g in shapes)]).bounds
    project = _projector(bounds, width, height, 24)
    body = [f"<rect x='0' y='0' width='{width}' height='{height}' fill='#f4f4f0'/>"]
    labels = []
    view = shapely.box(*bounds).buffer(0.1 * max(bounds[2] - bounds[0], bounds[3] - bounds[1]))
    for name, geojson in others:
        other = shapely.from_geojson(geojson)
        if not other.intersects(view):
            continue
        body.append(f"<path d='{_path(other, project)}' fill='#fafaf7' stroke='#aaa' stroke-width='1'/>")
        spot = other.intersection(view).representative_point()
        x, y = project(np.array([spot.x]), np.array([spot.y]))
        if 0 < x[0] < width and 0 < y[0] < height:
            labels.append(
                f"<text x='{x[0]:.1f}' y='{y[0]:.1f}' font-size='11' text-anchor='middle' fill='#777' "
                f"font-style='italic'>{html.escape(name)}</text>"
            )
    body.append(
        f"<path d='{_path(ward, project)}' fill='#ffffff' stroke='#333' stroke-width='2' "
        "fill-rule='evenodd'/>"
    )
    for name, geom in shapes:
        body.append(
            f"<path d='{_path(geom, project)}' fill='{AREA_FILL}' fill-opacity='0.55' stroke='{AREA_FILL}' "
            "stroke-width='1' fill-rule='evenodd'/>"
        )
        spot = geom.representative_point()
        x, y = project(np.array([spot.x]), np.array([spot.y]))
        labels.append(
            f"<text x='{x[0]:.1f}' y='{y[0]:.1f}' font-size='13' text-anchor='middle' "
            "stroke='#fff' stroke-width='3' paint-order='stroke' fill='#111'>"
            f"{html.escape(name)}</text>"
        )
    return (
        f"<svg id='ward-map' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' role='img' aria-label='Map of the ward and its hotspot areas'>"
        + "".join(body + labels)
        + "</svg>"
    )


def _nice_step(raw: float) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) at least ``raw``."""
    power = 10 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def trend_svg(
    trend: pd.DataFrame,
    windows: tuple[tuple, tuple] | list[tuple[tuple, tuple]] | None = None,
    width: int = 640,
    height: int = 260,
) -> str:
    """One line per dataset per month (demand solid, interventions dashed; a suppressed or
    uncovered month is a gap), the two compared windows shaded (each pair of them, where
    datasets compare different years), with a legend below."""
    pairs = windows if isinstance(windows, list) else [windows] if windows else []
    if trend is None or not len(trend):
        return "<p>No records to draw.</p>"
    left, right, top, bottom = 46, 10, 10, 24
    periods = pd.to_datetime(trend["period"])
    first, last = periods.min(), periods.max()
    days = max((last - first).days, 1)
    top_value = (
        float(np.nanmax(trend["count"].to_numpy(dtype=float))) if trend["count"].notna().any() else 1.0
    )
    step = _nice_step(max(top_value, 1.0) / 4)
    top_value = step * np.ceil(max(top_value, 1.0) / step)

    def x(t) -> float:
        return left + (pd.Timestamp(t) - first).days / days * (width - left - right)

    def y(v: float) -> float:
        return top + (1 - v / top_value) * (height - top - bottom)

    parts = [f"<rect x='0' y='0' width='{width}' height='{height}' fill='#fff'/>"]
    for pair in pairs:
        for (start, end), shade in zip(pair, ("#fdd0a2", "#fee6ce"), strict=True):
            # Each month's point sits on its first day: a window runs from its first month's
            # point to the next window's, so the two shaded years meet.
            after = pd.Timestamp(end) + pd.Timedelta(days=1)
            a, b = max(x(start), left), min(x(after), width - right)
            if b > a:
                parts.append(
                    f"<rect x='{a:.1f}' y='{top}' width='{b - a:.1f}' height='{height - top - bottom}' "
                    f"fill='{shade}'/>"
                )
    for tick in np.arange(0, top_value + step / 2, step):
        parts.append(
            f"<line x1='{left}' x2='{width - right}' y1='{y(tick):.1f}' y2='{y(tick):.1f}' stroke='#ddd'/>"
            f"<text x='{left - 4}' y='{y(tick) + 4:.1f}' font-size='10' text-anchor='end'>{tick:,.0f}</text>"
        )
    for year in range(first.year, last.year + 1):
        t = pd.Timestamp(year, 1, 1)
        if first <= t <= last:
            parts.append(
                f"<text x='{x(t):.1f}' y='{height - 6}' font-size='10' text-anchor='middle'>{year}</text>"
                f"<line x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{top}' y2='{height - bottom}' stroke='#eee'/>"
            )
    legend = []
    for i, (line, group) in enumerate(trend.groupby("line", sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        dash = " stroke-dasharray='5,3'" if str(group["kind"].iloc[0]) == "intervention" else ""
        group = group.sort_values("period")
        segments, current = [], []
        for t, v in zip(pd.to_datetime(group["period"]), group["count"], strict=True):
            if pd.isna(v):
                if current:
                    segments.append(current)
                current = []
            else:
                current.append(f"{x(t):.1f},{y(float(v)):.1f}")
        if current:
            segments.append(current)
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                parts.append(f"<circle cx='{cx}' cy='{cy}' r='1.5' fill='{colour}'/>")
            else:
                parts.append(
                    f"<polyline points='{' '.join(seg)}' fill='none' stroke='{colour}' "
                    f"stroke-width='1.5'{dash}/>"
                )
        legend.append(
            "<span style='white-space:nowrap;margin-right:1em'><svg width='18' height='8'>"
            "<line x1='0' x2='18' "
            f"y1='4' y2='4' stroke='{colour}' stroke-width='2'{dash}/></svg> {html.escape(str(line))}</span> "
        )
    svg = (
        f"<svg id='trend-chart' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}' role='img' aria-label='Records per month'>"
        + "".join(parts)
        + "</svg>"
    )
    return svg + f"<div style='font-size:8.5pt'>{''.join(legend)}</div>"


def recent_trend(trend: pd.DataFrame, periods: int = 12) -> pd.DataFrame:
    """The last ``periods`` periods of ``trends.agency_trend`` as a table to read: one row
    per agency, dataset and kind, one column per period, each cell its label ("<5" where
    suppressed, "no data" where the dataset does not cover the period)."""
    index = ["agency", "dataset", "kind"]
    if not len(trend):
        return pd.DataFrame(columns=index)
    last = sorted(trend["period"].unique())[-periods:]
    recent = trend[trend["period"].isin(last)].assign(
        column=lambda t: t["period"].dt.strftime("%b %Y"), dataset=lambda t: t["title"]
    )
    wide = recent.pivot_table(index=index, columns="column", values="label", aggfunc="first")
    order = [pd.Timestamp(p).strftime("%b %Y") for p in last]
    return wide.reindex(columns=order).fillna("no data").reset_index().rename_axis(columns=None)


def to_json(p: WardProfile, rule: Rule = DEFAULT_RULE) -> str:
    """The profile's figures as JSON for an analyst, all of them released ones: a suppressed
    count is null with its label "<5", never a number."""
    profile = {
        "ward": p.code,
        "period": p.period,
        "headline": {k: _plain(v) for k, v in p.head.items()},
        "hot_demand_agencies": p.agencies,
        "intervention_coverage": p.coverage,
        "trend": _records(p.trend),
        "categories": _records(p.categories),
        "hotspots": _records(p.hotspots),
        "summary": [{"text": x.text, "figures": x.figures} for x in p.briefing.sentences]
        if p.briefing
        else [],
        "ranking": _records(ranking_table(p.briefing.ranking).drop(columns="ward_code"))
        if p.briefing is not None and len(p.briefing.ranking)
        else [],
        "disclosure": rule.as_dict(),
    }
    return json.dumps(profile, indent=1, allow_nan=False)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value):
    """A JSON value: numpy scalars as Python ones, NaN as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    return value


def build(
    con,
    f,
    code: str,
    *,
    res: int = 8,
    k: int = 1,
    rule: Rule = DEFAULT_RULE,
    own_windows: bool = True,
) -> WardProfile:
    """The ward profile the page shows, built straight from the warehouse (for the command
    line's ``profile`` and for tests): headline, trend, categories, hotspot cells and areas,
    and the briefing."""
    from app.aggregate import category_counts, time_series, ward_aggregate
    from app.areas import areas_for
    from app.briefing import ward_briefing
    from app.emerging import emerging_hotspots
    from app.filters import datasets_in, validate
    from app.hotspots import hex_hotspots
    from app.overlap import cell_classes, ward_agencies
    from app.quality import ward_shapes
    from app.trends import agency_trend, coverage_note

    f = validate(con, f)
    shapes = ward_shapes(con).set_index("ward_code")
    if code not in shapes.index:
        raise ValueError(f"no ward has the code {code!r}")
    geojson = shapes.loc[code, "geojson"]
    selected = datasets_in(con, f)
    kind = headline_kind(f.kinds, set(selected["kind"]))
    wards = ward_aggregate(con, f.with_(kinds=(kind,)), rule, by_dataset=False)
    head = headline(wards, code, kind)
    period = f"{wards['period_start'].iloc[0]} to {wards['period_end'].iloc[0]}"
    trend = agency_trend(time_series(con, f, "month", ward=code, rule=rule), "month", rule)
    spots, _ = hex_hotspots(con, f, res, k, rule)
    classes = cell_classes(con, f, res, k, rule)
    patterns = emerging_hotspots(con, f, res, "month", k, rule)
    table, coverage = hotspots_in_ward(spots, classes, patterns, geojson, rule)
    agencies = ward_agencies(con, f, res, k, rule, classes=classes).set_index("ward_code")
    cats = category_counts(con, f, ward=code, rule=rule)
    cats["records"] = [rule.label(v, s) for v, s in zip(cats["count"], cats["suppressed"], strict=True)]
    cats = cats[["agency", "title", "kind", "category", "records"]].rename(columns={"title": "dataset"})
    interventions = "intervention" in set(selected["kind"])
    demand = f.with_(kinds=("demand",))
    areas = (
        areas_for(
            con,
            demand,
            res,
            hex_hotspots(con, demand, res, k, rule)[0],
            classes,
            emerging_hotspots(con, demand, res, "month", k, rule),
            rule,
        )
        if (selected["kind"] == "demand").any()
        else None
    )
    brief = ward_briefing(
        con, f, code, rule=rule, areas=areas, interventions=interventions, own_windows=own_windows
    )
    return WardProfile(
        code,
        head,
        str(agencies.loc[code, "hot_demand_agencies"] or ""),
        trend,
        cats,
        table,
        coverage,
        period,
        coverage_note(con, f) or "",
        interventions,
        briefing=brief,
        ward_geojson=geojson,
        neighbours=tuple(
            (str(r.ward_name), r.geojson) for r in shapes.drop(index=code).itertuples() if r.geojson
        ),
    )


class PrintError(RuntimeError):
    """The PDF could not be printed (no Chromium on the machine, or it failed)."""


def print_pdf(page: str, out: Path, timeout: float = 120) -> Path:
    """The printable page as a PDF on A4, printed by the machine's headless Chromium from a
    local file: no network and no extra dependency (Debian's ``chromium``; another binary can
    be named by ``COMMON_GROUND_CHROMIUM``)."""
    browser = os.environ.get("COMMON_GROUND_CHROMIUM") or next(
        (
            found
            for name in ("chromium", "chromium-browser", "google-chrome")
            if (found := shutil.which(name))
        ),
        None,
    )
    if not browser:
        raise PrintError("no Chromium found to print the PDF with (install chromium, or save the HTML)")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ward-profile-") as tmp:
        source = Path(tmp) / "profile.html"
        source.write_text(page, encoding="utf-8")
        command = [
            browser,
            "--headless=new",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(tmp) / 'browser'}",
            f"--print-to-pdf={out}",
            source.as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        try:
            subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PrintError(f"Chromium could not print the PDF: {exc}") from None
    if not out.exists() or out.stat().st_size == 0:
        raise PrintError(f"Chromium did not write {out}")
    return out
