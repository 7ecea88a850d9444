"""Gi*, FDR, bins, Mann-Kendall and the emerging-hotspot rules, on arrays."""

from __future__ import annotations

import h3
import numpy as np
import pytest
from scipy.stats import false_discovery_control

from app.emerging import classify
from app.grid import kring_weights, ward_weights
from app.stats import bh_fdr, confidence_bins, gi_star, mann_kendall


def grid(radius: int = 15, res: int = 8) -> np.ndarray:
    centre = h3.latlng_to_cell(52.36, -0.92, res)
    return np.array(sorted(h3.str_to_int(c) for c in h3.grid_disk(centre, radius)), dtype=np.uint64)


@pytest.mark.parametrize("k", [1, 2])
def test_gi_star_equals_esda(k):
    esda = pytest.importorskip("esda")
    from libpysal.weights import W

    cells = grid()
    rng = np.random.default_rng(k)
    x = rng.poisson(3, len(cells)).astype(float)
    x[:40] += 12  # a cluster, so that some z-scores are large
    weights = kring_weights(cells, k)
    neighbours = {i: [int(j) for j in weights[i].indices if j != i] for i in range(len(cells))}
    w = W(neighbours)
    w.transform = "B"
    expected = esda.G_Local(x, w, star=True, transform="B", permutations=0)
    got = gi_star(x, weights)
    np.testing.assert_allclose(got.z, expected.Zs, atol=1e-6)


def test_planted_cluster_is_hot_and_fdr_is_stricter():
    cells = grid()
    rng = np.random.default_rng(0)
    x = rng.poisson(2, len(cells)).astype(float)
    centre = h3.str_to_int(h3.latlng_to_cell(52.36, -0.92, 8))
    cluster = [np.searchsorted(cells, h3.str_to_int(c)) for c in h3.grid_disk(h3.int_to_str(centre), 1)]
    x[cluster] += 15
    result = gi_star(x, kring_weights(cells, 1))
    assert (result.bin[cluster] == 3).all()
    assert (result.p_fdr >= result.p - 1e-15).all()
    assert result.warning is None


def test_few_cells_or_flat_values_warn():
    cells = grid(radius=2)
    assert "too few" in gi_star(np.arange(len(cells), dtype=float), kring_weights(cells, 1)).warning
    flat = gi_star(np.ones(len(grid())), kring_weights(grid(), 1))
    assert "same value" in flat.warning and (flat.bin == 0).all()


def test_bh_matches_scipy():
    p = np.random.default_rng(1).uniform(0, 0.2, 500) ** 2
    np.testing.assert_allclose(bh_fdr(p), false_discovery_control(p, method="bh"), atol=1e-12)


def test_bins_follow_arcgis_thresholds():
    z = np.array([3, -3, 2, 2, -1.7, 0.5])
    p = np.array([0.005, 0.005, 0.03, 0.07, 0.09, 0.5])
    assert confidence_bins(z, p).tolist() == [3, -3, 2, 1, -1, 0]


def test_mann_kendall_textbook_values():
    z, p = mann_kendall(np.arange(10.0))
    assert p[0] < 0.001
    assert z[0] == pytest.approx(44 / np.sqrt(125))  # S = 45, Var = 10*9*25/18
    z_down, _ = mann_kendall(np.arange(10.0)[::-1])
    assert z_down[0] == pytest.approx(-z[0])
    z_flat, p_flat = mann_kendall(np.ones(10))
    assert z_flat[0] == 0 and p_flat[0] == 1
    z_ties, _ = mann_kendall(np.array([1, 1, 2, 2, 3, 3, 4, 4.0]))
    assert z_ties[0] > 0  # an upward series with ties is still upward


def test_ward_contiguity_includes_self_and_touching_neighbours():
    import shapely

    squares = [shapely.box(i, 0, i + 1, 1) for i in range(3)] + [shapely.box(10, 10, 11, 11)]
    w = ward_weights(squares).toarray()
    assert w.tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]]


def series(*steps: str) -> tuple[np.ndarray, np.ndarray]:
    """'H' hot, 'C' cold, '.' neither, one letter per step."""
    text = "".join(steps)
    return np.array([c == "H" for c in text]), np.array([c == "C" for c in text])


@pytest.mark.parametrize(
    "pattern, steps, trend",
    [
        ("new hot spot", "." * 19 + "H", 0),
        ("consecutive hot spot", "." * 14 + "H" * 6, 0),
        ("intensifying hot spot", "H" * 20, 3),
        ("persistent hot spot", "H" * 20, 0),
        ("diminishing hot spot", "H" * 20, -3),
        ("sporadic hot spot", ".H..H...H.H....H...H", 0),
        ("oscillating hot spot", "C...H..C..H...C....H", 0),
        ("historical hot spot", "H" * 19 + ".", 0),
        ("new cold spot", "." * 19 + "C", 0),
        ("consecutive cold spot", "." * 14 + "C" * 6, 0),
        ("intensifying cold spot", "C" * 20, -3),
        ("persistent cold spot", "C" * 20, 0),
        ("diminishing cold spot", "C" * 20, 3),
        ("sporadic cold spot", ".C..C...C.C....C...C", 0),
        ("oscillating cold spot", "H...C..H..C...H....C", 0),
        ("historical cold spot", "C" * 19 + ".", 0),
        ("no pattern", "." * 20, 0),
        ("no pattern", "..H..H..............", 0),
    ],
)
def test_every_emerging_pattern(pattern, steps, trend):
    hot, cold = series(steps)
    trend_p = 0.001 if trend else 0.8
    got = classify(hot[None, :], cold[None, :], np.array([float(trend)]), np.array([trend_p]))
    assert got[0] == pattern
