"""The filter every view and export shares: which records, when, and at what time of day.

A filter is validated against the warehouse (dataset ids, agencies and categories must exist)
and read through ``app.store``, the one place that turns it into queries of the records. It
carries the viewer's ``AccessContext``: a dataset the viewer may not see is, to every function
here and below, a dataset that does not exist.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import duckdb
import pandas as pd

from app import store
from app.access import LOCAL, AccessContext
from app.disclosure import DEFAULT_RULE, PROTECTED, datasets_naming, offered_agencies, rare_agencies
from app.store import facts
from app.store.duckdb import where_sql

KINDS = ("demand", "intervention")


class FilterError(ValueError):
    """A filter that names something the warehouse does not hold, or is self-contradictory."""


@dataclass(frozen=True)
class Filter:
    datasets: tuple[str, ...] = ()  # empty: every dataset
    agencies: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    start: dt.date | None = None  # inclusive
    end: dt.date | None = None  # inclusive: the whole of that day
    weekdays: tuple[int, ...] = ()  # ISO: 1 Monday .. 7 Sunday
    hours: tuple[int, ...] = ()  # 0 .. 23
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north (WGS84)
    # The datasets that the category choice applies to, set by ``validate``: a dataset that
    # holds none of the chosen categories is kept whole, not emptied. None: every dataset.
    category_scope: tuple[str, ...] | None = None
    # The datasets whose "Other agencies" unit is listed whether or not it holds a record, set
    # by the engine (``app.aggregate``) for the files of several agencies a viewer sees
    # released, so that its presence never tells that a rare agency exists.
    other_units: tuple[str, ...] = ()
    # The (dataset, agency) pairs a viewer sees under "Other agencies" (the rare agencies of
    # the files they see released), set by ``validate`` when agencies are chosen: a record is
    # chosen by the agency the viewer sees it under, so choosing "Other agencies" never picks
    # up the records of an ordinary agency elsewhere that bears a rare agency's name, and
    # choosing that name never picks up the rare agency's records. None: not yet decided.
    folded: tuple[tuple[str, str], ...] | None = None
    # Who is looking: which datasets they may see, and which protected ones they see exactly.
    access: AccessContext = LOCAL

    def with_(self, **changes) -> Filter:
        return replace(self, **changes)

    def days(self) -> int | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).days + 1

    def previous(self) -> Filter | None:
        """The period of equal length just before this one, or None without a full period: as
        many whole months before a period of whole months (2012 against 2011, not against a year
        that begins on 31 December), else as many days."""
        days = self.days()
        if days is None:
            return None
        if self.start.day == 1 and (self.end + dt.timedelta(days=1)).day == 1:
            first, last = pd.Period(self.start, "M"), pd.Period(self.end, "M")
            months = (last - first).n + 1
            return self.with_(start=(first - months).start_time.date(), end=self.start - dt.timedelta(days=1))
        return self.with_(start=self.start - dt.timedelta(days=days), end=self.start - dt.timedelta(days=1))

    def describe(self) -> dict:
        return {
            "datasets": list(self.datasets),
            "agencies": list(self.agencies),
            "kinds": list(self.kinds),
            "categories": list(self.categories),
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "weekdays": list(self.weekdays),
            "hours": list(self.hours),
            "bbox": list(self.bbox) if self.bbox else None,
        }


def validate(con: duckdb.DuckDBPyConnection, f: Filter) -> Filter:
    """Check every identifier against the warehouse; return the filter unchanged if sound.

    A dataset outside the viewer's ``visible`` ones is refused in the very words of one that
    does not exist, so the answer never tells that it does."""
    known = {r[0] for r in con.execute("SELECT id FROM datasets").fetchall()}
    known = {d for d in known if f.access.may_see(d)}
    unknown = sorted(set(f.datasets) - known)
    if unknown:
        raise FilterError(
            f"unknown dataset {', '.join(repr(u) for u in unknown)}; known: {', '.join(sorted(known))}"
        )
    if f.agencies:
        agencies = offered_agencies(con, f.access)  # a rare agency of a partner's file is not one
        if set(f.agencies) - agencies:
            raise FilterError(f"unknown agency {sorted(set(f.agencies) - agencies)}")
        if f.folded is None:
            rare = rare_agencies(con, f.access)
            f = f.with_(folded=tuple(sorted((d, a) for d, names in rare.items() for a in names)))
    if set(f.kinds) - set(KINDS):
        raise FilterError(f"kind must be one of {', '.join(KINDS)}")
    if any(not 1 <= d <= 7 for d in f.weekdays):
        raise FilterError("weekdays are 1 (Monday) to 7 (Sunday)")
    if any(not 0 <= h <= 23 for h in f.hours):
        raise FilterError("hours are 0 to 23")
    if f.bbox is not None:
        west, south, east, north = f.bbox
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise FilterError("bbox is west, south, east, north in degrees (west < east, south < north)")
    if f.start and f.end and f.start > f.end:
        raise FilterError(f"the period is reversed: {f.start} is after {f.end}")
    if f.categories and f.category_scope is None:
        released = dataset_categories(con, access=f.access)
        unknown = sorted(set(f.categories) - {c for cats in released.values() for c in cats})
        if unknown:
            raise FilterError(f"unknown category {', '.join(repr(c) for c in unknown)}")
        return f.with_(category_scope=category_scope(released, f.categories))
    return f


def category_scope(released: dict[str, list[str]], categories: tuple[str, ...]) -> tuple[str, ...]:
    """The datasets that hold any of ``categories`` among their released categories
    (``dataset_categories``).

    A category filter applies to these datasets only: choosing the fire service's "Fire"
    must not empty every intervention dataset, which has no such category. The test is the
    released list of categories, never the exact one: whether a partner's dataset is filtered
    must not tell that it holds one to four records of a category."""
    chosen = set(categories)
    return tuple(sorted(d for d, cats in released.items() if chosen & set(cats)))


def where(f: Filter, alias: str = "e") -> tuple[str, dict]:
    """A WHERE clause (without the keyword) over the events, with its parameters
    (``app.store.duckdb.where_sql``: the viewer's datasets only)."""
    return where_sql(f, alias)


def dataset_categories(
    con: duckdb.DuckDBPyConnection,
    threshold: int = DEFAULT_RULE.threshold,
    access: AccessContext | None = None,
) -> dict:
    """Each dataset's categories as released: all of an open dataset's, and those of a
    partners' or restricted dataset that hold at least ``threshold`` of its records. A rarer
    category of a protected dataset is not listed anywhere (filter, tables, exports), so that
    a list of categories never shows that a partner holds one to four records of a kind.
    Only the viewer's datasets (``access``; None: every dataset), a protected one they see
    exactly with all its categories."""
    rows = store.category_counts_by_dataset(con, access)
    out: dict[str, list[str]] = {}
    for dataset, category, n, sharing in rows:
        if sharing not in PROTECTED or n >= threshold:
            out.setdefault(dataset, []).append(category)
    return out


def categories_in(
    con: duckdb.DuckDBPyConnection, datasets: tuple[str, ...], access: AccessContext | None = None
) -> list[str]:
    """The released categories of the given datasets, sorted: the filter's choices."""
    found = dataset_categories(con, access=access)
    return sorted({c for d in datasets for c in found.get(d, [])})


def datasets_in(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    """The catalogue rows that the filter's dataset, agency and kind choices let through, with
    the first and last time of each dataset's records (``time_min``, ``time_max``, from its
    load report). What a filter selects is decided by these choices alone, never by which
    records it finds: a partner's dataset with no record under a filter is still selected.
    A catalogue answer, so an opened store keeps it (``app.store.facts``)."""
    key = ("datasets_in", f.datasets, f.kinds, f.agencies, facts.access_key(f.access))
    return facts.remembered(con, key, lambda: _datasets_in(con, f)).copy()


def _datasets_in(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    frame = store.datasets(con, f.access).drop(columns=["title"])
    if f.datasets:
        frame = frame[frame["id"].isin(f.datasets)]
    if f.kinds:
        frame = frame[frame["kind"].isin(f.kinds)]
    if f.agencies:
        # A file that holds several agencies (agency_column) is selected by any of them.
        frame = frame[frame["id"].isin(datasets_naming(con, f.agencies, f.access))]
    return frame.reset_index(drop=True)


def span_sql(alias: str) -> tuple[str, str]:
    """SQL for a dataset's first and last record time as released (``app.store.span_sql``)."""
    return store.span_sql(alias)


def sharing_level(con: duckdb.DuckDBPyConnection, f: Filter) -> str:
    """The most restrictive sharing level among the datasets the filter selects (whether or
    not it finds records of them: an exact figure must not reveal that a partner's dataset has
    none under the filter)."""
    levels = set(datasets_in(con, f)["sharing"])
    return next((lvl for lvl in ("restricted", "partners") if lvl in levels), "open")


def data_period(con: duckdb.DuckDBPyConnection, f: Filter) -> tuple[dt.date, dt.date] | None:
    """The first and last day that the selected datasets cover (from their load reports),
    used when a filter gives no dates. Taken from the datasets, not from the records the
    filter finds: the first and last record of a category or an hour of a partner's dataset
    would otherwise show on every page as the period."""
    frame = datasets_in(con, f).dropna(subset=["time_min", "time_max"])
    if frame.empty:
        return None
    return frame["time_min"].min().date(), frame["time_max"].max().date()


def with_period(
    con: duckdb.DuckDBPyConnection, f: Filter, span: tuple[dt.date, dt.date] | None = None
) -> Filter:
    """The filter with its open ends closed by the data's own first and last day under it
    (``span``, if the caller has it already: ``data_period`` of the filter without dates)."""
    if f.start and f.end:
        return f
    span = span or data_period(con, f.with_(start=None, end=None))
    if span is None or (f.start and f.start > span[1]) or (f.end and f.end < span[0]):
        return f  # no record in the period: nothing to close it by
    return f.with_(start=f.start or span[0], end=f.end or span[1])


@dataclass(frozen=True)
class Comparison:
    """The two windows a "change on the previous period" compares, and a sentence saying which
    (or, with no windows, why there is nothing to compare)."""

    current: tuple[dt.date, dt.date] | None
    previous: tuple[dt.date, dt.date] | None
    sentence: str


def comparison(con: duckdb.DuckDBPyConnection, f: Filter) -> Comparison:
    """What "change on the previous period" compares under a filter.

    Without dates, the last twelve months of data against the twelve before; with a period,
    that period against the one of equal length before it. Either way, only over months that
    every selected dataset covers in both windows: a dataset that begins or ends inside them
    would make a change out of its missing months (Bath's street crime, five months of 2018-19,
    against collisions that end in 2013)."""
    f = validate(con, f)
    spans = covered_spans(con, f)
    if spans.empty:
        return Comparison(None, None, "no previous period: no selected dataset has records")
    if f.start is None and f.end is None:
        return last_year_against_the_one_before(spans)
    closed = with_period(con, f)
    if closed.start is None or closed.end is None:
        return Comparison(None, None, "no previous period: the period holds no data")
    before = closed.previous()
    current, previous = (closed.start, closed.end), (before.start, before.end)
    return compare_within(spans, current, previous)


def covered_spans(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    """Each selected dataset's title and the whole months its records cover (``first``, the
    first day of its first month; ``last``, the last day of its last month), from its load
    report. A month the data enters after its first week or leaves before its last week is
    not counted as covered; a last record on the first of a month at midnight is a monthly
    file's (police.uk dates every record to its month's first day), which covers that month."""
    key = ("covered_spans", f.datasets, f.kinds, f.agencies, facts.access_key(f.access))
    return facts.remembered(con, key, lambda: _covered_spans(con, f)).copy()


def _covered_spans(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    frame = datasets_in(con, f).dropna(subset=["time_min", "time_max"])
    titles = dict(con.execute("SELECT id, title FROM datasets").fetchall())
    starts = pd.to_datetime(frame["time_min"])
    ends = pd.to_datetime(frame["time_max"])
    first = [s.to_period("M") + (0 if s.day <= 7 else 1) for s in starts]
    monthly = (ends.dt.day == 1) & (ends == ends.dt.normalize())
    last = [e.to_period("M") - (0 if e.day >= 24 or m else 1) for e, m in zip(ends, monthly, strict=True)]
    out = pd.DataFrame(
        {
            "id": frame["id"].to_numpy(),
            "title": [titles.get(i) or i for i in frame["id"]],
            "first": [p.start_time.date() for p in first],
            "last": [p.end_time.date() for p in last],
        }
    )
    return out[out["first"] <= out["last"]].reset_index(drop=True)


def period_words(start: dt.date, end: dt.date) -> str:
    """A period as people say it: "Mar 2024 to Feb 2025" for whole months, else with days."""
    whole = start.day == 1 and (end + dt.timedelta(days=1)).day == 1
    if whole:
        return (
            f"{start:%b %Y}"
            if (start.year, start.month) == (end.year, end.month)
            else (f"{start:%b %Y} to {end:%b %Y}")
        )
    return f"{start.day} {start:%b %Y} to {end.day} {end:%b %Y}"


def last_year_against_the_one_before(spans: pd.DataFrame) -> Comparison:
    first, last = max(spans["first"]), min(spans["last"])
    if first > last:
        listed = "; ".join(f"{r.title} {period_words(r.first, r.last)}" for r in spans.itertuples())
        return Comparison(
            None, None, f"no previous period: no month is covered by every selected dataset ({listed})"
        )
    end = pd.Period(last, "M")
    current = ((end - 11).start_time.date(), last)
    previous = ((end - 23).start_time.date(), (end - 12).end_time.date())
    if previous[0] < first:
        return Comparison(None, None, f"no previous period: {_too_short(spans, first, last)}")
    return Comparison(current, previous, f"{period_words(*current)} against {period_words(*previous)}")


def _too_short(spans: pd.DataFrame, first: dt.date, last: dt.date) -> str:
    together = "the data covers" if len(spans) == 1 else "the selected datasets together cover"
    return (
        f"{together} only {period_words(first, last)}, and a year's change needs the year before it "
        "(choose a shorter period in the filter)"
    )


def _edge(spans: pd.DataFrame, short: pd.DataFrame, month, verb: str, beyond: str) -> str:
    """Who begins (or ends) where a comparison cannot reach, in words: "the data begins in Jan
    2023", or "Street crime and Fire begin in Oct 2018 or later"."""
    whole = len(spans) == 1 or len(short) == len(spans)
    who = "the data" if whole else _titles(short)
    if len(short) == 1 or whole:
        return f"{who} {verb}s in {month:%b %Y}"
    return f"{who} {verb} in {month:%b %Y} {beyond}"


def compare_within(
    spans: pd.DataFrame, current: tuple[dt.date, dt.date], previous: tuple[dt.date, dt.date]
) -> Comparison:
    """The two windows if every dataset covers both, else None with the datasets that do not."""
    late = spans[spans["first"] > previous[0]]
    early = spans[spans["last"] < current[1]]
    if late.empty and early.empty:
        return Comparison(current, previous, f"{period_words(*current)} against {period_words(*previous)}")
    reasons = []
    if len(late):
        reasons.append(_edge(spans, late, late["first"].max(), "begin", "or later"))
    if len(early):
        reasons.append(_edge(spans, early, early["last"].min(), "end", "or earlier"))
    compared = f"{period_words(*current)} would be compared with {period_words(*previous)}"
    return Comparison(None, None, f"no previous period: {' and '.join(reasons)}, and {compared}")


def _titles(frame: pd.DataFrame) -> str:
    names = frame["title"].tolist()
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
