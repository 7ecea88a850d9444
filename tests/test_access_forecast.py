"""Forecasts follow the viewer's rights as counts do: the agency that owns a partners' dataset
gets exact forecasts, a partner agency released ones, and an agency outside a restricted
dataset's release list gets the answer given for a dataset that does not exist."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import forecast_cli
from app.access import AccessContext
from app.cli import main
from app.disclosure import DEFAULT_RULE
from app.forecast import ForecastError
from app.warehouse import open_readonly

POLICE = "Fairhaven Police"
COUNCIL = "Fairhaven City Council"
CHILDREN = "Fairhaven Children's Services"
OWNED = "police_crime"  # partners, owned by the police
RESTRICTED = "early_help"  # restricted, owned by children's services, released to nobody here

ACCESS = f"""
agencies = ["{POLICE}", "{COUNCIL}", "{CHILDREN}"]

[[grant]]
domain = "police.example"
agency = "{POLICE}"
role = "analyst"

[[grant]]
domain = "council.example"
agency = "{COUNCIL}"
role = "analyst"

[[grant]]
domain = "children.example"
agency = "{CHILDREN}"
role = "analyst"
"""


@pytest.fixture
def access_env(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "access.toml"
    path.write_text(textwrap.dedent(ACCESS), encoding="utf-8")
    monkeypatch.setenv("COMMON_GROUND_ACCESS", str(path))
    monkeypatch.setenv("COMMON_GROUND_AUDIT", str(tmp_path / "audit.jsonl"))
    return path


def _export(db: Path, out: Path, user: str, dataset: str = OWNED, capsys=None) -> tuple[int, str]:
    argv = ["export", "forecast", "--dataset", dataset, "--wards", "--months", "12"]
    code = main([*argv, "--db", str(db), "--out", str(out), "--user", user])
    return code, capsys.readouterr().err if capsys else ""


def test_the_owner_gets_exact_forecasts_and_a_partner_released_ones(
    small_demo_db, access_env, tmp_path, capsys
):
    db, _ = small_demo_db
    own, partner = tmp_path / "own.csv", tmp_path / "partner.csv"
    assert _export(db, own, "a@police.example", capsys=capsys)[0] == 0
    assert _export(db, partner, "b@council.example", capsys=capsys)[0] == 0
    exact, released = pd.read_csv(own), pd.read_csv(partner)
    assert len(exact) == len(released)  # every ward, each horizon, for both
    # The owner's: unrounded estimates, nothing suppressed.
    assert not exact["suppressed"].any()
    assert (exact["expected"] % DEFAULT_RULE.base != 0).any()
    # The partner's: multiples of the base, small ones suppressed, none below the threshold.
    shown = released.loc[~released["suppressed"], ["expected", "lower", "upper"]].to_numpy()
    assert np.all(np.isclose(shown % DEFAULT_RULE.base, 0))
    assert np.all(released.loc[~released["suppressed"], "expected"] >= DEFAULT_RULE.threshold)
    owner_meta = json.loads((tmp_path / "own.csv.json").read_text())
    partner_meta = json.loads((tmp_path / "partner.csv.json").read_text())
    assert owner_meta["forecast"]["protected"].startswith("Exact")
    assert "released" in partner_meta["forecast"]["methods"][0]["why"]
    assert "released" not in owner_meta["forecast"]["methods"][0]["why"]


def test_the_owner_backtest_is_scored_on_exact_counts(small_demo_db, access_env, capsys):
    db, _ = small_demo_db
    argv = ["forecast", "--backtest", "--dataset", OWNED, "--wards", "--months", "12", "--no-model", "--json"]
    lines = {}
    for user in ("a@police.example", "b@council.example"):
        assert main([*argv, "--db", str(db), "--user", user]) == 0
        lines[user] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "released" not in lines["a@police.example"]["why"]
    assert "released" in lines["b@council.example"]["why"]


def test_an_outsider_is_told_the_dataset_does_not_exist(small_demo_db, access_env, tmp_path, capsys):
    db, _ = small_demo_db
    out = tmp_path / "x.csv"
    code, hidden = _export(db, out, "a@police.example", RESTRICTED, capsys)
    code_typo, typo = _export(db, out, "a@police.example", "early_hlep", capsys)
    assert code == code_typo == 2 and not out.exists()
    assert hidden.replace(RESTRICTED, "X") == typo.replace("early_hlep", "X")
    assert RESTRICTED not in hidden.partition("known:")[2]
    argv = ["forecast", "--backtest", "--dataset", RESTRICTED, "--wards", "--db", str(db)]
    assert main([*argv, "--user", "a@police.example"]) == 2
    err = capsys.readouterr().err
    assert f"unknown dataset '{RESTRICTED}'" in err and RESTRICTED not in err.partition("known:")[2]
    # The owner may forecast it.
    assert _export(db, out, "c@children.example", RESTRICTED, capsys)[0] == 0


def test_the_engine_refuses_a_hidden_dataset_before_saying_anything_else(small_demo_db):
    """Called directly (the dashboard's way in), a hidden dataset gets the unknown dataset's
    answer, never "not a demand dataset" or a forecast."""
    db, _ = small_demo_db
    with open_readonly(db) as con:
        everyone = tuple(r[0] for r in con.execute("SELECT id FROM datasets").fetchall())
        outsider = AccessContext(
            email="a@x", agency="X", visible=tuple(d for d in everyone if d != RESTRICTED), local=False
        )
        with pytest.raises(ForecastError) as hidden:
            forecast_cli.build_forecast_export(con, RESTRICTED, None, months=12, access=outsider)
        with pytest.raises(ForecastError) as typo:
            forecast_cli.build_forecast_export(con, "nope", None, months=12, access=outsider)
        assert str(hidden.value).replace(RESTRICTED, "X") == str(typo.value).replace("nope", "X")
