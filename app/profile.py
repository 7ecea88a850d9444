"""A ward profile as plain data and as a printable HTML page (no Streamlit here)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from app.disclosure import DEFAULT_RULE, Rule
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


def to_html(p: WardProfile, rule: Rule = DEFAULT_RULE) -> str:
    """A self-contained page a councillor can print or send on (no script, so it opens and
    prints anywhere, offline included)."""

    def table(frame: pd.DataFrame) -> str:
        return frame.to_html(index=False, border=0, classes="t", na_rep="", escape=True)

    head, spots = p.head, p.hotspots
    if {"z", "p_fdr"} <= set(spots.columns):
        spots = spots.assign(z=spots["z"].round(2), p_fdr=spots["p_fdr"].map("{:.1e}".format))
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
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Ward profile: {name}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}} .t{{border-collapse:collapse}}
.t td,.t th{{border-bottom:1px solid #ccc;padding:2px 8px;text-align:left}} small{{color:#555}}
@media print{{body{{margin:0}}}}</style></head><body>
<h1>{name} <small>({html.escape(p.code)})</small></h1>
<p><small>{html.escape(p.period)}</small></p>
<h2>Headline: {measure.lower()}</h2>
<p>{RECORDS.get(head.get("measure"), "Records")}: <b>{count}</b>{rates} · change on the previous period
<b>{html.escape(change_text(head))}</b> <small>({html.escape(change_sentence(head))})</small></p>{spans}
<h2>The last twelve months per dataset</h2>{table(recent_trend(p.trend))}{spans}
<h2>Agencies whose demand is hot here</h2><p>{html.escape(p.agencies or "none")}</p>
<h2>Hotspots in the ward and their intervention coverage</h2><p>{html.escape(cover)}</p>{table(spots)}
<h2>Categories</h2>{table(p.categories)}
<p><small>{html.escape(rule.describe())}</small></p></body></html>"""


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
