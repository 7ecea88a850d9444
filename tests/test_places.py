"""Places people know: the gazetteer and postcode lookup of the catalogue, loaded and searched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_ingest import GOOD_CSV, HEADER, WARDS, dataset

from app.catalog import CatalogError, load_catalog
from app.ingest import load
from app.places import (
    direction_name,
    format_postcode,
    nearest_place_name,
    place_frame,
    place_name,
    postcode_key,
    search,
    ward_frame,
    zoom_for_bounds,
)
from app.warehouse import connect

# West ward spans lon -0.2..-0.1, East -0.1..0.0, both lat 51.45..51.55.
PLACES_CSV = (
    "name,kind,lat,lon\n"
    "Westfield estate,housing estate,51.50,-0.15\n"
    "East Market,town centre,51.52,-0.05\n"
    "Eastern Road,street,51.46,-0.02\n"
    ",street,51.5,-0.1\n"  # no name: left out
    "Nowhere,street,not a number,-0.1\n"  # no position: left out
)
POSTCODES_CSV = (
    "pcd,pcd2,pcds,dointr,lat,long\n"
    "TN1 2AB,TN1  2AB,TN1 2AB,202001,51.500000,-0.150000\n"
    "TN1 2AD,TN1  2AD,TN1 2AD,202001,51.510000,-0.140000\n"
    "TN102AB,TN10 2AB,TN10 2AB,202001,51.520000,-0.050000\n"
    "TN1 9ZZ,TN1  9ZZ,TN1 9ZZ,202001,99.999999,0.000000\n"  # the ONS's "no position"
    "ZZ1 1ZZ,ZZ1  1ZZ,ZZ1 1ZZ,202001,53.000000,-2.000000\n"  # outside the study area
)
PLACES_KEYS = 'places = "places.csv"\npostcodes = "postcodes.csv"\n'


def write_area(root: Path, places: str | None = PLACES_CSV, postcodes: str | None = POSTCODES_CSV) -> Path:
    (root / "wards.geojson").write_text(json.dumps(WARDS))
    (root / "calls.csv").write_text(GOOD_CSV)
    if places is not None:
        (root / "places.csv").write_text(places)
    if postcodes is not None:
        (root / "postcodes.csv").write_text(postcodes)
    catalog = root / "catalog.toml"
    catalog.write_text(HEADER + PLACES_KEYS + dataset())
    return catalog


@pytest.fixture
def loaded(tmp_path: Path):
    catalog = write_area(tmp_path)
    db = tmp_path / "w.duckdb"
    load(catalog, db)
    con = connect(db, read_only=True)
    yield con, catalog, db
    con.close()


# ---------------------------------------------------------------------------------------------
# The catalogue


def problems_of(catalog: Path) -> str:
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog)
    return "\n".join(caught.value.problems)


def test_the_catalogue_names_the_key_of_a_missing_or_unusable_file(tmp_path):
    catalog = write_area(tmp_path, places=None)
    found = problems_of(catalog)
    assert "[study_area]: key 'places': file not found" in found

    write_area(tmp_path, places="title,lat,lon\nA,51.5,-0.1\n")
    found = problems_of(catalog)
    assert "key 'places'" in found and "no 'name' column" in found

    write_area(tmp_path, places="name,where\nA,somewhere\n")
    assert "lat and lon" in problems_of(catalog) and "easting and northing" in problems_of(catalog)

    write_area(tmp_path, postcodes="pcds,latitude\nTN1 2AB,51.5\n")
    found = problems_of(catalog)
    assert "key 'postcodes'" in found and "long" in found

    write_area(tmp_path)
    (tmp_path / "places.txt").write_text("name\n")
    catalog.write_text(HEADER + 'places = "places.txt"\n' + dataset())
    assert "key 'places': must be a CSV, GeoJSON or GeoPackage" in problems_of(catalog)


def test_without_a_gazetteer_the_tables_exist_and_are_empty(tmp_path):
    (tmp_path / "wards.geojson").write_text(json.dumps(WARDS))
    (tmp_path / "calls.csv").write_text(GOOD_CSV)
    (tmp_path / "catalog.toml").write_text(HEADER + dataset())
    load(tmp_path / "catalog.toml", tmp_path / "w.duckdb")
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM places").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM postcodes").fetchall() == [(0,)]
        assert [h["kind"] for h in search(con, "west")] == ["ward"]


# ---------------------------------------------------------------------------------------------
# Loading


def test_places_and_postcodes_load_with_their_wards(loaded):
    con, _, _ = loaded
    places = con.execute("SELECT name, kind, ward_code FROM places ORDER BY name").fetchall()
    assert places == [
        ("East Market", "town centre", "E1"),
        ("Eastern Road", "street", "E1"),
        ("Westfield estate", "housing estate", "W1"),
    ]
    postcodes = con.execute("SELECT postcode, key, ward_code FROM postcodes ORDER BY postcode").fetchall()
    # The unplaced ONS postcode and the one outside the study area are not kept.
    assert postcodes == [
        ("TN1 2AB", "TN12AB", "W1"),
        ("TN1 2AD", "TN12AD", "W1"),
        ("TN10 2AB", "TN102AB", "E1"),
    ]


def test_an_edited_gazetteer_is_picked_up_though_no_dataset_changed(loaded):
    con, catalog, db = loaded
    con.close()
    (catalog.parent / "places.csv").write_text(PLACES_CSV + "Westgate station,station,51.53,-0.19\n")
    report = load(catalog, db)
    assert report["datasets"][0]["status"] == "unchanged"
    with connect(db, read_only=True) as again:
        assert again.execute("SELECT count(*) FROM places").fetchall() == [(4,)]
        assert search(again, "westgate")[0]["name"] == "Westgate station"


def test_easting_northing_and_geojson_areas(tmp_path):
    # British National Grid near (51.5, -0.15): a point in the West ward.
    from pyproj import Transformer

    east, north = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True).transform(-0.15, 51.5)
    catalog = write_area(tmp_path, places=f"Name,Type,Easting,Northing\nGrid Place,landmark,{east},{north}\n")
    load(catalog, tmp_path / "a.duckdb")
    with connect(tmp_path / "a.duckdb", read_only=True) as con:
        row = con.execute("SELECT name, kind, round(lat, 4), round(lon, 4), ward_code FROM places").fetchall()
    assert row == [("Grid Place", "landmark", 51.5, -0.15, "W1")]

    area = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "Eastbrook estate", "kind": "housing estate"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[-0.06, 51.48], [-0.02, 51.48], [-0.02, 51.52], [-0.06, 51.52], [-0.06, 51.48]]
                    ],
                },
            },
            {
                "type": "Feature",
                "properties": {"name": "Mill Lane"},
                "geometry": {"type": "Point", "coordinates": [-0.15, 51.5]},
            },
        ],
    }
    (tmp_path / "places.geojson").write_text(json.dumps(area))
    catalog.write_text(HEADER + 'places = "places.geojson"\n' + dataset())
    load(catalog, tmp_path / "b.duckdb")
    with connect(tmp_path / "b.duckdb", read_only=True) as con:
        places = place_frame(con)
        wards = ward_frame(con)
    estate = places[places["name"] == "Eastbrook estate"].iloc[0]
    assert estate["geom"] is not None and estate["ward_code"] == "E1"
    # A point inside the estate's outline takes its name, however far from its centre.
    assert nearest_place_name(places, 51.519, -0.059) == "Eastbrook estate"
    assert nearest_place_name(places, 51.5, -0.149) == "Mill Lane"
    assert nearest_place_name(places, 51.54, -0.19) is None  # nothing within reach
    assert place_name(51.54, -0.19, wards=wards, places=places) == "north-west of West ward centre"


# ---------------------------------------------------------------------------------------------
# Names and directions


def test_direction_from_the_ward_centre():
    assert direction_name("Abbey", 51.5, -0.1, 51.51, -0.1) == "north of Abbey ward centre"
    assert direction_name("Abbey", 51.5, -0.1, 51.49, -0.085) == "south-east of Abbey ward centre"
    assert direction_name("Abbey", 51.5, -0.1, 51.5, -0.12) == "west of Abbey ward centre"
    assert direction_name("Abbey Ward", 51.5, -0.1, 51.5001, -0.1) == "Abbey Ward centre"


def test_postcodes_are_normalised():
    assert postcode_key(" tn1  2ab ") == "TN12AB"
    assert postcode_key("TN102AB") == "TN102AB"
    assert postcode_key("not a postcode!") is None
    assert format_postcode("TN102AB") == "TN10 2AB" and format_postcode("TN12AB") == "TN1 2AB"


def test_zoom_fits_the_box():
    assert zoom_for_bounds(51.45, -0.2, 51.55, -0.1) < zoom_for_bounds(51.49, -0.16, 51.51, -0.14)
    assert 9 <= zoom_for_bounds(50, -3, 53, 1) <= zoom_for_bounds(51.5, -0.1, 51.5, -0.1) <= 17


# ---------------------------------------------------------------------------------------------
# Search


def test_search_ranks_exact_then_prefix_then_words_then_contains(loaded):
    con, _, _ = loaded
    names = [(h["name"], h["kind"]) for h in search(con, "east")]
    # The ward "East" exactly, then names starting with it (a ward before a place on a tie,
    # then shorter first), then none that merely contain it.
    assert names == [("East", "ward"), ("East Market", "town centre"), ("Eastern Road", "street")]
    assert [h["name"] for h in search(con, "market")] == ["East Market"]  # a word of the name
    assert [h["name"] for h in search(con, "stfield")] == ["Westfield estate"]  # inside a word
    assert search(con, "E1")[0]["name"] == "East"  # a ward code
    assert search(con, "x") == [] and search(con, "") == []


def test_search_finds_postcodes_whatever_their_spacing_and_case(loaded):
    con, _, _ = loaded
    for text in ("tn1 2ab", "TN12AB", "  Tn1   2Ab "):
        hit = search(con, text)[0]
        assert (hit["name"], hit["kind"], hit["ward_name"]) == ("TN1 2AB", "postcode", "West")
        assert (hit["lat"], hit["lon"], hit["zoom"]) == (51.5, -0.15, 16)
    # A district lists its postcodes, the exact one first: TN1 before TN10.
    assert [h["name"] for h in search(con, "TN1")][:2] == ["TN1 2AB", "TN1 2AD"]
    assert [h["name"] for h in search(con, "tn10")] == ["TN10 2AB"]


def test_a_search_hit_says_where_to_look(loaded):
    con, _, _ = loaded
    ward = search(con, "West")[0]
    assert ward["kind"] == "ward" and ward["ward_code"] == "W1"
    assert 51.45 < ward["lat"] < 51.55 and -0.2 < ward["lon"] < -0.1
    place = next(h for h in search(con, "westfield") if h["name"] == "Westfield estate")
    assert place["ward_name"] == "West" and place["zoom"] >= ward["zoom"]
    # Text that LIKE would read as a pattern is matched as itself.
    assert search(con, "%") == [] and search(con, "_a") == []


def test_a_gazetteer_that_cannot_be_read_stops_the_load_with_one_line(tmp_path, capsys):
    from app.cli import main

    catalog = write_area(tmp_path)
    db = tmp_path / "w.duckdb"
    load(catalog, db)
    before = db.read_bytes()
    # The header reads, a row far into the file is not UTF-8: found only when it is loaded.
    body = b"name,lat,lon\n" + b"Somewhere,51.5,-0.15\n" * 2000 + b"\xff\xfe broken,51.5,-0.15\n"
    (tmp_path / "places.csv").write_bytes(body)
    with pytest.raises(CatalogError) as caught:
        load(catalog, db)
    assert f"{catalog}: [study_area]: key 'places': places.csv: cannot read the file" in str(caught.value)
    assert db.read_bytes() == before  # the warehouse is as it was
    assert main(["load", "--catalog", str(catalog), "--db", str(db)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "key 'places'" in err[0] and "Traceback" not in err[0]
