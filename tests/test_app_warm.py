"""A ward profile's shared parts made ready while the map is looked at (``app.dashboard.warm``):
once the map has been left alone, the first ward clicked finds the briefing's city-wide inputs
and the early warnings computed, and a view the session has moved on from is not computed."""

from __future__ import annotations

import time

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

from app import briefing, early_warning
from app.dashboard import warm

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")


@pytest.fixture
def counted(monkeypatch):
    """How often the engine computed the briefing's city-wide inputs and the early warnings."""
    calls = {"briefing": 0, "warnings": 0}
    city, warnings = briefing.city_briefing_inputs, early_warning.warnings

    def city_inputs(*args, **kwargs):
        calls["briefing"] += 1
        return city(*args, **kwargs)

    def warned(*args, **kwargs):
        calls["warnings"] += 1
        return warnings(*args, **kwargs)

    monkeypatch.setattr(briefing, "city_briefing_inputs", city_inputs)
    monkeypatch.setattr(early_warning, "warnings", warned)
    return calls


@pytest.fixture
def fresh(small_demo_db, monkeypatch):
    import streamlit as st

    db, _ = small_demo_db
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    monkeypatch.setattr(warm, "IDLE_S", 0.2)
    with warm._one_at_a_time:  # a warm-up an earlier test began has ended
        warm._latest.clear()
        warm._ready.clear()
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def _wait_until(done, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "the ward profiles were not made ready"
        time.sleep(0.1)


def test_the_first_ward_finds_its_shared_parts_ready(fresh, counted):
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("screens/map.py").run()
    assert not at.exception
    _wait_until(lambda: len(warm._ready) == 1)
    assert counted == {"briefing": 1, "warnings": 1}
    at.query_params["ward"] = "E05900001"
    at.switch_page("screens/ward.py").run()
    assert not at.exception, at.exception
    assert "Summary" in [h.value for h in at.subheader]
    assert not at.warning or "No ward has the code" not in at.warning[0].value
    assert counted == {"briefing": 1, "warnings": 1}  # read from the caches the map filled


def test_a_view_moved_on_from_is_not_made_ready(fresh, counted, monkeypatch):
    """Two requests of one session in a row: only the later view is computed."""
    started = []
    monkeypatch.setattr("app.dashboard.cached.ward_profiles_shared", lambda *key: started.append(key))
    first, second = ((1, 1), "first", 8, 1), ((1, 1), "second", 8, 1)
    for key in (first, second):
        warm._latest["session"] = key
    warm._run("session", first)
    warm._run("session", second)
    assert started == [second]
    assert list(warm._ready) == [second]
    warm._run("session", second)  # made ready once
    assert started == [second]
