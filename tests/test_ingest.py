"""Ingest: reconciliation, quarantine reasons, bad input, idempotent and atomic loads."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from app.ingest import load
from app.warehouse import connect

# Two wards side by side around (51.5, -0.1): west [-0.2, -0.1), east [-0.1, 0.0].
WARDS = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"code": "W1", "name": "West", "pop": 1000},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[-0.2, 51.45], [-0.1, 51.45], [-0.1, 51.55], [-0.2, 51.55], [-0.2, 51.45]]],
            },
        },
        {
            "type": "Feature",
            "properties": {"code": "E1", "name": "East", "pop": 2000},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[-0.1, 51.45], [0.0, 51.45], [0.0, 51.55], [-0.1, 51.55], [-0.1, 51.45]]],
            },
        },
    ],
}

HEADER = """
[study_area]
name = "Tiny"
boundaries = "wards.geojson"
code_field = "code"
name_field = "name"
population_field = "pop"
"""


def dataset(ds_id: str = "calls", path: str = "calls.csv", **extra: str) -> str:
    keys = {
        "id": ds_id,
        "title": "Calls",
        "agency": "Police",
        "kind": "demand",
        "path": path,
        "lat": "lat",
        "lon": "lon",
        "time": "when",
        "category": "type",
        "sharing": "open",
    }
    keys.update(extra)
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in keys.items() if v is not None)
    return f"\n[[datasets]]\n{body}\n"


GOOD_CSV = (
    "lat,lon,when,type\n"
    "51.5,-0.15,2024-01-02 10:00:00,noise\n"
    "51.5,-0.05,2024-01-03 11:00:00,noise\n"
    "51.51,-0.04,2024-02-03 23:30:00,\n"
)


@pytest.fixture
def area(tmp_path: Path) -> Path:
    (tmp_path / "wards.geojson").write_text(json.dumps(WARDS))
    return tmp_path


def run(area: Path, catalog: str, files: dict[str, str | bytes]) -> dict:
    for name, content in files.items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(area / name, mode) as handle:
            handle.write(content)
    (area / "catalog.toml").write_text(catalog)
    return load(area / "catalog.toml", area / "w.duckdb", now=dt.datetime(2025, 1, 1))


def events(area: Path, dataset_id: str = "calls") -> list[tuple]:
    with connect(area / "w.duckdb", read_only=True) as con:
        return con.execute(
            "SELECT source_row, ward_code, category FROM events WHERE dataset = ? ORDER BY source_row",
            [dataset_id],
        ).fetchall()


def quarantine(area: Path) -> dict[int, tuple]:
    with connect(area / "w.duckdb", read_only=True) as con:
        rows = con.execute("SELECT source_row, reason, column_name, raw FROM quarantine").fetchall()
    return {r[0]: r[1:] for r in rows}


def only(report: dict) -> dict:
    (d,) = report["datasets"]
    return d


def test_good_file_loads_with_wards_and_unknown_category(area):
    d = only(run(area, HEADER + dataset(), {"calls.csv": GOOD_CSV}))
    assert d["status"] == "loaded" and d["rows_loaded"] == 3 and d["rows_quarantined"] == 0
    assert d["category_unknown"] == 1
    assert events(area) == [(1, "W1", "noise"), (2, "E1", "noise"), (3, "E1", "unknown")]


def test_each_bad_row_gets_its_reason_row_and_column(area):
    csv = (
        "lat,lon,when,type\n"
        ",-0.15,2024-01-02 10:00:00,a\n"  # 1 missing
        "51.5,abc,2024-01-02 10:00:00,a\n"  # 2 coordinates as text
        "0,0,2024-01-02 10:00:00,a\n"  # 3 zero
        "95,-0.15,2024-01-02 10:00:00,a\n"  # 4 out of range
        "51.5,-0.15,,a\n"  # 5 no time
        "51.5,-0.15,yesterday,a\n"  # 6 bad time
        "51.5,-0.15,2030-01-01 00:00:00,a\n"  # 7 future
        "-0.15,51.5,2024-01-02 10:00:00,a\n"  # 8 swapped
        "53.0,-2.0,2024-01-02 10:00:00,a\n"  # 9 outside
        "51.5,-0.15,2024-01-02 10:00:00,a\n"  # 10 good
    )
    d = only(run(area, HEADER + dataset(), {"calls.csv": csv}))
    q = quarantine(area)
    assert {row: reason for row, (reason, _, _) in q.items()} == {
        1: "missing_coordinates",
        2: "bad_coordinates",
        3: "zero_coordinates",
        4: "invalid_coordinates",
        5: "missing_time",
        6: "bad_time",
        7: "future_time",
        8: "swapped_coordinates",
        9: "outside_study_area",
    }
    assert q[6][1] == "when" and q[2][1] == "lat+lon"
    assert q[8][1] == q[9][1] == "lat+lon"  # a point in no ward is blamed on its coordinates
    assert json.loads(q[6][2]) == {"lat": "51.5", "lon": "-0.15", "when": "yesterday", "type": "a"}
    assert json.loads(q[9][2]) == {"lat": "53.0", "lon": "-2.0", "when": "2024-01-02 10:00:00", "type": "a"}
    assert d["rows_read"] == 10 and d["rows_loaded"] == 1 and d["rows_quarantined"] == 9


def test_time_column_in_three_formats(area):
    csv = (
        "lat,lon,when,type\n"
        "51.5,-0.15,2024-01-02 10:00:00,a\n"
        "51.5,-0.15,02/01/2024 10:00,a\n"
        "51.5,-0.15,2024-01,a\n"
    )
    # Declared as one format: the others are quarantined, never guessed.
    d = only(run(area, HEADER + dataset(time_format="%Y-%m-%d %H:%M:%S"), {"calls.csv": csv}))
    assert d["rows_loaded"] == 1 and d["quarantined_by_reason"] == {"bad_time": 2}
    # Declared as a list: all three load, day-first as the catalogue says.
    fmts = ["%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M", "%Y-%m"]
    d = only(run(area, HEADER + dataset(time_format=fmts), {"calls.csv": csv}))
    assert d["rows_loaded"] == 3
    with connect(area / "w.duckdb", read_only=True) as con:
        months = sorted(r[0].month for r in con.execute("SELECT ts FROM events").fetchall())
    assert months == [1, 1, 1]


def test_ragged_rows_and_bad_bytes_are_quarantined_with_exact_row_numbers(area):
    content = (
        b"lat,lon,when,type\n"
        b"51.5,-0.15,2024-01-02 10:00:00,a\n"
        b"51.5,-0.15,2024-01-02 10:00:00\n"  # 2: a field short
        b"51.5,-0.15,2024-01-02 10:00:00,caf\xe9\n"  # 3: latin-1 byte in a UTF-8 file
        b'51.5,-0.05,2024-01-02 10:00:00,"two\nlines"\n'  # 4: quoted newline, fine
        b"51.5,-0.15,2024-01-02 10:00:00,a,extra\n"  # 5: a field too many
        b"51.5,-0.05,2024-01-02 10:00:00,b\n"  # 6
    )
    d = only(run(area, HEADER + dataset(), {"calls.csv": content}))
    q = quarantine(area)
    assert {row: r[0] for row, r in q.items()} == {2: "malformed_row", 3: "bad_encoding", 5: "malformed_row"}
    assert [r[0] for r in events(area)] == [1, 4, 6]
    assert "caf\ufffd" in q[3][2]
    assert d["files"][0]["reader"] == "python"


def test_quoted_newlines_and_a_one_megabyte_field_load(area):
    big = "x" * 1_048_576
    csv = (
        "lat,lon,when,type,notes\n"
        f'51.5,-0.15,2024-01-02 10:00:00,a,"{big}"\n'
        '51.5,-0.05,2024-01-02 10:00:00,b,"line one\nline two"\n'
    )
    d = only(run(area, HEADER + dataset(), {"calls.csv": csv}))
    assert d["rows_loaded"] == 2 and d["files"][0]["reader"] == "duckdb"


def test_latin1_file_loads_when_the_catalogue_says_so(area):
    content = "lat,lon,when,type\n51.5,-0.15,2024-01-02 10:00:00,café\n".encode("latin-1")
    d = only(run(area, HEADER + dataset(encoding="latin-1"), {"calls.csv": content}))
    assert d["rows_loaded"] == 1
    assert events(area)[0][2] == "café"


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "the file is empty"),
        ("lat,lon,when,type\n", "header but no data rows"),
        ("lat;lon;when;type\n51.5;-0.15;2024-01-02;a\n", "set delimiter = ';'"),
        ("latitude,longitude,when,type\n51.5,-0.15,2024-01-02,a\n", "column 'lat' (key 'lat')"),
    ],
)
def test_unloadable_files_fail_clearly_and_keep_the_previous_version(area, content, message):
    catalog = HEADER + dataset()
    assert only(run(area, catalog, {"calls.csv": GOOD_CSV}))["rows_loaded"] == 3
    before = events(area)
    d = only(run(area, catalog, {"calls.csv": content}))
    assert d["status"] == "failed" and d["previous_version_kept"]
    assert message in d["error"] and "calls.csv" in d["error"] and "catalog.toml" in d["error"]
    assert events(area) == before


def test_malformed_geojson_fails_clearly(area):
    catalog = HEADER + dataset(path="calls.geojson", lat=None, lon=None)
    d = only(run(area, catalog, {"calls.geojson": '{"type": "FeatureCollection", "features": [{"type": '}))
    assert d["status"] == "failed" and "calls.geojson" in d["error"]


def test_geojson_points_load_and_non_points_are_quarantined(area):
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [-0.15, 51.5]},
            "properties": {"when": "2024-01-02", "type": "a"},
        },
        {"type": "Feature", "geometry": None, "properties": {"when": "2024-01-02", "type": "a"}},
        {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[-0.15, 51.5], [-0.1, 51.5]]},
            "properties": {"when": "2024-01-02", "type": "a"},
        },
    ]
    catalog = HEADER + dataset(path="calls.geojson", lat=None, lon=None)
    d = only(
        run(area, catalog, {"calls.geojson": json.dumps({"type": "FeatureCollection", "features": features})})
    )
    assert d["rows_read"] == 3 and d["rows_loaded"] == 1
    assert d["quarantined_by_reason"] == {"missing_coordinates": 1, "not_a_point": 1}


def test_boundary_file_with_no_polygons_is_an_error_and_changes_nothing(area):
    from app.ingest import LoadError

    run(area, HEADER + dataset(), {"calls.csv": GOOD_CSV})
    before = (area / "w.duckdb").read_bytes()
    points = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": "A", "name": "A", "pop": 5},
                "geometry": {"type": "Point", "coordinates": [0, 51]},
            }
        ],
    }
    (area / "wards.geojson").write_text(json.dumps(points))
    with pytest.raises(LoadError, match="no polygons"):
        load(area / "catalog.toml", area / "w.duckdb")
    assert (area / "w.duckdb").read_bytes() == before


def test_invalid_polygons_are_repaired(area):
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[-0.2, 51.45], [0.0, 51.55], [0.0, 51.45], [-0.2, 51.55], [-0.2, 51.45]]],
    }
    wards = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"code": "B", "name": "Bow", "pop": 1}, "geometry": bowtie}
        ],
    }
    (area / "wards.geojson").write_text(json.dumps(wards))
    report = run(area, HEADER + dataset(), {"calls.csv": GOOD_CSV})
    assert any("repaired 1 invalid" in n for n in report["study_area"]["notes"])


def test_reload_is_idempotent_and_changes_replace_only_their_dataset(area):
    catalog = HEADER + dataset() + dataset("visits", "visits.csv", kind="intervention")
    first = run(area, catalog, {"calls.csv": GOOD_CSV, "visits.csv": GOOD_CSV})
    assert [d["status"] for d in first["datasets"]] == ["loaded", "loaded"]
    stamp = os.stat(area / "w.duckdb").st_mtime_ns
    again = load(area / "catalog.toml", area / "w.duckdb", now=dt.datetime(2025, 1, 1))
    assert [d["status"] for d in again["datasets"]] == ["unchanged", "unchanged"]
    assert again["totals"] == first["totals"]
    assert os.stat(area / "w.duckdb").st_mtime_ns == stamp  # not even rewritten
    third = run(area, catalog, {"calls.csv": GOOD_CSV + "51.5,-0.15,2024-03-01 09:00:00,x\n"})
    assert [d["status"] for d in third["datasets"]] == ["loaded", "unchanged"]
    assert len(events(area, "calls")) == 4 and len(events(area, "visits")) == 3
    # Wards are stored by number: a later load numbers them as the first did.
    assert [r[1] for r in events(area, "calls")] == ["W1", "E1", "E1", "W1"]
    assert [r[1] for r in events(area, "visits")] == ["W1", "E1", "E1"]


def test_a_reload_reads_the_stored_ward_index_instead_of_building_it(area, monkeypatch):
    import app.ward_index as ward_index

    catalog = HEADER + dataset()
    run(area, catalog, {"calls.csv": GOOD_CSV})

    def no_build(*_args, **_kwargs):
        raise AssertionError("the ward index was built again")

    with monkeypatch.context() as patch:
        patch.setattr(ward_index.WardIndex, "__init__", no_build)
        d = only(run(area, catalog, {"calls.csv": GOOD_CSV + "51.5,-0.15,2024-03-01 09:00:00,x\n"}))
    assert d["status"] == "loaded", d.get("error")
    assert [r[1] for r in events(area)] == ["W1", "E1", "E1", "W1"]
    # An index stored by a version that classes cells differently is built again.
    built = []
    build = ward_index.WardIndex.__init__
    monkeypatch.setattr(ward_index, "INDEX_VERSION", ward_index.INDEX_VERSION + 1)
    monkeypatch.setattr(ward_index.WardIndex, "__init__", lambda *a, **k: built.append(1) or build(*a, **k))
    d = only(run(area, catalog, {"calls.csv": GOOD_CSV}))
    assert d["status"] == "loaded" and [r[1] for r in events(area)] == ["W1", "E1", "E1"]
    assert built == [1]


def test_a_warehouse_of_an_older_schema_is_rebuilt(area):
    run(area, HEADER + dataset(), {"calls.csv": GOOD_CSV})
    with connect(area / "w.duckdb") as con:  # the first schema kept events in one table
        con.execute("DROP VIEW events")
        con.execute("CREATE TABLE events AS SELECT 'stale' AS dataset")
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    d = only(load(area / "catalog.toml", area / "w.duckdb", now=dt.datetime(2025, 1, 1)))
    assert d["status"] == "loaded"  # not "unchanged": nothing stored in the old schema is trusted
    assert events(area) == [(1, "W1", "noise"), (2, "E1", "noise"), (3, "E1", "unknown")]
    with connect(area / "w.duckdb", read_only=True) as con:
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        columns = [r[0] for r in con.execute("DESCRIBE events").fetchall()]
    assert kinds["events"] == "VIEW"
    assert columns == [
        "dataset", "agency", "kind", "category", "ts", "lat", "lon", "weight", "record_id", "h3",
        "ward_code", "source_file", "source_row", "rkey",
    ]  # fmt: skip


def test_agency_column_names_each_rows_agency_and_the_dataset_fills_blanks(area):
    csv = (
        "lat,lon,when,type,by\n"
        "51.5,-0.15,2024-01-02 10:00:00,noise,Fire\n"
        "51.5,-0.05,2024-01-03 11:00:00,noise,\n"
    )
    d = only(run(area, HEADER + dataset(agency_column="by"), {"calls.csv": csv}))
    assert d["rows_loaded"] == 2
    with connect(area / "w.duckdb", read_only=True) as con:
        rows = con.execute("SELECT source_row, agency FROM events ORDER BY 1").fetchall()
        own = con.execute("SELECT agency FROM event_rows ORDER BY source_row").fetchall()
    assert rows == [(1, "Fire"), (2, "Police")]
    assert own == [("Fire",), (None,)]  # the dataset's own agency is not repeated per row


def test_a_crash_mid_dataset_rolls_that_dataset_back(area, monkeypatch):
    import app.ingest as ingest

    catalog = HEADER + dataset()
    run(area, catalog, {"calls.csv": GOOD_CSV})
    before = events(area)
    real = ingest._file_report

    def crash(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingest, "_file_report", crash)
    d = only(run(area, catalog, {"calls.csv": GOOD_CSV + "51.5,-0.15,2024-03-01 09:00:00,x\n"}))
    assert d["status"] == "failed" and "disk on fire" in d["error"]
    assert events(area) == before
    with connect(area / "w.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == 0


def test_a_reader_keeps_working_during_and_after_a_reload(area):
    catalog = HEADER + dataset()
    run(area, catalog, {"calls.csv": GOOD_CSV})
    reader = connect(area / "w.duckdb", read_only=True)
    assert reader.execute("SELECT count(*) FROM events").fetchall()[0][0] == 3
    run(area, catalog, {"calls.csv": GOOD_CSV + "51.5,-0.15,2024-03-01 09:00:00,x\n"})
    assert reader.execute("SELECT count(*) FROM events").fetchall()[0][0] == 3  # its snapshot
    reader.close()
    assert len(events(area)) == 4


def test_removed_dataset_is_dropped(area):
    run(
        area,
        HEADER + dataset() + dataset("visits", "visits.csv"),
        {"calls.csv": GOOD_CSV, "visits.csv": GOOD_CSV},
    )
    report = run(area, HEADER + dataset(), {})
    assert [d["id"] for d in report["datasets"]] == ["calls"]
    assert events(area, "visits") == []


def test_grid_coordinates_with_thousands_separators_and_null_markers(area):
    csv = (
        'e,n,when,hhmm,type\n"531,000","180,000",02/01/2024,10:30,a\n"531,000","180,000",02/01/2024,NULL,a\n'
    )
    catalog = HEADER + dataset(
        path="grid.csv",
        lat=None,
        lon=None,
        x="e",
        y="n",
        crs="EPSG:27700",
        thousands=",",
        time_format="%d/%m/%Y",
        time_of_day="hhmm",
        time_of_day_format="%H:%M",
        null_values=["NULL"],
    )
    (area / "wards.geojson").write_text(json.dumps(WARDS))
    d = only(run(area, catalog, {"grid.csv": csv}))
    assert d["rows_loaded"] == 2, d
    with connect(area / "w.duckdb", read_only=True) as con:
        times = [r[0] for r in con.execute("SELECT ts FROM events ORDER BY ts").fetchall()]
    assert times == [dt.datetime(2024, 1, 2, 0, 0), dt.datetime(2024, 1, 2, 10, 30)]


def test_sql_placement_equals_the_numpy_path_and_h3py(area, monkeypatch):
    """Points placed in DuckDB (and their wards) are those numpy and h3-py give: a load whose
    sample check is made to fail, so numpy places every row, stores the very same rows."""
    import h3
    import numpy as np

    import app.placement as placement

    rng = np.random.default_rng(5)
    n = 20_000
    lat = np.round(rng.uniform(51.44, 51.56, n), 7)
    lon = np.round(rng.uniform(-0.21, 0.01, n), 7)
    lon[:50] = -0.1  # on the shared boundary
    body = "".join(f"{a},{b},2024-01-02 10:00:00,noise\n" for a, b in zip(lat, lon, strict=True))
    catalog = HEADER + dataset()

    def stored() -> list[tuple]:
        with connect(area / "w.duckdb", read_only=True) as con:
            return con.execute("SELECT source_row, h3, ward_code, lat, lon FROM events ORDER BY 1").fetchall()

    def quarantined() -> list[tuple]:
        with connect(area / "w.duckdb", read_only=True) as con:
            sql = "SELECT source_row, reason, column_name, raw FROM quarantine ORDER BY 1"
            return con.execute(sql).fetchall()

    fast = only(run(area, catalog, {"calls.csv": "lat,lon,when,type\n" + body}))
    fast_rows, fast_quarantine = stored(), quarantined()
    assert all(raw is not None for *_, raw in fast_quarantine)
    assert fast["rows_loaded"] + fast["rows_quarantined"] == n
    assert fast["rows_quarantined"] > 0  # the box reaches past both wards
    for row, cell, _ward, a, b in fast_rows[::97]:
        assert cell == h3.str_to_int(h3.latlng_to_cell(a, b, 15)), row

    monkeypatch.setattr(placement.Placer, "_sample_agrees", lambda *_args: False)
    slow = only(load(area / "catalog.toml", area / "w.duckdb", now=dt.datetime(2025, 1, 1), force=True))
    assert stored() == fast_rows
    assert quarantined() == fast_quarantine  # raw rows too, though the first pass left some out
    assert slow["quarantined_by_reason"] == fast["quarantined_by_reason"]
