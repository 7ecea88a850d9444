"""No row lost silently: rows read are checked against the file's own count of records, a
malformed row keeps every field in the quarantine and leaves the file on the fast reader, and a
dataset that loses all or most of its rows says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.warehouse import connect
from tests.test_ingest import HEADER, WARDS, dataset, events, only, quarantine, run


@pytest.fixture
def area(tmp_path: Path) -> Path:
    (tmp_path / "wards.geojson").write_text(json.dumps(WARDS))
    return tmp_path


ROW = "51.5,-0.15,2024-01-03 10:00:00,{}\n"


def rows(n: int, category: str = "fire") -> str:
    return "".join(ROW.format(category) for _ in range(n))


def test_a_quote_that_never_closes_in_an_unquoted_file_fails_naming_the_line(area):
    content = "lat,lon,when,type\n" + rows(11) + '51.5,-0.15,2024-01-03 10:00:00,"Shed fire,\n' + rows(188)
    d = only(run(area, HEADER + dataset(), {"calls.csv": content}))
    assert d["status"] == "failed"
    assert "calls.csv" in d["error"] and "line 13" in d["error"]


def test_an_unterminated_quote_in_a_quoted_file_that_merges_two_rows_fails(area):
    quoted = '"51.5","-0.15","2024-01-03 10:00:00","{}"\n'
    content = (
        '"lat","lon","when","type"\n'
        + quoted.format("a") * 3
        + '"51.5","-0.15","2024-01-03 10:00:00","Shed fire\n'  # line 5: the quote does not close
        + quoted.format("b") * 4
    )
    d = only(run(area, HEADER + dataset(), {"calls.csv": content}))
    assert d["status"] == "failed" and "calls.csv" in d["error"] and "line 5" in d["error"]


def test_the_same_quote_in_a_file_with_bad_bytes_fails_on_the_exact_reader(area):
    content = (
        b"lat,lon,when,type\n"
        + rows(2).encode()
        + b"51.5,-0.15,2024-01-03 10:00:00,caf\xe9\n"
        + b'51.5,-0.15,2024-01-03 10:00:00,"Shed fire,\n'
        + rows(5).encode()
    )
    d = only(run(area, HEADER + dataset(), {"calls.csv": content}))
    assert d["status"] == "failed" and "calls.csv" in d["error"] and "line 5" in d["error"]


def test_quoted_newlines_and_blank_lines_still_reconcile(area):
    content = (
        "lat,lon,when,type\r\n"
        '51.5,-0.15,2024-01-03 10:00:00,"two\r\nlines"\r\n'
        "\r\n"
        '51.5,-0.05,2024-01-03 10:00:00,"three\n\nlines"\n'
        "\n\n" + rows(2)
    )
    d = only(run(area, HEADER + dataset(), {"calls.csv": content}))
    assert d["status"] == "loaded" and d["rows_read"] == d["rows_loaded"] == 4


def test_a_malformed_row_keeps_all_its_fields_on_either_reader(area):
    extra = "51.5,-0.15,2024-01-03 10:00:00,a,extra,more\n"
    fast = "lat,lon,when,type\n" + rows(2) + extra + rows(1)
    only(run(area, HEADER + dataset(), {"calls.csv": fast}))
    raw = json.loads(quarantine(area)[3][2])
    assert raw == {
        "lat": "51.5",
        "lon": "-0.15",
        "when": "2024-01-03 10:00:00",
        "type": "a",
        "_extra_fields": ["extra", "more"],
    }
    exact = fast.encode() + b"51.5,-0.15,2024-01-03 10:00:00,caf\xe9\n"
    d = only(run(area, HEADER + dataset(), {"calls.csv": exact}))
    assert d["files"][0]["reader"] == "python"
    assert json.loads(quarantine(area)[3][2]) == raw


def test_one_malformed_row_keeps_the_fast_reader_with_exact_row_numbers(area):
    content = (
        "lat,lon,when,type\n"
        + rows(3, "a")
        + "51.5,-0.15,2024-01-03 10:00:00\n"  # 4: a field short
        + "51.5,-0.15,2024-01-03 10:00:00,b,x\n"  # 5: a field too many
        + "\n"
        + '51.5,-0.05,2024-01-03 10:00:00,"c\nd"\n'  # 6
        + "51.5,-0.15,2024-01-03 10:00:00,e,x\n"  # 7
        + rows(2, "f")  # 8, 9
    )
    d = only(run(area, HEADER + dataset(), {"calls.csv": content}))
    assert d["files"][0]["reader"] == "duckdb"
    assert d["rows_read"] == 9 == d["rows_loaded"] + d["rows_quarantined"]
    assert d["quarantined_by_reason"] == {"malformed_row": 3}
    q = quarantine(area)
    assert sorted(q) == [4, 5, 7] and all(r[0] == "malformed_row" for r in q.values())
    assert json.loads(q[7][2])["_extra_fields"] == ["x"]
    assert [(r[0], r[2]) for r in events(area)] == [
        (1, "a"),
        (2, "a"),
        (3, "a"),
        (6, "c\nd"),
        (8, "f"),
        (9, "f"),
    ]


def test_a_dataset_whose_every_row_is_quarantined_fails_and_keeps_its_previous_version(area):
    good = "lat,lon,when,type\n" + rows(200)
    assert only(run(area, HEADER + dataset(), {"calls.csv": good}))["rows_loaded"] == 200
    typo = HEADER + dataset(time_format="%d/%m/%Y %H:%M")
    d = only(run(area, typo, {"calls.csv": good}))
    assert d["status"] == "failed" and d["previous_version_kept"]
    assert "all 200 rows quarantined: bad_time 200" in d["error"]
    assert "row 1 when '2024-01-03 10:00:00'" in d["error"]
    with connect(area / "w.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == 200


def test_a_drop_of_most_rows_against_the_previous_load_is_a_warning(area):
    d = only(run(area, HEADER + dataset(), {"calls.csv": "lat,lon,when,type\n" + rows(100)}))
    assert d["warnings"] == []
    outside = "".join("53.0,-2.0,2024-01-03 10:00:00,x\n" for _ in range(70))
    d = only(run(area, HEADER + dataset(), {"calls.csv": "lat,lon,when,type\n" + rows(30) + outside}))
    assert d["status"] == "loaded" and d["rows_loaded"] == 30
    (warning,) = d["warnings"]
    assert "30 rows loaded against 100 in the previous load" in warning


def test_the_data_page_table_shows_the_warning(area):
    from app.quality import report_table

    run(area, HEADER + dataset(), {"calls.csv": "lat,lon,when,type\n" + rows(100)})
    outside = "".join("53.0,-2.0,2024-01-03 10:00:00,x\n" for _ in range(70))
    run(area, HEADER + dataset(), {"calls.csv": "lat,lon,when,type\n" + rows(30) + outside})
    with connect(area / "w.duckdb", read_only=True) as con:
        table = report_table(con)
    assert "30 rows loaded against 100" in table.loc[0, "warnings"]
    assert table.loc[0, "locations"].startswith("Locations are precise")


def test_a_dry_run_counts_the_rows_the_fast_reader_skips(area):
    from app.catalog import load_catalog
    from app.ingest import dry_run

    content = "lat,lon,when,type\n" + rows(2) + "51.5,-0.15,2024-01-03 10:00:00,a,extra\n" + rows(1)
    run(area, HEADER + dataset(), {"calls.csv": content})
    ds = load_catalog(area / "catalog.toml").datasets[0]
    counts, _preview = dry_run(ds, area / "calls.csv")
    assert counts == {"ok": 3, "malformed_row": 1}


def test_many_malformed_rows_are_numbered_exactly(area):
    lines = ["lat,lon,when,type"]
    bad = set(range(3, 200, 4))  # 50 rows with a field too many
    for row in range(1, 201):
        lines.append(f"51.5,-0.15,2024-01-03 10:00:00,r{row}" + (",x" if row in bad else ""))
    d = only(run(area, HEADER + dataset(), {"calls.csv": "\n".join(lines) + "\n"}))
    assert d["files"][0]["reader"] == "duckdb" and d["quarantined_by_reason"] == {"malformed_row": 50}
    assert sorted(quarantine(area)) == sorted(bad)
    assert all(category == f"r{row}" for row, _, category in events(area))
    assert len(events(area)) == 150
