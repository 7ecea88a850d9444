"""Where demand is expected next: next month's and next quarter's counts per place, chosen by
an honest backtest against simple baselines.

Every method forecasts each place of the whole study area (every H3 cell, or every ward) from
its monthly counts before the forecast's origin, and nothing after it:

- ``last_12``: the mean monthly count of the last twelve months;
- ``all_history``: the mean monthly count of every month before the origin;
- ``smoothed``: an exponentially smoothed monthly count (each month weighs ``SMOOTHING``);
- ``seasonal_naive``: the count of the same month a year before;
- ``gbm_poisson``: a gradient-boosted Poisson model (scikit-learn's
  HistGradientBoostingRegressor) on lagged counts of the place and of its neighbours (ring-1
  cells, or wards sharing a boundary), the same month a year before, and the month of year.

The rolling-origin backtest forecasts each of the last months from the months before it and
scores the ranking (``app.forecast_metrics``). The model is used only where its PAI at 1 % beats
the best baseline's by ``IMPROVEMENT``; otherwise the best baseline is, and ``why`` says so.

Protected datasets (partners, restricted) are forecast from their released monthly figures
(``Rule.release``, suppressed ones as ``Rule.stand_in``), never from exact counts, and their
forecasts are released like counts: below the threshold suppressed, others rounded to the base.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from app.access import LOCAL, AccessContext
from app.aggregate import cell_month_counts, check_hex_res, dataset_units, ward_month_counts
from app.disclosure import DEFAULT_RULE, PROTECTED, Rule
from app.filters import Filter, FilterError, datasets_in, validate
from app.forecast_metrics import pooled, tallies
from app.grid import kring_weights, study_area_cells, ward_weights
from app.stats import gi_star

BASELINES = {
    "last_12": "the last 12 months' count",
    "all_history": "the all-history count",
    "smoothed": "the exponentially smoothed count",
    "seasonal_naive": "the same month last year",
}
MODEL = "gbm_poisson"
MODEL_LABEL = "the gradient-boosted Poisson model"
COMPARATORS = {"random": "a random ranking", "gi_star": "Gi* hotspots of the training months"}
HORIZONS = {"next month": 1, "next quarter": 3}
SMOOTHING = 0.05  # a half-life of about 14 months
IMPROVEMENT = 1.10  # the model must beat the best baseline's PAI at 1 % by 10 %
INTERVAL = 0.80  # central prediction interval
HISTORY = 12  # months every origin needs before it (last 12 months, same month last year)
TRAIN_ORIGINS = 36  # monthly origins the model learns from (12: PAI 1 % 9.6 on NYC; 36: 10.1)
REFIT = 12  # the backtest refits the model every this many origins (on data before each)
ZERO_SAMPLE = 0.1  # share of all-zero training rows kept (weighted up to stand for the rest)
MAX_ROWS = 1_000_000  # training rows at most


class ForecastError(ValueError):
    """A forecast that cannot be made: an unknown or non-demand dataset, too few months."""


@dataclass
class Series:
    """Monthly counts of one dataset (or agency) for every place: the input of every method."""

    places: np.ndarray  # sorted cells (uint64) or ward codes
    months: np.ndarray  # datetime64[M], whole months covered, oldest first
    values: np.ndarray  # places x months; released stand-ins for protected data
    neighbours: sp.csr_matrix  # binary, a place is not its own neighbour
    protected: bool
    note: str | None = None  # e.g. an incomplete last month left out


@dataclass
class Backtest:
    origins: list[str]
    scores: dict[str, dict[str, float]]  # method or comparator -> mean measure over origins
    method: str
    why: str
    dispersion: dict[str, float] = field(default_factory=dict)  # negative-binomial alpha per method


# Reading -----------------------------------------------------------------------------------


def covered_months(con: duckdb.DuckDBPyConnection, f: Filter) -> tuple[np.ndarray, str | None]:
    """The whole months the selected dataset covers (from its load report). A last month whose
    records stop before its final week is left out as incomplete: its low count is no fall."""
    span = datasets_in(con, f).dropna(subset=["time_min", "time_max"])
    if span.empty:
        return np.zeros(0, dtype="datetime64[M]"), None
    first_time, last_time = span["time_min"].min(), span["time_max"].max()
    first = np.datetime64(first_time.date(), "M")
    last_day = last_time.date()
    last = np.datetime64(last_day, "M")
    month_end = (last + 1).astype("datetime64[D]").astype(dt.date) - dt.timedelta(days=1)
    note = None
    if (month_end - last_day).days >= 7 and not _monthly(first_time, last_time):
        note = f"{pd.Timestamp(last_day):%B %Y} is left out: its records stop on {last_day:%d %B}"
        last = last - 1
    return np.arange(first, last + 1), note


def _monthly(first: pd.Timestamp, last: pd.Timestamp) -> bool:
    """Whether a dataset's times are months (police.uk's "2024-01"): read as midnight on the
    first, its last month is whole however early its last time looks."""
    return all(t.day == 1 and t == t.normalize() for t in (first, last))


def load_series(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    res: int | None,
    agency: str | None = None,
    rule: Rule = DEFAULT_RULE,
    access: AccessContext = LOCAL,
) -> Series:
    """Monthly counts of ``dataset`` (one ``agency`` of it, or all) per cell at ``res`` or, with
    ``res`` None, per ward, as the viewer ``access`` sees them: a protected dataset as released
    figures, unless the viewer's agency owns it (then exactly, as its counts are)."""
    f = validate(con, Filter(datasets=(dataset,), agencies=(agency,) if agency else (), access=access))
    unit = _the_dataset(con, dataset, access)
    months, note = covered_months(con, f)
    if res is None:
        wards = con.execute("SELECT code, geom_wkb FROM wards ORDER BY code").fetchall()
        places = np.array([w[0] for w in wards], dtype=object)
        import shapely

        adjacency = ward_weights([shapely.from_wkb(bytes(w[1])) for w in wards])
        counts = ward_month_counts(con, f).rename(columns={"ward_code": "place"})
    else:
        places = study_area_cells(con, check_hex_res(res), access)
        adjacency = kring_weights(places, 1)
        counts = cell_month_counts(con, f, res).rename(columns={"h3": "place"})
        counts["place"] = counts["place"].astype("uint64")
    neighbours = (adjacency - sp.identity(len(places), format="csr")).tocsr()
    neighbours.eliminate_zeros()
    protected = unit["sharing"] in PROTECTED
    values = _matrix(counts, places, months, protected, rule)
    return Series(places, months, values, neighbours, protected, note)


def _the_dataset(con: duckdb.DuckDBPyConnection, dataset: str, access: AccessContext = LOCAL) -> dict:
    row = datasets_in(con, Filter(datasets=(dataset,), access=access)).iloc[0]
    if row["kind"] != "demand":
        raise ForecastError(f"forecasts are made for demand datasets; '{dataset}' is {row['kind']}")
    return row.to_dict()


def _matrix(counts: pd.DataFrame, places: np.ndarray, months: np.ndarray, protected: bool, rule: Rule):
    """Places x months of exact counts (open) or released stand-ins (protected)."""
    exact = np.zeros((len(places), len(months)))
    keys = np.zeros(exact.shape, dtype=np.uint64)
    month = counts["month"].to_numpy().astype("datetime64[M]")
    inside = (month >= months[0]) & (month <= months[-1]) if len(months) else np.zeros(len(month), bool)
    counts, month = counts[inside], month[inside]
    if len(counts):
        rows = np.searchsorted(places, counts["place"].to_numpy())
        cols = (month - months[0]).astype(int)
        np.add.at(exact, (rows, cols), counts["count"].to_numpy(dtype=np.float64))
        np.bitwise_xor.at(keys, (rows, cols), counts["cell_key"].to_numpy(dtype=np.uint64))
    if not protected:
        return exact
    values, suppressed = rule.release(exact, True, keys)
    return rule.stand_in(values, suppressed)


# Methods -----------------------------------------------------------------------------------


def smoothed_levels(values: np.ndarray) -> np.ndarray:
    """Column t: the exponentially smoothed monthly count from months before t (column 0 is
    the first month's own count, used by no origin)."""
    levels = np.empty((values.shape[0], values.shape[1] + 1))
    levels[:, 0] = values[:, 0] if values.shape[1] else 0.0
    for t in range(values.shape[1]):
        levels[:, t + 1] = SMOOTHING * values[:, t] + (1 - SMOOTHING) * levels[:, t]
    return levels


def baseline(name: str, values: np.ndarray, origin: int, horizon: int = 1) -> np.ndarray:
    """Expected count of month ``origin + horizon - 1`` from months before ``origin`` only."""
    past = values[:, :origin]
    if name == "last_12":
        return past[:, -HISTORY:].mean(axis=1)
    if name == "all_history":
        return past.mean(axis=1)
    if name == "smoothed":
        return smoothed_levels(past)[:, -1]
    if name == "seasonal_naive":
        return past[:, origin + horizon - 1 - 12]
    raise ValueError(f"unknown method '{name}'")


def features(values: np.ndarray, neighbours: sp.csr_matrix, origin: int, horizon: int, months) -> np.ndarray:
    """The model's inputs for every place at one origin and horizon, from months before it."""
    past = values[:, :origin]
    last_1 = past[:, -1]
    mean_3 = past[:, -3:].mean(axis=1)
    mean_12 = past[:, -HISTORY:].mean(axis=1)
    mean_all = past.mean(axis=1)
    same_month = past[:, origin + horizon - 1 - 12]
    month_of_year = (months[0] + origin + horizon - 1).astype(int) % 12 + 1
    own = np.column_stack([last_1, mean_3, mean_12, mean_all, same_month])
    around = neighbours @ np.column_stack([mean_3, mean_12, mean_all, same_month])
    fixed = np.broadcast_to([month_of_year, horizon], (len(past), 2))
    return np.column_stack([own, around, fixed])


def fit_model(values: np.ndarray, neighbours, months, origin: int, horizons: tuple[int, ...]):
    """A gradient-boosted Poisson model trained on targets before ``origin`` only: for each
    horizon, the last ``TRAIN_ORIGINS`` origins whose target month is before ``origin``."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    xs, ys, ws = [], [], []
    rng = np.random.default_rng(0)
    for h in horizons:
        for s in range(max(HISTORY, origin - h + 1 - TRAIN_ORIGINS), origin - h + 1):
            x = features(values, neighbours, s, h, months)
            y = values[:, s + h - 1]
            empty = (y == 0) & ~x[:, :-2].any(axis=1)
            keep = ~empty | (rng.random(len(y)) < ZERO_SAMPLE)
            xs.append(x[keep])
            ys.append(y[keep])
            ws.append(np.where(empty[keep], 1 / ZERO_SAMPLE, 1.0))
    if not xs:
        return None
    x, y, w = np.vstack(xs), np.concatenate(ys), np.concatenate(ws)
    if len(y) > MAX_ROWS:  # a large grid: a uniform sample, weighted up, keeps the fit under a minute
        pick = np.sort(rng.choice(len(y), MAX_ROWS, replace=False))
        x, y, w = x[pick], y[pick], w[pick] * (len(w) / MAX_ROWS)
    model = HistGradientBoostingRegressor(
        loss="poisson",
        max_iter=150,
        learning_rate=0.05,
        max_leaf_nodes=31,
        min_samples_leaf=50,
        early_stopping=False,
        random_state=0,
    )
    return model.fit(x, y, sample_weight=w)


def model_forecast(model, values, neighbours, months, origin: int, horizon: int) -> np.ndarray:
    if model is None:  # too little history to learn from: no better than the all-history count
        return baseline("all_history", values, origin, horizon)
    return model.predict(features(values, neighbours, origin, horizon, months))


# Backtest ----------------------------------------------------------------------------------


def origins_of(series: Series, months: int) -> range:
    """The last ``months`` months (at most) that have ``HISTORY`` months before them."""
    total = len(series.months)
    if total <= HISTORY:
        raise ForecastError(
            f"forecasts need more than {HISTORY} whole months of records; this dataset covers {total}"
        )
    return range(max(HISTORY, total - months), total)


def backtest(series: Series, months: int = 60, with_model: bool = True) -> Backtest:
    """Forecast each of the last ``months`` months from the months before it and score every
    method, a random ranking and the training months' Gi* hotspots."""
    values, nb = series.values, series.neighbours
    origins = origins_of(series, months)
    weights = nb + sp.identity(len(series.places), format="csr")
    rng = np.random.default_rng(0)
    rows: dict[str, list[dict]] = {}
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    model = None
    for i, origin in enumerate(origins):
        if with_model and i % REFIT == 0:
            model = fit_model(values, nb, series.months, origin, (1,))
        actual, previous = values[:, origin], values[:, origin - HISTORY : origin].sum(axis=1)
        guesses = {name: baseline(name, values, origin) for name in BASELINES}
        if with_model:
            guesses[MODEL] = model_forecast(model, values, nb, series.months, origin, 1)
        guesses["random"] = rng.random(len(actual))
        guesses["gi_star"] = gi_star(values[:, :origin].sum(axis=1), weights, fdr=False).z
        for name, guess in guesses.items():
            rows.setdefault(name, []).append(tallies(guess, actual, previous))
            pairs.setdefault(name, []).append((guess, actual))
    scores = {name: pooled(r) for name, r in rows.items()}
    dispersion = {name: _dispersion(p) for name, p in pairs.items() if name not in COMPARATORS}
    method, why = choose(scores, len(origins))
    if series.protected:
        why += " Trained and scored on released monthly figures only (suppressed ones as a stand-in)."
    labels = [str(series.months[o]) for o in origins]
    return Backtest(labels, scores, method, why, dispersion)


def _dispersion(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The negative-binomial alpha (variance = mean + alpha * mean²) of the backtest's errors,
    by moments; 0 (Poisson) when they vary no more than a Poisson count would."""
    mu = np.concatenate([p[0] for p in pairs])
    y = np.concatenate([p[1] for p in pairs])
    denominator = float((mu * mu).sum())
    if denominator <= 0:
        return 0.0
    return max(0.0, float(((y - mu) ** 2 - mu).sum()) / denominator)


def choose(scores: dict[str, dict[str, float]], origins: int) -> tuple[str, str]:
    """The best baseline by PAI at 1 % (then 5 %), unless the model beats it by 10 %."""

    def key(name: str) -> tuple[float, float]:
        s = scores[name]
        return (np.nan_to_num(s["pai_1"], nan=-1.0), np.nan_to_num(s["pai_5"], nan=-1.0))

    best = max(BASELINES, key=key)
    b = scores[best]["pai_1"]
    period = f"over {origins} monthly origins"
    if MODEL not in scores:
        return best, f"{BASELINES[best].capitalize()} had the best PAI at 1 % ({b:.1f}) {period}."
    m = scores[MODEL]["pai_1"]
    if m >= IMPROVEMENT * b:
        return MODEL, (
            f"{MODEL_LABEL.capitalize()} reached a PAI at 1 % of {m:.1f} {period}, at least 10 % above "
            f"the best simple baseline, {BASELINES[best]} ({b:.1f})."
        )
    return best, (
        f"{BASELINES[best].capitalize()} is used: its PAI at 1 % was {b:.1f} {period}; "
        f"{MODEL_LABEL} reached {m:.1f}, short of the 10 % improvement a model must show."
    )


# Forecasts ---------------------------------------------------------------------------------


def expected(series: Series, method: str, horizon_months: int) -> np.ndarray:
    """Expected count over the ``horizon_months`` after the last covered month."""
    values, origin = series.values, series.values.shape[1]
    steps = range(1, horizon_months + 1)
    if method == MODEL:
        model = fit_model(values, series.neighbours, series.months, origin, tuple(steps))
        return sum(model_forecast(model, values, series.neighbours, series.months, origin, h) for h in steps)
    return sum(baseline(method, values, origin, h) for h in steps)


def interval(mean: np.ndarray, alpha: float, level: float = INTERVAL) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of a negative-binomial count with this mean and dispersion
    (a Poisson count when alpha is 0)."""
    from scipy.stats import nbinom, poisson

    tails = ((1 - level) / 2, (1 + level) / 2)
    mean = np.maximum(np.asarray(mean, dtype=np.float64), 0.0)
    if alpha <= 0:
        return tuple(np.where(mean > 0, poisson.ppf(q, np.maximum(mean, 1e-12)), 0.0) for q in tails)
    n = 1 / alpha
    p = n / (n + mean)
    return tuple(np.where(mean > 0, nbinom.ppf(q, n, p), 0.0) for q in tails)


def forecast(series: Series, result: Backtest, rule: Rule = DEFAULT_RULE) -> pd.DataFrame:
    """Every place's expected count and 80 % interval for the next month and next quarter, by
    the backtest's method; protected forecasts released as counts are."""
    last = series.months[-1]
    frames = []
    alpha = result.dispersion.get(result.method, 0.0)
    for label, steps in HORIZONS.items():
        mean = expected(series, result.method, steps)
        # A sum of `steps` independent months with dispersion alpha has dispersion alpha / steps.
        low, high = interval(mean, alpha / steps)
        frames.append(
            pd.DataFrame(
                {
                    "place": series.places,
                    "horizon": label,
                    "period_start": (last + 1).astype("datetime64[D]").astype(dt.date),
                    "period_end": (last + 1 + steps).astype("datetime64[D]").astype(dt.date)
                    - dt.timedelta(days=1),
                    "expected": mean,
                    "lower": low,
                    "upper": high,
                }
            )
        )
    return release(pd.concat(frames, ignore_index=True), series.protected, rule)


def release(frame: pd.DataFrame, protected: bool, rule: Rule) -> pd.DataFrame:
    """Open forecasts to two decimals; protected ones as estimates released like counts: an
    expected value below the threshold suppressed (with its interval), others rounded to the
    base. Every place keeps its row whatever its figure."""
    out = frame.copy()
    columns = ["expected", "lower", "upper"]
    if not protected:
        out[columns] = out[columns].round(2)
        out["suppressed"] = False
        return out
    suppressed = out["expected"].to_numpy() < rule.threshold
    for col in columns:
        rounded = rule.base * np.floor(out[col].to_numpy(dtype=np.float64) / rule.base + 0.5)
        out[col] = np.where(suppressed, np.nan, rounded)
    floor = rule.base * np.ceil(rule.threshold / rule.base)
    out["expected"] = np.where(suppressed, np.nan, np.maximum(out["expected"], floor))
    out["suppressed"] = suppressed
    return out


def units_of(con: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """The (dataset, agency) pairs of one dataset: one, or one per agency its file names."""
    try:
        f = validate(con, Filter(datasets=(dataset,)))
    except FilterError as exc:
        raise ForecastError(str(exc)) from None
    _the_dataset(con, dataset)
    return dataset_units(con, f)
