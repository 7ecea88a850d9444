"""The catalogue: valid entries parse; every mistake is reported with catalogue, dataset, key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DEMO_CATALOG

from app.catalog import CatalogError, infer_format, load_catalog

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
