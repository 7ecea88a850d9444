"""Adding a dataset from the dashboard: check, load, and leave everything intact on failure."""

from __future__ import annotations

import shutil

import pytest
from conftest import DEMO_CATALOG

from app.catalog import CatalogError
from app.ingest import uploads_path
from app.uploads import add, check, raw_preview, save_upload
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
