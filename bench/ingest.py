"""Ingest benchmark: the whole load (read, validate, H3, ward, write) against a naive baseline.

The baseline is what an analyst would write first: pandas, a row-wise ``h3.latlng_to_cell`` and
``geopandas.sjoin`` against the same wards, on the same file. Absolute times on a shared machine
are noise, so the figure that matters is the ratio measured in the same run, with the baseline
run once before the load and once after. The load runs in a
fresh process so that its peak memory is its own.

    python bench/ingest.py                 # 1M and 5M events
    python bench/ingest.py --events 200000
    python bench/ingest.py --malformed --events 3000000   # peak memory: clean file vs one bad row

The last line printed is one JSON object with the figures of the largest size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from app.demo_city import _sample_in_wards, build_wards

REPO = Path(__file__).resolve().parent.parent

NAIVE_MAX = 1_000_000  # the baseline's rate is measured on at most this many rows of the file


def write_input(folder: Path, events: int, seed: int = 1) -> Path:
    """Fairhaven's wards and one CSV of ``events`` points, 3 % of them outside the city."""
    rng = np.random.default_rng(seed)
    wards = build_wards(rng)
    features = [
        {"type": "Feature", "geometry": g.__geo_interface__, "properties": {"code": c, "name": c}}
        for c, g in zip(wards["code"], wards["geom"], strict=True)
    ]
    (folder / "wards.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    lon, lat = _sample_in_wards(rng, wards, events)
    outside = rng.random(events) < 0.03
    lat[outside] += 0.5
    seconds = rng.integers(0, 3 * 365 * 86400, events)
    ts = (np.datetime64("2023-01-01T00:00:00") + seconds.astype("timedelta64[s]")).astype(str)
    table = pa.table(
        {
            "id": np.arange(events),
            "ts": np.char.replace(ts, "T", " "),
            "lat": np.round(lat, 6),
            "lon": np.round(lon, 6),
            "category": rng.choice(["a", "b", "c", "d"], events),
        }
    )
    pacsv.write_csv(table, folder / "events.csv")
    (folder / "catalog.toml").write_text(
        '[study_area]\nname = "bench"\nboundaries = "wards.geojson"\ncode_field = "code"\n'
        'name_field = "name"\n\n[[datasets]]\nid = "events"\ntitle = "Events"\nagency = "A"\n'
        'kind = "demand"\npath = "events.csv"\nlat = "lat"\nlon = "lon"\ntime = "ts"\n'
        'time_format = "%Y-%m-%d %H:%M:%S"\ncategory = "category"\nsharing = "open"\n'
    )
    return folder


def run_load(folder: Path) -> dict:
    """The engine's load in a fresh process; returns its time, peak memory and report."""
    code = (
        "import json, resource, sys, time\n"
        "from app.ingest import load\n"
        "t = time.perf_counter()\n"
        f"r = load({str(folder / 'catalog.toml')!r}, {str(folder / 'w.duckdb')!r})\n"
        "s = time.perf_counter() - t\n"
        "own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'seconds': s, 'rss_kb': own + kids, 'report': r['datasets'][0]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_malformed_row(folder: Path) -> int:
    """Append one field to a row in the middle of the file (a row the reader must skip and
    quarantine); returns its data row number."""
    path = folder / "events.csv"
    lines = path.read_bytes().split(b"\n")
    middle = len(lines) // 2
    lines[middle] += b",stray"
    path.write_bytes(b"\n".join(lines))
    (folder / "w.duckdb").unlink(missing_ok=True)
    return middle  # line ``middle`` + 1 of the file; the header is line 1


def bench_malformed(events: int) -> dict:
    """Peak memory and time of a load of the clean file and of the same file with one malformed
    row: the malformed row must not send the file to a slower, hungrier reader."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_input(Path(tmp), events)
        clean = run_load(folder)
        row = add_malformed_row(folder)
        broken = run_load(folder)
    report = broken["report"]
    assert report["rows_read"] == events == report["rows_loaded"] + report["rows_quarantined"]
    assert report["quarantined_by_reason"].get("malformed_row") == 1, report["quarantined_by_reason"]
    return {
        "bench": "ingest_malformed",
        "events": events,
        "malformed_row": row,
        "reader": report["files"][0]["reader"],
        "clean_peak_rss_mb": round(clean["rss_kb"] / 1024),
        "malformed_peak_rss_mb": round(broken["rss_kb"] / 1024),
        "peak_rss_ratio": round(broken["rss_kb"] / clean["rss_kb"], 2),
        "clean_seconds": round(clean["seconds"], 3),
        "malformed_seconds": round(broken["seconds"], 3),
    }


def run_naive(folder: Path, rows: int) -> float:
    """Seconds for the naive pipeline on the first ``rows`` rows of the same file."""
    import geopandas as gpd
    import h3
    import pandas as pd

    t = time.perf_counter()
    df = pd.read_csv(folder / "events.csv", nrows=rows)
    df["ts"] = pd.to_datetime(df["ts"], format="%Y-%m-%d %H:%M:%S")
    df["h3"] = df.apply(lambda r: h3.latlng_to_cell(r["lat"], r["lon"], 15), axis=1)
    pts = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")
    wards = gpd.read_file(folder / "wards.geojson")
    joined = gpd.sjoin(pts, wards[["code", "geometry"]], how="left", predicate="within")
    assert len(joined) >= len(df)
    return time.perf_counter() - t


def bench(events: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_input(Path(tmp), events)
        naive_rows = min(events, NAIVE_MAX)
        # The baseline runs before and after the load: this machine's speed drifts over minutes,
        # and a baseline on both sides of the load is slowed or sped as much as the load is.
        naive_before = run_naive(folder, naive_rows)
        ours = run_load(folder)
        naive_after = run_naive(folder, naive_rows)
    report = ours["report"]
    assert report["rows_read"] == events == report["rows_loaded"] + report["rows_quarantined"]
    ours_rate = events / ours["seconds"]
    naive_rate = 2 * naive_rows / (naive_before + naive_after)
    return {
        "bench": "ingest",
        "events": events,
        "seconds": round(ours["seconds"], 3),
        "events_per_s": round(ours_rate),
        "naive_events_per_s": round(naive_rate),
        "naive_events_per_s_before_after": [round(naive_rows / s) for s in (naive_before, naive_after)],
        "naive_rows_measured": naive_rows,
        "ratio_vs_naive": round(ours_rate / naive_rate, 2),
        "peak_rss_mb": round(ours["rss_kb"] / 1024),
        "rows_loaded": report["rows_loaded"],
        "rows_quarantined": report["rows_quarantined"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="size(s) to run")
    parser.add_argument(
        "--malformed", action="store_true", help="compare peak memory: clean file vs one malformed row"
    )
    args = parser.parse_args()
    sizes = sorted(args.events or [1_000_000, 5_000_000])
    results = [bench_malformed(n) if args.malformed else bench(n) for n in sizes]
    for r in results[:-1]:
        print(json.dumps(r))
    _ = resource  # imported for the child's use; kept for readers of this file
    print(json.dumps(results[-1]))


if __name__ == "__main__":
    main()
