"""The demo city: deterministic, realistic in shape and size, with its planted damage caught."""

from __future__ import annotations

import hashlib
import json
import re

import geopandas as gpd
import shapely
from conftest import DEMO_CATALOG

from app.catalog import load_catalog
from app.demo_city import DATASETS, generate


def digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes(tmp_path):
    generate(tmp_path / "a", events=5_000, seed=3)
    generate(tmp_path / "b", events=5_000, seed=3)
    generate(tmp_path / "c", events=5_000, seed=4)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_wards_look_like_wards(small_demo):
    wards = gpd.read_file(small_demo / "demo" / "wards.geojson")
    assert 25 <= len(wards) <= 40
    assert wards["ward_code"].str.fullmatch(r"E05\d{6}").all() and wards["ward_code"].is_unique
    assert wards["ward_name"].is_unique and (wards["population"] > 0).all()
    for geom in wards.geometry:
        assert geom.is_valid
        assert len(shapely.get_coordinates(geom)) > 40  # meandering, not a box
        assert geom.area < 0.9 * geom.envelope.area
    union = shapely.union_all(wards.geometry.values)
    assert abs(union.area - shapely.area(wards.geometry.values).sum()) < 1e-9  # no overlaps
    assert union.geom_type == "Polygon"  # one city, no gaps between wards


def test_agencies_kinds_formats_and_labelling(small_demo):
    cat = load_catalog(small_demo / "catalog.toml")
    assert len({d.agency for d in cat.datasets if d.kind == "demand"}) >= 6
    assert sum(d.kind == "intervention" for d in cat.datasets) >= 3
    assert {d.format for d in cat.datasets} == {"csv", "parquet", "geojson"}
    assert any(d.crs == "EPSG:27700" for d in cat.datasets)
    assert "fictional" in cat.study_area.name.lower()
    planted = json.loads((small_demo / "demo" / "planted.json").read_text())
    assert "FICTIONAL" in planted["label"]
    assert set(planted["patterns"]) >= {
        "persistent_hotspots",
        "emerging_hotspots",
        "fading_hotspots",
        "multi_agency_overlap",
        "unserved_hotspots",
        "interventions_outside_need",
    }


def test_load_reconciles_and_catches_the_planted_damage(small_demo_db, small_demo):
    _, report = small_demo_db
    planted = json.loads((small_demo / "demo" / "planted.json").read_text())["damaged_rows"]
    for d in report["datasets"]:
        assert d["status"] == "loaded"
        assert d["rows_read"] == d["rows_loaded"] + d["rows_quarantined"]
        damage = planted[d["id"]]
        assert d["category_unknown"] == damage["empty_category"]
        # Every damaged row except empty categories is quarantined, and nothing else is.
        expected = sum(damage.values()) - damage["empty_category"]
        assert d["rows_quarantined"] == expected, (d["id"], d["quarantined_by_reason"], damage)
        share = d["rows_quarantined"] / d["rows_read"]
        assert 0.01 < share < 0.05
        assert d["time_min"] < "2023-01-08" and d["time_max"] > "2025-11-01"


def test_rhythms_are_there(small_demo_db):
    from app.warehouse import connect

    db, _ = small_demo_db
    with connect(db, read_only=True) as con:
        by_dow = dict(
            con.execute(
                "SELECT isodow(ts), count(*) FROM events WHERE dataset = 'housing_repairs' GROUP BY 1"
            ).fetchall()
        )
        by_month = dict(
            con.execute(
                "SELECT month(ts), count(*) FROM events WHERE dataset = 'council_env' GROUP BY 1"
            ).fetchall()
        )
        night = con.execute(
            "SELECT avg(CASE WHEN hour(ts) >= 20 OR hour(ts) < 4 THEN 1 ELSE 0 END) FROM events "
            "WHERE dataset = 'police_crime'"
        ).fetchall()[0][0]
    assert by_dow[1] > 2 * by_dow[7]  # repairs are reported on weekdays
    assert by_month[7] > 1.2 * by_month[1]  # a summer peak
    assert night > 0.4  # crime peaks at night


def test_full_size_is_about_a_million_records(tmp_path):
    summary = generate(tmp_path / "full", seed=2026)
    rows = 0
    for name in summary["files"].values():
        path = tmp_path / "full" / name
        if name.endswith(".csv"):
            with open(path) as handle:
                rows += sum(1 for _ in handle) - 1
        elif name.endswith(".parquet"):
            import pyarrow.parquet as pq

            rows += pq.read_metadata(path).num_rows
        else:
            rows += len(json.loads(path.read_text())["features"])
    assert 900_000 <= rows <= 1_100_000
    assert set(summary["files"]) == set(DATASETS)
    assert all(re.fullmatch(r"[a-z_]+\.(csv|parquet|geojson)", n) for n in summary["files"].values())
    _ = DEMO_CATALOG
