"""Adding a dataset from the dashboard: save the file, check the analyst's column mapping, and
load it through the same engine as the command line, without harming what is loaded.

An upload's catalogue entry goes into the uploads list beside the warehouse (see
``app.ingest.uploads_path``), which every load reads with the catalogue. If the new dataset
cannot be loaded, its entry is taken out again and the warehouse is as it was.

A file added in the browser is read by the web server's machine on behalf of whoever uploaded
it, so the check and the load run in a child process with a memory limit, and a file with more
rows than a cap is refused before it is read: a tiny Parquet file can hold millions of identical
rows. Bigger files belong to ``python -m app load``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import multiprocessing
import os
import re
import resource
import sys
import time
import tomllib
import types
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pandas as pd

from app.catalog import (
    UPLOAD_SEPARATOR,
    Catalog,
    CatalogError,
    Dataset,
    entry_toml,
    load_catalog,
    parse_catalog,
)
from app.ingest import REASONS, dry_run, load, uploads_path
from app.readers import SourceError

ALLOWED = (".csv", ".parquet", ".geojson", ".json")
MAX_ROWS_VARIABLE = "COMMON_GROUND_UPLOAD_MAX_ROWS"
MEMORY_VARIABLE = "COMMON_GROUND_UPLOAD_MEMORY_MB"
DEFAULT_MAX_ROWS = 5_000_000
DEFAULT_MEMORY_MB = 4096
STALE_SECONDS = 24 * 3600  # an upload nobody loaded within a day is deleted at the next upload
BIG_FILES = "load bigger files with `python -m app load`"


class UploadLimitError(ValueError):
    """A file added in the browser is over the row cap, or its check or load hit the memory limit."""


def max_rows() -> int:
    """The most rows a file added in the browser may have (COMMON_GROUND_UPLOAD_MAX_ROWS)."""
    return _positive_int(MAX_ROWS_VARIABLE, DEFAULT_MAX_ROWS)


def memory_limit_mb() -> int:
    """The memory a check or load started from the browser may use (COMMON_GROUND_UPLOAD_MEMORY_MB)."""
    return _positive_int(MEMORY_VARIABLE, DEFAULT_MEMORY_MB)


def _positive_int(variable: str, default: int) -> int:
    value = os.environ.get(variable, "").replace("_", "").replace(",", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


# --------------------------------------------------------------------------------------------
# Saving and previewing


def save_upload(db_path: str | Path, filename: str, data: bytes) -> Path:
    """Keep the uploaded bytes under the warehouse's uploads folder with a safe, unique name.

    The path returned is absolute: the entry that names it is checked against the catalogue's
    folder and stored beside the warehouse, so a path relative to the working directory would
    be read relative to the wrong folder."""
    suffix = Path(filename).suffix.lower()
    if suffix not in ALLOWED:
        raise ValueError(f"{filename}: upload a CSV, Parquet or GeoJSON file")
    if not data:
        raise ValueError(f"{filename}: the file is empty")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(filename).stem).strip("_")[:60] or "upload"
    digest = hashlib.sha256(data).hexdigest()[:10]
    folder = uploads_folder(db_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{digest}{suffix}"
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    clean_stale_uploads(db_path, keep=path)
    return path


def uploads_folder(db_path: str | Path) -> Path:
    """Where uploaded files are kept: beside the warehouse, as an absolute path."""
    return Path(os.path.abspath(Path(db_path).parent / "uploads"))


def clean_stale_uploads(
    db_path: str | Path, keep: Path | None = None, now: float | None = None
) -> list[Path]:
    """Delete uploaded files older than a day that no entry of the uploads list names: files
    that were checked but never loaded would otherwise pile up. Nothing is deleted while the
    uploads list cannot be read, as the files it names cannot be told apart."""
    named = _named_files(db_path)
    if named is None:
        return []
    cutoff = (now if now is not None else time.time()) - STALE_SECONDS
    removed = []
    for path in uploads_folder(db_path).glob("*"):
        if path == keep or path in named or not path.is_file() or path.stat().st_mtime >= cutoff:
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _named_files(db_path: str | Path) -> set[Path] | None:
    """The files the uploads list names (absolute), or None when the list does not parse."""
    uploads = uploads_path(db_path)
    if not uploads.exists():
        return set()
    try:
        raw = tomllib.loads(uploads.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    named: set[Path] = set()
    entries = raw.get("datasets", [])
    for entry in entries if isinstance(entries, list) else []:
        pattern = entry.get("path") if isinstance(entry, dict) else None
        if isinstance(pattern, str):
            full = os.path.abspath(uploads.parent / Path(pattern).expanduser())
            named.update(Path(p) for p in glob.glob(full))
    return named


def raw_preview(path: Path, rows: int = 20) -> pd.DataFrame:
    """The file's first rows as they are, for the analyst to map columns from (and, with more
    rows, the sample ``app.suggest`` suggests the mapping from)."""
    import duckdb

    if path.suffix in (".geojson", ".json"):
        import geopandas as gpd

        frame = gpd.read_file(path, rows=rows)
        return pd.DataFrame(frame.drop(columns="geometry")).assign(geometry=frame.geometry.to_wkt())
    con = duckdb.connect()
    try:
        if path.suffix == ".parquet":
            return con.execute("SELECT * FROM read_parquet($p) LIMIT $n", {"p": str(path), "n": rows}).df()
        return con.execute(
            "SELECT * FROM read_csv($p, all_varchar = true, header = true) LIMIT $n",
            {"p": str(path), "n": rows},
        ).df()
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# The row cap


def count_rows(path: Path) -> int:
    """How many rows the file holds, without reading them: Parquet's metadata, the features of
    a GeoJSON file, or the lines of a CSV file after its header (counted a block at a time)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if path.suffix in (".geojson", ".json"):
        import pyogrio

        return int(pyogrio.read_info(path)["features"])
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(lines + (last != b"\n") - 1, 0)


def check_row_cap(path: Path) -> int:
    """Refuse a file with more rows than a browser upload may have; return its row count."""
    try:
        rows = count_rows(path)
    except Exception as exc:  # an unreadable file: the check itself says why
        raise SourceError(f"{path.name}: cannot be read: {exc}") from exc
    cap = max_rows()
    if rows > cap:
        raise UploadLimitError(
            f"{path.name} has {rows:,} rows; a file added in the browser may have at most {cap:,} "
            f"(set {MAX_ROWS_VARIABLE} to change this): {BIG_FILES}."
        )
    return rows


# --------------------------------------------------------------------------------------------
# Check and load


def agency_space(agency: str) -> str:
    """The start of every id an agency's people give datasets they add in the browser
    (``catalog.UPLOAD_SEPARATOR``): "Fairhaven Police" gives ``fairhaven_police__``."""
    slug = re.sub(r"[^a-z0-9]+", "_", agency.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = f"agency_{slug}".rstrip("_")
    return slug + UPLOAD_SEPARATOR


def upload_id(name: str, agency: str | None) -> str:
    """The id of a dataset added in the browser: as typed in local mode (one person sees every
    dataset), else in the person's agency's space, so the id never clashes with a dataset of
    another agency and an "already used" never tells them of one."""
    return name if agency is None else agency_space(agency) + name


def check(
    catalog_path: str | Path, db_path: str | Path, entry: dict, rows: int = 20
) -> tuple[Dataset, dict, pd.DataFrame]:
    """Validate an entry as the catalogue would, then read the file as a load would: the counts
    of rows per outcome and the first ``rows`` rows as read. Raises CatalogError (mistakes in
    the mapping), SourceError (an unreadable file) or UploadLimitError (too many rows, or more
    memory than a browser upload may use)."""
    entry = _absolute_path(entry)
    catalog = load_catalog(catalog_path, uploads_path(db_path))
    if entry.get("id") in {d.id for d in catalog.datasets}:
        raise CatalogError([f"dataset '{entry['id']}': key 'id': already used; choose another id"])
    raw = tomllib.loads(Path(catalog_path).read_text(encoding="utf-8"))
    proposed = {"study_area": raw["study_area"], "datasets": [entry]}
    parsed: Catalog = parse_catalog(proposed, Path(catalog_path), added=True)
    ds = parsed.datasets[0]
    for file in ds.files:
        check_row_cap(file)
    counts, preview = _limited(dry_run, ds, ds.files[0], None, rows, what="The check")
    return ds, counts, preview


def preview_points(ds: Dataset, preview: pd.DataFrame) -> pd.DataFrame:
    """The rows of a check's preview that read cleanly, placed in degrees (``lat``, ``lon``),
    with their time and category: what the preview map draws. Grid coordinates are projected
    from the entry's CRS as the load would; a row the projection cannot place is left out (the
    load quarantines it as invalid_coordinates)."""
    good = preview[preview["problem"].isna()]
    a = pd.to_numeric(good["first_coordinate"], errors="coerce").to_numpy(float)
    b = pd.to_numeric(good["second_coordinate"], errors="coerce").to_numpy(float)
    if ds.location_mode == "xy":
        from pyproj import Transformer

        lon, lat = Transformer.from_crs(ds.crs, "EPSG:4326", always_xy=True).transform(a, b)
        lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    else:
        lat, lon = a, b
    frame = pd.DataFrame(
        {
            "row": good["row"].to_numpy(),
            "lat": lat,
            "lon": lon,
            "time": good["time"].astype(str).to_numpy(),
            "category": good["category"].astype(str).to_numpy(),
        }
    )
    placed = np.isfinite(frame["lat"]) & np.isfinite(frame["lon"])
    placed &= frame["lat"].abs().le(90) & frame["lon"].abs().le(180)
    return frame[placed].reset_index(drop=True)


def preview_problems(preview: pd.DataFrame) -> pd.DataFrame:
    """The rows of a check's preview that a load would quarantine, with the reason in words and
    what the row holds where the mapping reads it."""
    bad = preview[preview["problem"].notna()]
    return pd.DataFrame(
        {
            "row": bad["row"].to_numpy(),
            "reason": [REASONS.get(p, p) for p in bad["problem"]],
            "first coordinate": bad["first_coordinate"].to_numpy(),
            "second coordinate": bad["second_coordinate"].to_numpy(),
            "time": bad["time"].astype(str).where(bad["time"].notna(), "").to_numpy(),
            "category": bad["category"].to_numpy(),
        }
    )


def add(catalog_path: str | Path, db_path: str | Path, entry: dict) -> dict:
    """Append the entry to the uploads list and load; on failure take it out again and delete
    the uploaded file (unless another entry names it)."""
    entry = _absolute_path(entry)
    check(catalog_path, db_path, entry)
    uploads = uploads_path(db_path)
    before = uploads.read_text(encoding="utf-8") if uploads.exists() else ""
    if _named_files(db_path) is None:
        raise CatalogError(
            [f"{uploads}: the list of added datasets is not valid TOML; fix or remove it first"]
        )
    stored = {**entry, "path": _stored_path(Path(entry["path"]), uploads)}
    _write(uploads, before + ("\n" if before else "") + entry_toml(stored))
    try:
        report = _limited(load, catalog_path, db_path, what="The load")
        mine = next((d for d in report["datasets"] if d["id"] == entry["id"]), None)
    except (UploadLimitError, SourceError) as exc:
        mine = {"id": entry["id"], "status": "failed", "error": str(exc)}
    if mine is None:
        mine = {"id": entry["id"], "status": "failed", "error": f"the entry could not be read from {uploads}"}
    if mine.get("status") != "loaded":
        _write(uploads, before)
        _limited(
            load, catalog_path, db_path, what="The load"
        )  # drops nothing: the failed one replaced nothing
        _discard(Path(entry["path"]), db_path)
    return mine


def _absolute_path(entry: dict) -> dict:
    """The entry with its file as an absolute path (a relative one is read from the working
    directory, where the dashboard saved it), so no folder can be prefixed to it twice."""
    if not isinstance(entry.get("path"), str) or not entry["path"]:
        return entry
    return {**entry, "path": os.path.abspath(Path(entry["path"]).expanduser())}


def _stored_path(path: Path, uploads: Path) -> str:
    """The path as the uploads list keeps it: relative to the list's folder when the file is
    under it, so the warehouse folder can move; absolute otherwise."""
    folder = Path(os.path.abspath(uploads.parent))
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def _discard(path: Path, db_path: str | Path) -> None:
    """Delete an uploaded file that failed to load; only files in the uploads folder that no
    entry names, never an analyst's own file elsewhere."""
    named = _named_files(db_path)
    if named is not None and path.parent == uploads_folder(db_path) and path not in named:
        path.unlink(missing_ok=True)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Running with a memory limit


def _limited(func: Callable, *args, what: str):
    """Run ``func(*args)`` in a child process whose address space is capped, so that a file
    that needs more memory fails on its own instead of taking the web server down."""
    limit = memory_limit_mb()
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(1, mp_context=context, initializer=_cap_memory, initargs=(limit,)) as pool:
            with _plain_main():
                future = pool.submit(_run, func, *args)  # the child process starts here
            outcome, value = future.result()
    except BrokenProcessPool:
        outcome, value = "memory", ""
    if outcome == "ok":
        return value
    if outcome == "memory":
        raise UploadLimitError(
            f"{what} needed more than {limit:,} MB of memory, the limit for a file added in the browser "
            f"(set {MEMORY_VARIABLE} to change it): {BIG_FILES}."
        )
    if outcome == "catalog":
        raise CatalogError(value)
    raise SourceError(value)


@contextlib.contextmanager
def _plain_main():
    """A spawned child first re-runs the parent's ``__main__`` (by path or by name). Under
    Streamlit that is the dashboard's entry point, which would draw the whole app in the child
    and fail there; while the child starts, the parent's ``__main__`` is an empty module."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


def _cap_memory(limit_mb: int) -> None:
    limit = limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _run(func: Callable, *args) -> tuple[str, object]:
    """In the child: the result, or the kind and words of the failure (exceptions of DuckDB do
    not all survive pickling, and a traceback must not reach the user)."""
    import duckdb

    try:
        return "ok", func(*args)
    except (MemoryError, duckdb.OutOfMemoryException):
        return "memory", ""
    except CatalogError as exc:
        return "catalog", exc.problems
    except Exception as exc:  # any other failure is reported in words, as the load does
        return "error", str(exc)
