"""Datasets added in the browser by a signed-in person: their agency is the person's own and
their ids live in that agency's own space (AGENCY__NAME), so an id that another agency's hidden
dataset bears is not refused as "already used" (which would tell of it), a skipped entry of
another agency is not named, and the audit trail records the upload's rows and the load's
outcome."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from test_app_data_page import GRAFFITI, press
from test_app_roles import ACCESS, run, signed_in

from app.catalog import CatalogError, parse_catalog
from app.uploads import agency_space, upload_id

POLICE_ANALYST = signed_in("analyst@police.example")


def test_an_agencys_space_is_its_name_in_id_letters():
    assert agency_space("Fairhaven Police") == "fairhaven_police__"
    assert agency_space("Fairhaven Children's Services") == "fairhaven_children_s_services__"
    assert agency_space("999 Responders") == "agency_999_responders__"
    assert upload_id("graffiti", "Fairhaven Police") == "fairhaven_police__graffiti"
    assert upload_id("graffiti", None) == "graffiti"  # local mode: one person sees every dataset


def test_the_catalogue_keeps_double_underscores_for_added_datasets(small_demo):
    import tomllib

    raw = tomllib.loads((small_demo / "catalog.toml").read_text(encoding="utf-8"))
    raw["datasets"][0]["id"] = "fairhaven_police__crime"
    with pytest.raises(CatalogError) as refused:
        parse_catalog(raw, small_demo / "catalog.toml")
    assert "key 'id'" in str(refused.value) and "'__' is kept for datasets added in the browser" in str(
        refused.value
    )
    parsed = parse_catalog(raw, small_demo / "catalog.toml", added=True)
    assert parsed.datasets[0].id == "fairhaven_police__crime"


@pytest.fixture
def writable(small_demo, small_demo_db, tmp_path, monkeypatch) -> Path:
    """The small demo in a folder of its own (catalogue, files, warehouse) with the access file
    of the role tests and an audit trail of its own."""
    from app.ingest import load

    shutil.copytree(small_demo, tmp_path / "data")
    shutil.copy(small_demo_db[0], tmp_path / "data" / "warehouse.duckdb")
    (tmp_path / "access.toml").write_text(textwrap.dedent(ACCESS), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMON_GROUND_DB", "data/warehouse.duckdb")
    monkeypatch.setenv("COMMON_GROUND_CATALOG", "data/catalog.toml")
    monkeypatch.setenv("COMMON_GROUND_ACCESS", str(tmp_path / "access.toml"))
    monkeypatch.setenv("COMMON_GROUND_AUDIT", str(tmp_path / "audit.jsonl"))
    load("data/catalog.toml", "data/warehouse.duckdb")
    return tmp_path


def test_an_id_of_a_hidden_dataset_is_taken_in_the_agencys_own_space(writable):
    """The police do not see the children's services' restricted early_help: typing that id
    is answered as any free id is, and the dataset is stored as the police's own."""
    at = run(POLICE_ANALYST, "screens/data.py")
    at.file_uploader(key="up_file").upload("graffiti.csv", GRAFFITI.encode()).run()
    assert not [t for t in at.text_input if t.key == "up_agency"]  # the agency is the person's own
    at.text_input(key="up_id").set_value("early_help")
    at.text_input(key="up_title").set_value("Graffiti")
    for key, column in {"up_lat": "lat", "up_lon": "lon", "up_time": "when", "up_category": "what"}.items():
        at.selectbox(key=key).set_value(column)
    at = press(at, "Check")
    assert not at.exception and not at.error, [e.value for e in at.error]
    at = press(at, "Load this dataset")
    assert not at.error, [e.value for e in at.error]
    assert at.success[-1].value == "Loaded 2 rows; quarantined 1."
    listed = (writable / "data" / "warehouse.duckdb.uploads.toml").read_text(encoding="utf-8")
    assert 'id = "fairhaven_police__early_help"' in listed and 'agency = "Fairhaven Police"' in listed
    trail = [json.loads(line) for line in (writable / "audit.jsonl").read_text().splitlines()]
    upload = next(e for e in trail if e["action"] == "upload")
    loaded = next(e for e in trail if e["action"] == "load")
    assert upload["what"] == loaded["what"] == "fairhaven_police__early_help"
    assert upload["files"][0]["rows"] == 3 and len(upload["files"][0]["sha256"]) == 64
    assert loaded["outcome"] == {"status": "loaded", "rows_loaded": 2, "rows_quarantined": 1}


def test_a_skipped_entry_of_another_agency_is_not_named(writable):
    (writable / "data" / "warehouse.duckdb.uploads.toml").write_text(
        textwrap.dedent(
            """
            [[datasets]]
            id = "fairhaven_police__gone"
            title = "Gone"
            agency = "Fairhaven Police"
            kind = "demand"
            path = "data/uploads/gone.csv"
            lat = "lat"
            lon = "lon"
            time = "when"
            category = "what"

            [[datasets]]
            id = "fairhaven_children_s_services__secret_visits"
            title = "Secret visits"
            agency = "Fairhaven Children's Services"
            kind = "intervention"
            sharing = "restricted"
            path = "data/uploads/secret.csv"
            lat = "lat"
            lon = "lon"
            time = "when"
            category = "what"
            """
        ),
        encoding="utf-8",
    )
    police = " ".join(w.value for w in run(POLICE_ANALYST, "screens/data.py").warning).replace("\\", "")
    assert "fairhaven_police__gone" in police and "secret_visits" not in police
    children = " ".join(w.value for w in run(signed_in("a@children.example"), "screens/data.py").warning)
    children = children.replace("\\", "")
    assert "secret_visits" in children and "fairhaven_police__gone" not in children
