"""The catalogue: valid entries parse; every mistake is reported with catalogue, dataset, key."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest
from conftest import DEMO_CATALOG
from hypothesis import given, settings
from hypothesis import strategies as st

from app.catalog import CatalogError, entry_toml, infer_format, load_catalog

STUDY = """
[study_area]
name = "Test"
boundaries = "wards.geojson"
code_field = "code"
name_field = "name"
"""

GOOD = """
[[datasets]]
id = "calls"
title = "Calls"
agency = "Police"
kind = "demand"
path = "calls.csv"
lat = "lat"
lon = "lon"
time = "when"
category = "type"
sharing = "open"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "wards.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    (tmp_path / "calls.csv").write_text("lat,lon,when,type\n")
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "catalog.toml"
    path.write_text(text)
    return path


def problems(folder: Path, text: str) -> list[str]:
    with pytest.raises(CatalogError) as err:
        load_catalog(write(folder, text))
    return err.value.problems


def test_demo_catalogue_is_valid_and_describes_the_issue_mix():
    cat = load_catalog(DEMO_CATALOG)
    kinds = [d.kind for d in cat.datasets]
    assert kinds.count("demand") >= 6 and kinds.count("intervention") >= 3
    assert {d.format for d in cat.datasets} >= {"csv", "parquet", "geojson"}
    assert {d.location_mode for d in cat.datasets} >= {"latlon", "xy", "geometry"}
    assert any(d.sharing == "restricted" for d in cat.datasets)


def test_good_catalogue_resolves_paths_relative_to_itself(folder):
    cat = load_catalog(write(folder, STUDY + GOOD))
    ds = cat.dataset("calls")
    assert ds.files == (folder / "calls.csv",)
    assert ds.format == "csv" and ds.location_mode == "latlon"
    assert cat.study_area.boundaries == folder / "wards.geojson"


def test_unknown_key_names_catalogue_dataset_and_key(folder):
    found = problems(folder, STUDY + GOOD + 'colour = "red"\n')
    assert found == [f"{folder / 'catalog.toml'}: dataset 'calls': key 'colour': unknown key"]


def test_every_mistake_is_reported_at_once(folder):
    bad = GOOD.replace('kind = "demand"', 'kind = "need"').replace('sharing = "open"', 'sharing = "secret"')
    bad = bad.replace('path = "calls.csv"', 'path = "nothing-*.csv"')
    found = "\n".join(problems(folder, STUDY + bad))
    for key in ("'kind'", "'sharing'", "'path'"):
        assert f"dataset 'calls': key {key}" in found


def test_duplicate_ids(folder):
    found = problems(folder, STUDY + GOOD + GOOD)
    assert any("dataset 'calls': key 'id': duplicate id" in p for p in found)


def test_missing_boundaries_file(folder):
    found = problems(folder, STUDY.replace("wards.geojson", "nowhere.geojson") + GOOD)
    assert any("[study_area]: key 'boundaries': file not found" in p for p in found)


@pytest.mark.parametrize(
    "change, key",
    [
        (('lon = "lon"\n', ""), "'lon'"),
        (('lat = "lat"\nlon = "lon"\n', 'x = "e"\ny = "n"\n'), "'crs'"),
        (('lat = "lat"\nlon = "lon"\n', ""), "'lat'"),
        (('time = "when"\n', 'time = "when"\ntime_format = 5\n'), "'time_format'"),
        (('time = "when"\n', 'time = "when"\ndelimiter = ";;"\n'), "'delimiter'"),
        (('id = "calls"', 'id = "Calls Data"'), "'id'"),
        (('title = "Calls"\n', ""), "'title'"),
    ],
)
def test_invalid_entries(folder, change, key):
    found = problems(folder, STUDY + GOOD.replace(*change))
    assert any(f"key {key}" in p for p in found), found


def test_not_toml(folder):
    found = problems(folder, "[study_area\n")
    assert "not valid TOML" in found[0]


def test_formats_by_extension():
    assert infer_format("x/2018.csv.gz") == "csv"
    assert infer_format("a.PARQUET") == "parquet"
    assert infer_format("b.shp") == "shp"
    assert infer_format("c.xlsx") is None


KEYS = st.sampled_from(["id", "title", "agency", "description", "attribution", "time_format", "null_values"])
VALUES = st.one_of(st.text(min_size=1), st.lists(st.text(), min_size=1, max_size=4))


@settings(deadline=None, max_examples=300)
@given(st.dictionaries(KEYS, VALUES, min_size=1))
def test_entry_toml_is_valid_toml_for_any_text(entry):
    assert tomllib.loads(entry_toml(entry)) == {"datasets": [entry]}


def test_entry_toml_keeps_emoji_quotes_backslashes_and_new_lines():
    title = 'Graffiti \U0001f3a8 "Old Market" C:\\temp\nline two\ttab \x7f é'
    assert tomllib.loads(entry_toml({"title": title}))["datasets"][0]["title"] == title


def uploads_list(folder: Path, text: str) -> Path:
    path = folder / "warehouse.duckdb.uploads.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_broken_uploads_list_is_reported_and_skipped(folder, caplog):
    catalog = write(folder, STUDY + GOOD)
    uploads = uploads_list(folder, '[[datasets]]\ntitle = "\\ud83d"\n')
    with caplog.at_level(logging.WARNING, logger="app.catalog"):
        cat = load_catalog(catalog, uploads)
    assert [d.id for d in cat.datasets] == ["calls"]
    assert len(cat.skipped) == 1 and cat.skipped[0].startswith(f"{uploads}: not valid TOML")
    assert str(uploads) in caplog.text and "catalog.toml" not in caplog.text


def test_an_uploaded_entry_whose_file_is_gone_is_reported_and_skipped(folder):
    catalog = write(folder, STUDY + GOOD)
    (folder / "uploads").mkdir()
    (folder / "uploads" / "kept.csv").write_text("lat,lon,when,type\n")
    kept = GOOD.replace('"calls"', '"kept"').replace("calls.csv", "uploads/kept.csv")
    gone = GOOD.replace('"calls"', '"gone"').replace("calls.csv", "uploads/gone.csv")
    uploads = uploads_list(folder, kept + gone)
    cat = load_catalog(catalog, uploads)
    assert [d.id for d in cat.datasets] == ["calls", "kept"]
    assert cat.dataset("kept").files == (folder / "uploads" / "kept.csv",)
    assert cat.skipped == (
        f"{uploads}: dataset 'gone': key 'path': no file matches {folder / 'uploads' / 'gone.csv'}",
    )


def test_an_uploaded_entry_reusing_an_id_is_skipped(folder):
    cat = load_catalog(write(folder, STUDY + GOOD), uploads_list(folder, GOOD))
    assert [d.id for d in cat.datasets] == ["calls"]
    assert "dataset 'calls': key 'id': already used" in cat.skipped[0]


def test_mistakes_in_the_catalogue_itself_still_stop_the_load(folder):
    catalog = write(folder, STUDY + GOOD.replace('kind = "demand"', 'kind = "need"'))
    with pytest.raises(CatalogError, match=r"catalog\.toml: dataset 'calls': key 'kind'"):
        load_catalog(catalog, uploads_list(folder, GOOD.replace('"calls"', '"other"')))


def test_identity_does_not_depend_on_how_the_catalogue_path_is_spelled(folder, monkeypatch):
    write(folder, STUDY + GOOD)
    monkeypatch.chdir(folder.parent)
    relative = load_catalog(Path(folder.name) / "catalog.toml")
    absolute = load_catalog(folder / "catalog.toml")
    assert relative.dataset("calls").files == absolute.dataset("calls").files
    assert relative.dataset("calls").entry_hash() == absolute.dataset("calls").entry_hash()
    assert relative.study_area.boundaries == absolute.study_area.boundaries


def test_every_property_test_runs_without_a_deadline():
    """A busy machine must not fail a correct property test: every @given takes deadline=None."""
    import ast

    def no_deadline(decorator: ast.expr) -> bool:
        return (
            isinstance(decorator, ast.Call)
            and getattr(decorator.func, "id", None) == "settings"
            and any(k.arg == "deadline" and getattr(k.value, "value", 1) is None for k in decorator.keywords)
        )

    missing = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            calls = [d.func for d in node.decorator_list if isinstance(d, ast.Call)]
            if any(getattr(f, "id", None) == "given" for f in calls) and not any(
                no_deadline(d) for d in node.decorator_list
            ):
                missing.append(f"{path.name}::{node.name}")
    assert missing == []
