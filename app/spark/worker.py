"""What one Spark task does: load one file with the DuckDB engine's own code, in a DuckDB of
its own, and hand back its events, quarantined rows and file report as Arrow batches.

Running the project's reader, validation and placement (``app.ingest.prepare_file`` and
``write_file``) on the worker, instead of re-writing them in Spark SQL, makes the two engines
agree by construction: the same quarantine reasons, row numbers, H3 cells, wards and record
keys. The study area's wards and ward index reach every worker once (a Spark broadcast), and
each task rebuilds its placer from them, as a DuckDB load does per connection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from app.boundaries import Wards
from app.catalog import Dataset
from app.h3cells import parent_np
from app.store.layout import CUBE_RES, signed_sql
from app.ward_index import WardIndex

# The rows one task returns: events, quarantined rows and one file report, told apart by
# ``part`` (one schema, so Spark can carry them in one pass over the files).
PART_EVENT, PART_QUARANTINE, PART_REPORT = "e", "q", "r"
ROW_FIELDS: list[tuple[str, pa.DataType]] = [
    ("part", pa.string()),
    ("task", pa.int32()),
    ("dataset", pa.string()),
    ("agency", pa.string()),
    ("kind", pa.string()),
    ("category", pa.string()),
    ("ts", pa.timestamp("us")),
    ("lat", pa.float64()),
    ("lon", pa.float64()),
    ("weight", pa.float64()),
    ("record_id", pa.string()),
    ("h3", pa.int64()),
    ("cell11", pa.int64()),
    ("ward_code", pa.string()),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
    ("rkey", pa.int64()),
    ("reason", pa.string()),
    ("column_name", pa.string()),
    ("raw", pa.string()),
    ("report", pa.string()),
]
ROW_SCHEMA = pa.schema(ROW_FIELDS)
SPARK_TYPES = {
    pa.string(): "string",
    pa.int32(): "int",
    pa.int64(): "bigint",
    pa.float64(): "double",
    pa.timestamp("us"): "timestamp_ntz",
}
ROW_DDL = ", ".join(f"{name} {SPARK_TYPES[typ]}" for name, typ in ROW_FIELDS)

_BATCH = 65_536


@dataclass(frozen=True)
class FileTask:
    """One file of one dataset: the unit of work a Spark task takes."""

    task: int
    dataset: Dataset
    file: Path
    sha256: str
    source_name: str  # the name the file's record keys are seeded with (app.record_key)
    # The dataset's files before this one (file, sha256, source name) where its repeated records
    # are quarantined: whether a row repeats one depends on what they loaded, so the task loads
    # them first (``app.ingest.write_file``), as the DuckDB engine has by then, and keeps only
    # its own file's rows.
    earlier: tuple[tuple[Path, str, str], ...] = ()


@dataclass(frozen=True)
class StudyAreaPayload:
    """What every task needs of the study area, broadcast once: the wards in the order the load
    numbers them, the ward index built from them, and the boundary file's hash."""

    wards: Wards
    index_bytes: bytes
    boundary_hash: str


def run_task(
    task: FileTask,
    area: StudyAreaPayload,
    now: dt.datetime,
    threads: int = 1,
    memory_limit: str = "1500MB",
) -> Iterator[pa.RecordBatch]:
    """Load ``task``'s file into a private in-memory DuckDB with the DuckDB engine's code and
    yield its events, quarantined rows and (last) its file report; a file that cannot be loaded
    yields only a report holding the error, as the DuckDB engine's dataset report does."""
    from app import ingest  # the project's load code, imported on the worker
    from app.placement import Placer
    from app.warehouse import ensure_schema

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET threads = ?", [threads])
        con.execute("SET memory_limit = ?", [memory_limit])
        con.execute("SET enable_progress_bar = false")
        ensure_schema(con)
        index = WardIndex.from_bytes(area.wards, area.index_bytes)
        if index is None:  # stored by a version that classes cells differently: build it here
            index = WardIndex(area.wards)
        ingest._store_wards(con, area.wards, area.boundary_hash, index)
        placer = Placer(con, area.wards, index)
        stage = "stage_0"
        try:
            for file, sha256, name in task.earlier:  # what this file's repeats are judged against
                with contextlib.suppress(Exception):  # the earlier file's own task reports its error
                    before = ingest.prepare_file(con, task.dataset, file, stage, placer, now)
                    ingest.write_file(con, task.dataset, before, sha256, name)
                ingest._drop_stage(con, stage)
            prepared = ingest.prepare_file(con, task.dataset, task.file, stage, placer, now)
            report = ingest.write_file(con, task.dataset, prepared, task.sha256, task.source_name)
        except Exception as exc:  # the DuckDB engine fails the dataset on any error of a file
            yield _report_batch(task, {"error": str(exc)})
            return
        finally:
            with contextlib.suppress(Exception):
                ingest._drop_stage(con, stage)
        yield from _event_batches(con, task)
        yield from _quarantine_batches(con, task)
        yield _report_batch(task, report)
    finally:
        con.close()


def _event_batches(con: duckdb.DuckDBPyConnection, task: FileTask) -> Iterator[pa.RecordBatch]:
    """The file's events as the ``events`` view gives them, cells and keys as signed BIGINT
    (the same 64 bits: Spark has no unsigned type), with each record's resolution-11 cell."""
    reader = con.sql(
        f"""SELECT dataset, agency, kind, category, ts, lat, lon, weight, record_id,
                   h3, ward_code, source_file, source_row, {signed_sql("rkey")} AS rkey
            FROM events WHERE source_file = $file""",
        params={"file": str(task.file)},
    ).to_arrow_reader(_BATCH)
    for batch in reader:
        if not len(batch):
            continue
        cells = batch.column("h3").to_numpy().astype(np.uint64)
        values = {
            **{name: batch.column(name) for name in batch.schema.names if name != "h3"},
            # H3's top bit is always 0: the signed BIGINT holds the same bits as the UBIGINT.
            "h3": pa.array(cells.view(np.int64)),
            "cell11": pa.array(parent_np(cells, CUBE_RES).view(np.int64)),
        }
        yield _as_rows(PART_EVENT, task, values, len(batch))


def _quarantine_batches(con: duckdb.DuckDBPyConnection, task: FileTask) -> Iterator[pa.RecordBatch]:
    reader = con.sql(
        """SELECT dataset, source_file, source_row, reason, column_name, raw
           FROM quarantine WHERE source_file = $file ORDER BY source_row""",
        params={"file": str(task.file)},
    ).to_arrow_reader(_BATCH)
    for batch in reader:
        if len(batch):
            yield _as_rows(
                PART_QUARANTINE, task, {n: batch.column(n) for n in batch.schema.names}, len(batch)
            )


def _report_batch(task: FileTask, report: dict) -> pa.RecordBatch:
    values = {
        "dataset": pa.array([task.dataset.id]),
        "source_file": pa.array([str(task.file)]),
        "report": pa.array([json.dumps(report, default=str)]),
    }
    return _as_rows(PART_REPORT, task, values, 1)


def _as_rows(part: str, task: FileTask, values: dict, n: int) -> pa.RecordBatch:
    """A batch in ``ROW_SCHEMA``: the given columns, nulls for the others."""
    arrays = []
    for name, typ in ROW_FIELDS:
        if name == "part":
            arrays.append(pa.array([part] * n, type=typ))
        elif name == "task":
            arrays.append(pa.array(np.full(n, task.task, dtype=np.int32)))
        elif name in values:
            arrays.append(values[name].cast(typ) if values[name].type != typ else values[name])
        else:
            arrays.append(pa.nulls(n, type=typ))
    return pa.RecordBatch.from_arrays(arrays, schema=ROW_SCHEMA)
