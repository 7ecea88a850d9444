"""Hotspot benchmark: Gi* with FDR over 50,000 cells against esda's analytic G_Local on the same
input and weights (esda's one-off compilation excluded by a warm-up call), and emerging hotspots
over 10,000 cells x 36 months.

    python bench/hotspots.py [--cells 50000] [--repeat 7]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import h3
import numpy as np

from app.emerging import classify, gi_star_steps
from app.grid import kring_weights
from app.stats import confidence_bins, gi_star, mann_kendall


def grid(cells: int, res: int = 10) -> np.ndarray:
    radius = int(np.ceil((-3 + np.sqrt(9 + 12 * (cells - 1))) / 6))
    centre = h3.latlng_to_cell(52.36, -0.92, res)
    disk = sorted(h3.str_to_int(c) for c in h3.grid_disk(centre, radius))
    return np.array(disk[:cells], dtype=np.uint64)


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cells = grid(args.cells)
    weights = kring_weights(cells, 1)
    x = rng.poisson(3, len(cells)).astype(float)
    ours = median_seconds(lambda: gi_star(x, weights), args.repeat)

    import esda
    from libpysal.weights import WSP

    w = WSP(weights).to_W(silence_warnings=True)
    w.transform = "B"
    esda.G_Local(x, w, star=True, transform="B", permutations=0)  # warm-up: compilation
    theirs = median_seconds(lambda: esda.G_Local(x, w, star=True, transform="B", permutations=0), args.repeat)

    n_cells, steps = 10_000, 36
    sub = grid(n_cells)
    sub_weights = kring_weights(sub, 1)
    series = rng.poisson(3, (len(sub), steps)).astype(float)

    def emerging() -> None:
        z, p_fdr = gi_star_steps(series, sub_weights)
        bins = confidence_bins(z, p_fdr)
        trend_z, trend_p = mann_kendall(z)
        classify(bins > 0, bins < 0, trend_z, trend_p)

    emerging_s = median_seconds(emerging, max(3, args.repeat // 2))
    print(
        json.dumps(
            {
                "bench": "hotspots",
                "cells": len(cells),
                "gi_star_fdr_median_s": round(ours, 4),
                "esda_g_local_median_s": round(theirs, 4),
                "ratio_vs_esda": round(theirs / ours, 2),
                "emerging_cells": len(sub),
                "emerging_steps": steps,
                "emerging_median_s": round(emerging_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
