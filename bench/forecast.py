"""Forecast benchmark: the rolling-origin backtest tables of a warehouse's demand datasets, and
the time to fit the gradient-boosted Poisson model and forecast the next quarter of 50,000
cells (a synthetic grid of 60 months of counts), against the all-history baseline.

    python bench/forecast.py [--db PATH --dataset ID ... --res 9 --months 60] [--cells 50000]

Without --db only the synthetic timing runs. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import h3
import numpy as np

from app import forecast as fc
from app.forecast_cli import backtest_summary, backtest_table
from app.grid import kring_weights

MONTHS = 60


def grid(cells: int, res: int = 10) -> np.ndarray:
    radius = int(np.ceil((-3 + np.sqrt(9 + 12 * (cells - 1))) / 6))
    centre = h3.latlng_to_cell(52.36, -0.92, res)
    disk = sorted(h3.str_to_int(c) for c in h3.grid_disk(centre, radius))
    return np.array(disk[:cells], dtype=np.uint64)


def synthetic(cells: int) -> fc.Series:
    """Counts with a skewed intensity per cell, spatially smoothed, and a yearly cycle."""
    rng = np.random.default_rng(0)
    places = grid(cells)
    weights = kring_weights(places, 1)
    rate = weights @ rng.gamma(0.3, 0.3, len(places)) / 7
    season = 1 + 0.25 * np.sin(2 * np.pi * np.arange(MONTHS) / 12)
    values = rng.poisson(rate[:, None] * season[None, :]).astype(float)
    neighbours = weights.tolil()
    neighbours.setdiag(0)
    neighbours = neighbours.tocsr()
    neighbours.eliminate_zeros()
    months = np.arange(np.datetime64("2021-01"), np.datetime64("2021-01") + MONTHS)
    return fc.Series(places, months, values, neighbours, protected=False)


def timing(cells: int) -> dict:
    series = synthetic(cells)
    t = time.perf_counter()
    baseline = fc.expected(series, "all_history", 3)
    baseline_s = time.perf_counter() - t
    t = time.perf_counter()
    model = fc.expected(series, fc.MODEL, 3)  # fits on 36 origins x 3 horizons, then forecasts
    model_s = time.perf_counter() - t
    assert len(model) == len(baseline) == cells
    return {"cells": cells, "model_fit_forecast_s": round(model_s, 2), "baseline_s": round(baseline_s, 3)}


def tables(db: str, datasets: list[str], res: int, months: int) -> list[dict]:
    from app.warehouse import open_readonly

    out = []
    with open_readonly(db) as con:
        for dataset in datasets:
            t = time.perf_counter()
            series = fc.load_series(con, dataset, res)
            result = fc.backtest(series, months)
            print(f"\n== {dataset}, resolution {res}, {len(series.places):,} cells ==")
            print(backtest_table(result, series.note))
            summary = backtest_summary(dataset, res, result)
            summary["seconds"] = round(time.perf_counter() - t, 1)
            out.append(summary)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db")
    parser.add_argument("--dataset", action="append", default=[])
    parser.add_argument("--res", type=int, default=9)
    parser.add_argument("--months", type=int, default=60)
    parser.add_argument("--cells", type=int, default=50_000)
    args = parser.parse_args()
    backtests = tables(args.db, args.dataset, args.res, args.months) if args.db else []
    speed = timing(args.cells)
    print(f"\nfit and forecast {speed['cells']:,} cells: {speed['model_fit_forecast_s']} s (model)")
    brief = [{k: b[k] for k in ("dataset", "res", "origins", "method", "pai_1", "pai_5")} for b in backtests]
    print(json.dumps({"bench": "forecast", **speed, "backtests": brief}))


if __name__ == "__main__":
    main()
