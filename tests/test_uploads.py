"""Adding a dataset from the dashboard: check, load, and leave everything intact on failure."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import duckdb
import pytest
from conftest import DEMO_CATALOG

from app.catalog import CatalogError, load_catalog
from app.ingest import load, uploads_path
from app.uploads import (
    UploadLimitError,
    _limited,
    add,
    check,
    clean_stale_uploads,
    count_rows,
    raw_preview,
    save_upload,
)
from app.warehouse import connect

CSV = (
    "when,lat,lon,what\n"
    "2024-05-01 10:00:00,52.36,-0.92,Graffiti\n"
    "2024-05-02 11:00:00,52.37,-0.93,Graffiti\n"
    "2024-05-03 12:00:00,,,Graffiti\n"
    "2024-05-04 13:00:00,55.0,-3.0,Graffiti\n"
)


@pytest.fixture
def city(small_demo, small_demo_db, tmp_path):
    db, _ = small_demo_db
    shutil.copytree(small_demo, tmp_path / "city")
    shutil.copy(db, tmp_path / "city" / "warehouse.duckdb")
    catalog = tmp_path / "city" / "catalog.toml"
    return catalog, tmp_path / "city" / "warehouse.duckdb"


def entry(path, **changes) -> dict:
    base = {
        "id": "street_art",
        "title": "Graffiti reports",
        "agency": "Volunteers",
        "kind": "demand",
        "sharing": "open",
        "path": str(path),
        "lat": "lat",
        "lon": "lon",
        "time": "when",
        "category": "what",
    }
    return {**base, **changes}


def test_save_preview_check_and_load(city):
    catalog, db = city
    saved = save_upload(db, "graffiti reports.csv", CSV.encode())
    assert saved.parent.name == "uploads" and " " not in saved.name
    assert list(raw_preview(saved).columns) == ["when", "lat", "lon", "what"]
    _, counts, preview = check(catalog, db, entry(saved))
    assert counts == {"ok": 3, "missing_coordinates": 1}
    assert preview["problem"].tolist()[2] == "missing_coordinates"
    with connect(db, read_only=True) as con:
        before = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    result = add(catalog, db, entry(saved))
    assert result["status"] == "loaded" and result["rows_loaded"] == 2  # one row falls outside the city
    assert result["quarantined_by_reason"] == {"missing_coordinates": 1, "outside_study_area": 1}
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == before + 2
    assert "street_art" in uploads_path(db).read_text()


def test_uploaded_datasets_survive_a_reload(city):
    from app.ingest import load

    catalog, db = city
    add(catalog, db, entry(save_upload(db, "g.csv", CSV.encode())))
    report = load(catalog, db)
    assert "street_art" in {d["id"] for d in report["datasets"]}


def test_mistakes_are_words_and_harm_nothing(city):
    catalog, db = city
    saved = save_upload(db, "g.csv", CSV.encode())
    with pytest.raises(CatalogError, match="already used"):
        check(catalog, db, entry(saved, id="police_crime"))
    with pytest.raises(Exception, match="column 'latitude'"):
        check(catalog, db, entry(saved, lat="latitude"))
    with pytest.raises(ValueError, match="CSV, Parquet or GeoJSON"):
        save_upload(db, "notes.docx", b"x")
    bad = save_upload(db, "empty.csv", b"when,lat,lon,what\n")
    stamp = db.stat().st_mtime_ns
    with pytest.raises(Exception, match="no data rows"):
        add(catalog, db, entry(bad))
    assert db.stat().st_mtime_ns == stamp
    assert not uploads_path(db).exists() or "street_art" not in uploads_path(db).read_text()
    _ = DEMO_CATALOG


@pytest.fixture
def repo(small_demo, small_demo_db, tmp_path, monkeypatch):
    """A folder laid out as the repository is under `make run`: data/catalog.toml, the warehouse
    at the relative path data/warehouse.duckdb, and the environment variables `make run` sets."""
    db, _ = small_demo_db
    shutil.copytree(small_demo, tmp_path / "repo" / "data")
    shutil.copy(db, tmp_path / "repo" / "data" / "warehouse.duckdb")
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setenv("COMMON_GROUND_DB", "data/warehouse.duckdb")
    monkeypatch.setenv("COMMON_GROUND_CATALOG", "data/catalog.toml")
    return tmp_path / "repo"


def test_upload_with_the_relative_paths_of_make_run(repo):
    from app.db import catalog_path, warehouse_path

    load(catalog_path(), warehouse_path())  # the copied city is read from its new folder once
    saved = save_upload(warehouse_path(), "graffiti.csv", CSV.encode())
    assert saved == repo / "data" / "uploads" / saved.name
    _, counts, _ = check(catalog_path(), warehouse_path(), entry(saved))
    assert counts == {"ok": 3, "missing_coordinates": 1}
    assert add(catalog_path(), warehouse_path(), entry(saved))["status"] == "loaded"
    assert f'path = "uploads/{saved.name}"' in uploads_path(warehouse_path()).read_text()
    again = load(catalog_path(), warehouse_path())
    absolute = load(repo / "data" / "catalog.toml", repo / "data" / "warehouse.duckdb")
    for report in (again, absolute):
        assert {d["id"]: d["status"] for d in report["datasets"]}["street_art"] == "unchanged"
        assert {d["status"] for d in report["datasets"]} == {"unchanged"}


def test_a_relative_path_in_an_entry_is_read_from_the_working_directory(repo):
    saved = save_upload("data/warehouse.duckdb", "graffiti.csv", CSV.encode())
    relative = os.path.relpath(saved, repo)
    _, counts, _ = check("data/catalog.toml", "data/warehouse.duckdb", entry(relative))
    assert counts["ok"] == 3


def test_the_catalogue_spelled_two_ways_is_one_warehouse(repo):
    load("data/catalog.toml", "data/warehouse.duckdb")
    report = load(repo / "data" / "catalog.toml", repo / "data" / "warehouse.duckdb")
    assert {d["status"] for d in report["datasets"]} == {"unchanged"}


def test_a_title_with_an_emoji_loads_and_reloads(city):
    catalog, db = city
    title = 'Graffiti \U0001f3a8 "Old Market" \\ tags\nsecond line'
    result = add(catalog, db, entry(save_upload(db, "g.csv", CSV.encode()), title=title))
    assert result["status"] == "loaded"
    assert load_catalog(catalog, uploads_path(db)).dataset("street_art").title == title
    assert {d["id"] for d in load(catalog, db)["datasets"]} >= {"street_art"}


def test_a_broken_uploads_list_never_stops_the_load(city, caplog):
    catalog, db = city
    uploads_path(db).write_text('[[datasets]]\nid = "street_art"\ntitle = "\\ud83d"\n', encoding="utf-8")
    report = load(catalog, db)
    assert report["totals"]["datasets_failed"] == 0
    assert f"{uploads_path(db)}: not valid TOML" in caplog.text


def test_a_deleted_uploaded_file_is_skipped_naming_the_uploads_list(city, caplog):
    catalog, db = city
    saved = save_upload(db, "g.csv", CSV.encode())
    assert add(catalog, db, entry(saved))["status"] == "loaded"
    saved.unlink()
    report = load(catalog, db)
    assert "street_art" not in {d["id"] for d in report["datasets"]}
    line = f"{uploads_path(db)}: dataset 'street_art': key 'path': no file matches {saved}"
    assert line in caplog.text and "catalog.toml" not in caplog.text


def many_rows(path: Path, rows: int) -> Path:
    """A small Parquet file of many identical rows, as a hostile upload would be."""
    duckdb.execute(
        f"""COPY (SELECT '2024-05-01 10:00:00' AS "when", 52.36 AS lat, -0.92 AS lon, 'Graffiti' AS what
            FROM range({rows})) TO '{path}' (FORMAT parquet)"""
    )
    return path


def test_too_many_rows_are_refused_by_check_and_add(city, tmp_path, monkeypatch):
    catalog, db = city
    monkeypatch.setenv("COMMON_GROUND_UPLOAD_MAX_ROWS", "1000")
    big = many_rows(tmp_path / "big.parquet", 50_000)
    assert big.stat().st_size < 10_000 and count_rows(big) == 50_000
    saved = save_upload(db, "big.parquet", big.read_bytes())
    for attempt in (check, add):
        with pytest.raises(UploadLimitError, match=r"50,000 rows.*at most 1,000.*python -m app load"):
            attempt(catalog, db, entry(saved))
    assert not uploads_path(db).exists()


def test_rows_are_counted_without_reading_them(tmp_path):
    (tmp_path / "a.csv").write_text("h\n1\n2\n3")
    (tmp_path / "b.csv").write_text("h\n1\n2\n3\n")
    assert count_rows(tmp_path / "a.csv") == count_rows(tmp_path / "b.csv") == 3


def test_work_over_the_memory_limit_stops_with_words(monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_UPLOAD_MEMORY_MB", "1500")
    with pytest.raises(UploadLimitError, match=r"The check needed more than 1,500 MB.*python -m app load"):
        _limited(bytearray, 4 * 2**30, what="The check")
    assert _limited(len, "four", what="The check") == 4


def test_the_checking_process_does_not_rerun_the_dashboard(monkeypatch, tmp_path):
    """Under Streamlit the parent's __main__ is the dashboard; a child that re-ran it would fail."""
    import sys
    import types

    script = tmp_path / "dashboard.py"
    script.write_text("raise SystemExit('the dashboard ran in the child')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    assert _limited(len, "four", what="The check") == 4


def test_stale_unloaded_uploads_are_deleted(city):
    catalog, db = city
    kept = save_upload(db, "kept.csv", CSV.encode())
    assert add(catalog, db, entry(kept))["status"] == "loaded"
    stale = save_upload(db, "stale.csv", CSV.encode() + b"2024-05-05 10:00:00,52.36,-0.92,Tags\n")
    day_old = time.time() - 2 * 24 * 3600
    for path in (kept, stale):
        os.utime(path, (day_old, day_old))
    fresh = save_upload(db, "fresh.csv", CSV.encode() + b"2024-05-06 10:00:00,52.36,-0.92,Tags\n")
    assert kept.exists() and fresh.exists() and not stale.exists()
    assert clean_stale_uploads(db, now=time.time() + 2 * 24 * 3600) == [fresh]


def test_a_failed_browser_load_deletes_its_file(city):
    catalog, db = city
    outside = "when,lat,lon,what\n2024-05-01 10:00:00,55.0,-3.0,Graffiti\n"
    saved = save_upload(db, "outside.csv", outside.encode())
    result = add(catalog, db, entry(saved))
    assert result["status"] == "failed" and not saved.exists()
    assert "street_art" not in uploads_path(db).read_text()
