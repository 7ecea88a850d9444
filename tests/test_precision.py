"""Coarse locations are detected at load, and a source's own ward column can stand in for the
ward of a point that a coarse grid puts in the wrong ward."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from app.ingest import load
from app.warehouse import connect
from tests.test_ingest import HEADER, WARDS, dataset, only, run

REPO = Path(__file__).resolve().parent.parent
REALDATA = REPO.parent / "shared" / "realdata"
CATALOGS = REPO / "tests" / "catalogs"
PRECISION_KEYS = {"coarse", "rows", "distinct_points", "grid_m", "finest_res", "note"}


@pytest.fixture
def area(tmp_path: Path) -> Path:
    (tmp_path / "wards.geojson").write_text(json.dumps(WARDS))
    return tmp_path


def _grid_csv(n: int = 2000) -> str:
    """British National Grid coordinates at the centres of 1 km squares within the two wards."""
    rows = ["x,y,when,type"]
    for i in range(n):
        x = 526_500 + 1000 * (i % 10)
        y = 175_500 + 1000 * ((i // 10) % 9)
        rows.append(f"{x},{y},2024-01-03 10:00:00,a")
    return "\n".join(rows) + "\n"


def test_precise_points_are_not_flagged(area):
    lat = [51.45 + 0.0999 * ((i * 7919) % 1000) / 1000 for i in range(2000)]
    lon = [-0.199 + 0.198 * ((i * 104729) % 997) / 997 for i in range(2000)]
    lines = ["lat,lon,when,type"] + [
        f"{a:.6f},{b:.6f},2024-01-03 10:00:00,a" for a, b in zip(lat, lon, strict=True)
    ]
    d = only(run(area, HEADER + dataset(), {"calls.csv": "\n".join(lines) + "\n"}))
    p = d["location_precision"]
    assert set(p) == PRECISION_KEYS
    assert p["coarse"] is False and p["grid_m"] is None and p["finest_res"] is None
    assert p["rows"] == d["rows_loaded"]


def test_points_on_a_1km_grid_are_flagged_coarse_with_its_spacing(area):
    grid = dataset(lat=None, lon=None, x="x", y="y", crs="EPSG:27700")
    d = only(run(area, HEADER + grid, {"calls.csv": _grid_csv()}))
    p = d["location_precision"]
    assert d["rows_loaded"] == p["rows"] == 2000 and p["distinct_points"] == 90
    assert p["coarse"] is True and p["grid_m"] == 1000.0 and p["finest_res"] == 7
    assert "centres of 1 km grid squares (90 distinct points for 2,000 records)" in p["note"]


def _ward_csv(ward_texts: list[str]) -> str:
    rows = ["lat,lon,when,type,ward"]
    rows += [f"51.5,-0.15,2024-01-03 10:00:00,a,{w}" for w in ward_texts]  # every point in West
    return "\n".join(rows) + "\n"


def test_a_ward_column_names_the_ward_and_unmatched_rows_keep_the_points(area):
    texts = ["  east ", "E1", "EAST", "nowhere", "", "West"]
    d = only(run(area, HEADER + dataset(ward_column="ward"), {"calls.csv": _ward_csv(texts)}))
    assert d["status"] == "loaded" and d["rows_loaded"] == 6
    assert d["ward_column_unmatched"] == 2
    with connect(area / "w.duckdb", read_only=True) as con:
        wards = con.execute("SELECT source_row, ward_code, h3 FROM events ORDER BY source_row").fetchall()
    assert [w for _, w, _ in wards] == ["E1", "E1", "E1", "W1", "W1", "W1"]
    assert len({h for *_, h in wards}) == 1  # the hex cell still comes from the point


def test_a_ward_column_not_in_the_file_is_refused(area):
    d = only(run(area, HEADER + dataset(ward_column="district"), {"calls.csv": _ward_csv(["East"])}))
    assert d["status"] == "failed" and "'district' (key 'ward_column')" in d["error"]


@pytest.mark.realdata
def test_bath_fire_is_flagged_on_its_1km_grid_and_abbey_gets_its_incidents(tmp_path):
    report = load(CATALOGS / "bath-banes.toml", tmp_path / "w.duckdb")
    ds = {d["id"]: d for d in report["datasets"]}
    for d in report["datasets"]:
        assert d["status"] == "loaded", d.get("error")
        assert d["rows_read"] == d["rows_loaded"] + d["rows_quarantined"]
    fire = ds["fire_incidents"]["location_precision"]
    assert fire["coarse"] is True and fire["grid_m"] == 1000.0 and fire["finest_res"] == 7
    assert fire["rows"] == ds["fire_incidents"]["rows_loaded"] and fire["distinct_points"] <= 312
    assert "1 km grid squares" in fire["note"]
    for other in ("police_street", "env_protection", "fixmystreet", "road_collisions"):
        assert ds[other]["location_precision"]["coarse"] is False, other

    # The expected figures, from the file alone: rows whose point lies in the study area (so
    # loaded), by the ward the fire service gave them.
    folder = REALDATA / "bath-banes"
    raw = pd.read_csv(folder / "Avon_Fire_and_Rescue_Incidents.csv")
    lat_lon = raw["location"].str.extract(r"\(([-0-9.]+),\s*([-0-9.]+)\)").astype(float)
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lat_lon[1], lat_lon[0]), crs="EPSG:4326")
    wards = gpd.read_file(folder / "ons_census_2011_ward.geojson").to_crs("EPSG:4326")
    inside = raw.index.isin(gpd.sjoin(points, wards[["geometry"]], predicate="intersects").index)
    named = raw["ward"].str.strip().str.lower()
    expected = int((inside & (named == "abbey")).sum())
    unmatched = int((inside & ~named.isin(wards["wd11nm"].str.lower())).sum())
    assert expected > 1500
    assert ds["fire_incidents"]["rows_loaded"] == int(inside.sum())
    with connect(report["db"], read_only=True) as con:
        abbey = con.execute("SELECT code FROM wards WHERE name = 'Abbey'").fetchall()[0][0]
        in_abbey = con.execute(
            "SELECT count(*) FROM events WHERE dataset = 'fire_incidents' AND ward_code = ?", [abbey]
        ).fetchall()[0][0]
    assert in_abbey == expected
    assert ds["fire_incidents"]["ward_column_unmatched"] == unmatched


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("catalog", "dataset_id"),
    [("london-met-2018.toml", "stop_search"), ("nyc-311-nypd.toml", "shootings")],
)
def test_precise_real_data_is_not_flagged(tmp_path, catalog, dataset_id):
    report = load(CATALOGS / catalog, tmp_path / "w.duckdb")
    d = {d["id"]: d for d in report["datasets"]}[dataset_id]
    assert d["status"] == "loaded" and d["location_precision"]["coarse"] is False


def test_the_demo_city_is_not_flagged(small_demo_db):
    _, report = small_demo_db
    for d in report["datasets"]:
        assert d["location_precision"]["coarse"] is False, d["id"]
