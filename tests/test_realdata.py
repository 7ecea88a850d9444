"""Every folder of ../shared/realdata loads as published; counts are checked against figures
computed here independently of the engine (pandas + geopandas) and against the README."""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from conftest import CATALOGS, REALDATA

from app.ingest import load

pytestmark = pytest.mark.realdata


def _inside_mask(lat: pd.Series, lon: pd.Series, boundaries) -> pd.Series:
    """Which points lie within any polygon, by a plain geopandas spatial join."""
    ok = lat.notna() & lon.notna()
    pts = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(lon[ok], lat[ok]), crs="EPSG:4326", index=lat.index[ok]
    )
    polys = gpd.read_file(boundaries).to_crs("EPSG:4326")[["geometry"]]
    joined = gpd.sjoin(pts, polys, predicate="intersects", how="inner")
    return pd.Series(lat.index.isin(joined.index), index=lat.index)


def _inside(lat: pd.Series, lon: pd.Series, boundaries) -> int:
    return int(_inside_mask(lat.reset_index(drop=True), lon.reset_index(drop=True), boundaries).sum())


def _reconciles(report: dict) -> None:
    for d in report["datasets"]:
        assert d["status"] == "loaded", d.get("error")
        assert d["rows_read"] == d["rows_loaded"] + d["rows_quarantined"]
        assert sum(d["quarantined_by_reason"].values()) == d["rows_quarantined"]
        for f in d["files"]:
            assert f["rows_read"] == f["rows_loaded"] + f["rows_quarantined"]


def _by_id(report: dict) -> dict[str, dict]:
    return {d["id"]: d for d in report["datasets"]}


@pytest.fixture(scope="module")
def banes(tmp_path_factory):
    return load(CATALOGS / "bath-banes.toml", tmp_path_factory.mktemp("banes") / "w.duckdb")


@pytest.fixture(scope="module")
def banes_points(tmp_path_factory):
    """Bath placed by its points alone (no ``ward_column``): the fire service's 1 km grid then
    leaves Abbey, the city centre, with no fire incident."""
    folder = tmp_path_factory.mktemp("banes_points")
    text = (CATALOGS / "bath-banes.toml").read_text().replace("../../../shared", str(REALDATA.parent))
    text = "\n".join(line for line in text.splitlines() if not line.startswith("ward_column"))
    (folder / "bath-banes.toml").write_text(text)
    return load(folder / "bath-banes.toml", folder / "w.duckdb")


def test_banes_reconciles_and_matches_independent_counts(banes):
    _reconciles(banes)
    ds = _by_id(banes)
    folder = REALDATA / "bath-banes"
    wards = folder / "ons_census_2011_ward.geojson"

    police = pd.concat([pd.read_csv(f) for f in sorted(folder.glob("20*-avon-and-somerset-street.csv"))])
    assert ds["police_street"]["rows_read"] == len(police) == 69_096
    assert ds["police_street"]["rows_loaded"] == _inside(police.Latitude, police.Longitude, wards) == 5_687
    assert ds["police_street"]["quarantined_by_reason"]["missing_coordinates"] == 7_690
    assert len(ds["police_street"]["files"]) == 5

    fire = pd.read_csv(folder / "Avon_Fire_and_Rescue_Incidents.csv", low_memory=False)
    latlon = fire["location"].str.extract(r"\(([-0-9.]+),\s*([-0-9.]+)\)").astype(float)
    assert ds["fire_incidents"]["rows_loaded"] == _inside(latlon[0], latlon[1], wards) == 10_005

    env = pd.read_csv(folder / "BANES_Environmental_Protection_Service_Requests.csv")
    assert ds["env_protection"]["rows_loaded"] == _inside(env.Latitude, env.Longitude, wards) == 4_997
    # Day-first dates: 21/11/2019 must be read as 21 November, never rejected or swapped.
    assert ds["env_protection"]["time_max"].startswith("2019-11")

    road = pd.read_csv(folder / "BANES_Subset_Of_Road_Safety_Data_Location_Fixed.csv", low_memory=False)
    assert ds["road_collisions"]["rows_loaded"] == 7_382
    assert ds["road_collisions"]["rows_read"] == len(road)

    fms = pd.read_csv(folder / "Fix_My_Street_Sample_Dataset.csv")
    assert ds["fixmystreet"]["rows_loaded"] == _inside(fms.latitude, fms.longitude, wards) == 1_576


def test_banes_times_follow_the_catalogue_formats(banes):
    import datetime as dt

    from app.warehouse import connect

    with connect(banes["db"], read_only=True) as con:

        def ts(dataset: str, record: str) -> dt.datetime:
            sql = "SELECT ts FROM events WHERE dataset = ? AND record_id = ?"
            return con.execute(sql, [dataset, record]).fetchall()[0][0]

        # Month-first with a +0000 offset: "02/26/2012 09:17:25 AM +0000" is 26 February.
        fire = ts("fire_incidents", "022298-26022012")
        # Day-first: "11/11/2019 09:36:00 AM" received, a UK council export.
        env = ts("env_protection", "060793441c0d07650f179cf506dd9989")
        months = con.execute(
            "SELECT count(DISTINCT date_trunc('month', ts)) FROM events WHERE dataset = 'police_street'"
        ).fetchall()[0][0]
        road_hours = con.execute(
            "SELECT count(DISTINCT hour(ts)) FROM events WHERE dataset = 'road_collisions'"
        ).fetchall()[0][0]
    assert fire == dt.datetime(2012, 2, 26, 9, 17, 25)
    assert env == dt.datetime(2019, 11, 11, 9, 36)
    assert months == 5
    assert road_hours == 24  # the separate time column is applied to the midnight dates


def test_banes_warns_that_its_datasets_cover_different_years(banes):
    """Bath's files span 1996 to 2019 between them but no year in common: a trend or emerging
    hotspot across all of them would follow the files, so the dashboard says so."""
    import datetime as dt

    from app.filters import Filter
    from app.trends import coverage_note
    from app.warehouse import connect

    with connect(banes["db"], read_only=True) as con:
        everything = coverage_note(con, Filter())
        pair = Filter(datasets=("fire_incidents", "road_collisions"))
        two = coverage_note(con, pair)
        shared = pair.with_(start=dt.date(2010, 1, 1), end=dt.date(2012, 12, 31))
        assert coverage_note(con, shared) is None  # both cover all of 2010 to 2012
        assert coverage_note(con, Filter(datasets=("fire_incidents",))) is None
    assert everything and "police_street 2018-10-01 to 2019-02-01" in everything
    assert "no part of it is covered by all of them" in everything
    assert two and "they all cover 2009-04-01 to 2013-12-31" in two


def test_banes_ward_trend_shows_a_dataset_with_no_record_there_as_zeros(banes_points):
    """Abbey, Bath's centre, has no fire incident in the file: the fire service's line reads zero
    over the years the file covers, not missing as if there were no fire data."""
    from app.aggregate import time_series
    from app.filters import Filter
    from app.trends import agency_trend
    from app.warehouse import connect

    with connect(banes_points["db"], read_only=True) as con:
        abbey = con.execute("SELECT code FROM wards WHERE name = 'Abbey'").fetchall()[0][0]
        in_abbey = con.execute(
            "SELECT count(*) FROM events WHERE dataset = 'fire_incidents' AND ward_code = ?", [abbey]
        ).fetchall()[0][0]
        trend = agency_trend(time_series(con, Filter(), "month", ward=abbey), "month")
        city = time_series(con, Filter(), "month")
    assert in_abbey == 0
    fire = trend[trend["agency"] == "Avon Fire and Rescue"]
    assert len(fire) == 65 and (fire["count"] == 0).all()  # April 2009 to August 2014
    assert set(city["dataset"]) == {
        "police_street",
        "fire_incidents",
        "env_protection",
        "road_collisions",
        "fixmystreet",
    }
    # City-wide, every month each file covers is listed, empty or not, and they add up.
    for dataset, rows in city.groupby("dataset"):
        months = pd.date_range(rows["covered_from"].min(), rows["covered_to"].max(), freq="MS")
        assert sorted(pd.to_datetime(rows["period"])) == list(months), dataset
    assert int(city["count"].sum()) == sum(d["rows_loaded"] for d in banes_points["datasets"])


def test_london_stop_and_search(tmp_path):
    report = load(CATALOGS / "london-met-2018.toml", tmp_path / "w.duckdb")
    _reconciles(report)
    d = _by_id(report)["stop_search"]
    raw = pd.read_csv(REALDATA / "london-met-2018" / "2018-metropolitan-stop-and-search.csv.gz")
    lsoa = REALDATA / "london-met-2018" / "lsoa-2011-inner-london.shp"
    assert d["rows_read"] == len(raw) == 149_284
    assert d["quarantined_by_reason"]["missing_coordinates"] == int(raw.Latitude.isna().sum()) == 31_956
    assert d["rows_loaded"] == _inside(raw.Latitude, raw.Longitude, lsoa) == 45_432
    assert d["quarantined_by_reason"]["outside_study_area"] == 71_896
    assert report["study_area"]["wards"] == 1_022
    assert report["study_area"]["population"] == 1_744_969
    assert "reprojected" in " ".join(report["study_area"]["notes"])


def test_nyc_agency_column_and_three_time_layouts(tmp_path):
    report = load(CATALOGS / "nyc-311-nypd.toml", tmp_path / "w.duckdb")
    _reconciles(report)
    ds = _by_id(report)
    folder = REALDATA / "nyc-311-nypd"
    nta = folder / "nyc_nta_2010.geojson"
    sr = pd.read_csv(folder / "311_Service_Requests_2011_subset.csv", low_memory=False)
    assert ds["nyc_311"]["rows_loaded"] == _inside(sr.Latitude, sr.Longitude, nta) == 1_400
    water = pd.read_csv(folder / "311_Water_Quality_complaints_2010-2016.csv")
    assert ds["water_quality"]["rows_loaded"] == _inside(water.Latitude, water.Longitude, nta) == 7_513
    shots = pd.read_csv(folder / "NYPD_Shooting_Incident_Data__Historic_.csv")
    # One row per victim: each incident (INCIDENT_KEY) inside the city is counted once.
    inside = _inside_mask(shots.Latitude, shots.Longitude, nta)
    incidents = shots.loc[inside, "INCIDENT_KEY"].nunique()
    assert inside.sum() == 20_658
    assert ds["shootings"]["rows_loaded"] == incidents == 16_254
    assert ds["shootings"]["quarantined_by_reason"] == {
        "repeated_record": 20_658 - incidents,
        "outside_study_area": 1,
    }

    from app.warehouse import connect

    with connect(report["db"], read_only=True) as con:
        agencies = dict(
            con.execute("SELECT agency, count(*) FROM events WHERE dataset = 'nyc_311' GROUP BY 1").fetchall()
        )
        hours = con.execute(
            "SELECT count(DISTINCT hour(ts)) FROM events WHERE dataset = 'shootings'"
        ).fetchall()[0][0]
    inside = _inside_mask(sr.Latitude, sr.Longitude, nta)
    for agency in sr.Agency.unique():  # DOF's requests have no coordinates: 0 loaded
        assert agencies.get(agency, 0) == int((inside & (sr.Agency == agency)).sum())
    assert hours == 24  # OCCUR_TIME joined to OCCUR_DATE


def test_nyc_state_plane_feet_with_thousands_separators(tmp_path):
    report = load(CATALOGS / "nyc-council-districts.toml", tmp_path / "w.duckdb")
    _reconciles(report)
    d = _by_id(report)["shootings"]
    shots = pd.read_csv(REALDATA / "nyc-311-nypd" / "NYPD_Shooting_Incident_Data__Historic_.csv")
    with_commas = shots.X_COORD_CD.astype(str).str.contains(",").sum()
    assert with_commas > 900  # the quirk the `thousands` key exists for
    x = pd.to_numeric(shots.X_COORD_CD.astype(str).str.replace(",", ""), errors="coerce")
    y = pd.to_numeric(shots.Y_COORD_CD.astype(str).str.replace(",", ""), errors="coerce")
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs="EPSG:2263").to_crs("EPSG:4326")
    expected = _inside(pts.geometry.y, pts.geometry.x, REALDATA / "nyc-311-nypd" / "nycc_20a.shp")
    assert d["rows_loaded"] == expected
    assert report["study_area"]["wards"] == 51


def test_every_realdata_folder_has_a_test_catalogue():
    folders = {p.name for p in REALDATA.iterdir() if p.is_dir()}
    text = " ".join(p.read_text() for p in CATALOGS.glob("*.toml"))
    missing = {f for f in folders if f"realdata/{f}/" not in text}
    assert not missing, f"no test catalogue loads {sorted(missing)}"


@pytest.mark.parametrize(
    "path, code, n",
    [
        ("bath-banes/ons_ward_2011.geojson", "wd11cd", 37),
        ("bath-banes/banes_boundary_review_2018_final_wards_simp.geojson", "Name", 33),
        ("nyc-311-nypd/nyc_community_districts.geojson", "boro_cd", 71),
    ],
)
def test_other_boundary_files_read(path, code, n):
    from app.boundaries import read_wards
    from app.catalog import StudyArea

    wards = read_wards(StudyArea("x", REALDATA / path, code, code))
    assert len(wards) == n
    minx, miny, maxx, maxy = wards.bounds
    assert -180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90
    assert all(a > 0 for a in wards.areas_km2)
    assert np.isfinite(wards.areas_km2).all()
    assert not re.search(r"\s$", wards.names[0])
