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


def datasets_in(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    """The catalogue rows that the filter's dataset, agency and kind choices let through, with
    the first and last time of each dataset's records (``time_min``, ``time_max``)."""
    frame = con.execute(
        """SELECT id, agency, kind, sharing,
                  CAST(json_extract_string(report_json, '$.time_min') AS TIMESTAMP) AS time_min,
                  CAST(json_extract_string(report_json, '$.time_max') AS TIMESTAMP) AS time_max
           FROM datasets ORDER BY id"""
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
    tmin = "CAST(json_extract_string(d.report_json, '$.time_min') AS TIMESTAMP)"
    tmax = "CAST(json_extract_string(d.report_json, '$.time_max') AS TIMESTAMP)"
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


_STEPS = {"day": "D", "week": "7D", "month": "MS"}  # as date_trunc starts them (weeks on Mondays)


def agency_trend(series: pd.DataFrame, freq: str = "month", rule: Rule = DEFAULT_RULE) -> pd.DataFrame:
    """Released counts per period, agency and kind from a ``time_series`` frame, ready to draw:
    an agency's demand and its interventions (crime and patrols, say) stay apart.

    A figure is the sum of its datasets' released values. A suppressed count stays out of that
    sum, and where every dataset behind a figure is suppressed the figure is missing (a gap in a
    line), never 0: the count behind it may be 4. Within a dataset's own span, a period with no
    records is a true zero for an open dataset and a suppressed one for a protected dataset, as
    the rule suppresses zero too. ``label`` says how to read each figure.
    """
    columns = ["period", "agency", "kind", "count", "suppressed_datasets", "datasets", "label"]
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {', '.join(FREQS)}")
    if not len(series):
        return pd.DataFrame(columns=columns)
    filled = pd.concat(_fill_periods(group, freq) for _, group in series.groupby("dataset", sort=False))
    grouped = filled.groupby(["period", "agency", "kind"])
    out = grouped["count"].sum(min_count=1).to_frame()
    out["suppressed_datasets"] = grouped["suppressed"].sum().astype(int)
    out["datasets"] = grouped.size()
    out = pd.concat(_fill_gaps(line, freq) for _, line in out.reset_index().groupby(["agency", "kind"]))
    out["label"] = [
        _trend_label(c, s, n, rule.threshold)
        for c, s, n in zip(out["count"], out["suppressed_datasets"], out["datasets"], strict=True)
    ]
    return out[columns]


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
    full["agency"] = group["agency"].iloc[0]
    full["kind"] = group["kind"].iloc[0]
    return full.rename_axis("period").reset_index()


def _fill_gaps(line: pd.DataFrame, freq: str) -> pd.DataFrame:
    """One agency's line of one kind over every period from its first to its last: a period
    that none of its datasets covers (one file ends in 2013, the next begins in 2018) is a gap
    with no datasets, not a straight line drawn across years without data."""
    span = pd.date_range(line["period"].min(), line["period"].max(), freq=_STEPS[freq])
    full = line.set_index("period").reindex(span).rename_axis("period").reset_index()
    full[["agency", "kind"]] = line[["agency", "kind"]].iloc[0].tolist()
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
    None when one dataset is selected or all of them cover at least 90 % of the period."""
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
        f"The selected datasets cover different parts of the period {start:%Y-%m-%d} to {last:%Y-%m-%d}: "
        f"{listed}{more}. Trends and hotspot patterns across them follow when each dataset starts "
        f"and stops as well as demand; {advice}."
    )
