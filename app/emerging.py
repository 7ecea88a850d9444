"""Emerging hotspots: is each place's hotspot new, growing, steady, fading or sporadic?

As in ArcGIS's Emerging Hot Spot Analysis: Gi* per time step (FDR-corrected within the step),
then a Mann-Kendall trend test on each cell's series of z-scores, then these rules, where "hot"
means a significant hotspot (90 % or more) in a step and the share is over all steps:

- new: hot in the last step only;
- consecutive: one unbroken run of hot steps up to the last, never hot before it, under 90 %;
- intensifying / diminishing: hot in at least 90 % of steps including the last, with a
  significant rising / falling trend;
- persistent: hot in at least 90 % of steps including the last, no significant trend;
- historical: hot in at least 90 % of steps, but not the last;
- oscillating: hot in the last step, cold in some earlier one, under 90 %;
- sporadic: hot in the last step, on and off, never cold, under 90 %;

and the same for cold spots. Anything else has no pattern.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from app.aggregate import check_hex_res
from app.disclosure import CELL_KEY_SQL, DEFAULT_RULE, PROTECTED, Rule
from app.filters import Filter, sharing_level, validate, where, with_period
from app.grid import cell_frame, kring_weights, study_area_cells
from app.h3cells import parent_sql
from app.stats import bh_fdr, confidence_bins, mann_kendall

STEPS = {"week": "week", "month": "month"}
TREND_P = 0.05
MOSTLY = 0.9
PATTERNS = [
    "new",
    "consecutive",
    "intensifying",
    "persistent",
    "diminishing",
    "sporadic",
    "oscillating",
    "historical",
]


def gi_star_steps(values: np.ndarray, weights) -> tuple[np.ndarray, np.ndarray]:
    """Gi* z-scores and FDR-adjusted p-values for every column (time step) of a cells x steps
    matrix, with the weights given (binary, self included)."""
    from scipy.stats import norm

    n = values.shape[0]
    mean = values.mean(axis=0)
    s = np.sqrt(np.maximum((values * values).mean(axis=0) - mean**2, 0))
    w_sum = np.asarray(weights.sum(axis=1)).ravel()[:, None]
    s1 = np.asarray(weights.multiply(weights).sum(axis=1)).ravel()[:, None]
    lag = weights @ values
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = s[None, :] * np.sqrt((n * s1 - w_sum**2) / (n - 1))
        z = np.where(denom > 0, (lag - mean[None, :] * w_sum) / denom, 0.0)
    p = 2 * norm.sf(np.abs(z))
    p_fdr = np.column_stack([bh_fdr(p[:, t]) for t in range(p.shape[1])]) if p.size else p
    return z, p_fdr


def classify(hot: np.ndarray, cold: np.ndarray, trend_z: np.ndarray, trend_p: np.ndarray) -> np.ndarray:
    """Pattern names for each row of boolean hot/cold step matrices."""
    out = np.full(len(hot), "no pattern", dtype=object)
    for i in range(len(hot)):
        if hot[i, -1] or (not cold[i, -1] and hot[i].mean() >= cold[i].mean() and hot[i].any()):
            name = _side(hot[i], cold[i], trend_z[i], trend_p[i])
            out[i] = f"{name} hot spot" if name else "no pattern"
        elif cold[i].any():
            name = _side(cold[i], hot[i], -trend_z[i], trend_p[i])
            out[i] = f"{name} cold spot" if name else "no pattern"
    return out


def _side(on: np.ndarray, other: np.ndarray, trend_z: float, trend_p: float) -> str | None:
    """The pattern of one side (hot, or cold with the roles swapped); None if none fits."""
    steps = len(on)
    count = int(on.sum())
    share = count / steps
    last = bool(on[-1])
    rising = trend_p < TREND_P and trend_z > 0
    falling = trend_p < TREND_P and trend_z < 0
    if count == 0:
        return None
    if last and count == 1:
        return "new"
    final_run = steps - (np.flatnonzero(~on)[-1] + 1) if not on.all() else steps
    if last and final_run == count and share < MOSTLY:
        return "consecutive"
    if share >= MOSTLY and last:
        if rising:
            return "intensifying"
        if falling:
            return "diminishing"
        return "persistent"
    if share >= MOSTLY:
        return "historical"
    if last and other.any():
        return "oscillating"
    if last:
        return "sporadic"
    return None


def step_starts(start, end, step: str) -> np.ndarray:
    """First day of every month (or Monday of every week) from ``start`` to ``end``, as DuckDB's
    date_trunc gives them."""
    first = np.datetime64(start, "D")
    if step == "month":
        months = np.arange(first.astype("datetime64[M]"), np.datetime64(end, "M") + 1)
        return months.astype("datetime64[D]")
    monday = first - ((first.astype("datetime64[D]").view("int64") - 4) % 7)  # 1970-01-05 was a Monday
    return np.arange(monday, np.datetime64(end, "D") + 1, 7)


def emerging_hotspots(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    res: int,
    step: str = "month",
    k: int = 1,
    rule: Rule = DEFAULT_RULE,
) -> pd.DataFrame:
    """Per cell of the study area: the pattern, trend, hot and cold step counts, and the
    current step's Gi* (z, p_fdr, bin)."""
    res = check_hex_res(res)
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}")
    f = with_period(con, validate(con, f))
    cells = study_area_cells(con, res)
    sql, params = where(f)
    counts = con.execute(
        f"""
        SELECT h3, step::DATE AS step, count, cell_key FROM (
            SELECT {parent_sql("e.h3", res)} AS h3, date_trunc('{STEPS[step]}', e.ts) AS step,
                   count(*) AS count, {CELL_KEY_SQL} AS cell_key
            FROM events e WHERE {sql} GROUP BY 1, 2
        )
        """,
        params,
    ).df()
    sharing = sharing_level(con, f)
    periods = step_starts(f.start, f.end, step)
    matrix = np.zeros((len(cells), len(periods)))
    keys = np.zeros((len(cells), len(periods)), dtype=np.uint64)
    if len(counts):
        rows = np.searchsorted(cells, counts["h3"].astype("uint64").to_numpy())
        cols = np.searchsorted(periods, counts["step"].to_numpy().astype("datetime64[D]"))
        np.add.at(matrix, (rows, cols), counts["count"].to_numpy())
        keys[rows, cols] = counts["cell_key"].to_numpy(dtype=np.uint64)
    values, suppressed = rule.release(matrix, sharing in PROTECTED, keys)
    total_keys = np.bitwise_xor.reduce(keys, axis=1) if len(periods) else np.zeros(len(cells), np.uint64)
    total, total_suppressed = rule.release(matrix.sum(axis=1), sharing in PROTECTED, total_keys)
    z, p_fdr = gi_star_steps(rule.stand_in(values, suppressed), kring_weights(cells, k))
    bins = confidence_bins(z, p_fdr)
    trend_z, trend_p = mann_kendall(z)
    pattern = classify(bins > 0, bins < 0, trend_z, trend_p)
    return cell_frame(cells, res).assign(
        **{
            "pattern": pattern,
            "trend_z": trend_z,
            "trend_p": trend_p,
            "hot_steps": (bins > 0).sum(axis=1),
            "cold_steps": (bins < 0).sum(axis=1),
            "steps": len(periods),
            "count": total,
            "suppressed": total_suppressed,
            "sharing": sharing,
            "z": z[:, -1] if len(periods) else 0.0,
            "p_fdr": p_fdr[:, -1] if len(periods) else 1.0,
            "bin": bins[:, -1] if len(periods) else 0,
        }
    )
