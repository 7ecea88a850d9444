"""The command line as an analyst uses it: JSON report, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
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


# -- Paths and files that are not what they claim: one line, the documented exit code ----------


def no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 1, done.stderr


def city_with(small_demo, tmp_path, path: str):
    """A copy of the small demo whose police_asb dataset points at ``path`` (relative to it)."""
    folder = tmp_path / "city"
    subprocess.run(["cp", "-r", str(small_demo), str(folder)], check=True)
    catalog = folder / "catalog.toml"
    catalog.write_text(catalog.read_text().replace('"demo/police_asb.csv"', f'"{path}"'))
    return folder


def test_a_symlink_loop_as_a_dataset_path_is_one_line(small_demo, tmp_path):
    folder = city_with(small_demo, tmp_path, "loop_a.csv")
    (folder / "loop_a.csv").symlink_to(folder / "loop_b.csv")
    (folder / "loop_b.csv").symlink_to(folder / "loop_a.csv")
    done = cli("load", "--catalog", str(folder / "catalog.toml"), "--db", str(tmp_path / "w.duckdb"))
    assert done.returncode == 2
    no_traceback(done)
    assert "loop_a.csv" in done.stderr and "link" in done.stderr


def test_a_folder_as_a_dataset_path_is_one_line(small_demo, tmp_path):
    folder = city_with(small_demo, tmp_path, "folder.csv")
    (folder / "folder.csv").mkdir()
    done = cli("load", "--catalog", str(folder / "catalog.toml"), "--db", str(tmp_path / "w.duckdb"))
    assert done.returncode == 2
    no_traceback(done)
    assert "folder.csv" in done.stderr and "folder" in done.stderr


def test_a_corrupt_gzip_dataset_fails_that_dataset_only(small_demo, tmp_path):
    folder = city_with(small_demo, tmp_path, "demo/police_asb.csv.gz")
    (folder / "demo" / "police_asb.csv.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"not gzip at all" * 20)
    done = cli("load", "--catalog", str(folder / "catalog.toml"), "--db", str(tmp_path / "w.duckdb"))
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if "ERROR" in line]
    assert len(failed) == 1 and "police_asb.csv.gz: not a readable gzip file" in failed[0]


def test_export_to_a_folder_is_one_line(small_demo_db, tmp_path):
    done = cli("export", "wards", "--db", str(small_demo_db[0]), "--out", str(tmp_path))
    assert done.returncode == 2
    no_traceback(done)
    assert "is a folder" in done.stderr


@pytest.mark.parametrize("command", ["load", "export"])
@pytest.mark.parametrize("content", ["just some text\n", "a,b,c\n1,2,3\n"])
def test_a_db_that_is_not_a_warehouse_is_one_line(small_demo, tmp_path, command, content):
    db = tmp_path / ("notes.txt" if content.startswith("just") else "table.csv")
    db.write_text(content)
    out = ["wards", "--out", str(tmp_path / "x.csv")]
    args = ["--catalog", str(small_demo / "catalog.toml")] if command == "load" else out
    done = cli(command, *args, "--db", str(db))
    assert done.returncode == 2
    no_traceback(done)
    assert f"{db}: is not a warehouse" in done.stderr
    assert db.read_text() == content  # left as it was


def test_a_folder_as_the_db_is_one_line(tmp_path):
    done = cli("export", "wards", "--db", str(tmp_path), "--out", str(tmp_path / "x.csv"))
    assert done.returncode == 2
    no_traceback(done)
    assert "is a folder, not a warehouse file" in done.stderr


def test_any_other_error_is_one_line_naming_its_type(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = cli("demo", "--out", str(blocker / "demo"), "--events", "10")
    assert done.returncode == 2
    no_traceback(done)
    assert done.stderr.startswith("error: ") and "Error" in done.stderr
