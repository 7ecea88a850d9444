"""Exports as an analyst runs them: python -m app export ..., files, sidecars and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO


def export(db, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", "export", *args, "--db", str(db)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "what, columns",
    [
        (
            "hexes",
            [
                "h3_cell",
                "resolution",
                "cell_lat",
                "cell_lng",
                "dataset",
                "agency",
                "kind",
                "count",
                "weight",
            ],
        ),
        ("wards", ["ward_code", "ward_name", "dataset", "count", "rate_per_1000", "suppressed"]),
        (
            "hotspots",
            [
                "h3_cell",
                "resolution",
                "cell_lat",
                "cell_lng",
                "count",
                "suppressed",
                "z",
                "p",
                "p_fdr",
                "bin",
            ],
        ),
        ("emerging", ["h3_cell", "z", "p", "p_fdr", "bin", "pattern"]),
    ],
)
def test_csv_exports_have_their_columns_and_a_sidecar(small_demo_db, tmp_path, what, columns):
    db, report = small_demo_db
    out = tmp_path / f"{what}.csv"
    done = export(db, what, "--res", "8", "--out", str(out))
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(out)
    assert list(frame.columns[: len(columns)]) == columns or set(columns) <= set(frame.columns)
    assert len(frame) > 0
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["export"] == what and meta["rows"] == len(frame)
    assert meta["suppression"]["threshold"] == 5 and "rounded" in meta["suppression"]["text"]
    assert {d["id"] for d in meta["load_report"]} == {d["id"] for d in report["datasets"]}
    assert meta["data_vintage"]["study_area"].startswith("Fairhaven")
    assert "filters" in meta


def test_filters_reach_the_file(small_demo_db, tmp_path):
    db, _ = small_demo_db
    out = tmp_path / "h.csv"
    done = export(
        db,
        "hexes",
        "--res",
        "7",
        "--dataset",
        "council_env",
        "--dataset",
        "fire_incidents",
        "--from",
        "2024-01-01",
        "--to",
        "2024-06-30",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(out)
    assert set(frame["dataset"]) == {"council_env", "fire_incidents"}
    meta = json.loads(out.with_name("h.csv.json").read_text())
    assert meta["filters"]["start"] == "2024-01-01" and meta["resolution"] == 7


def test_restricted_counts_in_files_are_protected(small_demo_db, tmp_path):
    db, _ = small_demo_db
    out = tmp_path / "eh.csv"
    assert export(db, "hexes", "--res", "9", "--dataset", "early_help", "--out", str(out)).returncode == 0
    frame = pd.read_csv(out)
    # Only cells whose figure is released are listed: a listed "<5" would mean one to four.
    assert "suppressed" not in frame.columns and len(frame) > 0
    assert (frame["count"] % 5 == 0).all() and (frame["count"] >= 5).all()


def test_ward_files_write_counts_as_whole_numbers(small_demo_db, tmp_path):
    db, _ = small_demo_db
    out = tmp_path / "w.csv"
    assert export(db, "wards", "--out", str(out)).returncode == 0
    lines = out.read_text().splitlines()
    header = lines[0].split(",")
    counts = [header.index(c) for c in ("count", "previous_count", "change")]
    for line in lines[1:]:
        fields = line.split(",")
        for i in counts:
            assert fields[i] == "" or fields[i].lstrip("-").isdigit(), (header[i], fields[i])
    meta = json.loads(out.with_name("w.csv.json").read_text())
    assert {d["id"] for d in meta["dataset_spans"]} == set(meta["datasets"]) and not meta["pooled"]


def test_geojson_and_parquet(small_demo_db, tmp_path):
    db, _ = small_demo_db
    gj = tmp_path / "w.geojson"
    assert export(db, "wards", "--format", "geojson", "--out", str(gj)).returncode == 0
    collection = json.loads(gj.read_text())
    assert collection["features"][0]["geometry"]["type"] in {"Polygon", "MultiPolygon"}
    assert "ward_code" in collection["features"][0]["properties"]
    pq = tmp_path / "h.parquet"
    assert export(db, "hotspots", "--format", "parquet", "--res", "7", "--out", str(pq)).returncode == 0
    assert {"z", "bin"} <= set(pd.read_parquet(pq).columns)


@pytest.mark.parametrize(
    "args, message",
    [
        (["hexes", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["hexes", "--res", "4"], "resolution must be from 5 to 11"),
        (["wards", "--from", "2025-02-01", "--to", "2025-01-01"], "reversed"),
        (["hexes", "--from", "yesterday"], "not a date"),
    ],
)
def test_bad_arguments_are_one_line_errors(small_demo_db, tmp_path, args, message):
    db, _ = small_demo_db
    done = export(db, *args, "--out", str(tmp_path / "x.csv"))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.csv").exists()
