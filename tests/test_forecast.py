"""Forecasts: the measures against hand-worked examples, no look into the future, the rule
that a model must beat the baselines, protected forecasts, the command line and the NYC
backtest floors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import CATALOGS
from hypothesis import given, settings
from hypothesis import strategies as st

from app import cli, forecast_cli
from app import forecast as fc
from app.disclosure import DEFAULT_RULE, Rule
from app.forecast_metrics import hit_rate, pai, pei, pooled, recapture, tallies, top_count

# The measures ---------------------------------------------------------------------------------


def _example() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """100 places ranked 0, 1, 2, ... by the forecast; 8 events next period, 4 the period before."""
    scores = np.arange(100, 0, -1, dtype=float)
    actual = np.zeros(100)
    actual[[0, 1, 50]] = [3, 1, 4]
    previous = np.zeros(100)
    previous[[0, 99]] = [2, 2]
    return scores, actual, previous


def test_measures_match_a_hand_worked_example():
    scores, actual, previous = _example()
    # Top 1 % = place 0 (3 of 8 events); top 5 % = places 0-4 (4 of 8).
    assert top_count(100, 1) == 1 and top_count(100, 5) == 5
    assert hit_rate(scores, actual, 1) == pytest.approx(3 / 8)
    assert pai(scores, actual, 1) == pytest.approx((3 / 8) / 0.01)
    assert pai(scores, actual, 5) == pytest.approx((4 / 8) / 0.05)
    # The best single place held 4; the best five held all 8.
    assert pei(scores, actual, 1) == pytest.approx(3 / 4)
    assert pei(scores, actual, 5) == pytest.approx(4 / 8)
    # Place 0 held half of the previous period's events and 3/8 of this one's.
    assert recapture(scores, actual, previous, 1) == pytest.approx((3 / 8) / (2 / 4))


def test_pooled_measures_add_up_the_origins_events():
    scores, actual, previous = _example()
    second = np.zeros(100)
    second[[0, 70]] = [1, 1]  # 1 of 2 captured by the same ranking
    rows = [tallies(scores, actual, previous), tallies(scores, second, previous)]
    out = pooled(rows)
    assert out["hit_1"] == pytest.approx((3 + 1) / (8 + 2))
    assert out["pai_1"] == pytest.approx((4 / 10) / 0.01)
    assert out["pei_1"] == pytest.approx((3 + 1) / (4 + 1))
    assert out["rri_1"] == pytest.approx((4 / 10) / (4 / 8))


def test_ties_rank_by_place_order_and_no_events_gives_no_score():
    flat = np.zeros(10)
    actual = np.zeros(10)
    actual[0] = 1
    assert hit_rate(flat, actual, 10) == 1.0  # the first place wins a tie, every time
    assert np.isnan(hit_rate(flat, np.zeros(10), 10))


@settings(deadline=None, max_examples=40)
@given(st.lists(st.integers(0, 5), min_size=20, max_size=60), st.integers(0, 2**31))
def test_a_perfect_ranking_has_pei_one_and_pai_at_least_any_other(counts, seed):
    actual = np.array(counts, dtype=float)
    if actual.sum() == 0:
        return
    other = np.random.default_rng(seed).random(len(actual))
    for a in (1, 5):
        assert pei(actual, actual, a) == pytest.approx(1.0)
        assert pai(actual, actual, a) >= pai(other, actual, a) - 1e-9


# No leakage -----------------------------------------------------------------------------------


def _synthetic(places: int = 300, months: int = 40, seed: int = 1) -> fc.Series:
    """Poisson counts with a fixed intensity per place and a yearly cycle, on a ring of places
    (each the neighbour of the next)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.5, 2.0, places)
    season = 1 + 0.3 * np.sin(2 * np.pi * np.arange(months) / 12)
    values = rng.poisson(rate[:, None] * season[None, :]).astype(float)
    ring = sp.diags([np.ones(places - 1), np.ones(places - 1)], [1, -1], format="csr")
    month_axis = np.arange(np.datetime64("2020-01"), np.datetime64("2020-01") + months)
    return fc.Series(np.arange(places, dtype=np.uint64), month_axis, values, ring, protected=False)


def _perturbed_after(series: fc.Series, origin: int) -> fc.Series:
    values = series.values.copy()
    values[:, origin:] = np.random.default_rng(9).poisson(20, values[:, origin:].shape)
    return fc.Series(series.places, series.months, values, series.neighbours, False)


def test_forecasts_from_an_origin_ignore_every_month_after_it():
    series = _synthetic()
    origin = 30
    changed = _perturbed_after(series, origin)
    for name in fc.BASELINES:
        for h in (1, 2, 3):
            before = fc.baseline(name, series.values, origin, h)
            after = fc.baseline(name, changed.values, origin, h)
            np.testing.assert_array_equal(before, after)
    models = [fc.fit_model(s.values, s.neighbours, s.months, origin, (1, 2, 3)) for s in (series, changed)]
    for h in (1, 2, 3):
        first, second = (
            fc.model_forecast(m, s.values, s.neighbours, s.months, origin, h)
            for m, s in zip(models, (series, changed), strict=True)
        )
        np.testing.assert_array_equal(first, second)


def test_backtest_of_earlier_origins_ignores_later_months():
    """The same backtest, cut before the last months were changed, scores the same."""
    series = _synthetic(months=40)
    changed = _perturbed_after(series, 36)
    # Origins 24..35 use months before 36 only, whatever months 36.. hold.
    cut = [
        fc.Series(s.places, s.months[:36], s.values[:, :36], s.neighbours, False) for s in (series, changed)
    ]
    first, second = (fc.backtest(s, months=12) for s in cut)
    assert first.scores == second.scores
    assert first.origins[0] == "2022-01" and len(first.origins) == 12


# The model must beat the baselines ------------------------------------------------------------


def _scores(model_pai: float) -> dict[str, dict[str, float]]:
    base = {"last_12": 8.0, "all_history": 10.0, "smoothed": 9.0, "seasonal_naive": 5.0}
    out = {name: {"pai_1": v, "pai_5": v / 2} for name, v in base.items()}
    out[fc.MODEL] = {"pai_1": model_pai, "pai_5": 1.0}
    return out


@pytest.mark.parametrize(
    ("model_pai", "chosen"),
    [(10.99, "all_history"), (11.0, fc.MODEL), (12.5, fc.MODEL), (9.0, "all_history")],
)
def test_the_model_is_used_only_when_it_beats_the_best_baseline_by_ten_percent(model_pai, chosen):
    method, why = fc.choose(_scores(model_pai), 60)
    assert method == chosen
    assert "10 %" in why and "60 monthly origins" in why
    if chosen != fc.MODEL:
        assert why.startswith("The all-history count is used")


def test_baseline_ties_are_broken_by_pai_at_five_percent():
    scores = {name: {"pai_1": 5.0, "pai_5": 1.0} for name in fc.BASELINES}
    scores["smoothed"]["pai_5"] = 2.0
    assert fc.choose(scores, 12)[0] == "smoothed"


def test_intervals_are_ordered_and_wider_with_overdispersion():
    mean = np.array([0.0, 0.5, 3.0, 20.0])
    low, high = fc.interval(mean, 0.0)
    wide_low, wide_high = fc.interval(mean, 2.0)
    assert (low <= mean).all() and (mean <= high + 1e-9).all()
    assert (wide_high >= high).all() and (wide_low <= low).all()
    assert low[0] == high[0] == 0


# Protected forecasts --------------------------------------------------------------------------


def test_release_suppresses_small_expected_values_and_rounds_the_rest():
    frame = pd.DataFrame(
        {"expected": [0.0, 4.9, 5.0, 12.6], "lower": [0, 1, 2, 8.0], "upper": [1, 9, 9, 17.0]}
    )
    out = fc.release(frame, True, Rule(threshold=5, base=5))
    assert out["suppressed"].tolist() == [True, True, False, False]
    assert out["expected"].isna().tolist() == [True, True, False, False]
    assert out["lower"].isna().tolist() == [True, True, False, False]
    assert out.loc[2:, "expected"].tolist() == [5.0, 15.0]
    assert (out.loc[2:, ["expected", "lower", "upper"]] % 5 == 0).all().all()
    assert len(out) == len(frame)


@pytest.fixture(scope="module")
def demo_con(small_demo_db):
    from app.warehouse import connect

    con = connect(small_demo_db[0], read_only=True)
    yield con
    con.close()


def test_protected_series_hold_released_figures_only(demo_con):
    series = fc.load_series(demo_con, "police_crime", 8)
    values = np.unique(series.values)
    # Released figures are multiples of 5; suppressed ones (zero included) the stand-in 2.
    assert series.protected
    assert set(values) <= {2.0} | {float(v) for v in range(5, int(values.max()) + 5, 5)}
    exact = fc.load_series(demo_con, "police_asb", 8)
    assert not exact.protected and {0.0, 1.0} <= set(np.unique(exact.values))


@pytest.mark.parametrize("res", [8, None])
def test_protected_forecasts_list_every_place_and_are_never_small_unsuppressed(demo_con, res):
    from app.grid import study_area_cells

    result = forecast_cli.build_forecast_export(demo_con, "police_crime", res, months=12)
    frame = result.frame
    places = frame["h3_cell"] if res else frame["ward_code"]
    expected_places = (
        len(study_area_cells(demo_con, res))
        if res
        else demo_con.execute("SELECT count(*) FROM wards").fetchone()[0]
    )
    assert places.nunique() == expected_places
    assert len(frame) == 2 * expected_places  # every place, both horizons
    shown = frame[~frame["suppressed"]]
    assert (shown["expected"] >= DEFAULT_RULE.threshold).all()
    assert (shown["expected"] % DEFAULT_RULE.base == 0).all()
    assert frame.loc[frame["suppressed"], ["expected", "lower", "upper"]].isna().all().all()
    meta = result.metadata
    assert meta["export"] == "forecast" and meta["suppression"]["threshold"] == DEFAULT_RULE.threshold
    assert meta["forecast"]["methods"][0]["method"] in (*fc.BASELINES, fc.MODEL)
    assert "released monthly figures" in meta["forecast"]["methods"][0]["why"]


# The command line -----------------------------------------------------------------------------


def test_backtest_command_prints_one_json_line_last(small_demo_db, capsys):
    db = str(small_demo_db[0])
    argv = ["forecast", "--backtest", "--dataset", "fire_incidents", "--res", "8", "--months", "12"]
    assert cli.main([*argv, "--db", db, "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    out = json.loads(last)
    assert {"dataset", "res", "origins", "method", "why", "pai_1", "pai_5", "pei_1", "pei_5"} <= set(out)
    assert set(out["baselines"]) == set(fc.BASELINES)
    assert {"pai_1", "pai_5"} <= set(out["baselines"]["last_12"])
    assert out["origins"] == 12 and out["dataset"] == "fire_incidents" and out["res"] == 8
    assert out["pai_1"] >= max(b["pai_1"] for b in out["baselines"].values())
    assert cli.main([*argv, "--db", db, "--no-model"]) == 0
    assert "PAI 1%" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("dataset", "message"),
    [("nope", "unknown dataset 'nope'"), ("police_patrols", "forecasts are made for demand datasets")],
)
def test_bad_forecast_requests_are_one_line_and_exit_two(small_demo_db, capsys, dataset, message):
    code = cli.main(["forecast", "--backtest", "--dataset", dataset, "--db", str(small_demo_db[0]), "--json"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_export_forecast_writes_file_and_sidecar(small_demo_db, tmp_path, capsys):
    out = tmp_path / "fire.csv"
    argv = ["export", "forecast", "--dataset", "fire_incidents", "--res", "8", "--months", "12"]
    assert cli.main([*argv, "--db", str(small_demo_db[0]), "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert {"h3_cell", "horizon", "expected", "lower", "upper", "method"} <= set(frame.columns)
    assert set(frame["horizon"]) == set(fc.HORIZONS)
    assert (frame["lower"] <= frame["expected"] + 1e-9).all() and (
        frame["expected"] <= frame["upper"] + 1
    ).all()
    meta = json.loads((tmp_path / "fire.csv.json").read_text())
    assert meta["file"] == "fire.csv" and meta["load_report"] and meta["data_vintage"]
    assert meta["forecast"]["methods"][0]["pai_1"] is not None
    missing = cli.main([*argv, "--db", str(tmp_path / "none.duckdb"), "--out", str(out)])
    assert missing == 2 and "no warehouse yet" in capsys.readouterr().err
    unnamed = ["export", "forecast", "--db", str(small_demo_db[0]), "--out", str(out)]
    assert cli.main(unnamed) == 2
    assert capsys.readouterr().err.strip() == "error: name one demand dataset to forecast with --dataset"


# Real data ------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_nyc_shootings_backtest_meets_the_floors(tmp_path):
    from app.ingest import load
    from app.warehouse import connect

    load(CATALOGS / "nyc-311-nypd.toml", tmp_path / "w.duckdb")
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        series = fc.load_series(con, "shootings", 9)
    result = fc.backtest(series, 60)
    chosen = result.scores[result.method]
    assert len(result.origins) == 60 and result.origins[0] == "2014-01"
    # The floors, on the 8,349 resolution-9 cells that overlap an NTA, each shooting
    # incident counted once (13.77 / 9.61 measured).
    assert len(series.places) == 8349
    assert chosen["pai_1"] >= 13.1 and chosen["pai_5"] >= 9.4
    assert all(chosen["pai_1"] >= result.scores[b]["pai_1"] for b in fc.BASELINES)
    assert chosen["pai_1"] > 5 * result.scores["random"]["pai_1"]


def test_month_precision_data_keeps_its_last_month(demo_con):
    """police.uk-style months read as the first of the month: December is whole, not partial."""
    from app.filters import Filter

    months, note = fc.covered_months(demo_con, Filter(datasets=("police_asb",)))
    assert str(months[0]) == "2023-01" and str(months[-1]) == "2025-12" and note is None
