"""Early warning: places and agencies whose latest whole month ran higher than expected.

A month is "higher than expected" for a place (a ward, or a hotspot area) and a demand dataset's
agency when its count lies above the upper bound of a prediction interval made WITHOUT that
month: the forecast comes from the months before it only, by the simple baseline that the place
kind's own rolling-origin backtest over those months chose (``app.forecast``; the model is not
refitted for every month and place kind), and the interval is a negative-binomial one whose
dispersion comes from that backtest's errors. Each place is judged against its own history, so
a persistent hotspot that is as busy as usual is not flagged.

The interval is wider than the forecasts' 80 % (``WARNING_LEVEL``): a list that service managers
act on should not hold one place in ten by chance every month (on the full demo city, 95 % left
46 chance flags in 5,152 ward checks, 99 % left 2, while Harbour Mill's planted rise was flagged
from its first whole month at both). A month also needs at least
``MIN_RECORDS`` records: a rise from one record to four is no warning.

Protected datasets (partners, restricted): the history, the forecast, the observed month and the
decision all use released figures only (``Rule.release``: suppressed below the threshold, others
perturbed and rounded), so a warning says nothing the released figures do not. A suppressed
month is never higher than expected, whatever lies behind it, so a flag never tells a small
count from zero. The expected value and interval are shown as released forecasts are: the
expected value rounded to the base (below the threshold: "fewer than 5"), the interval widened
outwards to the base; and the comparison is with that shown upper bound, so "15 against 5 to 10"
is what the reader sees and what was tested.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import h3
import numpy as np
import pandas as pd
import scipy.sparse as sp

from app import forecast as fc
from app.access import LOCAL, AccessContext
from app.aggregate import cell_month_counts, check_hex_res, ward_month_counts
from app.disclosure import DEFAULT_RULE, PROTECTED, Rule
from app.filters import Filter, datasets_in, validate

WARNING_LEVEL = 0.99  # central prediction interval a month must lie above (upper bound: 99.5 %)
MIN_RECORDS = 5  # fewer records in the month are never a warning
BACKTEST_MONTHS = 24  # origins of the backtest that chooses each unit's method
RECENT_MONTHS = 12  # how far back the page's first view looks for a month with flags
AREA_RES = 8  # H3 resolution of the hotspot areas' cells, as the hotspots page uses
KINDS = {"ward": "Ward", "area": "Hotspot area"}

COLUMNS = [
    "place_kind",
    "place_id",
    "place_name",
    "dataset",
    "dataset_title",
    "agency",
    "month",
    "observed",
    "observed_suppressed",
    "expected",
    "lower",
    "upper",
    "expected_suppressed",
    "higher_than_expected",
    "method",
    "backtest_pai_1",
    "sentence",
    "h3_cells",
]


@dataclass
class PlaceSeries:
    """Monthly counts of one demand unit for a set of places, with what a release needs: the
    stand-in matrix statistics use, the released figures (NaN where suppressed) and which."""

    series: fc.Series  # values: exact (open) or released with stand-ins (protected)
    shown: np.ndarray  # released figures, NaN where suppressed (exact counts for open data)
    suppressed: np.ndarray  # bool, places x months


# Places ------------------------------------------------------------------------------------


def ward_places(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every ward as a place: place_id (its code) and place_name."""
    wards = con.execute("SELECT code, name FROM wards ORDER BY code").df()
    return pd.DataFrame({"place_id": wards["code"], "place_name": wards["name"]})


def area_places(areas: pd.DataFrame) -> pd.DataFrame:
    """Hotspot areas (``app.areas.hotspot_areas``: area_id, name, cells) as places."""
    if areas is None or not len(areas):
        return pd.DataFrame({"place_id": [], "place_name": [], "cells": []})
    return pd.DataFrame(
        {
            "place_id": areas["area_id"].astype(str).to_numpy(),
            "place_name": areas["name"].astype(str).to_numpy(),
            "cells": [list(map(int, c)) for c in areas["cells"]],
        }
    )


def hotspot_areas(con: duckdb.DuckDBPyConnection, f: Filter, res: int = AREA_RES) -> pd.DataFrame:
    """The hot areas (``app.areas``) of the filter's demand over its whole period: the places
    a service manager already knows as hotspots. Only their outline comes from the whole
    period; each month is still judged against the months before it."""
    from app.areas import areas_for
    from app.hotspots import hex_hotspots

    demand = validate(con, f.with_(kinds=("demand",)))
    spots, _ = hex_hotspots(con, demand, check_hex_res(res))
    frame = areas_for(con, demand, res, spots)
    if frame is None or "side" not in frame:  # no significant cell: no area
        return pd.DataFrame(columns=["area_id", "name", "cells"])
    return frame[frame["side"] == "hot"].reset_index(drop=True)


# Series ------------------------------------------------------------------------------------


def units(con: duckdb.DuckDBPyConnection, f: Filter | None = None, kind: str = "demand") -> pd.DataFrame:
    """The (dataset, agency) pairs of ``kind`` that the filter selects (every one by default),
    with each dataset's title and sharing, and whether its file names several agencies (then
    each agency is a unit of its own)."""
    f = validate(con, f or Filter())
    selected = datasets_in(con, f)
    chosen = selected[selected["kind"] == kind]
    if chosen.empty:
        return pd.DataFrame(columns=["dataset", "agency", "title", "sharing", "several"])
    from app.aggregate import dataset_units

    pairs = dataset_units(con, Filter(datasets=tuple(chosen["id"]), access=f.access))
    titles = dict(con.execute("SELECT id, coalesce(title, id) FROM datasets").fetchall())
    pairs = pairs.assign(
        title=pairs["dataset"].map(titles), several=pairs.groupby("dataset")["agency"].transform("count") > 1
    )
    if f.agencies:
        pairs = pairs[pairs["agency"].isin(f.agencies)]
    return pairs[["dataset", "agency", "title", "sharing", "several"]].reset_index(drop=True)


def place_counts(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    places: pd.DataFrame,
    kind: str,
    months: np.ndarray,
    res: int = AREA_RES,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact counts (places x ``months``) of the filter's records and each group's key, for
    releasing: engine only. Wards from the records' ward, areas as the sum of their cells."""
    ids = places["place_id"].astype(str).to_numpy()
    if kind == "ward":
        counts = ward_month_counts(con, f).rename(columns={"ward_code": "place"})
    else:
        raw = cell_month_counts(con, f, check_hex_res(res))
        owner = {c: pid for pid, cells in zip(ids, places["cells"], strict=True) for c in cells}
        raw["place"] = [owner.get(int(c)) for c in raw["h3"].astype("uint64")]
        counts = raw.dropna(subset=["place"])
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    exact = np.zeros((len(ids), len(months)))
    keys = np.zeros(exact.shape, dtype=np.uint64)
    if len(counts) and len(months):
        month = counts["month"].to_numpy().astype("datetime64[M]")
        known = np.isin(counts["place"].astype(str).to_numpy(), sorted_ids)
        inside = known & (month >= months[0]) & (month <= months[-1])
        counts, month = counts[inside], month[inside]
        rows = order[np.searchsorted(sorted_ids, counts["place"].astype(str).to_numpy())]
        cols = (month - months[0]).astype(int)
        np.add.at(exact, (rows, cols), counts["count"].to_numpy(dtype=np.float64))
        np.bitwise_xor.at(keys, (rows, cols), counts["cell_key"].to_numpy(dtype=np.uint64))
    return exact, keys


def place_series(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    agency: str | None,
    places: pd.DataFrame,
    kind: str,
    res: int = AREA_RES,
    rule: Rule = DEFAULT_RULE,
    access: AccessContext = LOCAL,
) -> PlaceSeries:
    """Monthly counts of ``dataset`` (one ``agency`` of it, or all) for each place. A protected
    area's month is released from its exact total and its records' keys, as any count is: a
    sum of released cell figures would not be a released figure."""
    f = validate(con, Filter(datasets=(dataset,), agencies=(agency,) if agency else (), access=access))
    sharing = datasets_in(con, f).iloc[0]["sharing"]
    months, note = fc.covered_months(con, f)
    exact, keys = place_counts(con, f, places, kind, months, res)
    protected = sharing in PROTECTED
    if protected:
        shown, suppressed = rule.release(exact, True, keys)
        values = rule.stand_in(shown, suppressed)
    else:
        shown, suppressed, values = exact, np.zeros(exact.shape, dtype=bool), exact
    # Each place is judged against its own history: the series has no neighbours.
    ids = places["place_id"].astype(str).to_numpy()
    neighbours = sp.csr_matrix((len(ids), len(ids)))
    return PlaceSeries(fc.Series(ids, months, values, neighbours, protected, note), shown, suppressed)


def cut(ps: PlaceSeries, upto: int) -> fc.Series:
    """The series of the months before index ``upto`` only: what a forecast of that month sees."""
    s = ps.series
    return fc.Series(s.places, s.months[:upto], s.values[:, :upto], s.neighbours, s.protected)


# The check ---------------------------------------------------------------------------------


def check(ps: PlaceSeries, at: int, rule: Rule = DEFAULT_RULE, with_model: bool = False) -> pd.DataFrame:
    """Every place's month ``at`` (an index of the series' months) against the forecast made
    from the months before it: expected, interval and whether the month lies above it."""
    history = cut(ps, at)
    result = fc.backtest(history, BACKTEST_MONTHS, with_model=with_model)
    mean = fc.expected(history, result.method, 1)
    alpha = result.dispersion.get(result.method, 0.0)
    low, high = fc.interval(mean, alpha, WARNING_LEVEL)
    observed = ps.shown[:, at]
    suppressed_obs = ps.suppressed[:, at]
    if ps.series.protected:
        expected, lower, upper, small = shown_forecast(mean, low, high, rule)
        # The bound shown; under a suppressed forecast, the bound widened to the base.
        bar = np.where(small, rule.base * np.ceil(high / rule.base), upper)
    else:
        expected, lower, upper = np.round(mean, 2), low, high
        small = np.zeros(len(mean), dtype=bool)
        bar = high
    higher = ~suppressed_obs & (np.nan_to_num(observed) >= MIN_RECORDS) & (np.nan_to_num(observed) > bar)
    month = ps.series.months[at].astype("datetime64[D]").astype(dt.date)
    return pd.DataFrame(
        {
            "place_id": ps.series.places,
            "month": month,
            "observed": np.where(suppressed_obs, np.nan, observed),
            "observed_suppressed": suppressed_obs,
            "expected": expected,
            "lower": lower,
            "upper": upper,
            "expected_suppressed": small,
            "higher_than_expected": higher,
            "method": result.method,
            "backtest_pai_1": round(float(result.scores[result.method]["pai_1"]), 2),
        }
    )


def shown_forecast(mean, low, high, rule: Rule):
    """A forecast from released figures as it is shown: the expected value rounded to the base
    and suppressed below the threshold (with its interval), the interval widened outwards to
    the base so it covers at least what it did."""
    small = mean < rule.threshold
    floor = rule.base * np.ceil(rule.threshold / rule.base)
    expected = np.maximum(rule.base * np.floor(mean / rule.base + 0.5), floor)
    lower = rule.base * np.floor(low / rule.base)
    upper = rule.base * np.ceil(high / rule.base)
    hide = np.where(small, np.nan, 1.0)
    return expected * hide, lower * hide, upper * hide, small


def month_index(ps: PlaceSeries, month: str | dt.date | None) -> int | None:
    """The index of ``month`` ("2024-10", a date) in the series, the latest whole month when
    None; None when the series does not cover it with ``fc.HISTORY`` months before it."""
    months = ps.series.months
    if not len(months):
        return None
    target = months[-1] if month is None else np.datetime64(str(month)[:7], "M")
    hits = np.flatnonzero(months == target)
    if not hits.size:
        return None
    at = int(hits[0])
    return at if at > fc.HISTORY else None


def checks(
    con: duckdb.DuckDBPyConnection,
    f: Filter | None = None,
    month: str | dt.date | None = None,
    areas: pd.DataFrame | None = None,
    kinds: tuple[str, ...] = ("ward", "area"),
    rule: Rule = DEFAULT_RULE,
    own_areas: dict[str, pd.DataFrame] | None = None,
    own_series: dict[tuple, PlaceSeries] | None = None,
) -> pd.DataFrame:
    """Every place of every kind, for every demand unit of the filter: its latest whole month
    (or ``month``) against what was expected. One row per place, unit and month. Hotspot areas
    are each dataset's own (where its records concentrate over its whole period) unless
    ``areas`` are given; ``own_areas`` (dataset -> places) and ``own_series`` ((dataset,
    agency, kind) -> monthly series) keep them between calls for the same filter, as neither
    depends on the month judged (each check cuts the series before its month)."""
    frames = []
    wards = ward_places(con)
    own_areas = {} if own_areas is None else own_areas
    own_series = {} if own_series is None else own_series
    access = f.access if f is not None else LOCAL  # every figure below is the viewer's
    for unit in units(con, f).itertuples():
        agency = unit.agency if unit.several else None
        for kind in kinds:
            if kind == "ward":
                where = wards
            else:  # each dataset's own hotspot areas, unless the caller gives the areas
                if unit.dataset not in own_areas:
                    own = Filter(datasets=(unit.dataset,), access=access)
                    given = areas if areas is not None else hotspot_areas(con, own)
                    own_areas[unit.dataset] = area_places(given)
                where = own_areas[unit.dataset]
            if not len(where):
                continue
            key = (unit.dataset, agency, kind)
            if key not in own_series:
                own_series[key] = place_series(
                    con, unit.dataset, agency, where, kind, rule=rule, access=access
                )
            ps = own_series[key]
            at = month_index(ps, month)
            if at is None:
                continue
            out = check(ps, at, rule)
            out = out.merge(where[["place_id", "place_name"]], on="place_id", how="left")
            cells = dict(zip(where["place_id"], where["cells"], strict=True)) if kind == "area" else {}
            out["h3_cells"] = [[h3.int_to_str(int(c)) for c in cells.get(p, [])] for p in out["place_id"]]
            frames.append(
                out.assign(
                    place_kind=kind, dataset=unit.dataset, dataset_title=unit.title, agency=unit.agency
                )
            )
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    frame["sentence"] = [sentence(r, rule) for r in frame.itertuples(index=False)]
    return frame[COLUMNS]


def warnings(
    con: duckdb.DuckDBPyConnection,
    f: Filter | None = None,
    month: str | dt.date | None = None,
    areas: pd.DataFrame | None = None,
    kinds: tuple[str, ...] = ("ward", "area"),
    rule: Rule = DEFAULT_RULE,
    own_areas: dict[str, pd.DataFrame] | None = None,
    own_series: dict[tuple, PlaceSeries] | None = None,
) -> pd.DataFrame:
    """The places and agencies higher than expected, the furthest above their bound first."""
    return flags_of(checks(con, f, month, areas, kinds, rule, own_areas, own_series), rule)


def flags_of(frame: pd.DataFrame, rule: Rule = DEFAULT_RULE) -> pd.DataFrame:
    """The rows of ``checks`` higher than expected, the furthest above their bound first."""
    flagged = frame[frame["higher_than_expected"].astype(bool)].copy()
    over = flagged["observed"] / flagged["upper"].fillna(rule.threshold).clip(lower=1.0)
    return (
        flagged.assign(_over=over)
        .sort_values(["_over", "observed"], ascending=False)
        .drop(columns="_over")
        .reset_index(drop=True)
    )


@dataclass
class Recent:
    """What a manager opening the early-warning page sees first (``recent_warnings``)."""

    latest: list[str]  # the months ("2025-12") the latest check judged: each dataset's latest
    month: str | None  # the month whose flags ``frame`` holds; None when no month searched has any
    frame: pd.DataFrame  # ``warnings`` of ``month`` (of the latest check when it has flags)
    searched: int  # how many months were judged to find it, the latest check counted as one


def recent_warnings(
    con: duckdb.DuckDBPyConnection,
    f: Filter | None = None,
    back: int = RECENT_MONTHS,
    rule: Rule = DEFAULT_RULE,
) -> Recent:
    """The flags of each dataset's latest whole month; when there are none, those of the most
    recent earlier month that has any, looking back at most ``back`` months in all. A quiet
    latest month is good news, but a page that then shows nothing hides the rise that began a
    few months ago and is still worth a look (on the demo city, Harbour Mill's)."""
    own: dict[str, pd.DataFrame] = {}
    series: dict[tuple, PlaceSeries] = {}
    frame = checks(con, f, None, rule=rule, own_areas=own, own_series=series)
    latest = sorted({str(m)[:7] for m in frame["month"]}, reverse=True)
    flagged = flags_of(frame, rule)
    if len(flagged) or not latest:
        return Recent(latest, latest[0] if latest else None, flagged, 1)
    searched = 1
    for month in months_available(con, f):
        if searched >= back:
            break
        if latest == [month]:  # every dataset was judged in it by the latest check
            continue
        searched += 1
        flagged = warnings(con, f, month, rule=rule, own_areas=own, own_series=series)
        if len(flagged):
            return Recent(latest, month, flagged, searched)
    return Recent(latest, None, flagged.iloc[0:0], searched)


def month_words(month: str | dt.date) -> str:
    """ "2025-08" (or a date) as people say it: "August 2025"."""
    return f"{pd.Timestamp(str(month)[:7] + '-01'):%B %Y}"


# Words -------------------------------------------------------------------------------------


def figure(value: float) -> str:
    return f"{value:,.0f}"


def expected_words(row, rule: Rule = DEFAULT_RULE) -> str:
    """ "10 to 25 expected", or "fewer than 5 expected" for a suppressed protected forecast."""
    if bool(row.expected_suppressed):
        return f"fewer than {rule.threshold} expected"
    return f"{figure(row.lower)} to {figure(row.upper)} expected"


def sentence(row, rule: Rule = DEFAULT_RULE) -> str:
    """One row in words: "Higher than expected: 42 records in October 2024 against 10 to 25
    expected" (or "Within expected: ..." / "Fewer than 5 records in ...")."""
    month = f"{pd.Timestamp(row.month):%B %Y}"
    if bool(row.observed_suppressed):
        return f"Fewer than {rule.threshold} records in {month}; {expected_words(row, rule)}"
    head = "Higher than expected" if bool(row.higher_than_expected) else "As expected"
    return f"{head}: {figure(row.observed)} records in {month} against {expected_words(row, rule)}"


def ward_sentence(
    con: duckdb.DuckDBPyConnection,
    ward_code: str,
    flags: pd.DataFrame | None = None,
    f: Filter | None = None,
    rule: Rule = DEFAULT_RULE,
) -> str | None:
    """The ward profile's line, or None when nothing in the ward ran higher than expected:
    "Higher than expected in December 2025: environmental reports (Fairhaven City Council), 42
    records against 10 to 25 expected." ``flags`` (from ``warnings``) saves recomputing."""
    if flags is None:
        flags = warnings(con, f, kinds=("ward",), rule=rule)
    mine = flags[(flags["place_kind"] == "ward") & (flags["place_id"] == ward_code)]
    if mine.empty:
        return None
    parts = []
    for month, group in mine.groupby("month", sort=True):
        items = [
            f"{r.dataset_title} ({r.agency}), {figure(r.observed)} records against {expected_words(r, rule)}"
            for r in group.itertuples(index=False)
        ]
        parts.append(f"Higher than expected in {pd.Timestamp(month):%B %Y}: " + "; ".join(items) + ".")
    return " ".join(parts)


def describe(rule: Rule = DEFAULT_RULE) -> str:
    """How a place comes to be flagged, in words, for the page and the download's notes."""
    return (
        "A place is higher than expected when its latest whole month lies above the "
        f"{WARNING_LEVEL:.0%} prediction interval of a forecast made from the months before it only, "
        "by the simple method (last 12 months, all history, smoothed or same month last year) "
        "that its own backtest over the 24 months before chose, and holds at least "
        f"{MIN_RECORDS} records. Each place is judged against its own history, so a place that is "
        "as busy as usual is not flagged. Partners' and restricted datasets are judged on released "
        f"figures only: a month of fewer than {rule.threshold} records is never flagged. The "
        "statistical model that the forecast export also tries is not tried here, to keep the page "
        "quick: on a place's own short history it seldom beats the simple methods."
    )


def map_frame(con: duckdb.DuckDBPyConnection, flags: pd.DataFrame) -> pd.DataFrame:
    """The flagged rows as the "Higher than expected" map layer draws them: wards with their
    outline (``geojson``), areas with their cells (``h3_cells``)."""
    shapes = con.execute("SELECT code AS place_id, geojson FROM wards").df()
    out = flags.merge(shapes, on="place_id", how="left") if len(flags) else flags.assign(geojson=None)
    out.loc[out["place_kind"] != "ward", "geojson"] = None
    return out.reset_index(drop=True)


def months_available(con: duckdb.DuckDBPyConnection, f: Filter | None = None) -> list[str]:
    """The whole months ("2024-10") some demand unit can be checked in, latest first: each
    needs more than ``fc.HISTORY`` months before it."""
    found: set[str] = set()
    for dataset in units(con, f)["dataset"].unique():
        months, _ = fc.covered_months(con, Filter(datasets=(dataset,), access=f.access if f else LOCAL))
        found.update(str(m) for m in months[fc.HISTORY + 1 :])
    return sorted(found, reverse=True)
