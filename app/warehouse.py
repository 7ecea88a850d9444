"""The DuckDB warehouse: schema, read-only access, and loads that readers never see half-done.

DuckDB lets one process write a file or many read it, not both. A load therefore works on a
copy of the warehouse and, when every dataset has been committed or rolled back, renames the
copy over the original. A dashboard that opened the old file keeps reading it (the inode lives
while it is open) and sees the new one on its next connection.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb

SCHEMA_VERSION = 4  # 3: ward numbers are INTEGER (more than 32,767 areas); 4: record keys (rkey)

# Each event keeps what only it knows, and its ward by number; what every row of one file shares
# (dataset, agency, kind, the file's path) is stored once per file in ``event_files``. That
# saves a load about a third of its writing. Readers query the ``events`` view, which joins
# them back up.

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS wards (
    code VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    population DOUBLE,
    area_km2 DOUBLE NOT NULL,
    geom_wkb BLOB NOT NULL,
    geojson VARCHAR NOT NULL,
    ward_no INTEGER NOT NULL UNIQUE  -- the ward's position in the loaded boundary file
);
CREATE TABLE IF NOT EXISTS ward_index (data BLOB NOT NULL);  -- app.ward_index, for these wards
CREATE TABLE IF NOT EXISTS event_files (
    file_no INTEGER PRIMARY KEY,
    dataset VARCHAR NOT NULL,
    agency VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS event_rows (
    file_no INTEGER NOT NULL,
    agency VARCHAR,  -- set only where a row names an agency other than its file's
    category VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    lat DOUBLE NOT NULL,
    lon DOUBLE NOT NULL,
    weight DOUBLE NOT NULL,
    record_id VARCHAR,
    h3 UBIGINT NOT NULL,
    ward_no INTEGER NOT NULL,
    source_row BIGINT NOT NULL,
    rkey UBIGINT NOT NULL  -- app.record_key: the record's key for disclosure control
);
CREATE OR REPLACE VIEW events AS
SELECT f.dataset, coalesce(r.agency, f.agency) AS agency, f.kind, r.category, r.ts, r.lat, r.lon,
       r.weight, r.record_id, r.h3, w.code AS ward_code, f.source_file, r.source_row, r.rkey
FROM event_rows r JOIN event_files f USING (file_no) JOIN wards w USING (ward_no);
CREATE TABLE IF NOT EXISTS quarantine (
    dataset VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    source_row BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    column_name VARCHAR,
    raw VARCHAR
);
CREATE TABLE IF NOT EXISTS datasets (
    id VARCHAR PRIMARY KEY,
    title VARCHAR NOT NULL,
    agency VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    sharing VARCHAR NOT NULL,
    licence VARCHAR,
    attribution VARCHAR,
    owner VARCHAR,
    description VARCHAR,
    entry_json VARCHAR NOT NULL,
    entry_hash VARCHAR NOT NULL,
    files_json VARCHAR NOT NULL,
    report_json VARCHAR NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
"""


_READER = "warehouse"  # the name a read-only connection attaches the warehouse file under


def connect(
    path: str | Path, read_only: bool = False, memory_limit: str = "1GB"
) -> duckdb.DuckDBPyConnection:
    """A connection with the session settings every query here assumes (UTC, bounded memory;
    beyond the limit DuckDB spills to disk rather than growing).

    A read-only one is an in-memory database of its own with the file attached.
    ``duckdb.connect(path)`` would hand back the database this process already has open on
    that path, which goes on reading the file a load has since renamed away: a dashboard would
    show the old figures until it was restarted."""
    check_warehouse_file(path)
    if read_only:
        con = duckdb.connect()
        quoted = "'" + str(path).replace("'", "''") + "'"
        con.execute(f"ATTACH {quoted} AS {_READER} (READ_ONLY)")
    else:
        con = duckdb.connect(str(path))
    con.execute("SET memory_limit = ?", [memory_limit])
    # DuckDB's own bar would draw over the load's progress line on a terminal.
    con.execute("SET enable_progress_bar = false")
    if read_only:  # its answers stay true while it is open (``app.store.facts``)
        from app.store import facts

        facts.mark(con)
    return session(con, read_only)


def session(con: duckdb.DuckDBPyConnection, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Apply the per-connection settings to ``con`` (a new cursor starts without them: in the
    in-memory catalogue, in the machine's time zone) and return it."""
    if (
        read_only
        and con.execute(
            "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [_READER]
        ).fetchall()[0][0]
    ):
        con.execute(f"USE {_READER}")  # a store folder's views live in the connection's own catalogue
    con.execute("SET TimeZone = 'UTC'")
    return con


class NotAWarehouse(ValueError):
    """The path names something other than a warehouse file (a folder, a CSV, a text file)."""


_MAGIC = (8, b"DUCK")  # where every DuckDB database file says what it is


def check_warehouse_file(path: str | Path) -> None:
    """Refuse, in words, a path that is not a warehouse; DuckDB would fail with an IO error or
    take a CSV for a database of its own. A missing or empty file is a new warehouse."""
    path = Path(path)
    if path.is_dir():
        raise NotAWarehouse(
            f"{path}: is a folder, not a warehouse file; name a .duckdb file or a store folder "
            "(one with a manifest.json)"
        )
    if not path.exists() or path.stat().st_size == 0:
        return
    offset, magic = _MAGIC
    try:
        with open(path, "rb") as handle:
            head = handle.read(offset + len(magic))
    except OSError as exc:
        raise NotAWarehouse(f"{path}: cannot be read ({exc.strerror})") from exc
    if head[offset:] != magic:
        raise NotAWarehouse(
            f"{path}: is not a warehouse (not a DuckDB file); name the .duckdb file that "
            "`python -m app load` writes, or a new file name for a new warehouse"
        )


class OutdatedWarehouse(RuntimeError):
    """The warehouse was written in another schema; a load rebuilds it from the catalogue."""


def open_readonly(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection, refused for a warehouse written in another schema: its queries
    would fail table by table, where one load rebuilds it whole.

    ``path`` may name a store folder (``app.store.layout``, written by this engine or Spark):
    it opens as views with the warehouse's names, so every reader serves both."""
    from app.store import layout  # the store's modules import nothing from here at import time

    if layout.is_store(path):
        from app.store.duckdb import open_store

        return open_store(path)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no warehouse yet; run `python -m app load` first")
    check_warehouse_file(path)
    con = connect(path, read_only=True)
    stored = stored_schema_version(con)
    if stored != SCHEMA_VERSION:
        con.close()
        raise OutdatedWarehouse(
            f"{path}: was written in schema {stored or 'none'}, not {SCHEMA_VERSION}; "
            "run `python -m app load` (or `make run`) to rebuild it from the catalogue"
        )
    return con


def stored_schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version a warehouse was written with (None for an empty file)."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "meta" not in tables:
        return None
    found = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    return int(found[0][0]) if found else None


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema; a warehouse of an older schema is emptied first (its datasets are all
    reloaded from their files, which the catalogue still names)."""
    version = stored_schema_version(con)
    if version is not None and (version != SCHEMA_VERSION or _narrow_ward_numbers(con)):
        found = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        views = {r[0] for r in found}
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for name in (
            "events",
            "event_rows",
            "event_files",
            "quarantine",
            "datasets",
            "wards",
            "ward_index",
            "meta",
        ):
            if name in views:
                con.execute(f"DROP VIEW {name}")
            elif name in tables:
                con.execute(f"DROP TABLE {name}")
    con.execute(SCHEMA)
    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])


def _narrow_ward_numbers(con: duckdb.DuckDBPyConnection) -> bool:
    """Ward numbers stored as SMALLINT overflow past 32,767 wards (England has 33,755 LSOAs):
    such a warehouse is rebuilt like one of an older schema."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE column_name = 'ward_no' AND data_type = 'SMALLINT'"
    ).fetchall()
    return found[0][0] > 0


@contextlib.contextmanager
def load_lock(path: Path) -> Iterator[None]:
    """One load at a time per warehouse; a second waits rather than racing the rename."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def writable_copy(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a private copy of the warehouse that replaces it when the block ends.

    If the block raises, the copy is thrown away and the warehouse is exactly as it was.
    """
    path = Path(path)
    work = path.with_name(path.name + ".loading")
    for stale in (work, work.with_name(work.name + ".wal")):
        stale.unlink(missing_ok=True)
    if path.exists():
        shutil.copyfile(path, work)
    # A load's stage table is a DuckDB temp table: room for a 5M-row file's to stay in memory
    # instead of spilling, and for the Arrow copies of the boundary rows beside it.
    con = connect(work, memory_limit="1500MB")
    try:
        ensure_schema(con)
        yield con
        con.execute("CHECKPOINT")
        con.close()
        os.replace(work, path)
    except BaseException:
        con.close()
        work.unlink(missing_ok=True)
        raise
    finally:
        work.with_name(work.name + ".wal").unlink(missing_ok=True)
