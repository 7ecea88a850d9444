"""Where to send resources first: places ranked by the demand expected next month.

A service manager picks the agencies whose demand matters to the task and a weight for each
(a fire-safety team may weigh fire incidents three times and fly-tipping once). Each agency's
demand in each place (ward or hotspot area) is forecast by ``app.forecast`` with the method its
own backtest chose; a place's score is the weighted sum of those expected counts. Beside the
score stands what is already there: the interventions each agency made in the place over the
last twelve months, and whether the place's demand hotspots are served, unserved or the
interventions lie outside need (``app.overlap``'s classes).

Protected datasets enter as released forecasts: an expected count under the threshold counts
as the stand-in statistics use (2, the middle of 0 to 4) and reads "fewer than 5"; others are
rounded to the base. Intervention counts are released from their exact twelve-month totals,
and a protected agency is named in a place only where its figure is released.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import h3
import numpy as np
import pandas as pd

from app import early_warning as ew
from app import forecast as fc
from app.access import LOCAL, AccessContext
from app.disclosure import DEFAULT_RULE, PROTECTED, SUPPRESSED_STAND_IN, Rule
from app.filters import Filter, datasets_in, validate

INTERVENTION_MONTHS = 12  # how far back "what each agency does here" looks
STATUS_ORDER = ["unserved", "served", "outside need", "no intervention data", "no hotspot"]


@dataclass
class Ranking:
    frame: pd.DataFrame  # one row per place, best first (``COLUMNS`` and per-unit figures)
    units: pd.DataFrame  # per demand unit: dataset, agency, weight, method, backtest PAI 1 %
    description: str


COLUMNS = [
    "rank",
    "place_kind",
    "place_id",
    "place_name",
    "score",
    "expected_demand",
    "intervention_status",
    "interventions",
]


def demand_agencies(con: duckdb.DuckDBPyConnection, access: AccessContext = LOCAL) -> list[str]:
    """The agencies with demand data to forecast that the viewer may see, for the page's picker."""
    return sorted(set(ew.units(con, Filter(access=access))["agency"]))


def rank(
    con: duckdb.DuckDBPyConnection,
    weights: dict[str, float],
    kind: str = "ward",
    horizon: str = "next month",
    res: int = ew.AREA_RES,
    rule: Rule = DEFAULT_RULE,
    access: AccessContext = LOCAL,
) -> Ranking:
    """Places ranked by the weighted demand expected over ``horizon`` across the agencies in
    ``weights`` (agency -> weight, zero or more); a place's interventions beside it. Only the
    datasets ``access`` (the viewer) may see take part, demand and interventions alike."""
    if horizon not in fc.HORIZONS:
        raise ValueError(f"horizon must be one of {', '.join(fc.HORIZONS)}")
    picked = {a: float(w) for a, w in weights.items() if w and float(w) > 0}
    if not picked:
        raise ValueError("pick at least one agency with a weight above zero")
    units = ew.units(con, Filter(agencies=tuple(picked), access=access))
    if units.empty:
        raise ValueError("none of the chosen agencies has demand data to forecast")
    places = _places(con, kind, units, res, access)
    if places.empty:
        raise ValueError("no hotspot area to rank for the chosen agencies")
    score = np.zeros(len(places))
    words: list[list[str]] = [[] for _ in range(len(places))]
    per_unit, columns = [], {}
    for unit in units.itertuples():
        ps = ew.place_series(
            con, unit.dataset, unit.agency if unit.several else None, places, kind, res, rule, access
        )
        if len(ps.series.months) <= fc.HISTORY:
            continue
        result = fc.backtest(ps.series, ew.BACKTEST_MONTHS, with_model=False)
        table = fc.forecast(ps.series, result, rule)
        table = table[table["horizon"] == horizon].reset_index(drop=True)
        weight = picked[unit.agency]
        counted = np.where(table["suppressed"], SUPPRESSED_STAND_IN, table["expected"].fillna(0))
        score += weight * counted.astype(float)
        key = unit.dataset if not unit.several else f"{unit.dataset}_{_slug(unit.agency)}"
        columns[f"expected_{key}"] = table["expected"].to_numpy()
        columns[f"lower_{key}"] = table["lower"].to_numpy()
        columns[f"upper_{key}"] = table["upper"].to_numpy()
        columns[f"suppressed_{key}"] = table["suppressed"].to_numpy()
        for i, row in enumerate(table.itertuples(index=False)):
            words[i].append(f"{unit.title} ({unit.agency}): {_expected_words(row, rule)}")
        per_unit.append(
            {
                "dataset": unit.dataset,
                "title": unit.title,
                "agency": unit.agency,
                "weight": weight,
                "method": result.method,
                "why": result.why,
                "backtest_pai_1": round(float(result.scores[result.method]["pai_1"]), 2),
                "period_start": table["period_start"].iloc[0],
                "period_end": table["period_end"].iloc[0],
            }
        )
    if not per_unit:
        raise ValueError(f"the chosen agencies' data cover {fc.HISTORY} months or fewer: too few to forecast")
    status = intervention_status(con, places, kind, units, res, rule, access)
    done = interventions_by_agency(con, places, kind, res, rule, access)
    frame = pd.DataFrame(
        {
            "place_kind": kind,
            "place_id": places["place_id"].to_numpy(),
            "place_name": places["place_name"].to_numpy(),
            # Where each area lies, for a link to the map (a ward is found by its code).
            "h3_cells": [[h3.int_to_str(int(c)) for c in cells] for cells in places["cells"]]
            if "cells" in places
            else [[] for _ in range(len(places))],
            "score": np.round(score, 1),
            "expected_demand": ["; ".join(w) for w in words],
            "intervention_status": status,
            "interventions": done,
            **columns,
        }
    )
    frame = frame.sort_values(["score", "place_name"], ascending=[False, True], kind="stable")
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    unit_frame = pd.DataFrame(per_unit)
    return Ranking(frame.reset_index(drop=True), unit_frame, describe(unit_frame, kind, horizon, rule))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _expected_words(row, rule: Rule) -> str:
    if bool(row.suppressed):
        return f"fewer than {rule.threshold} expected"
    return f"{row.expected:,.1f} expected ({row.lower:,.0f} to {row.upper:,.0f})"


def _places(
    con: duckdb.DuckDBPyConnection, kind: str, units: pd.DataFrame, res: int, access: AccessContext = LOCAL
) -> pd.DataFrame:
    if kind == "ward":
        return ew.ward_places(con)
    if kind != "area":
        raise ValueError("places are 'ward' or 'area'")
    areas = ew.hotspot_areas(con, Filter(datasets=tuple(sorted(set(units["dataset"]))), access=access), res)
    return ew.area_places(areas)


# What is already there ---------------------------------------------------------------------


def intervention_status(
    con: duckdb.DuckDBPyConnection,
    places: pd.DataFrame,
    kind: str,
    units: pd.DataFrame,
    res: int = ew.AREA_RES,
    rule: Rule = DEFAULT_RULE,
    access: AccessContext = LOCAL,
) -> list[str]:
    """Per place, from the classes of its cells (the chosen agencies' demand against every
    intervention dataset): "unserved" where any hot demand cell has no concentrated
    intervention, else "served" where interventions are concentrated on hot demand, else
    "outside need" where they are concentrated away from it, else "no hotspot"."""
    from app.overlap import CLASSES, NO_INTERVENTIONS, cell_classes, cell_wards

    interventions = datasets_in(con, Filter(kinds=("intervention",), access=access))["id"].tolist()
    chosen = tuple(sorted(set(units["dataset"]) | set(interventions)))
    f = validate(con, Filter(datasets=chosen, access=access))
    classes = cell_classes(con, f, res, rule=rule)
    if kind == "ward":
        owner = cell_wards(con, classes["cell_lat"], classes["cell_lng"])["ward_code"].to_numpy()
    else:
        lookup = {
            c: pid for pid, cells in zip(places["place_id"], places["cells"], strict=True) for c in cells
        }
        owner = np.array([lookup.get(int(c), "") for c in classes["h3"].astype("uint64")], dtype=object)
    by_place: dict[str, set[str]] = {}
    for place, cls in zip(owner, classes["class"], strict=True):
        if place:
            by_place.setdefault(place, set()).add(cls)
    out = []
    for pid in places["place_id"]:
        found = by_place.get(pid, set())
        if "unserved hotspot" in found:
            out.append("unserved")
        elif found & set(CLASSES[:2]):
            out.append("served")
        elif CLASSES[3] in found:
            out.append("outside need")
        elif NO_INTERVENTIONS in found:
            out.append("no intervention data")
        else:
            out.append("no hotspot")
    return out


def interventions_by_agency(
    con: duckdb.DuckDBPyConnection,
    places: pd.DataFrame,
    kind: str,
    res: int = ew.AREA_RES,
    rule: Rule = DEFAULT_RULE,
    access: AccessContext = LOCAL,
) -> list[str]:
    """Per place, each agency's interventions over the last twelve months they cover, as
    released figures: "Police patrols (Fairhaven Police): 120". A protected agency is named
    only where its figure is released (5 or more), so a missing name means fewer than 5,
    zero included; an open one wherever it made any."""
    found: list[list[str]] = [[] for _ in range(len(places))]
    for unit in ew.units(con, Filter(access=access), kind="intervention").itertuples():
        agencies = (unit.agency,) if unit.several else ()
        f = validate(con, Filter(datasets=(unit.dataset,), agencies=agencies, access=access))
        months, _ = fc.covered_months(con, f)
        if not len(months):
            continue
        months = months[-INTERVENTION_MONTHS:]
        exact, keys = ew.place_counts(con, f, places, kind, months, res)
        total = exact.sum(axis=1)
        key = np.bitwise_xor.reduce(keys, axis=1) if keys.shape[1] else np.zeros(len(total), np.uint64)
        protected = unit.sharing in PROTECTED
        if protected:
            shown, suppressed = rule.release(total, True, key)
        else:
            shown, suppressed = total, total <= 0
        for i in np.flatnonzero(~suppressed):
            found[i].append(f"{unit.title} ({unit.agency}): {shown[i]:,.0f}")
    return ["; ".join(f) if f else "none recorded" for f in found]


def describe(units: pd.DataFrame, kind: str, horizon: str, rule: Rule = DEFAULT_RULE) -> str:
    """How the ranking is made, in words, for the page and the download."""
    places = "wards" if kind == "ward" else "hotspot areas"
    if len(units) == 1:
        r = next(units.itertuples())
        summed = f"of {r.title} ({r.agency}) alone"
    elif units["weight"].nunique() == 1:  # the page's default: every agency counts alike
        summed = "summed with equal weights over " + ", ".join(
            f"{r.title} ({r.agency})" for r in units.itertuples()
        )
    else:
        summed = "summed over " + ", ".join(
            f"{r.title} ({r.agency}) × {r.weight:g}" for r in units.itertuples()
        )
    return (
        f"{places.capitalize()} are ranked by the records expected {horizon}, {summed}. "
        "Each figure is an estimate: the forecast of the simple method (last 12 months, all "
        "history, smoothed or same month last year) that dataset's own backtest chose over the last "
        "24 months, shown with its 80 % interval (the forecast export also tries a statistical "
        "model, used only where it beats these by 10 %). Partners' and restricted datasets "
        f"count as released forecasts (under {rule.threshold}: counted as {SUPPRESSED_STAND_IN:g}). "
        "Beside each place: what each agency's interventions did there in the last 12 months, and "
        "whether its demand hotspots are served (interventions concentrated on them), unserved, or "
        "the interventions lie outside need."
    )
