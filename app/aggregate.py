"""Filtered aggregates from the warehouse: hexes at any resolution, wards, time series.

Every function returns figures already under disclosure control (see app.disclosure): counts
of partners' and restricted datasets are suppressed or rounded before they leave here. The
records are read through ``app.store`` only (which may answer from the aggregate cube).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import duckdb
import h3
import numpy as np
import pandas as pd

from app import store
from app.disclosure import (
    DEFAULT_RULE,
    OTHER_AGENCIES,
    PROTECTED,
    Rule,
    agency_table,
    apply,
    apply_listed,
    fold_agencies,
    most_restrictive,
    rare_agencies,
)
from app.filters import (
    Comparison,
    Filter,
    comparison,
    data_period,
    datasets_in,
    validate,
    with_period,
)
from app.h3cells import check_res

HEX_RES = range(5, 12)
FREQS = {"day": "day", "week": "week", "month": "month"}


def check_hex_res(res: int) -> int:
    if not isinstance(res, int | np.integer) or int(res) not in HEX_RES:
        raise ValueError(f"resolution must be from {HEX_RES.start} to {HEX_RES.stop - 1}, not {res!r}")
    return check_res(int(res))


def _folded(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    read: Callable[[Filter], pd.DataFrame],
    sums: tuple[str, ...] = ("count", "weight"),
    keys: tuple[str, ...] = ("cell_key",),
    order: tuple[str, ...] = (),
) -> pd.DataFrame:
    """``read`` (a store scan) under the validated filter ``f``, with each rare agency of a file
    the viewer sees released counted under one plain unit (``disclosure.fold_agencies``):
    whatever table or file it reaches, such an agency is never named and never its own row.

    The plain unit is listed for every such file, rare agency or not, wherever its units are
    (every ward, every period covered): otherwise its presence alone would tell partners that
    the file holds an agency with one to four records."""
    several = agency_table(con, f.access)
    if not several:
        return read(f)
    others = tuple(sorted(several)) if not f.agencies or OTHER_AGENCIES in f.agencies else ()
    frame = read(f.with_(other_units=others))
    return fold_agencies(frame, rare_agencies(con, f.access), f.agencies, sums, keys, order)


def raw_hex_counts(con: duckdb.DuckDBPyConnection, f: Filter, res: int) -> pd.DataFrame:
    """Exact counts per cell, dataset and agency (a file may name an agency per row), for use
    inside the engine only."""
    res = check_hex_res(res)
    return _folded(
        con, validate(con, f), lambda g: store.hex_counts(con, g, res), order=("h3", "dataset", "agency")
    )


def hex_aggregate(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, rule: Rule = DEFAULT_RULE
) -> pd.DataFrame:
    """Per cell, dataset and agency: count and weight sum, plus the cell's centre. A protected
    dataset's cell is listed only where its figure is released (``disclosure.apply_listed``)."""
    frame = apply_listed(raw_hex_counts(con, f, res), rule, ("count", "weight"))
    return _with_centres(frame, res)


def hex_totals(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, rule: Rule = DEFAULT_RULE
) -> pd.DataFrame:
    """Per cell: all selected datasets together, protected at the most restrictive level among
    the datasets the filter selects (a total that may include a restricted dataset is treated
    as restricted, whether or not the dataset has records here). Cells whose total is
    suppressed are not listed."""
    f = validate(con, f)
    raw = raw_hex_counts(con, f, res)
    sharing = most_restrictive(datasets_in(con, f)["sharing"])
    if raw.empty:
        empty = pd.DataFrame(columns=["h3", "count", "weight", "sharing", "suppressed"])
        return _with_centres(empty, res)
    totals = raw.groupby("h3", as_index=False)[["count", "weight"]].sum()
    totals["cell_key"] = xor_by(raw, "h3")
    totals["sharing"] = sharing
    return _with_centres(apply_listed(totals, rule, ("count", "weight")), res)


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
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    rule: Rule = DEFAULT_RULE,
    by_dataset: bool = True,
    windows: tuple[tuple[dt.date, dt.date] | None, Comparison] | None = None,
) -> pd.DataFrame:
    """Per ward (and dataset): count, rate per 1,000 residents, per km², share of the city
    total, and change on the previous period; all protected.

    The change compares the windows of ``filters.comparison`` (``compared_start`` to
    ``compared_end`` against ``previous_start`` to ``previous_end``; ``compared_count`` is the
    count of the first): without dates, the last twelve months of data against the twelve
    before, not the whole period against nothing. Where no window is covered by every selected
    dataset, the change and its windows are missing, and ``comparison`` says why.

    ``windows``, when given, is ``data_period`` of the filter without dates and ``comparison``
    of the filter, as the caller has them already: both depend only on the datasets and the
    period the filter selects, so the dashboard reads them once for every choice of categories,
    days and hours."""
    f = validate(con, f)
    if windows is None:
        windows = data_period(con, f.with_(start=None, end=None)), comparison(con, f)
    span, compare = windows
    f = with_period(con, f, span)
    # The period and both comparison windows in one statement (``store.ward_window_counts``):
    # the same rows, so the windows' counts need no merge.
    windows = tuple(w for w in (compare.current, compare.previous) if w is not None)
    counted = ward_counts(con, f, by_dataset, windows)
    current = counted.drop(columns=[c for c in counted.columns if c.startswith(("count_", "cell_key_"))])
    protected = apply(current, rule, ("count",))
    shared = current["sharing"].isin(PROTECTED).to_numpy()
    found = 0
    for name, window in (("compared", compare.current), ("previous", compare.previous)):
        if window is None:
            values, suppressed = np.full(len(current), np.nan), np.zeros(len(current), dtype=bool)
        else:
            found += 1
            keys = counted[f"cell_key_{found}"].to_numpy(dtype=np.uint64)
            values, suppressed = rule.release(counted[f"count_{found}"].to_numpy(), shared, keys)
        protected[f"{name}_count"] = values
        protected[f"{name}_suppressed"] = suppressed
    count = protected["count"]
    protected["rate_per_1000"] = np.where(
        protected["population"] > 0, 1000 * count / protected["population"], np.nan
    )
    protected["per_km2"] = count / protected["area_km2"]
    group = protected.groupby(["dataset", "agency"])["count"] if by_dataset else protected["count"]
    city = group.transform("sum") if by_dataset else group.sum()
    protected["share"] = count / city
    protected["change"] = protected["compared_count"] - protected["previous_count"]
    with np.errstate(divide="ignore", invalid="ignore"):
        protected["change_pct"] = np.where(
            protected["previous_count"] > 0, 100 * protected["change"] / protected["previous_count"], np.nan
        )
    protected["period_start"] = f.start
    protected["period_end"] = f.end
    for name, window in (("compared", compare.current), ("previous", compare.previous)):
        protected[f"{name}_start"] = window[0] if window else None
        protected[f"{name}_end"] = window[1] if window else None
    protected["comparison"] = compare.sentence
    return protected


def ward_counts(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    by_dataset: bool,
    windows: tuple[tuple[dt.date, dt.date], ...] = (),
) -> pd.DataFrame:
    """Exact counts and cell keys for every ward (zero-filled), per dataset and agency or all
    together; for use inside the engine only. Every ward is listed for every selected dataset
    (and each agency its file names), records or not."""
    f = validate(con, f)
    datasets = datasets_in(con, f)
    ids = datasets["id"].tolist()
    n = range(1, len(windows) + 1)
    frame = _folded(
        con,
        f,
        lambda g: store.ward_window_counts(con, g, by_dataset, ids, windows),
        sums=("count", *(f"count_{i}" for i in n)),
        keys=("cell_key", *(f"cell_key_{i}" for i in n)),
        order=("ward_code", "dataset", "agency"),
    )
    if by_dataset:
        return frame
    frame["dataset"] = "(selected)"
    frame["sharing"] = most_restrictive(datasets["sharing"]) if len(datasets) else "open"
    return frame


def dataset_units(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    """The (dataset, agency) pairs a filter selects, with each dataset's kind and sharing: one
    per dataset, or one per agency that a file of several agencies (``agency_column``) names,
    whether or not the filter finds records of it."""
    f = validate(con, f)
    ids = datasets_in(con, f)["id"].tolist()
    return _folded(con, f, lambda g: store.units(con, ids, g), order=("dataset", "agency"))


def _place(ward: str | None, cell: str | int | None) -> tuple[int | None, int | None]:
    """One cell (of any resolution from 5 to 11) as (integer, resolution); (None, None) for a
    ward or the whole city."""
    if ward is not None or cell is None:
        return None, None
    cell_int = h3.str_to_int(cell) if isinstance(cell, str) else int(cell)
    return cell_int, check_hex_res(h3.get_resolution(h3.int_to_str(cell_int)))


def category_counts(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    ward: str | None = None,
    cell: str | int | None = None,
    rule: Rule = DEFAULT_RULE,
) -> pd.DataFrame:
    """Records per dataset, agency and category, most first, for the city, one ward or one
    cell; protected, and a protected dataset's category listed only where its figure is
    released (a category with fewer records, zero included, is left out)."""
    cell_int, res = _place(ward, cell)
    frame = _folded(
        con,
        validate(con, f),
        lambda g: store.category_counts(con, g, ward, cell_int, res),
        order=("-count", "dataset", "agency", "category"),
    )
    return apply_listed(frame, rule)


def time_series(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    freq: str = "month",
    ward: str | None = None,
    cell: str | int | None = None,
    rule: Rule = DEFAULT_RULE,
) -> pd.DataFrame:
    """Counts per period, dataset and agency for the whole city, one ward, or one H3 cell (of
    any resolution from 5 to 11); protected.

    Every period that each selected dataset (and each agency its file names) covers within
    the filter's period has a row, records or not: an empty period is a zero for an open
    dataset and a suppressed zero for a protected one. So a line reads zero where a file has
    no record rather than being left out as if it had no data, and which rows are listed never
    depends on whether a partner's count is zero or one to four."""
    if freq not in FREQS:
        raise ValueError(f"freq must be one of {', '.join(FREQS)}")
    f = validate(con, f)
    cell_int, res = _place(ward, cell)
    ids = datasets_in(con, f)["id"].tolist()
    frame = _folded(
        con,
        f,
        lambda g: store.period_counts(con, g, FREQS[freq], ward, cell_int, res, ids),
        order=("period", "dataset", "agency"),
    )
    return apply(frame, rule)


def cell_month_counts(con: duckdb.DuckDBPyConnection, f: Filter, res: int) -> pd.DataFrame:
    """Exact counts per cell at ``res``, calendar month, dataset and agency, with the cell key
    of each group (for releasing protected figures); for use inside the engine only (forecasts
    train on these, after ``Rule.release`` for protected datasets)."""
    res = check_hex_res(res)
    return _folded(
        con,
        validate(con, f),
        lambda g: store.cell_month_counts(con, g, res),
        order=("h3", "month", "dataset", "agency"),
    )


def ward_month_counts(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    """Exact counts per ward, calendar month, dataset and agency, with each group's cell key;
    for use inside the engine only (see ``cell_month_counts``)."""
    return _folded(
        con,
        validate(con, f),
        lambda g: store.ward_month_counts(con, g),
        order=("ward_code", "month", "dataset", "agency"),
    )
