"""Open one source file for the stage query: its own columns, plus ``__row`` (the 1-based data
row, header excluded), ``__problem`` (why the row itself is unreadable) and, for geometry files,
``__gx``/``__gy`` (WGS84 longitude and latitude of the point).

A source is a FROM-clause with bound parameters, so the stage query reads the file in the same
pass that validates it. CSV goes through DuckDB's strict parallel reader, which is fast; it yields
no ``__row``, because the stage numbers rows by their order. When a file is structurally broken
(a row with too few or too many fields, bytes that are not valid in its encoding), DuckDB can
skip such rows but can then no longer say which row is which, so ``tolerant_csv_source`` reads
it again with an exact Python reader that keeps every row and marks the broken ones.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import shapely

from app.catalog import Dataset

# DuckDB sizes its read buffers from this; a longer line falls back to the exact reader.
MAX_LINE_BYTES = 8 * 1024 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")


class SourceError(ValueError):
    """A file that cannot be loaded at all; the message names the file and, where known, the
    row and the column."""


@dataclass(frozen=True)
class Source:
    columns: dict[str, str]  # the file's own columns and their DuckDB types
    reader: str  # "duckdb", "python" (tolerant CSV) or "geometry"
    from_sql: str  # a FROM-clause item yielding the columns plus __row and __problem
    params: dict = field(default_factory=dict)  # bound parameters of from_sql
    numbered: bool = True  # whether from_sql yields __row; if not, the stage's order numbers rows


def open_source(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path, name: str) -> Source:
    """Describe ``file`` as a source; Arrow-backed sources are registered as ``name``."""
    if not file.exists():
        raise SourceError(f"{file}: file not found")
    if file.stat().st_size == 0:
        raise SourceError(f"{file}: the file is empty")
    if ds.format == "csv":
        try:
            return _duckdb_csv_source(con, ds, file)
        except duckdb.Error:
            return tolerant_csv_source(con, ds, file, name)
    if ds.format == "parquet":
        return _parquet_source(con, file)
    return _geometry_source(con, ds, file, name)


def _describe(con: duckdb.DuckDBPyConnection, from_sql: str, params: dict) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {from_sql}", params).fetchall()
    internal = ("__row", "__problem", "__gx", "__gy")
    return {name: typ for name, typ, *_ in rows if name not in internal}


def _duckdb_csv_source(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path) -> Source:
    encoding = ds.encoding.lower().replace("_", "-")
    encoding = {"utf8": "utf-8", "latin1": "latin-1", "iso-8859-1": "latin-1"}.get(encoding, encoding)
    params = {
        "file": str(file),
        "delim": ds.delimiter,
        "encoding": encoding,
        "max_line": MAX_LINE_BYTES,
        "nulls": ["", *ds.null_values],
    }
    # No row number here: a window over the file would serialise the read. The stage keeps the
    # file's order (only projections lie between the reader and the stage table), so its rowid
    # numbers the rows.
    from_sql = """(
        SELECT *, NULL::VARCHAR AS __problem
        FROM read_csv($file, header = true, all_varchar = true, delim = $delim, quote = '"',
                      escape = '"', encoding = $encoding, max_line_size = $max_line,
                      auto_detect = true, nullstr = $nulls)
    )"""
    return Source(_describe(con, from_sql, params), "duckdb", from_sql, params, numbered=False)


def tolerant_csv_source(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path, name: str) -> Source:
    table = read_csv_tolerant(file, ds.delimiter, ds.encoding, ds.null_values)
    con.register(name, table)
    return Source(_describe(con, name, {}), "python", name)


def read_csv_tolerant(
    file: Path, delimiter: str, encoding: str, null_values: tuple[str, ...] = ()
) -> pa.Table:
    """Every row of a CSV file, marking rows with the wrong number of fields or bad bytes."""
    nulls = {"", *null_values}
    csv.field_size_limit(sys.maxsize)
    opener = gzip.open if file.suffix == ".gz" else open
    try:
        with opener(file, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
            reader = csv.reader(text, delimiter=delimiter)
            try:
                header = next(reader)
            except StopIteration:
                raise SourceError(f"{file}: the file is empty") from None
            width = len(header)
            names = _unique_names(header)
            columns: list[list[str | None]] = [[] for _ in range(width)]
            problems: list[str | None] = []
            for record in reader:
                if not record:
                    continue  # a blank line is not a row
                problem = None
                if len(record) != width:
                    problem = "malformed_row"
                    record = (record + [None] * width)[:width]
                if any(v and _SURROGATE.search(v) for v in record):
                    problem = problem or "bad_encoding"
                    record = [_replace_bad_bytes(v) for v in record]
                for col, value in zip(columns, record, strict=True):
                    col.append(None if value in nulls else value)
                problems.append(problem)
    except csv.Error as exc:
        raise SourceError(f"{file}: row {reader.line_num}: not readable as CSV: {exc}") from exc
    except LookupError as exc:
        raise SourceError(f"{file}: unknown encoding '{encoding}'") from exc
    arrays = {n: pa.array(c, type=pa.string()) for n, c in zip(names, columns, strict=True)}
    arrays["__row"] = pa.array(np.arange(1, len(problems) + 1, dtype=np.int64))
    arrays["__problem"] = pa.array(problems, type=pa.string())
    return pa.table(arrays)


def _replace_bad_bytes(value: str | None) -> str | None:
    if value is None:
        return None
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _unique_names(header: list[str]) -> list[str]:
    """Column names as DuckDB would give them: blanks named, duplicates suffixed."""
    seen: dict[str, int] = {}
    names = []
    for i, name in enumerate(header):
        name = _replace_bad_bytes(name) or f"column{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        names.append(name)
    return names


def _parquet_source(con: duckdb.DuckDBPyConnection, file: Path) -> Source:
    from_sql = """(
        SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS __row, NULL::VARCHAR AS __problem
        FROM read_parquet($file, file_row_number = true)
    )"""
    params = {"file": str(file)}
    try:
        return Source(_describe(con, from_sql, params), "duckdb", from_sql, params)
    except duckdb.Error as exc:
        raise SourceError(f"{file}: not a readable Parquet file: {exc}") from exc


def _geometry_source(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path, name: str) -> Source:
    import geopandas as gpd  # heavy import, only for geometry files

    try:
        gdf = gpd.read_file(file, layer=ds.layer) if ds.layer else gpd.read_file(file)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise SourceError(f"{file}: not a readable geometry file: {exc}") from exc
    if ds.crs:
        gdf = gdf.set_crs(ds.crs, allow_override=True)
    elif gdf.crs is None:
        gdf = gdf.set_crs("EPSG:4326")
    if gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs("EPSG:4326")
    geoms = gdf.geometry.values
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    is_point = shapely.get_type_id(geoms) == 0
    gx = np.where(is_point & ~empty, shapely.get_x(geoms), np.nan)
    gy = np.where(is_point & ~empty, shapely.get_y(geoms), np.nan)
    problem = np.where(empty, "missing_coordinates", np.where(is_point, None, "not_a_point"))
    attrs = gdf.drop(columns=gdf.geometry.name)
    table = pa.Table.from_pandas(attrs, preserve_index=False)
    table = table.append_column("__row", pa.array(np.arange(1, len(gdf) + 1, dtype=np.int64)))
    table = table.append_column("__problem", pa.array(problem.tolist(), type=pa.string()))
    table = table.append_column("__gx", pa.array(gx))
    table = table.append_column("__gy", pa.array(gy))
    con.register(name, table)
    return Source(_describe(con, name, {}), "geometry", name)
