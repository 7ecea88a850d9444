"""The Data page, driven through streamlit.testing as an analyst would use it."""

from __future__ import annotations

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

APP = str(REPO / "app" / "streamlit_app.py")


@pytest.fixture
def app(small_demo_db, monkeypatch):
    db, report = small_demo_db
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    return AppTest.from_file(APP, default_timeout=60).switch_page("screens/data.py").run(), report


def test_catalogue_and_load_report_are_shown(app):
    at, report = app
    assert not at.exception
    catalogue = at.dataframe[0].value
    assert set(catalogue["id"]) == {d["id"] for d in report["datasets"]}
    assert {"owner", "licence", "attribution"} <= set(catalogue.columns)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows read"] == f"{report['totals']['rows_read']:,}"
    assert metrics["Quarantined"] == f"{report['totals']['rows_quarantined']:,}"


def test_quarantine_sample_follows_the_pickers(app):
    at, _ = app
    at.selectbox(key="q_dataset").set_value("police_crime").run()
    at.selectbox(key="q_reason").set_value("bad_time").run()
    sample = at.dataframe[-1].value
    assert len(sample) > 0 and set(sample["reason"]) == {"bad_time"}
    assert sample["raw"].str.contains("31/02/2024").all()


def test_restricted_rows_are_withheld(app):
    at, _ = app
    at.selectbox(key="q_dataset").set_value("early_help").run()
    sample = at.dataframe[-1].value
    assert len(sample) > 0
    assert (sample["raw"] == "(withheld: restricted dataset)").all()


def test_missing_warehouse_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("COMMON_GROUND_DB", str(tmp_path / "none.duckdb"))
    for page in ("screens/map.py", "screens/data.py", "screens/ward.py", "screens/hotspots.py"):
        at = AppTest.from_file(APP, default_timeout=60).switch_page(page).run()
        assert not at.exception
        assert "make run" in at.error[0].value
