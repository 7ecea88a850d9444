"""Spatial statistics on plain arrays: Getis-Ord Gi*, Benjamini-Hochberg FDR, confidence bins,
and the Mann-Kendall trend test. No I/O, no pandas: the engine feeds them, the tests check them
against esda and textbook cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.stats import norm

MIN_CELLS = 30  # below this a Gi* map is warned about: too few places for the test to mean much


@dataclass
class GiStar:
    z: np.ndarray
    p: np.ndarray  # two-sided, from the normal approximation (as ArcGIS)
    p_fdr: np.ndarray  # Benjamini-Hochberg adjusted
    bin: np.ndarray  # -3..+3: 99 / 95 / 90 % confidence after FDR, signed by z
    warning: str | None = None


def gi_star(x: np.ndarray, weights: sp.csr_matrix, fdr: bool = True) -> GiStar:
    """Gi* with the weights as given (binary, self included) and analytic z-scores.

    z_i = (sum_j w_ij x_j - mean * W_i) / (s * sqrt((n * S1_i - W_i^2) / (n - 1)))
    with W_i = sum_j w_ij, S1_i = sum_j w_ij^2 and s the population standard deviation.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    warning = None
    if n < MIN_CELLS:
        warning = f"only {n} places: too few for Gi* to be reliable (at least {MIN_CELLS} advised)"
    mean = x.mean() if n else 0.0
    s = np.sqrt(max((x * x).mean() - mean * mean, 0.0)) if n else 0.0
    w_sum = np.asarray(weights.sum(axis=1)).ravel()
    s1 = np.asarray(weights.multiply(weights).sum(axis=1)).ravel()
    lag = weights @ x
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = s * np.sqrt((n * s1 - w_sum**2) / (n - 1))
        z = np.where(denom > 0, (lag - mean * w_sum) / denom, 0.0)
    if s == 0 and n:
        warning = "every place has the same value: no hot or cold spots"
    p = 2 * norm.sf(np.abs(z))
    p_adj = bh_fdr(p) if fdr else p
    return GiStar(z=z, p=p, p_fdr=p_adj, bin=confidence_bins(z, p_adj), warning=warning)


def bh_fdr(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values)."""
    p = np.asarray(p, dtype=np.float64)
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def confidence_bins(z: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ArcGIS's Gi_Bin: +-3 at 99 %, +-2 at 95 %, +-1 at 90 % confidence, 0 otherwise."""
    level = np.select([p < 0.01, p < 0.05, p < 0.10], [3, 2, 1], 0)
    return (np.sign(z) * level).astype(np.int8)


def mann_kendall(series: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mann-Kendall trend test along the last axis: (z, two-sided p), with the tie correction.
    Rows are taken a chunk at a time, so memory stays bounded for large grids."""
    y = np.atleast_2d(np.asarray(series, dtype=np.float64))
    if len(y) > chunk:
        parts = [_mann_kendall(y[i : i + chunk]) for i in range(0, len(y), chunk)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return _mann_kendall(y)


def _mann_kendall(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = y.shape[1]
    if n < 3:
        return np.zeros(len(y)), np.ones(len(y))
    i, j = np.triu_indices(n, k=1)
    s = np.sign(y[:, j] - y[:, i]).sum(axis=1)
    var = n * (n - 1) * (2 * n + 5) / 18.0 - _tie_correction(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, (s - 1) / np.sqrt(var), np.where(s < 0, (s + 1) / np.sqrt(var), 0.0))
    z = np.nan_to_num(z)
    return z, 2 * norm.sf(np.abs(z))


def _tie_correction(y: np.ndarray) -> np.ndarray:
    """Per row, sum t(t-1)(2t+5)/18 over its groups of t equal values. Counts tie a lot (an
    empty place is all zeros), so the groups of every row are found at once rather than row
    by row."""
    ys = np.sort(y, axis=1)
    starts = np.ones(ys.shape, dtype=bool)
    starts[:, 1:] = ys[:, 1:] != ys[:, :-1]
    group = np.cumsum(starts.ravel()) - 1  # every row starts a group, so none spans two rows
    t = np.bincount(group).astype(np.float64)
    row_of_group = np.repeat(np.arange(len(y)), starts.sum(axis=1))
    return np.bincount(row_of_group, weights=t * (t - 1) * (2 * t + 5), minlength=len(y)) / 18.0
