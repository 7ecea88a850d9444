"""Upload suggestions: place columns and their grid, the time column and every format that reads
it (never a silent pick between day first and month first), category and id columns."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from conftest import REALDATA

from app.suggest import ISO_8601, suggest


def frame(rows: list[list[str]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns, dtype=object)


def grid_rows(days: list[str]) -> pd.DataFrame:
    """Rows of a UK council's file: British National Grid, day-first dates."""
    kinds = ["Fly-tipping", "Noise", "Graffiti"]
    rows = [
        [f"R{i:04d}", str(375_010 + 37 * i), str(164_320 + 11 * i), f"{day} 09:{i % 60:02d}", kinds[i % 3]]
        for i, day in enumerate(days)
    ]
    return frame(rows, ["Ref", "Easting", "Northing", "Received", "Problem type"])


def test_easting_northing_with_a_day_above_12_is_day_first_for_sure():
    s = suggest(grid_rows(["02/05/2024", "13/05/2024", "07/06/2024", "11/06/2024"]))
    assert (s.place, s.x, s.y, s.crs) == ("xy", "Easting", "Northing", "EPSG:27700")
    assert "suggested CRS EPSG:27700" in s.reasons["place"] and "British National Grid" in s.reasons["place"]
    assert s.time == "Received"
    assert s.time_formats == ("%d/%m/%Y %H:%M",)
    assert s.time_format == "%d/%m/%Y %H:%M" and not s.time_ambiguous
    assert "day first" in s.reasons["time"]
    assert s.category == "Problem type" and s.record_id == "Ref"
    assert s.entry() == {
        "x": "Easting",
        "y": "Northing",
        "crs": "EPSG:27700",
        "time": "Received",
        "time_format": "%d/%m/%Y %H:%M",
        "category": "Problem type",
        "record_id": "Ref",
    }


def test_days_all_12_or_less_list_both_orders_and_pick_neither():
    s = suggest(grid_rows(["02/05/2024", "12/05/2024", "07/06/2024", "11/06/2024"]))
    assert s.time == "Received"
    assert set(s.time_formats) == {"%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M"}
    assert s.time_format is None and s.time_ambiguous
    assert "time_format" not in s.entry()
    reason = s.reasons["time"]
    assert "day first" in reason and "month first" in reason and "none is picked" in reason


def test_month_first_when_a_month_position_holds_13():
    s = suggest(grid_rows(["05/02/2024", "05/13/2024"]))
    assert s.time_formats == ("%m/%d/%Y %H:%M",) and s.time_format == "%m/%d/%Y %H:%M"


def test_new_york_degrees_with_iso_times():
    rows = [
        ["4001", "2024-03-01T14:27:57", "Noise - Residential", "40.6608", "-73.9986"],
        ["4002", "2024-03-02T08:05:00", "Illegal Parking", "40.7911", "-73.9533"],
        ["4003", "2024-03-13T23:59:59", "Noise - Residential", "40.5621", "-74.1133"],
    ]
    s = suggest(frame(rows, ["Unique Key", "Created Date", "Complaint Type", "Latitude", "Longitude"]))
    assert (s.place, s.lat, s.lon, s.crs) == ("latlon", "Latitude", "Longitude", None)
    assert s.time == "Created Date" and s.time_format == ISO_8601 and s.time_formats[0] == ISO_8601
    assert "time_format" not in s.entry()  # ISO 8601 is a blank format
    assert s.category == "Complaint Type" and s.record_id == "Unique Key"


def test_new_york_state_plane_feet():
    rows = [["959975", "171772", "09/09/2017"], ["1011288", "255912", "09/10/2017"]]
    s = suggest(frame(rows, ["X_COORD_CD", "Y_COORD_CD", "OCCUR_DATE"]))
    assert (s.place, s.x, s.y, s.crs) == ("xy", "X_COORD_CD", "Y_COORD_CD", "EPSG:2263")
    assert "New York State Plane" in s.reasons["place"]


def test_grid_values_no_known_grid_fits_ask_for_the_crs():
    rows = [["5000000", "9000000", "2024-01-01"], ["5000100", "9000100", "2024-01-02"]]
    s = suggest(frame(rows, ["easting", "northing", "date"]))
    assert s.place == "xy" and s.crs is None
    assert "give the CRS" in s.reasons["place"]


def test_unnamed_columns_that_could_each_be_latitude_say_so():
    rows = [["51.38", "-2.36", "2024-01-01"], ["51.40", "-2.49", "2024-01-02"]]
    s = suggest(frame(rows, ["a", "b", "when"]))
    assert s.place == "latlon" and s.reasons["place"].startswith("Place: unsure")
    assert s.alternatives["lat"] == ("b",) and s.alternatives["lon"] == ("a",)


def test_unnamed_columns_beyond_90_settle_longitude():
    rows = [["40.66", "-173.99", "2024-01-01"], ["40.79", "-173.95", "2024-01-02"]]
    s = suggest(frame(rows, ["a", "b", "when"]))
    assert (s.lat, s.lon) == ("a", "b") and "beyond ±90" in s.reasons["place"]


def test_two_date_columns_prefer_the_one_named_for_when_it_happened():
    rows = [["2024-01-01 10:00", "2024-02-01 10:00", "A"], ["2024-01-02 10:00", "2024-02-03 10:00", "B"]]
    s = suggest(frame(rows, ["closed_at", "reported_at", "what"]))
    assert s.time == "reported_at" and s.alternatives["time"] == ("closed_at",)


def test_two_equally_named_date_columns_are_both_named():
    rows = [["2024-01-01", "2024-02-01"], ["2024-01-02", "2024-02-03"]]
    s = suggest(frame(rows, ["date_a", "date_b"]))
    assert s.time == "date_a" and "date_b would also read as dates" in s.reasons["time"]


def test_masked_grid_columns_give_way_to_a_point_text():
    rows = [["367***", "159***", "(51.3336, -2.4678)"], ["374***", "164***", "(51.3789, -2.3677)"]]
    s = suggest(frame(rows, ["x_coordinate", "y_coordinate", "location"]))
    assert (s.place, s.point) == ("point", "location")
    assert "367***" in s.reasons["place"]


def test_nothing_recognisable_is_said_in_words():
    s = suggest(frame([["foo", "1"], ["bar", "2"]], ["name", "n"]))
    assert s.place == "" and s.time is None and s.entry() == {}
    assert "choose" in s.reasons["place"] and "choose" in s.reasons["time"]


def test_a_date_column_with_midnights_and_a_clock_column_beside_it():
    rows = [["09/09/2017", "3:57:00", "40.6", "-74.0"], ["09/13/2017", "22:15:00", "40.8", "-73.9"]]
    s = suggest(frame(rows, ["OCCUR_DATE", "OCCUR_TIME", "Latitude", "Longitude"]))
    assert s.time == "OCCUR_DATE" and s.time_format == "%m/%d/%Y"
    assert s.time_of_day == "OCCUR_TIME" and s.time_of_day_format == "%H:%M:%S"


def test_typed_dates_need_no_format():
    typed = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:00"]),
            "lat": [51.4, 51.5],
            "lon": [-2.3, -2.4],
        }
    )
    s = suggest(typed)
    assert s.time == "ts" and s.time_format == ISO_8601 and "no format needed" in s.reasons["time"]


def test_file_points_are_the_place_of_a_geometry_file():
    s = suggest(frame([["A", "POINT (1 2)"]], ["what", "geometry"]), geometry=True)
    assert s.place == "geometry" and s.entry() == {"category": "what"}


def _sample(path) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        return con.execute(
            "SELECT * FROM read_csv($p, all_varchar = true, header = true) LIMIT 1000", {"p": str(path)}
        ).df()
    finally:
        con.close()


@pytest.mark.realdata
def test_real_files_dates_read_as_their_publishers_wrote_them():
    env = suggest(_sample(REALDATA / "bath-banes" / "BANES_Environmental_Protection_Service_Requests.csv"))
    assert env.time == "ReceivedDate" and env.time_format == "%d/%m/%Y %I:%M:%S %p"
    fire = suggest(_sample(REALDATA / "bath-banes" / "Avon_Fire_and_Rescue_Incidents.csv"))
    assert fire.place == "point" and fire.time_format == "%m/%d/%Y %I:%M:%S %p %z"
    # March 2011 only: no day above 12, so both orders are offered and neither is picked.
    subset = suggest(_sample(REALDATA / "nyc-311-nypd" / "311_Service_Requests_2011_subset.csv"))
    assert subset.time_ambiguous and "%m/%d/%Y %I:%M:%S %p" in subset.time_formats
    road = suggest(_sample(REALDATA / "bath-banes" / "BANES_Subset_Of_Road_Safety_Data_Location_Fixed.csv"))
    assert (road.place, road.lat, road.time_of_day) == ("latlon", "latitude", "time")
