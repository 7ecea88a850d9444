"""The Data page, driven through streamlit.testing as an analyst would use it."""

from __future__ import annotations

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")


@pytest.fixture
def app(small_demo_db, monkeypatch):
    db, report = small_demo_db
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    return AppTest.from_file(APP, default_timeout=60).switch_page("pages/data.py").run(), report


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
    assert not sample["file"].str.contains("/").any()  # the file's name, not the server's path


def test_restricted_rows_are_withheld(app):
    at, _ = app
    at.selectbox(key="q_dataset").set_value("early_help").run()
    sample = at.dataframe[-1].value
    assert len(sample) > 0
    assert (sample["raw"] == "(withheld: restricted dataset)").all()


def test_missing_warehouse_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("COMMON_GROUND_DB", str(tmp_path / "none.duckdb"))
    for page in ("pages/map.py", "pages/data.py", "pages/ward.py", "pages/hotspots.py"):
        at = AppTest.from_file(APP, default_timeout=60).switch_page(page).run()
        assert not at.exception
        assert "make run" in at.error[0].value


GRAFFITI = (
    "when,lat,lon,what\n"
    "2024-05-01 10:00:00,52.36,-0.92,Graffiti\n"
    "2024-05-02 11:00:00,52.37,-0.93,Graffiti\n"
    "2024-05-03 12:00:00,,,Graffiti\n"
)


@pytest.fixture
def make_run(small_demo, small_demo_db, tmp_path, monkeypatch):
    """The app as `make run` starts it: from the repository's folder, with the relative paths
    data/catalog.toml and data/warehouse.duckdb in the environment."""
    import shutil

    from app.ingest import load

    shutil.copytree(small_demo, tmp_path / "data")
    shutil.copy(small_demo_db[0], tmp_path / "data" / "warehouse.duckdb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMON_GROUND_DB", "data/warehouse.duckdb")
    monkeypatch.setenv("COMMON_GROUND_CATALOG", "data/catalog.toml")
    load("data/catalog.toml", "data/warehouse.duckdb")
    return tmp_path


def upload_and_map(filename: str, data: bytes) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).switch_page("pages/data.py").run()
    at.file_uploader(key="up_file").upload(filename, data).run()
    at.text_input(key="up_id").set_value("street_art")
    at.text_input(key="up_title").set_value('Graffiti \U0001f3a8 "tags"')
    at.text_input(key="up_agency").set_value("Volunteers")
    for key, column in {"up_lat": "lat", "up_lon": "lon", "up_time": "when", "up_category": "what"}.items():
        at.selectbox(key=key).set_value(column)
    return at


def press(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def test_add_a_dataset_with_the_relative_paths_of_make_run(make_run):
    at = press(upload_and_map("graffiti reports.csv", GRAFFITI.encode()), "Check")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "ok: 2" in at.success[0].value and "missing_coordinates: 1" in at.success[0].value
    at = press(at, "Check and load")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success[-1].value == "Loaded 2 rows; quarantined 1."
    assert "uploads/graffiti_reports-" in (make_run / "data" / "warehouse.duckdb.uploads.toml").read_text()


def test_a_file_over_the_row_cap_is_refused_in_words(make_run, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_UPLOAD_MAX_ROWS", "2")
    at = press(upload_and_map("graffiti.csv", GRAFFITI.encode()), "Check")
    assert not at.exception
    assert at.error[0].value.startswith("graffiti-") and "has 3 rows" in at.error[0].value
    assert "at most 2" in at.error[0].value and "python -m app load" in at.error[0].value


def test_an_uploaded_entry_the_load_skips_is_named_on_the_page(
    small_demo, small_demo_db, monkeypatch, tmp_path
):
    """A broken uploads list never stops a load; the analyst sees on the Data page what was
    skipped and why, naming the list."""
    import shutil

    db = tmp_path / "warehouse.duckdb"
    shutil.copy(small_demo_db[0], db)
    (tmp_path / "warehouse.duckdb.uploads.toml").write_text('[[datasets]\nid = "broken', encoding="utf-8")
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    monkeypatch.setenv("COMMON_GROUND_CATALOG", str(small_demo / "catalog.toml"))
    at = AppTest.from_file(APP, default_timeout=60).switch_page("pages/data.py").run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("Not loaded" in w and "uploads" in w for w in warnings), warnings
