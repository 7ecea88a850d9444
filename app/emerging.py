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

Where this departs from ArcGIS: a z-score is relative to the rest of the city, so a place whose
own records are flat sees its z fall when another place grows, and ArcGIS would call it
diminishing. Here Mann-Kendall also runs on each cell's own counts (the released ones for
protected data), and a pattern that claims a direction must agree with them: intensifying needs
both trends rising significantly, diminishing both falling, otherwise the place is persistent.
New and consecutive keep ArcGIS's rules unless the place's own records fall significantly (rise,
for a cold spot): then nothing emerged there, only the rest of the city fell faster, and the
place has no pattern.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from app import store
from app.aggregate import check_hex_res
from app.disclosure import DEFAULT_RULE, PROTECTED, Rule
from app.filters import Filter, sharing_level, validate, with_period
from app.grid import cell_frame, kring_weights, study_area_cells
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


def classify(
    hot: np.ndarray,
    cold: np.ndarray,
    trend_z: np.ndarray,
    trend_p: np.ndarray,
    count_z: np.ndarray | None = None,
    count_p: np.ndarray | None = None,
) -> np.ndarray:
    """Pattern names for each row of boolean hot/cold step matrices, from the trend of its
    z-scores and, when given, the trend of its own counts (without them: ArcGIS's rules)."""
    trend = direction(trend_z, trend_p)
    records = direction(count_z, count_p) if count_z is not None and count_p is not None else None
    out = np.full(len(hot), "no pattern", dtype=object)
    for i in range(len(hot)):
        own = None if records is None else int(records[i])
        if hot[i, -1] or (not cold[i, -1] and hot[i].mean() >= cold[i].mean() and hot[i].any()):
            name = _side(hot[i], cold[i], int(trend[i]), own)
            out[i] = f"{name} hot spot" if name else "no pattern"
        elif cold[i].any():
            name = _side(cold[i], hot[i], -int(trend[i]), None if own is None else -own)
            out[i] = f"{name} cold spot" if name else "no pattern"
    return out


def direction(trend_z: np.ndarray, trend_p: np.ndarray) -> np.ndarray:
    """+1 for a significant rise, -1 for a significant fall, 0 for no significant trend."""
    significant = np.asarray(trend_p) < TREND_P
    return np.where(significant, np.sign(trend_z), 0).astype(np.int8)


def _side(on: np.ndarray, other: np.ndarray, trend: int, records: int | None) -> str | None:
    """The pattern of one side (hot, or cold with the roles and signs swapped); None if none
    fits. ``trend`` is the direction of the z-scores, ``records`` that of the place's own counts
    (None when unknown: then the z-scores alone decide, as in ArcGIS)."""
    steps = len(on)
    count = int(on.sum())
    share = count / steps
    last = bool(on[-1])
    if count == 0:
        return None
    final_run = steps - (np.flatnonzero(~on)[-1] + 1) if not on.all() else steps
    if last and (count == 1 or (final_run == count and share < MOSTLY)):
        if records == -1:  # it only became hot because the rest of the city fell faster
            return None
        return "new" if count == 1 else "consecutive"
    if share >= MOSTLY and last:
        return _mostly_on(trend, records)
    if share >= MOSTLY:
        return "historical"
    if last and other.any():
        return "oscillating"
    if last:
        return "sporadic"
    return None


def _mostly_on(trend: int, records: int | None) -> str:
    """Intensifying or diminishing only when the z-scores and the place's own records move the
    same way; a z that falls because another place grew is no fall in demand."""
    if trend != 0 and records in (None, trend):
        return "intensifying" if trend > 0 else "diminishing"
    return "persistent"


def trend_patterns(series: np.ndarray, weights) -> dict[str, np.ndarray]:
    """From a cells x steps matrix of counts (released ones for protected data) and the
    weights: Gi* per step, the Mann-Kendall trend of each cell's z-scores and of its own counts,
    and the pattern they make."""
    z, p_fdr = gi_star_steps(series, weights)
    bins = confidence_bins(z, p_fdr)
    trend_z, trend_p = mann_kendall(z)
    count_z, count_p = mann_kendall(series)
    return {
        "z": z,
        "p_fdr": p_fdr,
        "bins": bins,
        "pattern": classify(bins > 0, bins < 0, trend_z, trend_p, count_z, count_p),
        "trend_z": trend_z,
        "trend_p": trend_p,
        "count_trend_z": count_z,
        "count_trend_p": count_p,
    }


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
    """Per cell of the study area: the pattern, the trend of its z-scores and of its own counts,
    hot and cold step counts, and the current step's Gi* (z, p_fdr, bin)."""
    res = check_hex_res(res)
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}")
    f = with_period(con, validate(con, f))
    cells = study_area_cells(con, res, f.access)
    counts = store.cell_step_counts(con, f, res, STEPS[step])
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
    found = trend_patterns(rule.stand_in(values, suppressed), kring_weights(cells, k))
    bins, z, p_fdr = found["bins"], found["z"], found["p_fdr"]
    return cell_frame(cells, res).assign(
        **{
            "pattern": found["pattern"],
            "trend_z": found["trend_z"],
            "trend_p": found["trend_p"],
            "count_trend_z": found["count_trend_z"],
            "count_trend_p": found["count_trend_p"],
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
