"""Scale benchmark: the same synthetic events loaded and aggregated by DuckDB and by Spark.

N events are written as CSV files (three datasets, several files each, 3 % of the points
outside the city and 0.5 % with a bad date, so validation and quarantine do real work) in a
temporary folder. Each engine then runs in a fresh process of its own and writes a store folder
(events, quarantine, the aggregate cube and its roll-up, and a manifest): DuckDB as
``python -m app load`` followed by ``python -m app store``, Spark as ``python -m app load --engine
spark`` on ``local[2]``. Peak memory is the largest total resident size of the process tree
(for Spark: the Python driver, the JVM and the Python workers; the JVM's own peak is given
too), sampled every 0.2 s. ``seconds`` is the load and aggregation; Spark's session start is
given apart (``startup_seconds``), since a cluster pays it once, not per load.

    python bench/scale.py --events 5000000
    python bench/scale.py --events 50000000 --keep /big/disk/folder

One JSON line: {"events": N, "duckdb": {...}, "spark": {...}}.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.csv as pacsv

from app.demo_city import _sample_in_wards, build_wards

DATASETS = ("police", "fire", "council")
ROWS_PER_FILE = 500_000  # files are the Spark engine's unit of work
_CHUNK = 1_000_000


def write_input(folder: Path, events: int, seed: int = 1) -> dict:
    """Fairhaven's wards, and ``events`` rows spread over the datasets' CSV files."""
    rng = np.random.default_rng(seed)
    wards = build_wards(rng)
    features = [
        {"type": "Feature", "geometry": g.__geo_interface__, "properties": {"code": c, "name": c}}
        for c, g in zip(wards["code"], wards["geom"], strict=True)
    ]
    (folder / "wards.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    per_dataset = np.full(len(DATASETS), events // len(DATASETS))
    per_dataset[: events % len(DATASETS)] += 1
    catalog = (
        '[study_area]\nname = "bench"\nboundaries = "wards.geojson"\n'
        'code_field = "code"\nname_field = "name"\n'
    )
    files = 0
    for ds, rows in zip(DATASETS, per_dataset.tolist(), strict=True):
        n_files = max(2, math.ceil(rows / ROWS_PER_FILE))
        (folder / ds).mkdir()
        sizes = np.full(n_files, rows // n_files)
        sizes[: rows % n_files] += 1
        for i, size in enumerate(sizes.tolist()):
            _write_file(folder / ds / f"part-{i:04d}.csv", size, rng, wards)
            files += 1
        catalog += (
            f'\n[[datasets]]\nid = "{ds}"\ntitle = "{ds.title()}"\nagency = "{ds.title()}"\nkind = "demand"\n'
            f'path = "{ds}/part-*.csv"\nlat = "lat"\nlon = "lon"\ntime = "ts"\n'
            'time_format = "%Y-%m-%d %H:%M:%S"\ncategory = "category"\nsharing = "open"\n'
        )
    (folder / "catalog.toml").write_text(catalog)
    return {"files": files}


def _write_file(path: Path, rows: int, rng: np.random.Generator, wards) -> None:
    with pacsv.CSVWriter(path, _schema()) as writer:
        for start in range(0, rows, _CHUNK):
            n = min(_CHUNK, rows - start)
            lon, lat = _sample_in_wards(rng, wards, n)
            lat[rng.random(n) < 0.03] += 0.5
            seconds = rng.integers(0, 3 * 365 * 86400, n)
            ts = (np.datetime64("2023-01-01T00:00:00") + seconds.astype("timedelta64[s]")).astype(str)
            ts = np.char.replace(ts, "T", " ")
            ts[rng.random(n) < 0.005] = "not a date"
            writer.write_table(
                pa.table(
                    {
                        "id": np.arange(start, start + n),
                        "ts": ts,
                        "lat": np.round(lat, 6),
                        "lon": np.round(lon, 6),
                        "category": rng.choice(["a", "b", "c", "d", "e", "f"], n),
                    },
                    schema=_schema(),
                )
            )


def _schema() -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.int64()),
            ("ts", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("category", pa.string()),
        ]
    )


# The engines, each run in a child process so that its memory is its own.
_DUCKDB = """
import json, sys, time
from app.ingest import load
from app.store.layout import write_store
from app.warehouse import open_readonly
folder = sys.argv[1]
t = time.perf_counter()
report = load(folder + "/catalog.toml", folder + "/w.duckdb")
with open_readonly(folder + "/w.duckdb") as con:
    made = write_store(con, folder + "/duckdb_store")
print(json.dumps({"seconds": time.perf_counter() - t, "totals": report["totals"],
                  "cube_rows": made["tables"]["cube"]["rows"]}))
"""
_SPARK = """
import json, sys, time
t = time.perf_counter()
from app.spark import load_on_spark
from app.spark.session import get_session
spark = get_session("local[2]")
spark.range(1).count()  # the first job starts the executors' machinery
started = time.perf_counter() - t
t = time.perf_counter()
report = load_on_spark(sys.argv[1] + "/catalog.toml", sys.argv[1] + "/spark_store", spark=spark)
print(json.dumps({"seconds": time.perf_counter() - t, "startup_seconds": started,
                  "totals": report["totals"]}))
"""


def run(code: str, folder: Path) -> dict:
    """Run an engine's child; its printed figures and the tree's peak memory."""
    log = open(folder / "engine.log", "w")  # noqa: SIM115 (closed below, when the child has ended)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        cwd=folder,  # anything an engine spills beside its working directory stays in the run's folder
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    peak = {"total": 0, "jvm": 0}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            total = jvm = 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in tree:
                try:
                    rss = p.memory_info().rss
                    total += rss
                    if p.name() == "java":
                        jvm += rss
                except psutil.NoSuchProcess:
                    continue
            peak["total"], peak["jvm"] = max(peak["total"], total), max(peak["jvm"], jvm)
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    done.set()
    watcher.join()
    log.close()
    if proc.returncode:
        lines = (folder / "engine.log").read_text(errors="replace").strip().splitlines()
        raise SystemExit(f"the engine's run failed (exit {proc.returncode}): {lines[-1] if lines else ''}")
    figures = _last_json(out)
    figures["peak_rss_mb"] = round(peak["total"] / 2**20)
    if peak["jvm"]:
        figures["jvm_peak_rss_mb"] = round(peak["jvm"] / 2**20)
    return figures


def _last_json(out: str) -> dict:
    """The engine's figures: the last JSON object its output ends a line with (Spark and the
    JVM may print their own lines after it as they shut down, and a progress bar may have
    left no newline before it)."""
    decoder = json.JSONDecoder()
    for line in reversed(out.strip().splitlines()):
        for start in reversed([i for i, ch in enumerate(line) if ch == "{"]):
            try:
                found, end = decoder.raw_decode(line, start)
            except json.JSONDecodeError:
                continue
            if isinstance(found, dict) and not line[end:].strip():
                return found
    raise SystemExit(f"the engine printed no figures; its last output: {out.strip()[-300:]!r}")


def bench(
    events: int,
    keep: Path | None = None,
    engines: tuple[str, ...] = ("duckdb", "spark"),
    reuse: Path | None = None,
) -> dict:
    """Both engines on the same input; ``reuse`` names a folder an earlier ``--keep`` run wrote
    (its input is read again, its stores rewritten), so one engine can be run again alone."""
    folder = reuse or Path(tempfile.mkdtemp(dir=keep))
    try:
        t = time.perf_counter()
        made = {"files": len(list(folder.glob("*/*.csv")))} if reuse else write_input(folder, events)
        written = time.perf_counter() - t
        result: dict = {"events": events, "files": made["files"], "write_input_seconds": round(written, 1)}
        for name, code in (("duckdb", _DUCKDB), ("spark", _SPARK)):
            if name not in engines:
                continue
            if name == "duckdb":  # a kept warehouse would skip its unchanged datasets: load afresh
                for stale in folder.glob("w.duckdb*"):
                    stale.unlink()
            try:
                figures = run(code, folder)
            except SystemExit as failed:  # the other engine's figures are still worth printing
                result[name] = {"error": str(failed)}
                continue
            totals = figures.pop("totals")
            assert totals["rows_read"] == events, totals
            result[name] = {
                "events_per_s": round(events / figures["seconds"]),
                "peak_rss_mb": figures["peak_rss_mb"],
                "seconds": round(figures["seconds"], 1),
                **{
                    k: round(v, 1) if isinstance(v, float) else v
                    for k, v in figures.items()
                    if k not in ("seconds", "peak_rss_mb")
                },
                "rows_loaded": totals["rows_loaded"],
            }
            print(json.dumps({name: result[name]}), file=sys.stderr, flush=True)
        loaded = [result.get(name, {}).get("rows_loaded") for name in ("duckdb", "spark")]
        if None not in loaded:
            result["same_rows_loaded"] = loaded[0] == loaded[1]
        return result
    finally:
        if keep is None and reuse is None:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="how many events (default 5M)")
    parser.add_argument("--keep", type=Path, help="folder to write the input and stores in (default: temp)")
    parser.add_argument(
        "--engines", default="duckdb,spark", help="which engines to run, comma-separated (default both)"
    )
    parser.add_argument("--reuse", type=Path, help="a folder a --keep run wrote: its input, not a new one")
    args = parser.parse_args()
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    unknown = set(engines) - {"duckdb", "spark"}
    if unknown or not engines:
        parser.error(f"--engines takes duckdb and/or spark, not {', '.join(sorted(unknown)) or 'nothing'}")
    print(json.dumps(bench(args.events, args.keep, engines, args.reuse)))


if __name__ == "__main__":
    main()
