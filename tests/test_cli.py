"""The command line as an analyst uses it: JSON report, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_load_json_report(small_demo, tmp_path):
    db = tmp_path / "w.duckdb"
    done = cli("load", "--catalog", str(small_demo / "catalog.toml"), "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["datasets"]) == 10
    for d in report["datasets"]:
        assert {"id", "rows_read", "rows_loaded", "rows_quarantined", "quarantined_by_reason"} <= set(d)
        assert d["rows_read"] == d["rows_loaded"] + d["rows_quarantined"]
    again = json.loads(
        cli("load", "--catalog", str(small_demo / "catalog.toml"), "--db", str(db), "--json").stdout
    )
    assert {d["status"] for d in again["datasets"]} == {"unchanged"}


def test_text_report_has_totals_and_reasons(small_demo, tmp_path):
    done = cli("load", "--catalog", str(small_demo / "catalog.toml"), "--db", str(tmp_path / "w.duckdb"))
    assert done.returncode == 0
    assert "total" in done.stdout and "outside_study_area" in done.stdout
    assert "\r[" not in done.stderr  # no progress bar when stderr is not a terminal


def test_bad_catalogue_is_one_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text('[study_area]\nname = "x"\n')
    done = cli("load", "--catalog", str(bad), "--db", str(tmp_path / "w.duckdb"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "key 'boundaries': required" in done.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_failed_dataset_exits_non_zero_and_names_the_file(small_demo, tmp_path):
    folder = tmp_path / "city"
    subprocess.run(["cp", "-r", str(small_demo), str(folder)], check=True)
    (folder / "demo" / "police_asb.csv").write_text("")
    done = cli("load", "--catalog", str(folder / "catalog.toml"), "--db", str(tmp_path / "w.duckdb"))
    assert done.returncode == 1
    assert "police_asb.csv: the file is empty" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_warehouse_of_an_older_schema_is_refused_with_what_to_do(tmp_path):
    import duckdb

    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        con.execute("CREATE TABLE events (ts TIMESTAMP)")
    done = cli("export", "wards", "--db", str(db), "--out", str(tmp_path / "wards.csv"))
    assert done.returncode == 2
    assert "schema 1" in done.stderr and "python -m app load" in done.stderr
    assert "Traceback" not in done.stderr
