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
    assert not sample["file"].str.contains("/").any()  # the file's name, not the server's path


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
    at = AppTest.from_file(APP, default_timeout=120).switch_page("screens/data.py").run()
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
    at = press(at, "Load this dataset")
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
    at = AppTest.from_file(APP, default_timeout=60).switch_page("screens/data.py").run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("Not loaded" in w and "uploads" in w for w in warnings), warnings


def grid_csv(con, days: list[str]) -> bytes:
    """A council's file as it comes: British National Grid coordinates inside the study area,
    day-first dates, one row without a place."""
    from pyproj import Transformer

    from app import quality

    minx, miny, maxx, maxy = quality.study_area(con)["bounds"]
    to_grid = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
    lines = ["Ref,Easting,Northing,Received,Problem type"]
    for i, day in enumerate(days):
        lon = minx + (maxx - minx) * (0.3 + 0.4 * i / len(days))
        lat = miny + (maxy - miny) * (0.5 + 0.1 * (i % 3) / 3)
        e, n = to_grid.transform(lon, lat)
        lines.append(f"R{i:03d},{e:.0f},{n:.0f},{day} 10:{i:02d},{('Noise', 'Graffiti', 'Litter')[i % 3]}")
    lines.append(f"R{len(days):03d},,,{days[0]} 11:00,Noise")
    return ("\n".join(lines) + "\n").encode()


def suggested(make_run, days: list[str]) -> AppTest:
    from app.warehouse import connect

    con = connect(make_run / "data" / "warehouse.duckdb", read_only=True)
    data = grid_csv(con, days)
    con.close()
    at = AppTest.from_file(APP, default_timeout=120).switch_page("screens/data.py").run()
    at.file_uploader(key="up_file").upload("council requests.csv", data).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


DAY_FIRST = ["02/05/2024", "13/05/2024", "07/06/2024", "21/06/2024", "11/07/2024"]


def test_an_upload_is_mapped_from_its_suggestions_checked_previewed_then_loaded(make_run):
    at = suggested(make_run, DAY_FIRST)
    text = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "Suggested mapping" in text and "EPSG:27700" in text and "day first" in text
    assert at.radio(key="up_mode").value == "x and y (projected)"
    assert (at.selectbox(key="up_x").value, at.selectbox(key="up_y").value) == ("Easting", "Northing")
    assert at.text_input(key="up_crs").value == "EPSG:27700"
    assert at.selectbox(key="up_time").value == "Received"
    assert at.selectbox(key="up_time_format").value == "%d/%m/%Y %H:%M"
    assert at.selectbox(key="up_category").value == "Problem type"
    assert at.selectbox(key="up_record_id").value == "Ref"
    at.text_input(key="up_agency").set_value("Council")
    at = press(at, "Check")
    assert not at.exception and not at.error, [e.value for e in at.error]
    uploads_list = make_run / "data" / "warehouse.duckdb.uploads.toml"
    assert not uploads_list.exists()  # checked, previewed, not loaded: the analyst has not confirmed
    assert "ok: 5" in at.success[0].value and "missing_coordinates: 1" in at.success[0].value
    deck = at.get("deck_gl_json_chart")
    assert len(deck) == 1 and '"upload-points"' in deck[0].proto.json
    problems = at.dataframe[-1].value  # the last table of the page
    assert list(problems["row"]) == [6] and problems["reason"].iloc[0] == "no coordinates"
    at = press(at, "Load this dataset")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success[-1].value == "Loaded 5 rows; quarantined 1."
    assert 'time_format = "%d/%m/%Y %H:%M"' in uploads_list.read_text()


def test_dates_that_read_both_ways_wait_for_the_analyst_to_choose(make_run):
    at = suggested(make_run, ["02/05/2024", "12/05/2024", "07/06/2024"])
    text = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "none is picked" in text
    assert at.selectbox(key="up_time_format").value is None
    at.text_input(key="up_agency").set_value("Council")
    at = press(at, "Check")
    assert at.error and "Choose the time format" in at.error[0].value
    assert not at.get("deck_gl_json_chart") and not [b for b in at.button if b.label == "Load this dataset"]
    at.selectbox(key="up_time_format").set_value("%m/%d/%Y %H:%M")
    at = press(at, "Check")
    assert not at.error, [e.value for e in at.error]
    assert "ok: 3" in at.success[0].value
