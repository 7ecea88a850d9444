"""Load the catalogue's datasets into the warehouse, quarantining every row it cannot place.

The promise to a partner agency is reconciliation: for every dataset and every file,
rows read = rows loaded + rows quarantined, and each quarantined row keeps its file, row number,
reason and raw content. One DuckDB pass reads a file, validates what SQL can (coordinates,
times, weights) and computes what placing each point needs; the rows are joined with the
study area's coarse cells as they are written (H3 cell and ward, ``app.placement``), and numpy
takes only the points near a ward boundary and those SQL cannot place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import mmap
import os
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from pyproj import Transformer

from app.boundaries import BoundaryError, Wards, read_wards
from app.catalog import Catalog, Dataset, load_catalog
from app.h3cells import latlng_to_cells
from app.placement import Placed, Placer, location_precision
from app.readers import (
    LineCount,
    Source,
    SourceError,
    check_record_count,
    clear_rejects,
    count_lines,
    csv_rejects,
    open_source,
    tolerant_csv_source,
)
from app.record_key import seed, source_name
from app.store.duckdb import RECORD_KEY_FUNCTION, register_record_key
from app.ward_index import WardIndex
from app.warehouse import SCHEMA_VERSION, connect, load_lock, stored_schema_version, writable_copy

# Reason codes, in the order they are tested: a row gets the first that applies.
REASONS = {
    "malformed_row": "the row has more or fewer fields than the header",
    "bad_encoding": "the row has bytes that are not valid in the file's encoding",
    "not_a_point": "the feature's geometry is not a point",
    "missing_coordinates": "no coordinates",
    "bad_coordinates": "coordinates are not numbers",
    "zero_coordinates": "coordinates are 0, 0 (a common placeholder for unknown)",
    "invalid_coordinates": "coordinates are out of range for their system",
    "missing_time": "no date or time",
    "bad_time": "the date or time does not match the catalogue's time_format",
    "future_time": "the date is in the future",
    "bad_weight": "the weight is not a number",
    "swapped_coordinates": "outside the study area, but inside with latitude and longitude swapped",
    "outside_study_area": "the point lies outside every ward of the study area",
    "repeated_record": "the record_id of a row loaded before it: the same record again "
    "(the catalogue counts each record once)",
}
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_POINT_RE = rf"^\(?\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)?$"  # "(51.33, -2.46)" or "51.33, -2.46"
_EARLIEST = dt.datetime(1900, 1, 1)

Progress = Callable[[str, float], None]


class LoadError(RuntimeError):
    """The load could not run at all (catalogue or boundaries unusable)."""


def uploads_path(db_path: str | Path) -> Path:
    """Where the datasets added through the dashboard are listed, beside the warehouse; every
    load reads them with the catalogue, so a reload never drops them."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".uploads.toml")


def file_sha256(path: Path) -> str:
    """The file's SHA-256, hashed from a memory map in one call: the GIL is released for the
    whole file, so hashing runs beside Python work in another thread instead of queueing for
    the GIL block by block."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                digest.update(mapped)
    return digest.hexdigest()


def quote_ident(name: str) -> str:
    """A column name of a source file as a SQL identifier (names come from files, not users)."""
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------------
# The load as a whole


def load(
    catalog_path: str | Path,
    db_path: str | Path,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    force: bool = False,
) -> dict:
    """Load or refresh the warehouse from a catalogue; return the load report.

    Unchanged datasets are skipped; a changed one is replaced whole, in its own transaction, so
    a failure leaves its previous version in place. Raises LoadError only when nothing can be
    loaded (an unusable catalogue or boundary file).
    """
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    db_path = Path(db_path)
    catalog = load_catalog(catalog_path, uploads_path(db_path))
    progress = progress or (lambda _msg, _frac: None)
    boundary_hash = file_sha256(catalog.study_area.boundaries)
    db_path.parent.mkdir(parents=True, exist_ok=True)

    with load_lock(db_path):
        previous = _stored_state(db_path)
        boundaries_changed = force or previous.get("boundary_hash") != boundary_hash
        # New boundaries reload every dataset, so their ward index is needed for sure: build it
        # while the data files are hashed (hashing releases the GIL; the two share the cores).
        with ThreadPoolExecutor(max_workers=1) as pool:
            hashing = pool.submit(lambda: {d.id: [file_sha256(f) for f in d.files] for d in catalog.datasets})
            new_wards = _read_wards(catalog) if boundaries_changed else None
            index = WardIndex(new_wards) if new_wards is not None else None
            file_hashes = hashing.result()
        todo = [
            d
            for d in catalog.datasets
            if boundaries_changed or previous["datasets"].get(d.id) != _fingerprint(d, file_hashes)
        ]
        obsolete = set(previous["datasets"]) - {d.id for d in catalog.datasets}
        results: dict[str, dict] = {}
        study_area: dict = previous.get("study_area", {})
        from app.places import places_stale, write_places  # gazetteer and postcodes

        if todo or obsolete or boundaries_changed or places_stale(db_path, catalog):
            with writable_copy(db_path) as con:
                # Outside every dataset's transaction: a function created inside one that rolls
                # back can be neither called nor created again on this connection.
                register_record_key(con)
                if new_wards is not None:
                    wards = _store_wards(con, new_wards, boundary_hash, index)
                else:
                    wards = _stored_wards(con)
                    index = _stored_index(con, wards) if todo else None
                study_area = _study_area_summary(catalog, wards)
                con.execute("INSERT OR REPLACE INTO meta VALUES ('study_area', ?)", [json.dumps(study_area)])
                write_places(con, catalog)  # after the wards: each place gets the ward holding it
                for ds_id in sorted(obsolete):
                    _drop_dataset(con, ds_id)
                if todo and index is None:  # stored by an older version: build and keep it
                    index = _store_index(con, WardIndex(wards))
                placer = Placer(con, wards, index) if todo else None
                uploaded = _uploaded_ids(catalog) if todo else set()
                for i, ds in enumerate(todo):
                    progress(f"{ds.id} ({i + 1}/{len(todo)})", i / len(todo))
                    hashes = file_hashes[ds.id]
                    names = _source_names(catalog, ds, uploaded)
                    results[ds.id] = _load_dataset_atomically(con, catalog, ds, hashes, placer, now, names)
                progress("done", 1.0)
                stored = _stored_reports(con)
        else:
            with connect(db_path, read_only=True) as con:
                stored = _stored_reports(con)

    reports = []
    for ds in catalog.datasets:
        if ds.id in results and results[ds.id]["status"] == "failed":
            kept = stored.get(ds.id)
            entry = dict(results[ds.id])
            entry["previous_version_kept"] = kept is not None
            reports.append(entry)
        elif ds.id in results:
            reports.append(results[ds.id])
        else:
            reports.append({**stored.get(ds.id, {}), "status": "unchanged"})
    return {
        "catalog": str(catalog.path),
        "db": str(db_path),
        "study_area": study_area,
        "datasets": reports,
        "totals": _totals(reports),
        # Datasets added through the dashboard that could not be used: skipped, never fatal.
        "skipped_uploads": list(catalog.skipped),
        "load_seconds": round(time.perf_counter() - started, 3),
    }


def _uploaded_ids(catalog: Catalog) -> set[str]:
    """The datasets that the uploads list added to the catalogue (the catalogue file alone
    does not name them)."""
    return {d.id for d in catalog.datasets} - {d.id for d in load_catalog(catalog.path).datasets}


def _source_names(catalog: Catalog, ds: Dataset, uploaded: set[str]) -> list[str]:
    """The names the files' record keys are seeded with (``app.record_key``): a file added
    through the dashboard by its own name, any other relative to the catalogue's folder, so
    moving the data and catalogue together keeps every key and every released figure."""
    if ds.id in uploaded:
        return [Path(file).name for file in ds.files]
    folder = os.path.abspath(catalog.path.parent)
    return [source_name(os.path.abspath(file), folder) for file in ds.files]


def _fingerprint(ds: Dataset, file_hashes: dict[str, list[str]]) -> str:
    return hashlib.sha256((ds.entry_hash() + "".join(file_hashes[ds.id])).encode()).hexdigest()


def _stored_state(db_path: Path) -> dict:
    state: dict = {"datasets": {}}
    if not db_path.exists():
        return state
    with connect(db_path, read_only=True) as con:
        if stored_schema_version(con) != SCHEMA_VERSION:
            return state  # nothing stored, or stored in an older schema: everything is loaded anew
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        state["boundary_hash"] = meta.get("boundary_hash")
        state["study_area"] = json.loads(meta.get("study_area", "{}"))
        for ds_id, files_json in con.execute("SELECT id, files_json FROM datasets").fetchall():
            state["datasets"][ds_id] = json.loads(files_json).get("fingerprint")
    return state


def _stored_reports(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    return {
        ds_id: json.loads(report)
        for ds_id, report in con.execute("SELECT id, report_json FROM datasets").fetchall()
    }


def _totals(reports: list[dict]) -> dict:
    keys = ("rows_read", "rows_loaded", "rows_quarantined")
    totals = {k: sum(r.get(k, 0) for r in reports) for k in keys}
    totals["datasets_failed"] = sum(r.get("status") == "failed" for r in reports)
    return totals


# --------------------------------------------------------------------------------------------
# Wards


def _read_wards(catalog: Catalog) -> Wards:
    try:
        return read_wards(catalog.study_area)
    except BoundaryError as exc:
        raise LoadError(str(exc)) from exc


def _store_wards(con: duckdb.DuckDBPyConnection, wards: Wards, boundary_hash: str, index: WardIndex) -> Wards:
    frame = wards.frame()
    frame["ward_no"] = range(len(frame))  # the position every load places points by
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM wards")
    con.register("frame", frame)
    con.execute("INSERT INTO wards BY NAME SELECT * FROM frame")
    con.unregister("frame")
    con.execute("INSERT OR REPLACE INTO meta VALUES ('boundary_hash', ?)", [boundary_hash])
    con.execute("INSERT OR REPLACE INTO meta VALUES ('boundary_notes', ?)", [json.dumps(wards.notes)])
    _store_index(con, index)
    # Every dataset's ward codes depend on the boundaries: they are all reloaded below.
    con.execute("COMMIT")
    return wards


def _store_index(con: duckdb.DuckDBPyConnection, index: WardIndex) -> WardIndex:
    con.execute("DELETE FROM ward_index")
    con.execute("INSERT INTO ward_index VALUES (?)", [index.to_bytes()])
    return index


def _stored_index(con: duckdb.DuckDBPyConnection, wards: Wards) -> WardIndex | None:
    """The ward index stored with the boundaries, unless a version that classes cells
    differently stored it."""
    found = con.execute("SELECT data FROM ward_index").fetchall()
    return WardIndex.from_bytes(wards, found[0][0]) if found else None


def _stored_wards(con: duckdb.DuckDBPyConnection) -> Wards:
    import shapely

    rows = con.execute(
        "SELECT code, name, population, area_km2, geom_wkb FROM wards ORDER BY ward_no"
    ).fetchall()
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    return Wards(
        codes=[r[0] for r in rows],
        names=[r[1] for r in rows],
        populations=[r[2] for r in rows],
        geoms=[shapely.from_wkb(r[4]) for r in rows],
        areas_km2=[r[3] for r in rows],
        notes=json.loads(meta.get("boundary_notes", "[]")),
    )


def _study_area_summary(catalog: Catalog, wards: Wards) -> dict:
    sa = catalog.study_area
    pops = [p for p in wards.populations if p is not None]
    return {
        "name": sa.name,
        "boundaries": str(sa.boundaries),
        "vintage": sa.vintage,
        "attribution": sa.attribution,
        "wards": len(wards),
        "population": sum(pops) if pops else None,
        "area_km2": round(sum(wards.areas_km2), 3),
        "bounds": [round(float(b), 6) for b in wards.bounds],
        "notes": wards.notes,
    }


def _drop_dataset(con: duckdb.DuckDBPyConnection, ds_id: str) -> None:
    con.execute("BEGIN TRANSACTION")
    _delete_rows(con, ds_id)
    con.execute("DELETE FROM datasets WHERE id = ?", [ds_id])
    con.execute("COMMIT")


def _delete_rows(con: duckdb.DuckDBPyConnection, ds_id: str) -> None:
    """Remove a dataset's events and quarantined rows (inside the caller's transaction)."""
    con.execute(
        "DELETE FROM event_rows WHERE file_no IN (SELECT file_no FROM event_files WHERE dataset = ?)", [ds_id]
    )
    con.execute("DELETE FROM event_files WHERE dataset = ?", [ds_id])
    con.execute("DELETE FROM quarantine WHERE dataset = ?", [ds_id])


# --------------------------------------------------------------------------------------------
# One dataset


def _load_dataset_atomically(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    ds: Dataset,
    hashes: list[str],
    placer: Placer,
    now: dt.datetime,
    source_names: list[str],
) -> dict:
    """Read, validate and place every file of a dataset, then swap its rows in one transaction.

    Reading happens outside the transaction: DuckDB aborts a transaction at its first failed
    statement, and the fast CSV reader is allowed to fail (the exact reader takes over).
    """
    started = time.perf_counter()
    names = [f"stage_{i}" for i in range(len(ds.files))]
    in_transaction = False
    try:
        prepared = [
            prepare_file(con, ds, f, name, placer, now) for f, name in zip(ds.files, names, strict=True)
        ]
        previous = _stored_reports(con).get(ds.id)
        con.execute("BEGIN TRANSACTION")
        in_transaction = True
        _delete_rows(con, ds.id)
        files = [write_file(con, ds, p, h, n) for p, h, n in zip(prepared, hashes, source_names, strict=True)]
        report = _dataset_report(con, ds, files, time.perf_counter() - started)
        if report["rows_loaded"] == 0:
            raise SourceError(_all_quarantined(con, ds, report))
        report["warnings"] = _drop_warnings(report, previous)
        report["location_precision"] = location_precision(
            con, ds.id, ds.crs if ds.location_mode == "xy" else None
        )
        _record_dataset(con, ds, hashes, report)
        con.execute("COMMIT")
        return report
    except Exception as exc:  # any failure rolls this dataset back; the others go on
        if in_transaction:
            con.execute("ROLLBACK")
        return {
            "id": ds.id,
            "title": ds.title,
            "agency": ds.agency,
            "kind": ds.kind,
            "status": "failed",
            "error": f"{catalog.path}: dataset '{ds.id}': {exc}",
        }
    finally:
        for name in names:
            _drop_stage(con, name)


_SAMPLE_ROWS = 3  # quarantined rows quoted when a whole dataset is refused
_DROP_SHARE = 0.5  # a reload that loads under this share of the previous load's rows is a warning


def _all_quarantined(con: duckdb.DuckDBPyConnection, ds: Dataset, report: dict) -> str:
    """Why a dataset none of whose rows could be loaded is refused: its reasons, and the value
    of the column blamed in its first rows (a typo in time_format shows at once)."""
    reasons = ", ".join(f"{r} {n:,}" for r, n in report["quarantined_by_reason"].items())
    sample = con.execute(
        """SELECT source_row, reason, column_name, raw FROM quarantine WHERE dataset = ?
           ORDER BY source_file, source_row LIMIT ?""",
        [ds.id, _SAMPLE_ROWS],
    ).fetchall()
    quoted = "; ".join(_quoted_row(row, reason, column, raw) for row, reason, column, raw in sample)
    return (
        f"all {report['rows_read']:,} rows quarantined: {reasons}; nothing loaded, so the previous "
        f"version is kept; first rows: {quoted}"
    )


def _quoted_row(row: int, reason: str, column: str | None, raw: str | None) -> str:
    values = json.loads(raw) if raw else {}
    if column and "+" not in column and column in values:
        return f"row {row} {column} '{values[column]}' ({reason})"
    if column:
        shown = ", ".join(f"'{values.get(c)}'" for c in column.split("+"))
        return f"row {row} {column} {shown} ({reason})"
    return f"row {row} ({reason})"


def _drop_warnings(report: dict, previous: dict | None) -> list[str]:
    """A reload that loads under half the rows of the previous load is worth a look (a changed
    export, a column renamed, a format changed): say so in the report."""
    before = (previous or {}).get("rows_loaded") or 0
    now = report["rows_loaded"]
    if before == 0 or now >= _DROP_SHARE * before:
        return []
    when = (previous or {}).get("loaded_at", "")
    return [
        f"{now:,} rows loaded against {before:,} in the previous load{f' ({when})' if when else ''}: "
        f"{100 * (before - now) / before:.0f} % fewer; quarantined by reason: "
        + ", ".join(f"{r} {n:,}" for r, n in report["quarantined_by_reason"].items())
    ]


def _drop_stage(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"DROP VIEW IF EXISTS {name}")
    for table in (f"{name}_t", f"{name}_placed", f"{name}_src_rejects", f"{name}_src_scans"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    for suffix in ("_src", "_coords", "_fixed", "_outside", "_repeats", "_rejects_q", "_shift"):
        with contextlib.suppress(Exception):
            con.unregister(name + suffix)


def _record_dataset(con: duckdb.DuckDBPyConnection, ds: Dataset, hashes: list[str], report: dict) -> None:
    entry = asdict(ds)
    entry["files"] = [str(f) for f in ds.files]
    files = {
        "fingerprint": _fingerprint(ds, {ds.id: hashes}),
        "files": [{"path": str(f), "sha256": h} for f, h in zip(ds.files, hashes, strict=True)],
    }
    con.execute("DELETE FROM datasets WHERE id = ?", [ds.id])
    con.execute(
        "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [
            ds.id,
            ds.title,
            ds.agency,
            ds.kind,
            ds.sharing,
            ds.licence,
            ds.attribution,
            ds.owner,
            ds.description,
            json.dumps(entry),
            ds.entry_hash(),
            json.dumps(files),
            json.dumps(report),
        ],
    )


def _dataset_report(con: duckdb.DuckDBPyConnection, ds: Dataset, files: list[dict], seconds: float) -> dict:
    by_reason: dict[str, int] = {}
    for f in files:
        for reason, n in f["quarantined_by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    tmin, tmax, categories = con.execute(
        """SELECT min(ts), max(ts), count(DISTINCT category) FROM event_rows
           WHERE file_no IN (SELECT file_no FROM event_files WHERE dataset = ?)""",
        [ds.id],
    ).fetchall()[0]
    rows_read = sum(f["rows_read"] for f in files)
    return {
        "id": ds.id,
        "title": ds.title,
        "agency": ds.agency,
        "kind": ds.kind,
        "sharing": ds.sharing,
        "status": "loaded",
        "rows_read": rows_read,
        "rows_loaded": sum(f["rows_loaded"] for f in files),
        "rows_quarantined": sum(f["rows_quarantined"] for f in files),
        "quarantined_by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
        "category_unknown": sum(f["category_unknown"] for f in files),
        "categories": categories,
        "time_min": tmin.isoformat() if tmin else None,
        "time_max": tmax.isoformat() if tmax else None,
        "files": files,
        "load_seconds": round(seconds, 3),
        "rows_per_second": round(rows_read / seconds) if seconds > 0 else None,
        "loaded_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **(
            {"ward_column_unmatched": sum(f["ward_column_unmatched"] for f in files)}
            if ds.ward_column
            else {}
        ),
    }


@dataclass
class PreparedFile:
    """One file read, validated and placed, ready to be written."""

    file: Path
    source: Source
    stage: str  # temp view: the file's columns, parse results and reason per row
    rows: int
    placed: Placed  # the validated rows with their cells and wards
    outside: pa.Table  # __row and reason of validated rows that no ward holds
    rejects: pa.Table  # rows the CSV reader skipped: their file row, reason and raw JSON


# The parsed values the stage stores per row, and the columns a validated row carries on to the
# events table (the text ones are computed from the file's own columns, see _row_values).
_STAGED = ["__a", "__b", "__ts", "__weight"]
_CARRIED = [*_STAGED, "__category", "__agency", "__record_id", "__ward_key"]


def prepare_file(
    con: duckdb.DuckDBPyConnection,
    ds: Dataset,
    file: Path,
    stage: str,
    placer: Placer,
    now: dt.datetime,
) -> PreparedFile:
    """Read, validate and place one file (``_prepare_file``); a compressed file that cannot be
    decompressed fails naming the file, wherever in it the damage lies."""
    try:
        return _prepare_file(con, ds, file, stage, placer, now)
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise SourceError(f"{file}: not a readable gzip file ({exc})") from exc
    except duckdb.Error as exc:
        if file.suffix == ".gz" and "gzip" in str(exc).lower():
            raise SourceError(f"{file}: not a readable gzip file") from exc
        raise


def _prepare_file(
    con: duckdb.DuckDBPyConnection,
    ds: Dataset,
    file: Path,
    stage: str,
    placer: Placer,
    now: dt.datetime,
) -> PreparedFile:
    source = open_source(con, ds, file, stage + "_src")
    _check_columns(ds, file, source)
    # Degrees are known in the reading pass except for grid coordinates (projected below).
    digits = placer if ds.location_mode != "xy" else None
    source, rejects = _read_stage(con, ds, file, source, stage, now, digits)
    rows = con.execute(f"SELECT count(*) FROM {stage}").fetchall()[0][0] + len(rejects)
    if rows == 0:
        raise SourceError(f"{file}: the file has a header but no data rows")
    points, params, unplaceable = _points(con, ds, stage, placer)
    placed = placer.place(con, points, _CARRIED, params)
    if not placed.trusted and digits is not None:
        # The stage left out the raw rows of interior cells on the SQL's word, which the sample
        # check has just doubted: read the file again, keeping every raw row.
        _stage(con, ds, source, stage, now, digits, keep_raw=True)
        points, params, unplaceable = _points(con, ds, stage, placer)
        placed = placer.place(con, points, _CARRIED, params)
    con.register(stage + "_fixed", placed.fixed)  # read again by write_file
    out = placed.outside
    a, b = (out.column(c).to_numpy().astype(np.float64) for c in ("__a", "__b"))
    reasons = _reasons(out.column("__row").to_numpy(), _outside_reason(ds, a, b, placer.index))
    outside_table = pa.concat_tables([reasons, unplaceable])
    return PreparedFile(file, source, stage, rows, placed, outside_table, rejects)


def _read_stage(
    con: duckdb.DuckDBPyConnection,
    ds: Dataset,
    file: Path,
    source: Source,
    stage: str,
    now: dt.datetime,
    digits: Placer | None,
) -> tuple[Source, pa.Table]:
    """Stage the file with the fast reader, which skips and records malformed rows; hand it to
    the exact reader where that cannot serve (bad bytes, an over-long line, a read error). The
    rows read are checked against the file's own count of records. Returns the source used and
    the rows the reader skipped."""
    lines = count_lines(file) if ds.format == "csv" else None
    rejects = None
    try:
        _stage(con, ds, source, stage, now, digits)
        rejects = _rejects(con, source, file, lines)
    except duckdb.Error:
        if source.reader != "duckdb" or ds.format != "csv":
            raise
    if rejects is None:
        source = tolerant_csv_source(con, ds, file, stage + "_src")
        _stage(con, ds, source, stage, now, digits)
        rejects = _rejects(con, source, file, lines)
    if lines is not None:
        good = con.execute(f"SELECT count(*) FROM {stage}_t").fetchall()[0][0]
        check_record_count(con, source, file, lines, good + len(rejects))
    return source, rejects


def _rejects(
    con: duckdb.DuckDBPyConnection, source: Source, file: Path, lines: LineCount | None
) -> pa.Table | None:
    if lines is None or source.reader != "duckdb":
        return _NO_REJECTS
    return csv_rejects(con, source, file, lines)


_NO_REJECTS = pa.table(
    {"__row": pa.array([], pa.int64()), "reason": pa.array([], pa.string()), "raw": pa.array([], pa.string())}
)


def _points(
    con: duckdb.DuckDBPyConnection, ds: Dataset, stage: str, placer: Placer
) -> tuple[str, dict, pa.Table]:
    """The validated rows as a FROM item (and its parameters) with WGS84 ``__lat`` and
    ``__lon``, the ``_CARRIED`` columns and those ``Placer.digits`` adds, and the rows whose grid
    coordinates no projection can place (``__row``, ``reason``)."""
    values, params = _row_values(ds)
    staged = ", ".join(f"s.{c}" for c in _STAGED)
    if ds.location_mode != "xy":  # the stage has the digits already
        digits = ", ".join(f"s.{c}" for c in placer.digit_columns)
        sql = f"""(SELECT s.__row, s.__a AS __lat, s.__b AS __lon, {staged}, {values}, {digits}
                   FROM {stage} s WHERE s.__reason IS NULL)"""
        return sql, params, _reasons(np.zeros(0, dtype=np.int64), "invalid_coordinates")
    # Projections are pyproj's: the grid coordinates go out to numpy and come back as degrees.
    points = con.execute(f"SELECT __row, __a, __b FROM {stage} WHERE __reason IS NULL").fetchnumpy()
    row = np.asarray(points["__row"], dtype=np.int64)
    lat, lon = _to_wgs84(ds, np.asarray(points["__a"], np.float64), np.asarray(points["__b"], np.float64))
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    con.register(stage + "_coords", pa.table({"__row": row[~bad], "__lat": lat[~bad], "__lon": lon[~bad]}))
    source = f"""(SELECT s.__row, c.__lat, c.__lon, {staged}, {values}
                  FROM {stage} s JOIN {stage}_coords c USING (__row))"""
    sql, digit_params = placer.digits(source, "__lat", "__lon", ["__row", "__lat", "__lon", *_CARRIED])
    con.execute(f"CREATE OR REPLACE TEMP TABLE {stage}_placed AS {sql}", {**params, **digit_params})
    return f"{stage}_placed", {}, _reasons(row[bad], "invalid_coordinates")


def _reasons(rows: np.ndarray, reasons: str | np.ndarray) -> pa.Table:
    reason = [reasons] * len(rows) if isinstance(reasons, str) else reasons.tolist()
    return pa.table({"__row": pa.array(rows, type=pa.int64()), "reason": pa.array(reason, type=pa.string())})


def write_file(
    con: duckdb.DuckDBPyConnection, ds: Dataset, prepared: PreparedFile, sha256: str, name: str
) -> dict:
    """Append one prepared file's events and quarantined rows; return its counts. ``name`` is
    the file's name as its record keys are seeded with it (``app.record_key``)."""
    stage, file, placed = prepared.stage, str(prepared.file), prepared.placed
    con.register(stage + "_rejects_q", prepared.rejects)
    shifts = _register_shift(con, stage, prepared.rejects)
    file_no = con.execute("SELECT coalesce(max(file_no), 0) + 1 FROM event_files").fetchall()[0][0]
    points = f"SELECT * FROM ({placed.inside}) UNION ALL BY NAME SELECT * FROM {stage}_fixed"
    set_aside = prepared.outside  # placed rows quarantined: outside every ward, or repeats
    if ds.repeated_record_id == "quarantine":
        repeats = _repeated_rows(con, ds, points, placed.params, file_no)
        set_aside = pa.concat_tables([set_aside, _reasons(repeats, "repeated_record")])
        con.register(stage + "_repeats", pa.table({"__row": pa.array(repeats, pa.int64())}))
        points = f"SELECT * FROM ({points}) p WHERE p.__row NOT IN (SELECT __row FROM {stage}_repeats)"
    con.register(stage + "_outside", set_aside)
    con.execute("INSERT INTO event_files VALUES (?, ?, ?, ?, ?)", [file_no, ds.id, ds.agency, ds.kind, file])
    # A row's own agency is kept only where it differs from the dataset's (events falls back).
    agency, params = "NULL", {**placed.params, "file_no": file_no, "rk_seed": seed(ds.id, name)}
    register_record_key(con)
    if ds.agency_column:
        agency, params["agency"] = "NULLIF(p.__agency, $agency)", ds.agency
    ward, ward_join = "p.ward", ""
    if ds.ward_column:  # the source's own ward where it names one; the point's otherwise
        ward, ward_join = (
            "coalesce(wk.ward_no, p.ward)",
            f"LEFT JOIN {_WARD_KEYS} wk ON wk.key = p.__ward_key",
        )
    columns = (
        f"$file_no, {agency}, p.__category, p.__ts, p.__lat, p.__lon, p.__weight, "
        f"p.__record_id, p.__h3, {ward}, p.__row, {RECORD_KEY_FUNCTION}($rk_seed::UBIGINT, p.__row)"
    )
    if ds.ward_column:
        _register_ward_keys(con)
    events_sql, shift_params = _file_rows(points, stage, shifts)
    loaded = con.execute(
        f"""INSERT INTO event_rows
            SELECT {columns} FROM ({events_sql}) p {ward_join}""",
        {**params, **shift_params},
    ).fetchall()[0][0]
    raw = _raw_json_sql(prepared.source)
    blame, blame_params = _blame_sql(ds)
    if prepared.source.numbered:
        outside = f"SELECT s.*, o.reason FROM {stage}_outside o JOIN {stage} s USING (__row)"
    else:
        # Joined on the table's rowid, DuckDB fetches the few rows it needs; joined on the view's
        # computed __row, it would read every column of every row first.
        outside = (
            f"SELECT s.rowid + 1 AS __row, s.*, o.reason "
            f"FROM {stage}_outside o JOIN {stage}_t s ON s.rowid = o.__row - 1"
        )
    judged = f"""SELECT __row, reason, {blame} AS __blame, {raw} AS __raw FROM (
                    SELECT *, __reason AS reason FROM {stage} WHERE __reason IS NOT NULL
                    UNION ALL
                    {outside}
                ) s"""
    judged_sql, judged_params = _file_rows(judged, stage, shifts)
    con.execute(
        f"""INSERT INTO quarantine
            SELECT $dataset, $file, __row, reason, __blame, __raw FROM ({judged_sql})
            UNION ALL
            SELECT $dataset, $file, __row, reason, NULL, raw FROM {stage}_rejects_q""",
        {**blame_params, **judged_params, "dataset": ds.id, "file": file},
    )
    by_reason = dict(
        con.execute(
            f"""SELECT reason, count(*) FROM (
                    SELECT __reason AS reason FROM {stage} WHERE __reason IS NOT NULL
                    UNION ALL SELECT reason FROM {stage}_outside
                    UNION ALL SELECT reason FROM {stage}_rejects_q)
                GROUP BY reason ORDER BY count(*) DESC, reason""",
        ).fetchall()
    )
    quarantined = sum(by_reason.values())
    if loaded + quarantined != prepared.rows:
        raise RuntimeError(
            f"{file}: reconciliation failed: {prepared.rows} read, {loaded} loaded, {quarantined} quarantined"
        )
    unknown = con.execute(
        "SELECT count(*) FROM event_rows WHERE file_no = ? AND category = 'unknown'", [file_no]
    ).fetchall()[0][0]
    report = _file_report(prepared, sha256, loaded, by_reason, unknown)
    if ds.ward_column:
        report["ward_column_unmatched"] = con.execute(
            f"SELECT count(*) FROM ({points}) p {ward_join} WHERE wk.ward_no IS NULL", placed.params
        ).fetchall()[0][0]
    return report


def _repeated_rows(
    con: duckdb.DuckDBPyConnection, ds: Dataset, points: str, params: dict, file_no: int
) -> np.ndarray:
    """The rows of a file (its validated, placed ``points``) whose record_id a row loaded
    before it already holds: an earlier row of the file, or a row of an earlier file of the
    dataset. The first valid row of a record is the one counted; a blank id repeats nothing."""
    found = con.execute(
        f"""SELECT __row FROM (
                SELECT __row, __record_id,
                       row_number() OVER (PARTITION BY __record_id ORDER BY __row) AS nth
                FROM ({points}) WHERE __record_id IS NOT NULL)
            WHERE nth > 1 OR __record_id IN (
                SELECT r.record_id FROM event_rows r JOIN event_files f USING (file_no)
                WHERE f.dataset = $repeat_dataset AND r.file_no < $repeat_file
                  AND r.record_id IS NOT NULL)
            ORDER BY __row""",
        {**params, "repeat_dataset": ds.id, "repeat_file": file_no},
    ).fetchnumpy()["__row"]
    return np.asarray(found, dtype=np.int64)


_WARD_KEYS = "__ward_keys"


def _register_ward_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Every ward's code and name, lower case and trimmed, as the keys a source's own ward
    column is matched on; a name two wards share names neither."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_WARD_KEYS} AS
            SELECT key, min(ward_no) AS ward_no FROM (
                SELECT lower(trim(code)) AS key, ward_no FROM wards
                UNION ALL SELECT lower(trim(name)), ward_no FROM wards)
            GROUP BY key HAVING count(DISTINCT ward_no) = 1"""
    )


_SHIFTS_INLINE = 32  # up to this many skipped rows, the numbering is a CASE, not a join


def _register_shift(con: duckdb.DuckDBPyConnection, stage: str, rejects: pa.Table) -> list[tuple[int, int]]:
    """How far the rows read lie from their file row numbers, past the rows the reader skipped:
    the k-th skipped row (file row r) moves every row read from position r - k + 1 on by k.
    Returns (position, k) pairs, registered as a table when there are many."""
    rows = np.sort(rejects.column("__row").to_numpy()) if len(rejects) else np.zeros(0, np.int64)
    k = np.arange(1, len(rows) + 1, dtype=np.int64)
    start = rows - k + 1
    last = np.append(start[1:] != start[:-1], True) if len(rows) else np.zeros(0, bool)  # largest k
    shifts = list(zip(start[last].tolist(), k[last].tolist(), strict=True))
    if len(shifts) > _SHIFTS_INLINE:
        con.register(stage + "_shift", pa.table({"g_from": start[last], "k": k[last]}))
    return shifts


def _file_rows(sql: str, stage: str, shifts: list[tuple[int, int]]) -> tuple[str, dict]:
    """``sql`` with its ``__row`` (a row's position among the rows read) as the file's row, and
    the parameters that adds. A few skipped rows (the usual case) make a CASE; many, an ASOF
    join (which costs a sort of every row)."""
    if not shifts:
        return sql, {}
    if len(shifts) > _SHIFTS_INLINE:
        joined = f"""SELECT q.* REPLACE (q.__row + coalesce(sh.k, 0) AS __row)
                     FROM ({sql}) q ASOF LEFT JOIN {stage}_shift sh ON q.__row >= sh.g_from"""
        return joined, {}
    params = {}
    cases = []
    for i, (start, k) in enumerate(reversed(shifts)):
        params[f"shift_from_{i}"], params[f"shift_by_{i}"] = start, k
        cases.append(f"WHEN q.__row >= $shift_from_{i} THEN $shift_by_{i}")
    case = f"CASE {' '.join(cases)} ELSE 0 END"
    return f"SELECT q.* REPLACE (q.__row + {case}::BIGINT AS __row) FROM ({sql}) q", params


def _file_report(prepared: PreparedFile, sha256: str, loaded: int, by_reason: dict, unknown: int) -> dict:
    return {
        "path": str(prepared.file),
        "sha256": sha256,
        "reader": prepared.source.reader,
        "rows_read": prepared.rows,
        "rows_loaded": loaded,
        "rows_quarantined": sum(by_reason.values()),
        "quarantined_by_reason": by_reason,
        "category_unknown": unknown,
    }


def _check_columns(ds: Dataset, file: Path, source: Source) -> None:
    missing = [(key, col) for key, col in ds.source_columns().items() if col not in source.columns]
    if not missing:
        return
    names = list(source.columns)
    hint = ""
    if len(names) == 1:
        for delim in (";", "\t", "|", ","):
            if delim != ds.delimiter and delim in names[0]:
                hint = f"; the header looks {delim!r}-separated: set delimiter = {delim!r}"
                break
    listed = ", ".join(f"'{col}' (key '{key}')" for key, col in missing)
    shown = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
    raise SourceError(f"{file}: column {listed} not in the file (its columns: {shown}){hint}")


def _coord_columns(ds: Dataset) -> str:
    cols = {
        "latlon": (ds.lat, ds.lon),
        "xy": (ds.x, ds.y),
        "point": (ds.point,),
        "geometry": ("geometry",),
    }[ds.location_mode]
    return "+".join(c for c in cols if c)


def _raw_json_sql(source: Source) -> str:
    """The source row as a JSON object of its own columns (the file's, not ours)."""
    parts = [f"'{name.replace(chr(39), chr(39) * 2)}', s.{quote_ident(name)}" for name in source.columns]
    if not parts:
        return "NULL"
    # json_object takes at most a few hundred arguments per call; merge chunks for wide files.
    chunks = [parts[i : i + 100] for i in range(0, len(parts), 100)]
    objects = [f"json_object({', '.join(chunk)})" for chunk in chunks]
    if source.extra:  # the fields of a malformed row beyond the header's
        objects.append(
            "CASE WHEN s.__extra IS NULL THEN '{}'::JSON "
            "ELSE json_object('_extra_fields', s.__extra::JSON) END"
        )
    return objects[0] if len(objects) == 1 else f"json_merge_patch({', '.join(objects)})"


def _text(col: str) -> str:
    return f"NULLIF(TRIM(CAST(s.{quote_ident(col)} AS VARCHAR)), '')"


def _time_sql(ds: Dataset, source: Source, params: dict) -> tuple[str, str]:
    """SQL for (the time text, the parsed TIMESTAMP) of a row; format lists are bound."""
    col_type = source.columns[ds.time].upper()
    text = _text(ds.time)
    if col_type.startswith(("TIMESTAMP", "DATE")):
        parsed = f"CAST(s.{quote_ident(ds.time)} AS TIMESTAMP)"
    elif ds.time_format:
        params["time_formats"] = list(ds.time_format)
        parsed = f"CAST(try_strptime({text}, $time_formats::VARCHAR[]) AS TIMESTAMP)"
    else:
        parsed = f"CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP)"
    if ds.time_of_day:
        tod = _text(ds.time_of_day)
        params["tod_format"] = ds.time_of_day_format or "%H:%M:%S"
        tod_parsed = f"CAST(try_strptime({tod}, $tod_format) AS TIMESTAMP)"
        parsed = (
            f"CASE WHEN {tod} IS NULL THEN date_trunc('day', {parsed}) "
            f"ELSE date_trunc('day', {parsed}) + ({tod_parsed} - TIMESTAMP '1900-01-01') END"
        )
    return text, parsed


def _coords_sql(ds: Dataset, params: dict) -> tuple[str, str, str, str]:
    """SQL for (first text, second text, first number, second number) of a row's place."""
    mode = ds.location_mode
    if mode in ("latlon", "xy"):
        a, b = (_text(ds.lat), _text(ds.lon)) if mode == "latlon" else (_text(ds.x), _text(ds.y))
        if ds.thousands:
            params["thousands"] = ds.thousands
            a, b = f"replace({a}, $thousands, '')", f"replace({b}, $thousands, '')"
    elif mode == "point":
        params["point_re"] = _POINT_RE
        t = _text(ds.point)
        a = f"NULLIF(regexp_extract({t}, $point_re, 1), '')"
        b = f"NULLIF(regexp_extract({t}, $point_re, 2), '')"
        # Text present but not of the "(lat, lon)" shape: keep it so it reads as bad, not missing.
        a = f"CASE WHEN {t} IS NOT NULL THEN coalesce({a}, {t}) END"
        b = f"CASE WHEN {t} IS NOT NULL THEN coalesce({b}, {t}) END"
    else:
        a, b = "CAST(s.__gy AS VARCHAR)", "CAST(s.__gx AS VARCHAR)"
    return a, b, f"TRY_CAST({a} AS DOUBLE)", f"TRY_CAST({b} AS DOUBLE)"


def _row_value_columns(ds: Dataset) -> list[str]:
    """The file's columns ``_row_values`` reads: the stage must keep them for every row."""
    return [c for c in (ds.category, ds.agency_column, ds.record_id, ds.ward_column) if c]


def _row_values(ds: Dataset) -> tuple[str, dict]:
    """SQL over a stage row (alias ``s``) for the text an event keeps besides the file's order:
    category, agency and record id. They are computed where they are used, not stored in the
    stage, whose every column costs time to write."""
    category = f"coalesce({_text(ds.category)}, 'unknown')"
    agency = f"coalesce({_text(ds.agency_column)}, $agency)" if ds.agency_column else "$agency"
    record_id = _text(ds.record_id) if ds.record_id else "NULL::VARCHAR"
    ward_key = f"lower({_text(ds.ward_column)})" if ds.ward_column else "NULL::VARCHAR"
    sql = (
        f"{category} AS __category, {agency} AS __agency, {record_id} AS __record_id, "
        f"{ward_key} AS __ward_key"
    )
    return sql, {"agency": ds.agency}


def _blame_sql(ds: Dataset) -> tuple[str, dict]:
    """SQL for the column to blame for a quarantine reason (``reason``), and its parameters."""
    sql = """CASE
        WHEN reason IN ('malformed_row', 'bad_encoding') THEN NULL
        WHEN reason LIKE '%coordinates' OR reason IN ('not_a_point', 'outside_study_area') THEN $coords_col
        WHEN reason LIKE '%time' THEN $time_col
        WHEN reason = 'bad_weight' THEN $weight_col
        WHEN reason = 'repeated_record' THEN $record_col
    END"""
    params = {
        "record_col": ds.record_id,
        "coords_col": _coord_columns(ds),
        "time_col": ds.time + (f"+{ds.time_of_day}" if ds.time_of_day else ""),
        "weight_col": ds.weight,
    }
    return sql, params


def _stage(
    con: duckdb.DuckDBPyConnection,
    ds: Dataset,
    source: Source,
    stage: str,
    now: dt.datetime,
    placer: Placer | None = None,
    keep_raw: bool = False,
) -> None:
    """One SQL pass over the file: parse every row, give the first reason it cannot be loaded,
    and keep the file's own columns for the quarantine's raw rows.

    With a placer, the same pass computes what placing each point needs (``Placer.digits``),
    and, unless ``keep_raw``, leaves out the file's own columns for valid points in coarse cells
    wholly inside one ward: they will all be loaded, so no quarantine needs their raw rows, and
    the pass need not write most of the file's text a second time. A dataset that quarantines
    repeated records keeps every raw row: any valid row may turn out to be a repeat."""
    keep_raw = keep_raw or ds.repeated_record_id == "quarantine"
    params: dict = dict(source.params)
    a_txt, b_txt, a_num, b_num = _coords_sql(ds, params)
    t_txt, t_parsed = _time_sql(ds, source, params)
    if ds.location_mode == "xy":
        out_of_range = "NOT (isfinite(__a) AND isfinite(__b))"
    else:  # a = latitude, b = longitude
        out_of_range = "NOT (abs(__a) <= 90 AND abs(__b) <= 180)"
    weight_txt = _text(ds.weight) if ds.weight else "NULL"
    params.update(latest=now + dt.timedelta(days=1), earliest=_EARLIEST)
    kept = [quote_ident(c) for c in source.columns] + (["__row"] if source.numbered else [])
    kept += (["__extra"] if source.extra else []) + [*_STAGED, "__reason"]
    sql = f"""
        WITH parsed AS (
            SELECT s.*,
                   {a_txt} AS __a_txt, {b_txt} AS __b_txt, {a_num} AS __a, {b_num} AS __b,
                   {t_txt} AS __t_txt, {t_parsed} AS __ts,
                   {weight_txt} AS __w_txt, TRY_CAST({weight_txt} AS DOUBLE) AS __w
            FROM {source.from_sql} s
        ),
        judged AS (
            SELECT *, coalesce(__w, 1.0) AS __weight,
                   CASE
                       WHEN __problem IS NOT NULL THEN __problem
                       WHEN __a_txt IS NULL OR __b_txt IS NULL THEN 'missing_coordinates'
                       WHEN __a IS NULL OR __b IS NULL THEN 'bad_coordinates'
                       WHEN __a = 0 AND __b = 0 THEN 'zero_coordinates'
                       WHEN {out_of_range} THEN 'invalid_coordinates'
                       WHEN __t_txt IS NULL AND __ts IS NULL THEN 'missing_time'
                       WHEN __ts IS NULL THEN 'bad_time'
                       WHEN __ts > $latest::TIMESTAMP THEN 'future_time'
                       WHEN __ts < $earliest::TIMESTAMP THEN 'bad_time'
                       WHEN __w_txt IS NOT NULL AND __w IS NULL THEN 'bad_weight'
                   END AS __reason
            FROM parsed
        )
        SELECT {", ".join(kept)} FROM judged
        """
    if placer is not None:
        digits, digit_params = placer.digits(f"({sql})", "__a", "__b", kept)
        sql, params = digits, {**params, **digit_params}
        raw = [quote_ident(c) for c in source.columns]
        if raw and not keep_raw:
            interior, flag_params = placer.interior_sql("__key")
            used = {quote_ident(c) for c in _row_value_columns(ds)}
            dropped = [c if c in used else f"CASE WHEN __drop THEN NULL ELSE {c} END AS {c}" for c in raw]
            others = kept[len(raw) :] + placer.digit_columns
            flagged = f"SELECT *, __reason IS NULL AND {interior} AS __drop FROM ({sql})"
            sql = f"SELECT {', '.join(dropped + others)} FROM ({flagged})"
            params.update(flag_params)
    con.execute(f"DROP VIEW IF EXISTS {stage}")
    clear_rejects(con, source)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {stage}_t AS {sql}", params)
    # Only projections lie between the reader and the table, so its rowid is the file's order.
    row = "" if source.numbered else "rowid + 1 AS __row, "
    con.execute(f"CREATE TEMP VIEW {stage} AS SELECT {row}* FROM {stage}_t")


def _to_wgs84(ds: Dataset, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    transformer = Transformer.from_crs(ds.crs, "EPSG:4326", always_xy=True)
    lon, lat = transformer.transform(x, y)
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)


def _outside_reason(ds: Dataset, a: np.ndarray, b: np.ndarray, index: WardIndex) -> np.ndarray:
    """'swapped_coordinates' where the file's two coordinates, swapped, would land in a ward.

    ``a`` and ``b`` are as given in the file: latitude and longitude, or x and y.
    """
    reason = np.full(len(a), "outside_study_area", dtype=object)
    if len(a) == 0:
        return reason
    if ds.location_mode == "xy":
        sw_lat, sw_lon = _to_wgs84(ds, b, a)
    else:
        sw_lat, sw_lon = b, a
    # Only a swapped point inside the study area's bounds can land in a ward.
    minx, miny, maxx, maxy = index.wards.bounds
    ok = (sw_lat >= miny) & (sw_lat <= maxy) & (sw_lon >= minx) & (sw_lon <= maxx)
    if ok.any():
        inside = index.assign(latlng_to_cells(sw_lat[ok], sw_lon[ok]), sw_lat[ok], sw_lon[ok]) >= 0
        sub = reason[ok]
        sub[inside] = "swapped_coordinates"
        reason[ok] = sub
    return reason


def dry_run(
    ds: Dataset, file: Path, now: dt.datetime | None = None, rows: int = 20
) -> tuple[dict, pd.DataFrame]:
    """Read and validate one file without touching any warehouse: counts of the reasons rows
    would be quarantined for (all but the ward test), and the first rows as they would be read."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        source = open_source(con, ds, file, "dry_src")
        _check_columns(ds, file, source)
        source, rejects = _read_stage(con, ds, file, source, "dry", now, None)
        counts = dict(
            con.execute(
                "SELECT coalesce(__reason, 'ok'), count(*) FROM dry GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        )
        if len(rejects):
            counts["malformed_row"] = counts.get("malformed_row", 0) + len(rejects)
        if not counts:
            raise SourceError(f"{file}: the file has a header but no data rows")
        values, params = _row_values(ds)
        preview = con.execute(
            f"""SELECT __row AS row, __a AS first_coordinate, __b AS second_coordinate, __ts AS time,
                       __category AS category, __agency AS agency, __weight AS weight, __reason AS problem
                FROM (SELECT s.*, {values} FROM dry s) ORDER BY __row LIMIT $n""",
            {**params, "n": rows},
        ).df()
        return counts, preview
    finally:
        con.close()
