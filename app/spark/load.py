"""``python -m app load --engine spark``: the catalogue loaded on Apache Spark into a store folder.

How the work spreads: every file of every dataset is one Spark task. The task runs the DuckDB
engine's own reading, validation, placement and record keys over its file (``app.spark.worker``)
with the study area's wards and ward index broadcast to every worker, so both engines quarantine
the same rows for the same reasons and give every record the same cell, ward and key. Spark then
does what spreads over a cluster: it writes the events partitioned by dataset, groups them into
the aggregate cube (a shuffle on the cube's keys; the keys of a group combine by XOR), and writes
the quarantine. The driver keeps only what is small: the wards, the per-file reports and the
datasets' load reports, computed from the files Spark wrote by the same code as a DuckDB load.

A Spark load builds the whole store each time (the DuckDB engine skips unchanged datasets); a
dataset that fails is left out of the store, and the report says why.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from app import ingest
from app.catalog import load_catalog
from app.spark.worker import (
    PART_EVENT,
    PART_QUARANTINE,
    PART_REPORT,
    ROW_DDL,
    FileTask,
    StudyAreaPayload,
    run_task,
)
from app.store import layout
from app.ward_index import WardIndex
from app.warehouse import ensure_schema

Progress = ingest.Progress


def load(
    catalog_path: str | Path,
    out_dir: str | Path,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    spark=None,
) -> dict:
    """Load every dataset of the catalogue on Spark and write the store folder ``out_dir``
    (atomically: a reader sees the previous store or the new one). Returns the load report, in
    the DuckDB engine's form. Raises ``ingest.LoadError`` when nothing can be loaded."""
    from pyspark import StorageLevel

    from app.spark.session import get_session

    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    out_dir = Path(os.path.abspath(out_dir))
    if out_dir.exists() and not layout.is_store(out_dir) and any(out_dir.iterdir()):
        raise ingest.LoadError(f"{out_dir}: is a folder that is not a store; name a new or a store folder")
    catalog = load_catalog(catalog_path, ingest.uploads_path(out_dir))
    progress = progress or (lambda _msg, _frac: None)
    spark = spark or get_session()

    progress("wards", 0.0)
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(
            lambda: {d.id: [ingest.file_sha256(f) for f in d.files] for d in catalog.datasets}
        )
        boundary_hash = ingest.file_sha256(catalog.study_area.boundaries)
        wards = ingest._read_wards(catalog)
        index = WardIndex(wards)
        file_hashes = hashing.result()

    con = duckdb.connect()  # the store's small tables, built as a DuckDB load builds them
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # its bar would run into the load's output
        ensure_schema(con)
        ingest._store_wards(con, wards, boundary_hash, index)
        study_area = ingest._study_area_summary(catalog, wards)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('study_area', ?)", [json.dumps(study_area)])
        _write_places(con, catalog)

        tasks = _tasks(catalog, file_hashes)
        work = layout.work_folder(out_dir)
        try:
            progress(f"{len(tasks)} files on Spark", 0.1)
            area = StudyAreaPayload(wards, index.to_bytes(), boundary_hash)
            # Read several times (reports, failures, tables): kept on the workers' disks only.
            # Kept in memory as well, 50M rows on local[2] ran the 4 GB heap out of space when
            # Spark promoted spilled blocks back into memory.
            rows = _run(spark, tasks, area, now).persist(StorageLevel.DISK_ONLY)
            try:
                files = _file_reports(rows, tasks)
                failed = _failures(catalog, files, rows)
                progress("events", 0.4)
                tables = _write_spark_tables(spark, rows, sorted(failed), work)
            finally:
                rows.unpersist()
            progress("reports", 0.9)
            reports = _dataset_reports(con, catalog, files, failed, work, file_hashes, started)
            _write_small_tables(con, work, tables)
            manifest = layout.manifest("spark", tables)
            (work / layout.MANIFEST).write_text(
                json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
            layout.replace_folder(work, out_dir)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    finally:
        con.close()
    progress("done", 1.0)
    return {
        "catalog": str(catalog.path),
        "db": str(out_dir),
        "engine": "spark",
        "spark_master": spark.sparkContext.master,
        "study_area": study_area,
        "datasets": reports,
        "totals": ingest._totals(reports),
        "skipped_uploads": list(catalog.skipped),
        "load_seconds": round(time.perf_counter() - started, 3),
    }


def _write_places(con: duckdb.DuckDBPyConnection, catalog) -> None:
    """The catalogue's gazetteer, where this version has one (as a DuckDB load writes it)."""
    try:
        from app.places import write_places
    except ImportError:
        return
    write_places(con, catalog)


def _tasks(catalog, file_hashes: dict[str, list[str]]) -> list[FileTask]:
    tasks: list[FileTask] = []
    uploaded = ingest._uploaded_ids(catalog)
    for ds in catalog.datasets:
        names = ingest._source_names(catalog, ds, uploaded)
        files = [
            (Path(f), sha, name) for f, sha, name in zip(ds.files, file_hashes[ds.id], names, strict=True)
        ]
        for i, (file, sha, name) in enumerate(files):
            earlier = tuple(files[:i]) if ds.repeated_record_id == "quarantine" else ()
            tasks.append(FileTask(len(tasks), ds, file, sha, name, earlier))
    return tasks


def _run(spark, tasks: list[FileTask], area: StudyAreaPayload, now: dt.datetime):
    """One Spark task per file: a DataFrame of every file's events, quarantined rows and report
    (``app.spark.worker.ROW_DDL``)."""
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    shared = spark.sparkContext.broadcast((tasks, area, now, threads))

    def load_files(batches):
        tasks_, area_, now_, threads_ = shared.value
        for batch in batches:
            for i in batch.column(0).to_pylist():
                yield from run_task(tasks_[i], area_, now_, threads_)

    count = max(len(tasks), 1)
    ids = spark.range(0, len(tasks), 1, count)  # exactly one file per partition
    return ids.mapInArrow(load_files, ROW_DDL)


def _file_reports(rows, tasks: list[FileTask]) -> dict[int, dict]:
    """Every file's report (or error), by task number."""
    from pyspark.sql import functions as F

    found = rows.where(F.col("part") == PART_REPORT).select("task", "report").collect()
    reports = {r["task"]: json.loads(r["report"]) for r in found}
    missing = [t.file for t in tasks if t.task not in reports]
    if missing:
        raise RuntimeError(f"no report came back for {missing[0]}")
    return {t.task: {**reports[t.task], "_dataset": t.dataset.id} for t in tasks}


def _failures(catalog, files: dict[int, dict], rows) -> dict[str, str]:
    """Datasets a DuckDB load would refuse, with its error: the first file (in catalogue order)
    that could not be read, or no row loaded."""
    failed: dict[str, str] = {}
    for task in sorted(files):
        report = files[task]
        ds_id = report["_dataset"]
        if "error" in report and ds_id not in failed:
            failed[ds_id] = f"{catalog.path}: dataset '{ds_id}': {report['error']}"
    for ds in catalog.datasets:
        own = [f for f in files.values() if f["_dataset"] == ds.id]
        if ds.id not in failed and sum(f.get("rows_loaded", 0) for f in own) == 0:
            failed[ds.id] = f"{catalog.path}: dataset '{ds.id}': {_all_quarantined(rows, ds, own)}"
    return failed


def _all_quarantined(rows, ds, own: list[dict]) -> str:
    """The DuckDB engine's message for a dataset none of whose rows loaded, quoting its first
    quarantined rows (``ingest._all_quarantined`` over those rows)."""
    from pyspark.sql import functions as F

    by_reason: dict[str, int] = {}
    for f in own:
        for reason, n in f["quarantined_by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    report = {
        "rows_read": sum(f["rows_read"] for f in own),
        "quarantined_by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
    }
    first = (
        rows.where((F.col("part") == PART_QUARANTINE) & (F.col("dataset") == ds.id))
        .select(*layout.SCHEMAS["quarantine"].names)
        .orderBy("source_file", "source_row")
        .limit(ingest._SAMPLE_ROWS)
        .toArrow()
    )
    con = duckdb.connect()
    try:
        con.register("quarantine", first)
        return ingest._all_quarantined(con, ds, report)
    finally:
        con.close()


def _write_spark_tables(spark, rows, failed: list[str], work: Path) -> dict[str, dict]:
    """Events, cube, roll-up and quarantine written by Spark; their manifest entries."""
    from pyspark.sql import functions as F

    kept = ~F.col("dataset").isin(failed) if failed else F.lit(True)
    events = rows.where((F.col("part") == PART_EVENT) & kept)
    tables: dict[str, dict] = {}

    event_cols = [*layout.EVENT_COLUMNS]
    (
        events.select(*event_cols)
        .sortWithinPartitions(layout.PARTITION, *layout.SORT_EVENTS)
        .write.partitionBy(layout.PARTITION)
        .parquet(str(work / layout.EVENTS))
    )
    keys = [
        F.col("cell11"),
        F.col("ward_code"),
        F.to_date("ts").alias("day"),
        F.hour("ts").cast("tinyint").alias("hour"),
        F.col(layout.PARTITION),
        F.col("agency"),
        F.col("kind"),
        F.col("category"),
    ]
    cube = events.groupBy(*keys).agg(
        F.count(F.lit(1)).alias("n"), F.sum("weight").alias("weight"), F.bit_xor("rkey").alias("rkey")
    )
    _write_sorted(cube.select(*layout.CUBE_COLUMNS), work / layout.CUBE, layout.SORT_CUBE)
    written = spark.read.parquet(str(work / layout.CUBE))
    rollup = written.groupBy(
        F.expr(layout.parent_sql("cell11", layout.ROLLUP_RES)).alias("cell9"),
        F.col("ward_code"),
        F.trunc("day", "month").alias("month"),
        F.col(layout.PARTITION),
        F.col("agency"),
        F.col("kind"),
        F.col("category"),
    ).agg(
        F.sum("n").cast("bigint").alias("n"), F.sum("weight").alias("weight"), F.bit_xor("rkey").alias("rkey")
    )
    _write_sorted(rollup.select(*layout.ROLLUP_COLUMNS), work / layout.ROLLUP, layout.SORT_ROLLUP)

    quarantine = rows.where((F.col("part") == PART_QUARANTINE) & kept)
    quarantine = quarantine.select(*layout.SCHEMAS["quarantine"].names)
    _write_one_file(quarantine.coalesce(1), work / "quarantine.parquet", work / ".quarantine.parts")

    for name in (layout.EVENTS, layout.CUBE, layout.ROLLUP):
        folder = work / name
        _tidy(folder)
        tables[name] = {"path": f"{name}/", "rows": _rows(folder), "partition_by": [layout.PARTITION]}
    return tables


def _rows(folder: Path) -> int:
    """Rows in a folder's Parquet files, from their footers."""
    if not any(folder.rglob("*.parquet")):
        return 0
    glob = "'" + str(folder / "**" / "*.parquet").replace("'", "''") + "'"
    with duckdb.connect() as con:
        return int(con.execute(f"SELECT count(*) FROM read_parquet({glob})").fetchall()[0][0])


def _write_sorted(frame, folder: Path, sort: tuple[str, ...]) -> None:
    """Partitioned by dataset, each dataset's rows sorted so a date range prunes row groups.
    Spark tasks take a dataset's months (hashed), so one dataset's aggregate spreads over the
    cluster and each file holds whole months, sorted by day and cell."""
    from pyspark.sql import functions as F

    (
        frame.repartition(F.col(layout.PARTITION), F.trunc(sort[0], "month"))
        .sortWithinPartitions(layout.PARTITION, *sort)
        .write.partitionBy(layout.PARTITION)
        .parquet(str(folder))
    )


def _write_one_file(frame, target: Path, parts: Path) -> None:
    """A table the layout keeps as one Parquet file: written by one Spark task, then moved."""
    frame.write.parquet(str(parts))
    found = sorted(parts.glob("part-*.parquet"))
    if len(found) == 1:
        os.replace(found[0], target)
    else:  # no rows: an empty file with the layout's columns
        import pyarrow.parquet as pq

        name = target.stem
        pq.write_table(layout.SCHEMAS[name].empty_table(), target)
    shutil.rmtree(parts, ignore_errors=True)


def _tidy(folder: Path) -> None:
    """Spark's markers and checksums are not part of the layout."""
    if not folder.exists():
        folder.mkdir(parents=True)
        return
    for path in folder.rglob("*"):
        if path.is_file() and (path.name == "_SUCCESS" or path.name.endswith(".crc")):
            path.unlink()


def _write_small_tables(con: duckdb.DuckDBPyConnection, work: Path, tables: dict[str, dict]) -> None:
    """The warehouse's small tables (but the quarantine, which Spark wrote) from ``con``, and
    the gazetteer's where the catalogue names one."""
    for name in (*layout.TABLES, *layout.present_optional_tables(con)):
        target = work / f"{name}.parquet"
        if name == "quarantine":
            rows = con.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchall()[0][0]
        else:
            cols = ", ".join(layout.SCHEMAS[name].names)
            quoted = "'" + str(target).replace("'", "''") + "'"
            con.execute(f"COPY (SELECT {cols} FROM {name}) TO {quoted} (FORMAT PARQUET, COMPRESSION ZSTD)")
            rows = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        tables[name] = {"path": f"{name}.parquet", "rows": int(rows)}


def _dataset_reports(
    con: duckdb.DuckDBPyConnection,
    catalog,
    files: dict[int, dict],
    failed: dict[str, str],
    work: Path,
    file_hashes: dict[str, list[str]],
    started: float,
) -> list[dict]:
    """Each dataset's load report, computed by the DuckDB engine's own code over the files
    Spark wrote, and its row in ``datasets``; a failed dataset's report says why."""
    reader = _store_reader(work)
    try:
        reports = []
        for ds in catalog.datasets:
            own = [
                {k: v for k, v in f.items() if k != "_dataset"}
                for _, f in sorted(files.items())
                if f["_dataset"] == ds.id
            ]
            error = failed.get(ds.id)
            if error:
                reports.append(
                    {
                        "id": ds.id,
                        "title": ds.title,
                        "agency": ds.agency,
                        "kind": ds.kind,
                        "status": "failed",
                        "error": error,
                        "previous_version_kept": False,
                    }
                )
                continue
            report = ingest._dataset_report(reader, ds, own, time.perf_counter() - started)
            report["warnings"] = ingest._drop_warnings(report, None)
            report["location_precision"] = ingest.location_precision(
                reader, ds.id, ds.crs if ds.location_mode == "xy" else None
            )
            ingest._record_dataset(con, ds, file_hashes[ds.id], report)
            reports.append(report)
        return reports
    finally:
        reader.close()


def _store_reader(work: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection on which the events and quarantine Spark wrote read as the
    warehouse's ``event_rows``, ``event_files`` and ``quarantine`` (one "file" per dataset),
    for the DuckDB engine's report code."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    events = work / layout.EVENTS
    if any(events.rglob("*.parquet")):
        glob = "'" + str(events / "**" / "*.parquet").replace("'", "''") + "'"
        source = f"read_parquet({glob}, hive_partitioning = true)"
        con.execute(
            f"CREATE VIEW event_rows AS SELECT CAST({layout.PARTITION} AS VARCHAR) AS file_no, * "
            f"EXCLUDE ({layout.PARTITION}) FROM {source}"
        )
    else:
        con.execute(
            "CREATE VIEW event_rows AS SELECT NULL::VARCHAR AS file_no, NULL::TIMESTAMP AS ts, "
            "NULL::VARCHAR AS category, NULL::DOUBLE AS lat, NULL::DOUBLE AS lon WHERE false"
        )
    con.execute("CREATE VIEW event_files AS SELECT DISTINCT file_no, file_no AS dataset FROM event_rows")
    quoted = "'" + str(work / "quarantine.parquet").replace("'", "''") + "'"
    con.execute(f"CREATE VIEW quarantine AS SELECT * FROM read_parquet({quoted})")
    return con
