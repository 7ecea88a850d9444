"""Filtered aggregates from the warehouse: hexes at any resolution, wards, time series.

Every function returns figures already under disclosure control (see app.disclosure): counts
of partners' and restricted datasets are suppressed or rounded before they leave here.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import h3
import numpy as np
import pandas as pd

from app.disclosure import CELL_KEY_SQL, DEFAULT_RULE, PROTECTED, Rule, apply, most_restrictive
from app.filters import Filter, data_period, validate, where, with_period
from app.h3cells import check_res, parent_sql

HEX_RES = range(5, 12)
FREQS = {"day": "day", "week": "week", "month": "month"}


def check_hex_res(res: int) -> int:
    if not isinstance(res, int | np.integer) or int(res) not in HEX_RES:
        raise ValueError(f"resolution must be from {HEX_RES.start} to {HEX_RES.stop - 1}, not {res!r}")
    return check_res(int(res))


def raw_hex_counts(con: duckdb.DuckDBPyConnection, f: Filter, res: int) -> pd.DataFrame:
    """Exact counts per cell and dataset, for use inside the engine only."""
    res = check_hex_res(res)
    sql, params = where(validate(con, f))
    # Counted first and joined to the catalogue after: a join before the count would look up
    # every record's dataset by name, one group per cell and dataset after it.
    return con.execute(
        f"""
        WITH counts AS (
            SELECT {parent_sql("e.h3", res)} AS h3, e.dataset, count(*) AS count,
                   sum(e.weight) AS weight, {CELL_KEY_SQL} AS cell_key
            FROM events e WHERE {sql} GROUP BY 1, 2
        )
        SELECT c.h3, c.dataset, d.agency, d.kind, d.sharing, c.count, c.weight, c.cell_key
        FROM counts c JOIN datasets d ON d.id = c.dataset
        ORDER BY 1, 2
        """,
        params,
    ).df()


def hex_aggregate(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, rule: Rule = DEFAULT_RULE
) -> pd.DataFrame:
    """Per cell and dataset: count and weight sum (protected), plus the cell's centre."""
    frame = apply(raw_hex_counts(con, f, res), rule, ("count", "weight"))
    return _with_centres(frame, res)


def hex_totals(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, rule: Rule = DEFAULT_RULE
) -> pd.DataFrame:
    """Per cell: all selected datasets together, protected at the most restrictive level
    among them (a total that includes a restricted dataset is treated as restricted)."""
    raw = raw_hex_counts(con, f, res)
    if raw.empty:
        return _with_centres(pd.DataFrame(columns=["h3", "count", "weight", "sharing", "suppressed"]), res)
    sharing = most_restrictive(raw["sharing"])
    totals = raw.groupby("h3", as_index=False)[["count", "weight"]].sum()
    totals["cell_key"] = xor_by(raw, "h3")
    totals["sharing"] = sharing
    totals["datasets"] = raw.groupby("h3")["dataset"].nunique().to_numpy()
    return _with_centres(apply(totals, rule, ("count", "weight")), res)


def xor_by(frame: pd.DataFrame, key: str) -> np.ndarray:
    """Cell keys of groups of rows: the XOR of the rows' cell keys (as for their records)."""
    if frame.empty:
        return np.zeros(0, dtype=np.uint64)
    # In the order of the sorted group keys, as groupby(sort=True) gives its groups.
    groups = frame[key].to_numpy()
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return np.bitwise_xor.reduceat(frame["cell_key"].to_numpy(dtype=np.uint64)[order], starts)


def _with_centres(frame: pd.DataFrame, res: int) -> pd.DataFrame:
    frame = frame.copy()
    cells = frame["h3"].astype("uint64").to_numpy()
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells]).reshape(-1, 2)
    frame["h3_cell"] = [h3.int_to_str(int(c)) for c in cells]
    frame["resolution"] = res
    frame["cell_lat"] = centres[:, 0]
    frame["cell_lng"] = centres[:, 1]
    return frame


def ward_aggregate(
    con: duckdb.DuckDBPyConnection, f: Filter, rule: Rule = DEFAULT_RULE, by_dataset: bool = True
) -> pd.DataFrame:
    """Per ward (and dataset): count, rate per 1,000 residents, per km², share of the city
    total, and change against the previous period of equal length; all protected."""
    f = validate(con, f)
    span = data_period(con, f.with_(start=None, end=None))
    f = with_period(con, f, span)
    current = ward_counts(con, f, by_dataset)
    prev_f = f.previous()
    # A previous period that ends before the data begins has no figures, not zero figures.
    has_previous = prev_f is not None and span is not None and prev_f.end >= span[0]
    previous = ward_counts(con, prev_f, by_dataset) if has_previous else current.iloc[0:0]
    keys = ["ward_code", "dataset"] if by_dataset else ["ward_code"]
    frame = current.merge(
        previous[[*keys, "count"]].rename(columns={"count": "previous_count"}), on=keys, how="left"
    )
    frame = frame.merge(
        previous[[*keys, "cell_key"]].rename(columns={"cell_key": "previous_key"}), on=keys, how="left"
    )
    frame["previous_count"] = frame["previous_count"].fillna(0 if has_previous else np.nan)
    previous_keys = frame.pop("previous_key").fillna(0).to_numpy(dtype=np.uint64)
    protected = apply(frame, rule, ("count",))
    prev_values, prev_suppressed = rule.release(
        frame["previous_count"].to_numpy(), frame["sharing"].isin(PROTECTED).to_numpy(), previous_keys
    )
    protected["previous_count"] = prev_values
    protected["previous_suppressed"] = prev_suppressed
    count = protected["count"]
    protected["rate_per_1000"] = np.where(
        protected["population"] > 0, 1000 * count / protected["population"], np.nan
    )
    protected["per_km2"] = count / protected["area_km2"]
    group = protected.groupby("dataset")["count"] if by_dataset else protected["count"]
    city = group.transform("sum") if by_dataset else group.sum()
    protected["share"] = count / city
    protected["change"] = count - protected["previous_count"]
    with np.errstate(divide="ignore", invalid="ignore"):
        protected["change_pct"] = np.where(
            protected["previous_count"] > 0, 100 * protected["change"] / protected["previous_count"], np.nan
        )
    protected["period_start"] = f.start
    protected["period_end"] = f.end
    return protected


def ward_counts(con: duckdb.DuckDBPyConnection, f: Filter, by_dataset: bool) -> pd.DataFrame:
    """Exact counts and cell keys for every ward (zero-filled), per dataset or all together;
    for use inside the engine only."""
    sql, params = where(f)
    datasets = datasets_in(con, f)
    if by_dataset:
        params["ids"] = datasets["id"].tolist()
        return con.execute(
            f"""
            WITH counts AS (
                SELECT e.ward_code, e.dataset, count(*) AS count, {CELL_KEY_SQL} AS cell_key
                FROM events e WHERE {sql} GROUP BY ALL
            )
            SELECT w.code AS ward_code, w.name AS ward_name, w.population, w.area_km2,
                   d.id AS dataset, d.agency, d.kind, d.sharing, coalesce(c.count, 0) AS count,
                   coalesce(c.cell_key, 0) AS cell_key
            FROM wards w CROSS JOIN datasets d
            LEFT JOIN counts c ON c.ward_code = w.code AND c.dataset = d.id
            WHERE list_contains($ids, d.id)
            ORDER BY w.code, d.id
            """,
            params,
        ).df()
    frame = con.execute(
        f"""
        WITH counts AS (
            SELECT e.ward_code, count(*) AS count, {CELL_KEY_SQL} AS cell_key
            FROM events e WHERE {sql} GROUP BY ALL
        )
        SELECT w.code AS ward_code, w.name AS ward_name, w.population, w.area_km2,
               coalesce(c.count, 0) AS count, coalesce(c.cell_key, 0) AS cell_key
        FROM wards w LEFT JOIN counts c ON c.ward_code = w.code
        ORDER BY w.code
        """,
        params,
    ).df()
    frame["dataset"] = "(selected)"
    frame["sharing"] = most_restrictive(datasets["sharing"]) if len(datasets) else "open"
    return frame


def _span_sql(alias: str) -> tuple[str, str]:
    """SQL for the first and last time of a dataset's records, from its stored load report
    (``alias``: the datasets table's)."""
    first, last = (
        f"CAST(json_extract_string({alias}.report_json, '$.{k}') AS TIMESTAMP)"
        for k in ("time_min", "time_max")
    )
    return first, last


def datasets_in(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    """The catalogue rows that the filter's dataset, agency and kind choices let through, with
    the first and last time of each dataset's records (``time_min``, ``time_max``)."""
    tmin, tmax = _span_sql("d")
    frame = con.execute(
        f"SELECT id, agency, kind, sharing, {tmin} AS time_min, {tmax} AS time_max "
        "FROM datasets d ORDER BY id"
    ).df()
    if f.datasets:
        frame = frame[frame["id"].isin(f.datasets)]
    if f.kinds:
        frame = frame[frame["kind"].isin(f.kinds)]
    if f.agencies:
        frame = frame[frame["agency"].isin(f.agencies)]
    return frame


def _place_sql(ward: str | None, cell: str | int | None, params: dict) -> str:
    """SQL limiting events to one ward or one H3 cell (of any resolution from 5 to 11)."""
    if ward is not None:
        params["ward"] = ward
        return "e.ward_code = $ward"
    if cell is not None:
        cell_int = h3.str_to_int(cell) if isinstance(cell, str) else int(cell)
        res = check_hex_res(h3.get_resolution(h3.int_to_str(cell_int)))
        params["cell"] = cell_int
        return f"{parent_sql('e.h3', res)} = $cell::UBIGINT"
    return "TRUE"


def category_counts(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    ward: str | None = None,
    cell: str | int | None = None,
    rule: Rule = DEFAULT_RULE,
) -> pd.DataFrame:
    """Records per dataset and category, most first, for the city, one ward or one cell;
    protected."""
    sql, params = where(validate(con, f))
    place = _place_sql(ward, cell, params)
    frame = con.execute(
        f"""
        WITH counts AS (
            SELECT e.dataset, e.category, count(*) AS count, {CELL_KEY_SQL} AS cell_key
            FROM events e WHERE {sql} AND {place} GROUP BY 1, 2
        )
        SELECT c.dataset, d.agency, d.kind, c.category, d.sharing, c.count, c.cell_key
        FROM counts c JOIN datasets d ON d.id = c.dataset
        ORDER BY c.count DESC, c.dataset, c.category
        """,
        params,
    ).df()
    return apply(frame, rule)


def time_series(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    freq: str = "month",
    ward: str | None = None,
    cell: str | int | None = None,
    rule: Rule = DEFAULT_RULE,
) -> pd.DataFrame:
    """Counts per period and dataset for the whole city, one ward, or one H3 cell (of any
    resolution from 5 to 11); protected. A dataset with records under the filter elsewhere but
    none in the place still has a row (a zero at the start of what it covers), so that its
    line reads zero there rather than being left out as if it had no data."""
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {', '.join(FREQS)}")
    f = validate(con, f)
    sql, params = where(f)
    place = _place_sql(ward, cell, params)
    # What each dataset covers, from its load report, within the filter's period: a period
    # inside it with no record here is a zero (or a suppressed zero), outside it is no data.
    params["cover_start"] = dt.datetime.combine(f.start, dt.time()) if f.start else None
    params["cover_end"] = dt.datetime.combine(f.end, dt.time()) if f.end else None
    unit = FREQS[freq]
    tmin, tmax = _span_sql("d")
    # Datasets with records under the filter but none here (none to look for city-wide).
    absent = (
        f"""UNION ALL
        SELECT NULL, x.dataset, 0, 0::UBIGINT FROM (SELECT DISTINCT e.dataset FROM events e WHERE {sql}) x
        WHERE x.dataset NOT IN (SELECT dataset FROM counts)"""
        if place != "TRUE"
        else ""
    )
    # Periods are cast to dates once per group, not once per record (a third of the time).
    frame = con.execute(
        f"""
        WITH counts AS (
            SELECT date_trunc('{unit}', e.ts) AS period, e.dataset, count(*) AS count,
                   {CELL_KEY_SQL} AS cell_key
            FROM events e WHERE {sql} AND {place} GROUP BY 1, 2
        ),
        rows AS (SELECT period, dataset, count, cell_key FROM counts {absent}),
        covered AS (
            SELECT d.id, d.agency, d.kind, d.sharing,
                   date_trunc('{unit}', greatest({tmin}, coalesce($cover_start::TIMESTAMP, {tmin})))::DATE
                       AS covered_from,
                   date_trunc('{unit}', least({tmax}, coalesce($cover_end::TIMESTAMP, {tmax})))::DATE
                       AS covered_to
            FROM datasets d
        )
        SELECT coalesce(r.period::DATE, v.covered_from) AS period, r.dataset, v.agency, v.kind, v.sharing,
               r.count, r.cell_key, v.covered_from, v.covered_to
        FROM rows r JOIN covered v ON v.id = r.dataset
        ORDER BY 1, 2
        """,
        params,
    ).df()
    return apply(frame, rule)
