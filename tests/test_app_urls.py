"""Links with values the dashboard cannot show open the page with a note saying what was left
out, never a traceback: a hand-edited, truncated or stale link is an everyday thing."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import REPO, map_decks
from streamlit.testing.v1 import AppTest

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")


@pytest.fixture
def opened(small_demo_db, monkeypatch):
    db, _ = small_demo_db
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))

    def open_page(page: str = "screens/data.py", **params: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page(page).run()
        assert not at.exception, at.exception[0].message if at.exception else ""
        return at

    return open_page


def note(at: AppTest) -> str:
    """The one note about the link (its text as the page shows it, escapes removed)."""
    found = [w.value for w in at.warning if w.value.startswith("Left out of this link")]
    assert len(found) == 1, [w.value for w in at.warning]
    return found[0].replace("\\", "")


@pytest.mark.parametrize(
    ("params", "said", "key", "value"),
    [
        ({"res": "16"}, "hexagon resolution (5 to 11) 16", "f_res", 8),
        ({"res": "1" + "0" * 30}, "hexagon resolution (5 to 11) 1000", "f_res", 8),
        ({"res": "10"}, None, "f_res", 10),
        ({"hr": "99"}, "hour (0 to 23) 99", "f_hours", (0, 23)),
        ({"hr": "²"}, "hour (0 to 23) ²", "f_hours", (0, 23)),
        ({"hr": "7,99,9"}, "hour (0 to 23) 99", "f_hours", (7, 9)),
        ({"dow": "9"}, "day of the week (1 to 7) 9", "f_weekdays", []),
        ({"dow": "1,9"}, "day of the week (1 to 7) 9", "f_weekdays", ["Mon"]),
        ({"kinds": "demand,nonsense"}, "record kind nonsense", "f_kinds", ["demand"]),
    ],
)
def test_a_value_out_of_range_is_left_out_with_a_note(opened, params, said, key, value):
    at = opened(**params)
    assert at.session_state[key] == value
    if said is None:
        assert not [w for w in at.warning if w.value.startswith("Left out of this link")]
    else:
        assert said in note(at)


def test_a_reversed_period_gives_the_whole_period_with_a_note(opened, small_demo_db):
    at = opened(**{"from": "2025-01-01", "to": "2024-01-01"})
    assert "period 2025-01-01 to 2024-01-01 (it ends before it starts)" in note(at)
    start, end = at.session_state["f_period"]
    assert start < end
    assert "from" not in at.query_params and "to" not in at.query_params


def test_a_period_outside_the_data_gives_the_whole_period_with_a_note(opened):
    at = opened(**{"from": "2090-01-01"})
    assert "period 2090-01-01" in note(at) and "the data run from" in note(at)


def test_a_date_that_is_not_a_date_is_left_out_with_a_note(opened):
    at = opened(**{"from": "garbage"})
    assert "first day garbage (not a YYYY-MM-DD date)" in note(at)


def test_an_unknown_dataset_is_named_and_the_known_one_kept(opened):
    at = opened(ds="police_crime,no_such")
    assert "dataset (not in this warehouse) no_such" in note(at)
    assert at.session_state["f_datasets"] == ["police_crime"]
    assert at.query_params["ds"] == "police_crime"


def test_an_unknown_category_is_named(opened):
    at = opened(ds="police_crime", cat="no such category")
    assert "category (not in these datasets) no such category" in note(at)
    assert at.session_state["f_categories"] == []


def test_markup_in_a_link_is_shown_as_text(opened):
    at = opened(ds="[click](http://x) <b>x</b>")
    shown = next(w.value for w in at.warning if w.value.startswith("Left out of this link"))
    assert "\\[click\\]\\(http\\:" in shown and "\\<b\\>" in shown


def test_the_map_opens_on_a_hostile_link(opened):
    at = opened("screens/map.py", res="16", hr="²", dow="9", **{"from": "garbage"})
    said = note(at)
    for part in ("resolution (5 to 11) 16", "hour (0 to 23) ²", "day of the week (1 to 7) 9", "garbage"):
        assert part in said
    assert map_decks(at)


def test_the_shipped_config_hides_error_details_and_is_read_by_streamlit():
    """Users see no traceback, exception type or server path; the values are ones this
    Streamlit accepts (read from the repository root, as `make run` starts it)."""
    import subprocess
    import sys

    read = (
        "from streamlit import config; config.get_config_options(force_reparse=True); "
        "print([config.get_option(k) for k in ('client.showErrorDetails', "
        "'server.enableXsrfProtection', 'server.maxUploadSize')])"
    )
    done = subprocess.run([sys.executable, "-c", read], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['none', True, 200]"
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr


def test_unknown_layers_metrics_and_wards_in_a_link_are_named(small_demo_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(small_demo_db[0]))
    at = AppTest.from_file(APP, default_timeout=120).switch_page("screens/map.py")
    at.query_params.update({"layers": "wards,nosuch", "metric": "bogus"})
    at.run()
    assert not at.exception
    assert any("nosuch" in w.value and "bogus" in w.value for w in at.warning)
    at = AppTest.from_file(APP, default_timeout=120).switch_page("screens/ward.py")
    at.query_params["ward"] = "E0NOTAWARD"
    at.run()
    assert not at.exception
    assert any("E0NOTAWARD" in w.value for w in at.warning)


def test_a_category_choice_says_which_datasets_it_narrows(small_demo_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(small_demo_db[0]))
    at = AppTest.from_file(APP, default_timeout=120).switch_page("screens/hotspots.py")
    at.query_params["cat"] = "Fire"
    at.run()
    assert not at.exception
    note = next(c.value for c in at.sidebar.caption if "narrow" in c.value)
    narrowed, whole = note.split("shown whole")
    assert "Fire and rescue incidents" in narrowed and "Home fire\\-safety visits" in whole


def _reloaded(monkeypatch, at: AppTest, first: dt.date, last: dt.date) -> AppTest:
    """``at`` run again after a reload that changed the data's period to ``first``..``last``."""
    from app.dashboard import ui

    monkeypatch.setattr(ui, "period_of", lambda stamp, ctx: (first, last))
    at.run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    return at


def test_a_period_left_whole_follows_the_data_after_a_reload(opened, monkeypatch):
    """Someone looking at everything keeps seeing everything when a reload brings newer
    records: the period does not freeze at the day of the old load."""
    at = opened()
    first, last = at.session_state["f_period"]
    grown = last + dt.timedelta(days=24)
    _reloaded(monkeypatch, at, first, grown)
    assert at.session_state["f_period"] == (first, grown)
    assert "to" not in at.query_params and "from" not in at.query_params


def test_a_chosen_period_stays_and_is_kept_within_the_data_after_a_reload(opened, monkeypatch):
    at = opened(**{"from": "2024-02-01", "to": "2024-06-30"})
    first, _ = at.session_state["f_period"]
    assert at.session_state["f_period"] == (dt.date(2024, 2, 1), dt.date(2024, 6, 30))
    _reloaded(monkeypatch, at, first, dt.date(2026, 3, 31))
    assert at.session_state["f_period"] == (dt.date(2024, 2, 1), dt.date(2024, 6, 30))
    # A reload that shortens the data: the chosen end is kept within it, with no error.
    _reloaded(monkeypatch, at, first, dt.date(2024, 4, 30))
    assert at.session_state["f_period"] == (dt.date(2024, 2, 1), dt.date(2024, 4, 30))
    # One that leaves the chosen period wholly outside gives the whole period.
    _reloaded(monkeypatch, at, dt.date(2024, 8, 1), dt.date(2024, 12, 31))
    assert at.session_state["f_period"] == (dt.date(2024, 8, 1), dt.date(2024, 12, 31))
