"""The store: one folder of Parquet files and a manifest that any engine can write and one reader
serves, so the dashboard and ``export`` read a load made by DuckDB or by Spark alike.

A store folder holds:

- ``manifest.json``: ``{"format": "common-ground-store", "version": 1, "engine": "duckdb" |
  "spark", "schema_version": 4, "built_at": ISO 8601 UTC, "tables": {name: {"path": ...,
  "rows": N}}}``;
- ``<table>.parquet`` for every small table of the warehouse (``TABLES``), and for the
  gazetteer's (``OPTIONAL_TABLES``: named places and postcodes) where the catalogue names one;
- ``events/``: the records, the ``events`` view's columns plus ``rkey``, hive-partitioned by
  ``dataset`` (``events/dataset=<id>/*.parquet``);
- ``cube/``: one row per (resolution-11 cell, ward, day, hour, dataset, agency, kind,
  category) with the records' count, weight and combined key, partitioned alike and sorted by
  (day, cell11) within a dataset so a date range skips row groups. Every coarser figure rolls up
  from it exactly (counts and weights add; keys combine by XOR);
- ``rollup/`` (optional): the cube rolled up to (resolution-9 cell, ward, month, dataset,
  agency, kind, category), for the map's whole-month questions. A reader uses it when present.

Why signed integers: H3 cells and record keys are unsigned 64-bit in the warehouse, but Spark
has no unsigned type. Both are stored as BIGINT with the same 64 bits (an H3 cell's top bit is
0, so its value is unchanged; a key with the top bit set reads negative) and a reader
reinterprets them as UBIGINT.

Which resolution-11 cell: a stored resolution-15 cell ``c`` has its parent at resolution ``p``
by bit arithmetic (``parent_bits``), the same in every engine.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa

FORMAT = "common-ground-store"
FORMAT_VERSION = 1
STORE_SCHEMA_VERSION = 4  # the warehouse schema whose tables the store holds (app.warehouse)
MANIFEST = "manifest.json"

# The warehouse's small tables, each written whole as <name>.parquet.
TABLES = ("meta", "wards", "ward_index", "datasets", "quarantine")
# Written where the warehouse has them (a catalogue with a gazetteer or a postcode lookup), so
# a dashboard served from a store names hotspot areas and finds places as one served from the
# warehouse does.
OPTIONAL_TABLES = ("places", "postcodes")
EVENTS = "events"  # folder, hive-partitioned by dataset
CUBE = "cube"  # folder, hive-partitioned by dataset
ROLLUP = "rollup"  # folder, hive-partitioned by dataset; optional
PARTITION = "dataset"
CUBE_RES = 11  # the cube's cell resolution
ROLLUP_RES = 9  # the roll-up's cell resolution
SORT_EVENTS = ("ts",)  # within a dataset's partition
SORT_CUBE = ("day", "cell11")  # within a dataset's partition: a date range prunes row groups
SORT_ROLLUP = ("month", "cell9")

SCHEMAS: dict[str, pa.Schema] = {
    "meta": pa.schema([("key", pa.string()), ("value", pa.string())]),
    "wards": pa.schema(
        [
            ("code", pa.string()),
            ("name", pa.string()),
            ("population", pa.float64()),
            ("area_km2", pa.float64()),
            ("geom_wkb", pa.binary()),
            ("geojson", pa.string()),
            ("ward_no", pa.int32()),
        ]
    ),
    "ward_index": pa.schema([("data", pa.binary())]),
    "places": pa.schema(
        [
            ("name", pa.string()),
            ("kind", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("ward_code", pa.string()),
            ("geom_wkb", pa.binary()),
        ]
    ),
    "postcodes": pa.schema(
        [
            ("postcode", pa.string()),
            ("key", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("ward_code", pa.string()),
        ]
    ),
    "datasets": pa.schema(
        [
            ("id", pa.string()),
            ("title", pa.string()),
            ("agency", pa.string()),
            ("kind", pa.string()),
            ("sharing", pa.string()),
            ("licence", pa.string()),
            ("attribution", pa.string()),
            ("owner", pa.string()),
            ("description", pa.string()),
            ("entry_json", pa.string()),
            ("entry_hash", pa.string()),
            ("files_json", pa.string()),
            ("report_json", pa.string()),
            ("loaded_at", pa.timestamp("us")),
        ]
    ),
    "quarantine": pa.schema(
        [
            ("dataset", pa.string()),
            ("source_file", pa.string()),
            ("source_row", pa.int64()),
            ("reason", pa.string()),
            ("column_name", pa.string()),
            ("raw", pa.string()),
        ]
    ),
    # The partition column (dataset) is in the folder names, not in the files.
    "events": pa.schema(
        [
            ("agency", pa.string()),
            ("kind", pa.string()),
            ("category", pa.string()),
            ("ts", pa.timestamp("us")),  # naive, UTC
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("weight", pa.float64()),
            ("record_id", pa.string()),
            ("h3", pa.int64()),  # resolution-15 cell, UBIGINT bits
            ("ward_code", pa.string()),
            ("source_file", pa.string()),
            ("source_row", pa.int64()),
            ("rkey", pa.int64()),  # app.record_key, UBIGINT bits
        ]
    ),
    "cube": pa.schema(
        [
            ("cell11", pa.int64()),  # resolution-11 parent of the records' cells
            ("ward_code", pa.string()),
            ("day", pa.date32()),
            ("hour", pa.int8()),
            ("agency", pa.string()),
            ("kind", pa.string()),
            ("category", pa.string()),
            ("n", pa.int64()),
            ("weight", pa.float64()),
            ("rkey", pa.int64()),  # XOR of the records' keys, UBIGINT bits
        ]
    ),
    "rollup": pa.schema(
        [
            ("cell9", pa.int64()),  # resolution-9 parent
            ("ward_code", pa.string()),
            ("month", pa.date32()),  # first day of the month
            ("agency", pa.string()),
            ("kind", pa.string()),
            ("category", pa.string()),
            ("n", pa.int64()),
            ("weight", pa.float64()),
            ("rkey", pa.int64()),
        ]
    ),
}
EVENT_COLUMNS = (PARTITION, *SCHEMAS["events"].names)
CUBE_COLUMNS = (PARTITION, *SCHEMAS["cube"].names)
ROLLUP_COLUMNS = (PARTITION, *SCHEMAS["rollup"].names)


def parent_bits(cell: int, res: int) -> int:
    """The resolution-``res`` parent of an H3 cell (finer or equal), by bit arithmetic: the
    resolution field (bits 52-55) set to ``res`` and every digit finer than ``res`` set to 7."""
    return ((cell & ~(0xF << 52)) | (res << 52)) | ((1 << (3 * (15 - res))) - 1)


def parent_sql(cell: str, res: int) -> str:
    """``parent_bits`` in SQL over a UBIGINT or BIGINT expression (DuckDB and Spark alike)."""
    keep = ~(0xF << 52) & ((1 << 63) - 1)  # a positive literal: H3's top bit is 0
    return f"((({cell}) & {keep}) | {res << 52} | {(1 << (3 * (15 - res))) - 1})"


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a store folder (it holds a manifest)."""
    return (Path(path) / MANIFEST).is_file()


class NotAStore(ValueError):
    """The folder's manifest is missing, unreadable or of another format or version."""


def read_manifest(path: str | Path) -> dict:
    """The store's manifest, checked: a store of another format, version or schema is refused in
    one sentence rather than read wrong."""
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotAStore(f"{path}: not a readable store (its {MANIFEST} cannot be read)") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotAStore(f"{path}: {MANIFEST} does not describe a {FORMAT}")
    if manifest.get("version") != FORMAT_VERSION or manifest.get("schema_version") != STORE_SCHEMA_VERSION:
        raise NotAStore(
            f"{path}: a store of version {manifest.get('version')}, schema {manifest.get('schema_version')}; "
            f"this version reads version {FORMAT_VERSION}, schema {STORE_SCHEMA_VERSION}: write it again"
        )
    return manifest


def manifest(engine: str, tables: dict[str, dict], built_at: dt.datetime | None = None) -> dict:
    """A manifest for a store ``engine`` wrote with ``tables`` ({name: {"path", "rows"}})."""
    built = (built_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "engine": engine,
        "schema_version": STORE_SCHEMA_VERSION,
        "built_at": built.isoformat().replace("+00:00", "Z"),
        "tables": tables,
    }


def replace_folder(work: Path, out_dir: Path) -> None:
    """Put the finished ``work`` folder in place of ``out_dir``: a reader sees the old store or
    the new one, never half of either (one rename; the old one is removed after)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out_dir, old)
    os.replace(work, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def work_folder(out_dir: Path) -> Path:
    """A fresh folder beside ``out_dir`` (same file system, so the final rename is atomic)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = out_dir.with_name(f".{out_dir.name}.writing-{uuid.uuid4().hex[:8]}")
    work.mkdir()
    return work


def signed_sql(expr: str) -> str:
    """UBIGINT bits as BIGINT (DuckDB SQL): values from 2^63 on read negative."""
    return (
        f"CASE WHEN ({expr}) >= 9223372036854775808 "
        f"THEN CAST(CAST(({expr}) AS HUGEINT) - 18446744073709551616 AS BIGINT) "
        f"ELSE CAST(({expr}) AS BIGINT) END"
    )


def unsigned_sql(expr: str) -> str:
    """BIGINT bits as UBIGINT (DuckDB SQL): the inverse of ``signed_sql``."""
    return (
        f"CASE WHEN ({expr}) < 0 THEN CAST(CAST(({expr}) AS HUGEINT) + 18446744073709551616 AS UBIGINT) "
        f"ELSE CAST(({expr}) AS UBIGINT) END"
    )


def _copy(con: duckdb.DuckDBPyConnection, sql: str, target: Path, partitioned: bool) -> None:
    quoted = "'" + str(target).replace("'", "''") + "'"
    options = "FORMAT PARQUET, COMPRESSION ZSTD"
    if partitioned:
        options += f", PARTITION_BY ({PARTITION})"
    con.execute(f"COPY ({sql}) TO {quoted} ({options})")


def events_select(source: str = "events") -> str:
    """The events as the store holds them, from a warehouse's ``events`` view."""
    cols = ", ".join(signed_sql(c) + f" AS {c}" if c in ("h3", "rkey") else c for c in EVENT_COLUMNS)
    order = ", ".join((PARTITION, *SORT_EVENTS))
    return f"SELECT {cols} FROM {source} ORDER BY {order}"


def cube_select(source: str = "events") -> str:
    """The fine cube from a warehouse's ``events`` view (see the module's docstring)."""
    cell = parent_sql("h3", CUBE_RES)
    return f"""
        SELECT CAST({cell} AS BIGINT) AS cell11, ward_code, CAST(ts AS DATE) AS day,
               CAST(hour(ts) AS TINYINT) AS hour, {PARTITION}, agency, kind, category,
               count(*) AS n, sum(weight) AS weight, {signed_sql("bit_xor(rkey)")} AS rkey
        FROM {source}
        GROUP BY ALL
        ORDER BY {PARTITION}, {", ".join(SORT_CUBE)}, ward_code, hour, agency, kind, category"""


def rollup_select(source: str) -> str:
    """The roll-up from a store's cube (``source``: a relation with the cube's columns, rkey as
    UBIGINT so that XOR works on the same bits)."""
    cell = parent_sql("cell11", ROLLUP_RES)
    return f"""
        SELECT CAST({cell} AS BIGINT) AS cell9, ward_code, CAST(date_trunc('month', day) AS DATE) AS month,
               {PARTITION}, agency, kind, category, sum(n)::BIGINT AS n, sum(weight) AS weight,
               {signed_sql("bit_xor(rkey)")} AS rkey
        FROM {source}
        GROUP BY ALL
        ORDER BY {PARTITION}, {", ".join(SORT_ROLLUP)}, ward_code, agency, kind, category"""


def present_optional_tables(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The ``OPTIONAL_TABLES`` that ``con`` holds (a warehouse loaded with a gazetteer)."""
    found = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    return tuple(name for name in OPTIONAL_TABLES if name in found)


def write_store(con: duckdb.DuckDBPyConnection, out_dir: str | Path, rollup: bool = True) -> dict:
    """Write the store layout from a DuckDB warehouse (``con``: a connection on which ``events``
    and the ``TABLES`` resolve) to ``out_dir``, atomically; return the manifest.

    The folder is written beside ``out_dir`` and renamed into place when complete, so a reader
    never meets half a store and a failure leaves the previous one untouched.
    """
    out_dir = Path(out_dir)
    work = work_folder(out_dir)
    spill = _spill_beside(con, work)
    try:
        tables: dict[str, dict] = {}
        for name in (*TABLES, *present_optional_tables(con)):
            cols = ", ".join(SCHEMAS[name].names)
            _copy(con, f"SELECT {cols} FROM {name}", work / f"{name}.parquet", partitioned=False)
            rows = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            tables[name] = {"path": f"{name}.parquet", "rows": int(rows)}
        events_rows = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        if events_rows:
            _copy(con, events_select(), work / EVENTS, partitioned=True)
        else:
            (work / EVENTS).mkdir()
        tables[EVENTS] = {"path": f"{EVENTS}/", "rows": int(events_rows), "partition_by": [PARTITION]}
        con.execute(f"CREATE OR REPLACE TEMP TABLE __store_cube AS {cube_select()}")
        try:
            cube_rows = con.execute("SELECT count(*) FROM __store_cube").fetchall()[0][0]
            if cube_rows:
                _copy(con, "SELECT * FROM __store_cube", work / CUBE, partitioned=True)
            else:
                (work / CUBE).mkdir()
            tables[CUBE] = {"path": f"{CUBE}/", "rows": int(cube_rows), "partition_by": [PARTITION]}
            if rollup:
                fixed = f"SELECT * REPLACE ({unsigned_sql('rkey')} AS rkey) FROM __store_cube"
                sql = rollup_select(f"({fixed})")
                con.execute(f"CREATE OR REPLACE TEMP TABLE __store_rollup AS {sql}")
                try:
                    n = con.execute("SELECT count(*) FROM __store_rollup").fetchall()[0][0]
                    if n:
                        _copy(con, "SELECT * FROM __store_rollup", work / ROLLUP, partitioned=True)
                    else:
                        (work / ROLLUP).mkdir()
                    tables[ROLLUP] = {"path": f"{ROLLUP}/", "rows": int(n), "partition_by": [PARTITION]}
                finally:
                    con.execute("DROP TABLE IF EXISTS __store_rollup")
        finally:
            con.execute("DROP TABLE IF EXISTS __store_cube")
        made = manifest("duckdb", tables)
        (work / MANIFEST).write_text(json.dumps(made, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        replace_folder(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return made


def _spill_beside(con: duckdb.DuckDBPyConnection, work: Path) -> Path:
    """Point DuckDB's spill files at a folder beside the store being written.

    A warehouse opened read-only spills its temporary cube to ``.tmp`` in whatever folder the
    process started in (a 50M-record cube is gigabytes); beside the store it lands on the disk
    meant for it and is removed when the store is written."""
    spill = work.with_name(f"{work.name}-spill")
    spill.mkdir()
    literal = str(spill).replace("'", "''")
    con.execute(f"SET temp_directory = '{literal}'")
    return spill
