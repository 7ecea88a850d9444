"""The filter every view and export shares: which records, when, and at what time of day.

A filter is validated against the warehouse (dataset ids, agencies and categories must exist)
and turned into a WHERE clause whose values are always bound parameters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import duckdb

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

    def with_(self, **changes) -> Filter:
        return replace(self, **changes)

    def days(self) -> int | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).days + 1

    def previous(self) -> Filter | None:
        """The period of equal length just before this one, or None without a full period."""
        days = self.days()
        if days is None:
            return None
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
    """Check every identifier against the warehouse; return the filter unchanged if sound."""
    known = {r[0] for r in con.execute("SELECT id FROM datasets").fetchall()}
    unknown = sorted(set(f.datasets) - known)
    if unknown:
        raise FilterError(
            f"unknown dataset {', '.join(repr(u) for u in unknown)}; known: {', '.join(sorted(known))}"
        )
    if f.agencies:
        # A file's agency, or one its rows name (stored only where it differs): no scan of the
        # events view, which would join every row to its file and ward first.
        agencies = {
            r[0]
            for r in con.execute(
                "SELECT agency FROM event_files UNION SELECT agency FROM event_rows WHERE agency IS NOT NULL"
            ).fetchall()
        }
        if set(f.agencies) - agencies:
            raise FilterError(f"unknown agency {sorted(set(f.agencies) - agencies)}")
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
    return f


def where(f: Filter, alias: str = "e") -> tuple[str, dict]:
    """A WHERE clause (without the keyword) over the events table, with its parameters."""
    clauses, params = ["TRUE"], {}

    def any_of(column: str, name: str, values: tuple) -> None:
        if values:
            clauses.append(f"list_contains(${name}, {alias}.{column})")
            params[name] = list(values)

    any_of("dataset", "f_datasets", f.datasets)
    any_of("agency", "f_agencies", f.agencies)
    any_of("kind", "f_kinds", f.kinds)
    any_of("category", "f_categories", f.categories)
    if f.start:
        clauses.append(f"{alias}.ts >= $f_start")
        params["f_start"] = dt.datetime.combine(f.start, dt.time())
    if f.end:
        clauses.append(f"{alias}.ts < $f_end")
        params["f_end"] = dt.datetime.combine(f.end + dt.timedelta(days=1), dt.time())
    if f.weekdays:
        clauses.append(f"list_contains($f_weekdays, isodow({alias}.ts))")
        params["f_weekdays"] = list(f.weekdays)
    if f.hours:
        clauses.append(f"list_contains($f_hours, hour({alias}.ts))")
        params["f_hours"] = list(f.hours)
    if f.bbox is not None:
        clauses.append(f"{alias}.lon BETWEEN $f_west AND $f_east")
        clauses.append(f"{alias}.lat BETWEEN $f_south AND $f_north")
        params.update(f_west=f.bbox[0], f_south=f.bbox[1], f_east=f.bbox[2], f_north=f.bbox[3])
    return " AND ".join(clauses), params


def categories_in(con: duckdb.DuckDBPyConnection, datasets: tuple[str, ...]) -> list[str]:
    """The categories the given datasets' records hold, sorted: the filter's choices. Read
    from the stored rows of those datasets' files, not the events view, which would join every
    record to its file and ward first."""
    found = con.execute(
        """SELECT DISTINCT category FROM event_rows
           WHERE file_no IN (SELECT file_no FROM event_files WHERE list_contains($ids, dataset))
           ORDER BY 1""",
        {"ids": list(datasets)},
    ).fetchall()
    return [r[0] for r in found]


def sharing_level(con: duckdb.DuckDBPyConnection, f: Filter) -> str:
    """The most restrictive sharing level among the datasets whose records the filter selects."""
    sql, params = where(f)
    levels = {
        r[0]
        for r in con.execute(
            f"""SELECT DISTINCT d.sharing FROM (SELECT DISTINCT e.dataset FROM events e WHERE {sql}) x
                JOIN datasets d ON d.id = x.dataset""",
            params,
        ).fetchall()
    }
    return next((lvl for lvl in ("restricted", "partners") if lvl in levels), "open")


def data_period(con: duckdb.DuckDBPyConnection, f: Filter) -> tuple[dt.date, dt.date] | None:
    """The first and last day with a record under the filter (used when it gives no dates)."""
    sql, params = where(f)
    # Over every record, the stored table's statistics answer at once; the events view joins
    # each row to its file and ward first, which costs a scan of them all.
    source = "event_rows" if f == Filter() else "events"
    lo, hi = con.execute(f"SELECT min(ts), max(ts) FROM {source} e WHERE {sql}", params).fetchall()[0]
    return (lo.date(), hi.date()) if lo else None


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
