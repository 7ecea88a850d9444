"""Disclosure control: the rule's properties, and the differencing attacks it must defeat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.disclosure import DEFAULT_RULE, Rule, apply, perturbation

RULE = DEFAULT_RULE
counts_st = st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=60)
keys_st = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(counts=counts_st, seed=keys_st)
def test_protected_counts_are_suppressed_or_rounded(counts, seed):
    counts = np.array(counts, dtype=float)
    keys = np.random.default_rng(seed % 2**32).integers(0, 2**63, len(counts), dtype=np.uint64)
    values, suppressed = RULE.release(counts, True, keys)
    # Zero is suppressed like 1-4, so "<5" never tells that a place holds at least one record.
    assert (suppressed == (counts < 5)).all()
    shown = values[~suppressed]
    assert (shown % 5 == 0).all()
    assert (values[counts >= 5] >= 5).all()  # never released as below the threshold
    assert np.isnan(values[suppressed]).all()
    again, _ = RULE.release(counts, True, keys)
    np.testing.assert_array_equal(values, again)  # the same records, the same figure


@settings(deadline=None)
@given(counts=counts_st)
def test_open_counts_are_untouched(counts):
    values, suppressed = RULE.release(np.array(counts, float), False)
    assert values.tolist() == counts and not suppressed.any()


def test_protected_counts_need_keys():
    with pytest.raises(ValueError):
        RULE.release(np.array([10.0]), True)


def test_perturbation_is_symmetric_mostly_small_and_has_no_bound():
    keys = np.arange(1_000_000, dtype=np.uint64)
    noise = perturbation(keys, keys.shape)
    assert abs(noise.mean()) < 0.01
    assert 0.45 < (noise == 0).mean() < 0.55
    assert (np.abs(noise) <= 2).mean() > 0.9
    assert np.abs(noise).max() >= 8  # the tail goes on: no bound an attacker could rely on
    assert (noise == -noise.max()).any()


def interval_attack(parent_released: float, others_released: list[float], threshold: int = 5, half: int = 2):
    """What an attacker who assumes plain rounding (true within +-half of each released figure)
    concludes about one suppressed child: the integers it could be."""

    def bounds(r: float) -> tuple[float, float]:
        if np.isnan(r):  # suppressed: somewhere in 0 .. threshold - 1
            return 0, threshold - 1
        if r == 0:
            return 0, 0
        return max(r - half, threshold), r + half

    p_lo, p_hi = bounds(parent_released)
    lo = p_lo - sum(bounds(r)[1] for r in others_released)
    hi = p_hi - sum(bounds(r)[0] for r in others_released)
    return set(range(max(int(np.ceil(lo)), 1), min(int(np.floor(hi)), threshold - 1) + 1))


def plain_round(c: float) -> float:
    return 5 * np.floor(c / 5 + 0.5)


def test_plain_rounding_falls_to_differencing():
    """Why the rule perturbs: without it, a parent of 17 and children 8, 8 and 1 give the 1 away."""
    found = interval_attack(plain_round(17), [plain_round(8), plain_round(8)])
    assert found == {1}


@settings(max_examples=300, deadline=None)
@given(
    small=st.integers(min_value=1, max_value=4),
    others=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
    seed=keys_st,
)
def test_parent_minus_children_never_certain(small, others, seed):
    """A parent cell minus its released children: the attacker's plain-rounding deduction is
    either uncertain, or contradicted by some other set of records with the same counts."""
    rng = np.random.default_rng(seed % 2**32)
    truth = [small, *others]
    outcomes = set()
    for _ in range(24):  # the same counts held by different records (different keys)
        child_keys = rng.integers(0, 2**63, len(truth), dtype=np.uint64)
        parent_key = np.bitwise_xor.reduce(child_keys)
        released, _ = RULE.release(np.array(truth, float), True, child_keys)
        parent, _ = RULE.release(np.array([sum(truth)], float), True, np.array([parent_key]))
        deduced = interval_attack(parent[0], list(released[1:]))
        outcomes.add(frozenset(deduced))
    # Certainty would need every draw to deduce exactly {small}; it never does.
    assert outcomes != {frozenset({small})}


@settings(max_examples=200, deadline=None)
@given(
    small=st.integers(min_value=1, max_value=4), rest=st.integers(min_value=5, max_value=400), seed=keys_st
)
def test_one_filter_minus_another(small, rest, seed):
    """Filter A holds one category more than filter B; A minus B is the small category."""
    rng = np.random.default_rng(seed % 2**32)
    guesses = set()
    for _ in range(16):
        keys_b = rng.integers(0, 2**63, dtype=np.uint64)
        keys_small = rng.integers(0, 2**63, dtype=np.uint64)
        a, _ = RULE.release(np.array([rest + small], float), True, np.array([keys_b ^ keys_small]))
        b, _ = RULE.release(np.array([rest], float), True, np.array([keys_b]))
        guesses.add(a[0] - b[0])
    assert guesses != {float(small)}  # the difference never reliably equals the small count


def test_apply_drops_keys_and_hides_weights_where_suppressed():
    frame = pd.DataFrame(
        {
            "sharing": ["restricted", "open", "partners"],
            "count": [3, 3, 12],
            "weight": [9.0, 3.0, 30.0],
            "cell_key": np.array([1, 2, 3], dtype=np.uint64),
        }
    )
    out = apply(frame, RULE, ("count", "weight"))
    assert "cell_key" not in out
    assert out["suppressed"].tolist() == [True, False, False]
    assert np.isnan(out.loc[0, "count"]) and np.isnan(out.loc[0, "weight"])
    assert out.loc[1, "count"] == 3  # open: as it is
    assert out.loc[2, "count"] % 5 == 0


def test_rule_text_names_threshold_and_base():
    text = Rule(threshold=10, base=3).describe()
    assert "below 10" in text and "nearest 3" in text
    assert RULE.label(float("nan"), True) == "<5"
