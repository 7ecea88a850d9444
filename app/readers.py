"""Open one source file for the stage query: its own columns, plus ``__row`` (the 1-based data
row, header excluded), ``__problem`` (why the row itself is unreadable) and, for geometry files,
``__gx``/``__gy`` (WGS84 longitude and latitude of the point).

A source is a FROM-clause with bound parameters, so the stage query reads the file in the same
pass that validates it. CSV goes through DuckDB's parallel reader, which is fast; it yields no
``__row``, because the stage numbers rows by their order. A row with too few or too many fields
does not stop it: DuckDB skips the row and records it, with its line and raw text, in a rejects
table (``csv_rejects`` turns those into quarantined rows, and the stage's numbering is shifted
past them when the rows are written). Only bytes that are not valid in the file's encoding, or a
line longer than DuckDB's buffers, send the file to an exact Python reader that keeps every row
and marks the broken ones: DuckDB's record of such a line replaces the bad bytes, and the
quarantine would no longer show what the file held.

Neither reader is trusted to have found every record: ``check_record_count`` compares the rows
read with an independent count of the file's lines, so that a quote that never closes cannot
swallow the rest of a file into one field unnoticed.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
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
    rejects: str | None = None  # DuckDB's rejects table for this source's rows it skipped
    extra: bool = False  # whether from_sql yields __extra, the fields beyond the header's (JSON)


def open_source(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path, name: str) -> Source:
    """Describe ``file`` as a source; Arrow-backed sources are registered as ``name``."""
    if not file.exists():
        raise SourceError(f"{file}: file not found")
    if file.stat().st_size == 0:
        raise SourceError(f"{file}: the file is empty")
    if ds.format == "csv":
        try:
            return _duckdb_csv_source(con, ds, file, name)
        except (duckdb.Error, csv.Error, UnicodeDecodeError):
            return tolerant_csv_source(con, ds, file, name)
    if ds.format == "parquet":
        return _parquet_source(con, file)
    return _geometry_source(con, ds, file, name)


def _describe(con: duckdb.DuckDBPyConnection, from_sql: str, params: dict) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {from_sql}", params).fetchall()
    internal = ("__row", "__problem", "__gx", "__gy", "__extra")
    return {name: typ for name, typ, *_ in rows if name not in internal}


def _duckdb_csv_source(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path, name: str) -> Source:
    encoding = ds.encoding.lower().replace("_", "-")
    encoding = {"utf8": "utf-8", "latin1": "latin-1", "iso-8859-1": "latin-1"}.get(encoding, encoding)
    header = _unique_names(_read_header(file, ds.delimiter, ds.encoding))
    params = {
        "file": str(file),
        "delim": ds.delimiter,
        "encoding": encoding,
        "max_line": MAX_LINE_BYTES,
        "nulls": ["", *ds.null_values],
        "columns": dict.fromkeys(header, "VARCHAR"),
        "rejects": name + "_rejects",
        "scans": name + "_scans",
    }
    # No row number here: a window over the file would serialise the read. The stage keeps the
    # file's order (only projections lie between the reader and the stage table), so its rowid
    # numbers the rows. The header is read by Python: DuckDB's dialect sniffer gives up on a
    # file whose quoting is broken, and the dialect is the catalogue's anyway.
    from_sql = """(
        SELECT *, NULL::VARCHAR AS __problem
        FROM read_csv($file, header = true, columns = $columns, delim = $delim, quote = '"',
                      escape = '"', encoding = $encoding, max_line_size = $max_line,
                      auto_detect = false, nullstr = $nulls, ignore_errors = true,
                      store_rejects = true, rejects_table = $rejects, rejects_scan = $scans)
    )"""
    columns = _describe(con, from_sql, params)
    return Source(columns, "duckdb", from_sql, params, numbered=False, rejects=name + "_rejects")


def _read_header(file: Path, delimiter: str, encoding: str) -> list[str]:
    """The header's field names; a byte-order mark is not part of the first name."""
    opener = gzip.open if file.suffix == ".gz" else open
    encoding = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    with opener(file, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        header = next(csv.reader(text, delimiter=delimiter, strict=True), None)
    if not header:
        raise SourceError(f"{file}: the file is empty")
    return header


def clear_rejects(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Empty the rejects tables before the source is read again (DuckDB appends to them)."""
    if source.rejects:
        con.execute(f"DROP TABLE IF EXISTS {source.rejects}")
        con.execute(f"DROP TABLE IF EXISTS {source.rejects.removesuffix('_rejects')}_scans")


# Kinds of DuckDB reject that the exact Python reader must take over (see the module docstring).
_PYTHON_ONLY = ("INVALID ENCODING", "LINE SIZE OVER MAXIMUM")


def csv_rejects(
    con: duckdb.DuckDBPyConnection, source: Source, file: Path, lines: LineCount
) -> pa.Table | None:
    """The rows DuckDB skipped, as ``__row`` (the file's data row), ``reason`` and ``raw`` (the
    row's fields as JSON, all of them); None when the exact reader must read the file instead.

    DuckDB numbers a skipped row by its record in the file, header and blank lines included."""
    empty = pa.table(
        {
            "__row": pa.array([], pa.int64()),
            "reason": pa.array([], pa.string()),
            "raw": pa.array([], pa.string()),
        }
    )
    if not source.rejects:
        return empty
    found = con.execute(
        f"""SELECT line, min(line_byte_position), any_value(csv_line), list(DISTINCT error_type)
            FROM {source.rejects} GROUP BY line ORDER BY line"""
    ).fetchall()
    if not found:
        return empty
    if any(kind in _PYTHON_ONLY for *_, kinds in found for kind in kinds):
        return None
    names = list(source.columns)
    rows, raws = [], []
    for line, offset, text, _kinds in found:
        text = text.lstrip("\r\n")
        if "\n" in text.rstrip("\r\n"):
            raise SourceError(_swallowed(file, lines.physical_line(offset) + 1))
        rows.append(line - 1 - lines.blanks_before(offset))
        raws.append(raw_record(names, next(csv.reader([text], delimiter=source.params["delim"]), [])))
    return pa.table(
        {
            "__row": pa.array(rows, pa.int64()),
            "reason": pa.array(["malformed_row"] * len(rows)),
            "raw": pa.array(raws, pa.string()),
        }
    )


def raw_record(names: list[str], fields: list[str]) -> str:
    """A row as the quarantine keeps it: the header's fields by name, and every field beyond
    the header's under ``_extra_fields``, so nothing the row held is lost."""
    record: dict = dict(zip(names, fields, strict=False))
    if len(fields) > len(names):
        record["_extra_fields"] = fields[len(names) :]
    return json.dumps(record, ensure_ascii=False)


def _swallowed(file: Path, line: int) -> str:
    return (
        f"{file}: line {line}: a quoted field opens here and does not close where a field should, "
        "so the rows after it cannot be told apart; correct the quotes of that row"
    )


@dataclass(frozen=True)
class LineCount:
    """An independent count of a text file's lines, and where its blank lines are."""

    lines: int  # lines, the last counted even without a final newline
    blank_starts: np.ndarray  # byte offsets of blank lines (skipped by both readers)
    file: Path  # to find a line number from a byte offset, when one is needed

    def blanks_before(self, offset: int) -> int:
        return int(np.searchsorted(self.blank_starts, offset))

    def physical_line(self, offset: int) -> int:
        """How many lines end before byte ``offset`` (0-based line number of that byte)."""
        opener = gzip.open if self.file.suffix == ".gz" else open
        with opener(self.file, "rb") as handle:
            return handle.read(offset).count(b"\n")


_BLANK = re.compile(rb"\n(?=\r?\n)")
_CHUNK = 1 << 24


def count_lines(file: Path) -> LineCount:
    """Count the file's lines and find its blank lines, reading it in chunks of 16 MB."""
    opener = gzip.open if file.suffix == ".gz" else open
    lines, offset, tail, last = 0, 0, b"", b""
    blanks: list[int] = []
    with opener(file, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            lines += chunk.count(b"\n")
            data = tail + chunk
            if b"\n\n" in data or b"\n\r\n" in data:
                base = offset - len(tail)
                for match in _BLANK.finditer(data):
                    start = base + match.start() + 1
                    if not blanks or start > blanks[-1]:
                        blanks.append(start)
            offset += len(chunk)
            tail, last = data[-2:], chunk[-1:]
    if last and last != b"\n":
        lines += 1
    return LineCount(lines, np.asarray(blanks, dtype=np.int64), file)


def check_record_count(
    con: duckdb.DuckDBPyConnection, source: Source, file: Path, lines: LineCount, rows_read: int
) -> None:
    """Refuse a file whose rows read (loaded or quarantined) fall short of its records.

    A file's records are its lines, less the header and blank lines, less the newlines that
    properly quoted fields of the rows read hold. A field whose quote never closes holds the
    lines of the rows after it: those rows are then missing from the count."""
    expected = lines.lines - 1 - len(lines.blank_starts)
    if rows_read == expected:
        return
    inside = _newlines_in_fields(con, source)
    if rows_read == expected - inside:
        return
    raise SourceError(
        f"{file}: {rows_read:,} rows read where the file has {expected - inside:,} records (lines, "
        "less the header, blank lines and line breaks inside quoted fields): a quote that does not "
        "close has merged rows; correct the quotes, or save the file again as CSV"
    )


def _newlines_in_fields(con: duckdb.DuckDBPyConnection, source: Source) -> int:
    """Line breaks inside the fields of the rows read, less those that end a blank line inside
    a field (``count_lines`` has counted those as blank lines already): one per run of breaks."""
    counts = []
    for name in source.columns:
        col = "replace(s." + '"' + name.replace('"', '""') + '"' + ", chr(13) || chr(10), chr(10))"
        counts.append(f"coalesce(len(regexp_extract_all({col}, '\\n+')), 0)")
    if not counts:
        return 0
    sql = f"SELECT coalesce(sum({' + '.join(counts)}), 0) FROM {source.from_sql} s"
    clear_rejects(con, source)
    return int(con.execute(sql, source.params).fetchall()[0][0])


def tolerant_csv_source(con: duckdb.DuckDBPyConnection, ds: Dataset, file: Path, name: str) -> Source:
    table = read_csv_tolerant(file, ds.delimiter, ds.encoding, ds.null_values)
    con.register(name, table)
    return Source(_describe(con, name, {}), "python", name, extra=True)


def read_csv_tolerant(
    file: Path, delimiter: str, encoding: str, null_values: tuple[str, ...] = ()
) -> pa.Table:
    """Every row of a CSV file, marking rows with the wrong number of fields or bad bytes; the
    fields of a row beyond the header's are kept in ``__extra`` (a JSON list).

    The reader is strict about quotes: a quoted field that runs to the end of the file, or whose
    closing quote is not followed by a delimiter, fails the file naming the line it opens on,
    instead of taking the rows after it into one field."""
    nulls = {"", *null_values}
    csv.field_size_limit(sys.maxsize)
    opener = gzip.open if file.suffix == ".gz" else open
    start = 1
    try:
        with opener(file, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
            reader = csv.reader(text, delimiter=delimiter, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                raise SourceError(f"{file}: the file is empty") from None
            width = len(header)
            names = _unique_names(header)
            columns: list[list[str | None]] = [[] for _ in range(width)]
            problems: list[str | None] = []
            extras: list[str | None] = []
            start = reader.line_num + 1
            for record in reader:
                start = reader.line_num + 1
                if not record:
                    continue  # a blank line is not a row
                problem, extra = None, None
                if len(record) != width:
                    problem = "malformed_row"
                    extra = json.dumps([_replace_bad_bytes(v) for v in record[width:]], ensure_ascii=False)
                    record = (record + [None] * width)[:width]
                if any(v and _SURROGATE.search(v) for v in record):
                    problem = problem or "bad_encoding"
                    record = [_replace_bad_bytes(v) for v in record]
                for col, value in zip(columns, record, strict=True):
                    col.append(None if value in nulls else value)
                problems.append(problem)
                extras.append(extra if extra != "[]" else None)
    except csv.Error as exc:
        raise SourceError(f"{_swallowed(file, start)} ({exc})") from exc
    except LookupError as exc:
        raise SourceError(f"{file}: unknown encoding '{encoding}'") from exc
    arrays = {n: pa.array(c, type=pa.string()) for n, c in zip(names, columns, strict=True)}
    arrays["__row"] = pa.array(np.arange(1, len(problems) + 1, dtype=np.int64))
    arrays["__problem"] = pa.array(problems, type=pa.string())
    arrays["__extra"] = pa.array(extras, type=pa.string())
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
