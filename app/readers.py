"""Open one source file as a DuckDB temp table ``src``: its own columns, plus ``__row`` (the
1-based data row, header excluded), ``__problem`` (why the row itself is unreadable) and, for
geometry files, ``__gx``/``__gy`` (WGS84 longitude and latitude of the point).

CSV goes through DuckDB's strict parallel reader, which is fast and numbers rows exactly. When a
file is structurally broken (a row with too few or too many fields, bytes that are not valid in
its encoding), DuckDB can skip such rows but can then no longer say which row is which, so the
file is read again by an exact Python reader that keeps every row and marks the broken ones.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import sys
from dataclasses import dataclass
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
    rows: int
    reader: str  # "duckdb", "python" (tolerant CSV) or "geometry"


def open_source(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path, table: str = "src") -> Source:
    """Read ``file`` into the temp table ``table`` (a name chosen by the code, never a user).

    Call it outside any transaction: DuckDB aborts a transaction on the first failed statement,
    and the fast CSV path is allowed to fail.
    """
    source = _open(con, ds, file)
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"ALTER TABLE src RENAME TO {table}")
    return source


def _open(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path) -> Source:
    if not file.exists():
        raise SourceError(f"{file}: file not found")
    if file.stat().st_size == 0:
        raise SourceError(f"{file}: the file is empty")
    con.execute("DROP TABLE IF EXISTS src")
    if ds.format == "csv":
        source = _open_csv(con, ds, file)
    elif ds.format == "parquet":
        source = _open_parquet(con, file)
    else:
        source = _open_geometry(con, ds, file)
    if source.rows == 0:
        raise SourceError(f"{file}: the file has a header but no data rows")
    return source


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute("DESCRIBE src").fetchall()
    internal = ("__row", "__problem", "__gx", "__gy")
    return {name: typ for name, typ, *_ in rows if name not in internal}


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM src").fetchone()[0]


def _open_csv(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path) -> Source:
    encoding = ds.encoding.lower().replace("_", "-")
    duck_encoding = {"utf8": "utf-8", "latin1": "latin-1", "iso-8859-1": "latin-1"}.get(encoding, encoding)
    try:
        con.execute(
            """
            CREATE TEMP TABLE src AS
            SELECT *, row_number() OVER () AS __row, NULL::VARCHAR AS __problem
            FROM read_csv(?, header = true, all_varchar = true, delim = ?, quote = '"',
                          escape = '"', encoding = ?, max_line_size = ?, auto_detect = true,
                          nullstr = ?)
            """,
            [str(file), ds.delimiter, duck_encoding, MAX_LINE_BYTES, ["", *ds.null_values]],
        )
        return Source(_columns(con), _count(con), "duckdb")
    except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.IOException):
        con.execute("DROP TABLE IF EXISTS src")
    table = read_csv_tolerant(file, ds.delimiter, ds.encoding, ds.null_values)
    con.register("src_arrow", table)
    try:
        con.execute("CREATE TEMP TABLE src AS SELECT * FROM src_arrow")
    finally:
        con.unregister("src_arrow")
    return Source(_columns(con), table.num_rows, "python")


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


def _open_parquet(con: duckdb.DuckDBPyConnection, file: Path) -> Source:
    try:
        con.execute(
            """
            CREATE TEMP TABLE src AS
            SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS __row,
                   NULL::VARCHAR AS __problem
            FROM read_parquet(?, file_row_number = true)
            """,
            [str(file)],
        )
    except duckdb.Error as exc:
        raise SourceError(f"{file}: not a readable Parquet file: {exc}") from exc
    return Source(_columns(con), _count(con), "duckdb")


def _open_geometry(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path) -> Source:
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
    con.register("src_arrow", table)
    try:
        con.execute("CREATE TEMP TABLE src AS SELECT * FROM src_arrow")
    finally:
        con.unregister("src_arrow")
    return Source(_columns(con), len(gdf), "geometry")
