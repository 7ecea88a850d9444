"""How well a ranking of places foresaw where the next period's events happened.

The measures of the crime-forecasting literature, on plain arrays (one value per place of the
whole study area, zero-filled, so that an empty place can be ranked and counted):

- hit rate: the share of the next period's events that fell in the top a % of places;
- Predictive Accuracy Index (PAI, Chainey et al. 2008): the hit rate divided by the share of
  the area those places make up (a / 100, up to rounding to whole places);
- Prediction Efficiency Index (PEI, Hunt 2016): events captured divided by the most that any
  a % of places could have captured in that period (1 is perfect);
- Recapture Rate Index (RRI, Levine 2008): the share of the next period's events in the top
  places divided by their share of the period before (around 1: the places keep their share).
"""

from __future__ import annotations

import numpy as np

AREAS = (1, 5)  # per cent of the study area's places


def top_count(places: int, a: float) -> int:
    """How many places make up a % of ``places``: the nearest whole number, at least one."""
    return max(1, int(np.floor(places * a / 100 + 0.5)))


def ranked(scores: np.ndarray) -> np.ndarray:
    """Positions of the places from highest forecast to lowest; ties keep the places' order,
    so the same forecast always ranks the same way."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.lexsort((np.arange(len(scores)), -scores))


def hit_rate(scores: np.ndarray, actual: np.ndarray, a: float) -> float:
    """Share of ``actual`` events in the top a % of places by ``scores`` (NaN without events)."""
    actual = np.asarray(actual, dtype=np.float64)
    total = actual.sum()
    if total <= 0:
        return float("nan")
    top = ranked(scores)[: top_count(len(actual), a)]
    return float(actual[top].sum() / total)


def pai(scores: np.ndarray, actual: np.ndarray, a: float) -> float:
    """Predictive Accuracy Index: hit rate over the share of the area searched."""
    n = len(actual)
    return hit_rate(scores, actual, a) / (top_count(n, a) / n)


def pei(scores: np.ndarray, actual: np.ndarray, a: float) -> float:
    """Prediction Efficiency Index: events captured over the most any as many places held."""
    actual = np.asarray(actual, dtype=np.float64)
    k = top_count(len(actual), a)
    best = np.sort(actual)[::-1][:k].sum()
    if best <= 0:
        return float("nan")
    return float(actual[ranked(scores)[:k]].sum() / best)


def recapture(scores: np.ndarray, actual: np.ndarray, previous: np.ndarray, a: float) -> float:
    """Recapture Rate Index: the top places' share of ``actual`` over their share of
    ``previous`` (the period before the forecast was made); NaN where either share is zero."""
    now = hit_rate(scores, actual, a)
    before = hit_rate(scores, previous, a)
    if not before or np.isnan(before) or np.isnan(now):
        return float("nan")
    return now / before


def tallies(scores: np.ndarray, actual: np.ndarray, previous: np.ndarray) -> dict[str, float]:
    """What one forecast's top places held at every area of ``AREAS``: events captured, the
    most any as many places held, and the same places' events in the previous period; with the
    period totals. ``pooled`` turns the tallies of many origins into the measures."""
    actual = np.asarray(actual, dtype=np.float64)
    previous = np.asarray(previous, dtype=np.float64)
    order = ranked(scores)
    out = {"events": float(actual.sum()), "previous": float(previous.sum()), "places": float(len(actual))}
    for a in AREAS:
        top = order[: top_count(len(actual), a)]
        out[f"captured_{a}"] = float(actual[top].sum())
        out[f"best_{a}"] = float(np.sort(actual)[::-1][: len(top)].sum())
        out[f"before_{a}"] = float(previous[top].sum())
        out[f"area_{a}"] = len(top) / len(actual)
    return out


def pooled(rows: list[dict[str, float]]) -> dict[str, float]:
    """The measures over many origins, pooling their events: hit rate = all events captured /
    all events, PAI = hit rate / area share, PEI = captured / the most capturable, RRI = the
    share captured / the same places' share of the periods before. NaN without events."""
    total = {k: sum(r[k] for r in rows) for k in rows[0]} if rows else {}
    out: dict[str, float] = {}
    for a in AREAS:
        events, captured = total.get("events", 0.0), total.get(f"captured_{a}", 0.0)
        hit = captured / events if events else float("nan")
        before = total[f"before_{a}"] / total["previous"] if total.get("previous") else float("nan")
        out[f"hit_{a}"] = hit
        out[f"pai_{a}"] = hit / rows[0][f"area_{a}"] if rows else float("nan")
        out[f"pei_{a}"] = captured / total[f"best_{a}"] if total.get(f"best_{a}") else float("nan")
        out[f"rri_{a}"] = hit / before if before else float("nan")
    return out
