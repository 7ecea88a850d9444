"""Trends as people read them: released counts per dataset over time, drawn honestly where a
count is suppressed or a file has no data, and a warning when the datasets compared cover
different years. Pure pandas over ``aggregate.time_series`` frames, plus catalogue lookups.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from app.aggregate import FREQS, datasets_in
from app.disclosure import DEFAULT_RULE, PROTECTED, Rule
from app.filters import Filter, covered_spans, period_words, validate

_STEPS = {"day": "D", "week": "7D", "month": "MS"}  # as date_trunc starts them (weeks on Mondays)
TREND_COLUMNS = [
    "period",
    "dataset",
    "title",
    "agency",
    "kind",
    "sharing",
    "line",
    "count",
    "suppressed_datasets",
    "datasets",
    "label",
]


def agency_trend(series: pd.DataFrame, freq: str = "month", rule: Rule = DEFAULT_RULE) -> pd.DataFrame:
    """Released counts per period, one line per dataset (and per agency a file of several
    agencies names), from a ``time_series`` frame, ready to draw grouped by agency.

    Datasets are never added up: one agency's road collisions (a few a month) and street crime
    (hundreds a month, years later) summed into one line would draw a surge out of a new file.
    ``line`` names each line ("Agency: dataset title"). A suppressed count is missing (a gap
    in its line), never 0: the count behind it may be 4. Within a dataset's own span, a period
    with no records is a true zero for an open dataset and a suppressed one for a protected
    dataset, as the rule suppresses zero too; a period the dataset does not cover is a gap
    reading "no data". ``label`` says how to read each figure.
    """
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {', '.join(FREQS)}")
    if not len(series):
        return pd.DataFrame(columns=TREND_COLUMNS)
    if "title" not in series:
        series = series.assign(title=series["dataset"])
    lines = [_line(group, freq) for _, group in series.groupby(["dataset", "agency"], sort=False)]
    out = pd.concat(lines, ignore_index=True).sort_values(["agency", "title", "period"], ignore_index=True)
    out["line"] = out["agency"].astype(str) + ": " + out["title"].astype(str)
    out["label"] = [
        _trend_label(c, s, n, rule.threshold)
        for c, s, n in zip(out["count"], out["suppressed_datasets"], out["datasets"], strict=True)
    ]
    return out[TREND_COLUMNS]


def _line(group: pd.DataFrame, freq: str) -> pd.DataFrame:
    """One dataset's line (of one agency), every period of its span filled in, and the periods
    between its first and last that it does not cover as "no data" gaps."""
    filled = _fill_periods(group, freq)
    filled["suppressed_datasets"] = filled.pop("suppressed").astype(int)
    filled["datasets"] = 1
    return _fill_gaps(filled, freq)


def _fill_periods(group: pd.DataFrame, freq: str) -> pd.DataFrame:
    """One dataset's periods over what it covers (``covered_from`` to ``covered_to`` where the
    frame says, else its first to its last period here), the empty ones filled in."""
    periods = pd.to_datetime(group["period"])
    first, last = periods.min(), periods.max()
    if "covered_from" in group:
        first = min(first, pd.to_datetime(group["covered_from"]).min())
        last = max(last, pd.to_datetime(group["covered_to"]).max())
    span = pd.date_range(first, last, freq=_STEPS[freq])
    full = group.assign(period=periods).set_index("period")[["count", "suppressed"]].reindex(span)
    missing = full["suppressed"].isna().to_numpy()
    protected = group["sharing"].iloc[0] in PROTECTED
    full["count"] = np.where(missing, np.nan if protected else 0.0, full["count"].to_numpy(dtype=float))
    full["suppressed"] = np.where(missing, protected, full["suppressed"].to_numpy(dtype=object)).astype(bool)
    for column in ("dataset", "title", "agency", "kind", "sharing"):
        full[column] = group[column].iloc[0]
    return full.rename_axis("period").reset_index()


def _fill_gaps(line: pd.DataFrame, freq: str) -> pd.DataFrame:
    """A line over every period from its first to its last: a period it has no row for is a
    gap with no datasets behind it, not a straight line drawn across a time without data."""
    span = pd.date_range(line["period"].min(), line["period"].max(), freq=_STEPS[freq])
    full = line.set_index("period").reindex(span).rename_axis("period").reset_index()
    ids = ["dataset", "title", "agency", "kind", "sharing"]
    full[ids] = line[ids].iloc[0].tolist()
    for column in ("suppressed_datasets", "datasets"):
        full[column] = full[column].fillna(0).astype(int)
    return full


def _trend_label(count: float, suppressed: int, datasets: int, threshold: int) -> str:
    if not datasets:
        return "no data"
    if suppressed == datasets:
        return f"<{threshold}"
    shown = f"{count:,.0f}"
    if not suppressed:
        return shown
    plural = "s" if suppressed > 1 else ""
    return f"{shown}, plus <{threshold} in {suppressed} more dataset{plural}"


COVERED = 0.9  # a dataset spanning less of the period than this makes trends across datasets suspect


def coverage_note(con: duckdb.DuckDBPyConnection, f: Filter) -> str | None:
    """A warning when the datasets a filter selects cover different parts of its period.

    A trend, or an emerging-hotspot pattern, over several datasets follows when each of them
    starts and stops as much as it follows demand: Bath's street crime, recorded from October
    2018, makes every place it touches look "intensifying" beside collisions recorded to 2013.
    It begins with each dataset's span in words (``spans_in_words``), so the reader of a
    figure that combines them knows the years behind it. None when one dataset is selected or
    all of them cover at least 90 % of the period."""
    frame = datasets_in(con, validate(con, f)).dropna(subset=["time_min", "time_max"])
    if len(frame) < 2:
        return None
    start = pd.Timestamp(f.start) if f.start else frame["time_min"].min()
    last = pd.Timestamp(f.end) if f.end else frame["time_max"].max()
    end = last.normalize() + pd.Timedelta(days=1)  # the whole of the last day
    if end <= start:
        return None
    lo, hi = frame["time_min"].clip(lower=start), frame["time_max"].clip(upper=end)
    frame["share"] = ((hi - lo).clip(lower=pd.Timedelta(0)) / (end - start)).to_numpy()
    short = frame[frame["share"] < COVERED].sort_values("share")
    if short.empty:
        return None
    listed = "; ".join(
        f"{r.id} {r.time_min:%Y-%m-%d} to {r.time_max:%Y-%m-%d} ({100 * r.share:.0f} %)"
        for r in short.head(3).itertuples()
    )
    more = f" and {len(short) - 3} more" if len(short) > 3 else ""
    shared_lo, shared_hi = lo.max(), hi.min()
    advice = (
        f"they all cover {shared_lo:%Y-%m-%d} to {shared_hi:%Y-%m-%d}: choose that period, or datasets "
        "of the same years"
        if shared_lo < shared_hi
        else "no part of it is covered by all of them: choose datasets of the same years"
    )
    return (
        f"{spans_in_words(con, f)} "
        f"The selected datasets cover different parts of the period {start:%Y-%m-%d} to {last:%Y-%m-%d}: "
        f"{listed}{more}. Trends and hotspot patterns across them follow when each dataset starts "
        f"and stops as well as demand; {advice}."
    )


def spans_in_words(con: duckdb.DuckDBPyConnection, f: Filter) -> str:
    """Each selected dataset's span as people say it, e.g. "Road traffic collisions: Jan 1996
    to Dec 2013", so a figure that adds datasets of different years can be read for what it is."""
    spans = covered_spans(con, validate(con, f))
    listed = "; ".join(f"{r.title}: {period_words(r.first, r.last)}" for r in spans.itertuples())
    return f"The figures combine datasets of different spans ({listed})."
