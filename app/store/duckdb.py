"""DuckDB's side of the store: the record-key function a load calls, and one way to open what a
load wrote, a warehouse file or a store folder, as a connection on which the warehouse's table
and view names resolve.

A store folder (``app.store.layout``) opens as an in-memory DuckDB database with one view per
warehouse table over its Parquet files; the events view turns the stored BIGINT bits of cells
and record keys back into UBIGINT, so every query reads either source alike.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from app.record_key import splitmix64
from app.store import facts, layout

RECORD_KEY_FUNCTION = "__record_key"
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# Held in memory when a store folder opens, beside the roll-up: the catalogue's small tables,
# and smaller roll-ups derived from the roll-up for the map's most frequent questions (see
# ``_derive``). They are worked out on opening, not stored: the layout both engines write
# stays as it is, and every figure read from them is the roll-up's own.
_IN_MEMORY = ("meta", "wards", "datasets")
WARD_ROLLUP = "ward_rollup"  # ward, month, dataset, agency, kind, category
CELL_ROLLUP = "cell_rollup"  # resolution-9 cell, month, dataset, agency, kind
CELL_TOTALS = "cell_totals"  # resolution-9 cell, dataset, agency, kind: every month together
UNITS = "store_units"  # every (dataset, agency) pair of the records


def _record_key_arrow(seeds: pa.Array, rows: pa.Array) -> pa.Array:
    """``app.record_key.record_keys`` over Arrow batches (a file's seed is the same on every
    row, so the seed travels per row rather than as a name)."""
    s = seeds.to_numpy(zero_copy_only=False).astype(np.uint64)
    r = rows.to_numpy(zero_copy_only=False).astype(np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return pa.array(splitmix64(s ^ (r * _GOLDEN)), type=pa.uint64())


def register_record_key(con: duckdb.DuckDBPyConnection) -> None:
    """Make ``__record_key(seed UBIGINT, row BIGINT) -> UBIGINT`` callable on ``con``: the
    portable key of ``app.record_key`` in numpy, vectorised (DuckDB's own integer arithmetic
    refuses to wrap, and 64-bit multiplication in 32-bit halves costs ten times as much)."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE function_name = ?", [RECORD_KEY_FUNCTION]
    ).fetchall()[0][0]
    if found:
        return
    con.create_function(
        RECORD_KEY_FUNCTION,
        _record_key_arrow,
        ["UBIGINT", "BIGINT"],
        "UBIGINT",
        type="arrow",
        null_handling="special",
        side_effects=False,
    )


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _folder_glob(folder: Path) -> str:
    return _quoted(folder / "**" / "*.parquet")


def _has_parquet(folder: Path) -> bool:
    return folder.is_dir() and any(folder.rglob("*.parquet"))


def _empty_select(name: str) -> str:
    """A relation with the columns of a partitioned table and no rows."""
    schema = layout.SCHEMAS[name]
    types = {
        pa.string(): "VARCHAR",
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.int8(): "TINYINT",
        pa.float64(): "DOUBLE",
        pa.date32(): "DATE",
        pa.timestamp("us"): "TIMESTAMP",
    }
    cols = [f"CAST(NULL AS VARCHAR) AS {layout.PARTITION}"]
    cols += [f"CAST(NULL AS {types[f.type]}) AS {f.name}" for f in schema]
    return f"SELECT {', '.join(cols)} WHERE false"


def _partitioned_select(folder: Path, name: str) -> str:
    """The folder's Parquet files with the partition column, columns in the layout's order.

    The partition is read as text whatever its values look like, and the columns the filters
    test (day, hour, month) are read as stored, so that their row-group statistics prune; only
    the record's time is cast (an engine may write it with a time zone) and cells are read as
    UBIGINT (their top bit is 0)."""
    if not _has_parquet(folder):
        return _empty_select(name)
    cols = [layout.PARTITION]
    for field in layout.SCHEMAS[name]:
        if field.name in ("h3", "cell11", "cell9"):
            cols.append(f"CAST({field.name} AS UBIGINT) AS {field.name}")
        elif field.name == "rkey" and name == "events":
            cols.append(f"{layout.unsigned_sql(field.name)} AS {field.name}")
        elif field.name == "ts":
            cols.append("CAST(ts AS TIMESTAMP) AS ts")
        else:
            cols.append(field.name)
    source = (
        f"read_parquet({_folder_glob(folder)}, hive_partitioning = true, "
        f"hive_types = {{'{layout.PARTITION}': VARCHAR}}, union_by_name = true)"
    )
    return f"SELECT {', '.join(cols)} FROM {source}"


def open_store(path: str | Path, memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    """An in-memory connection with views named as the warehouse's tables over a store folder.

    ``events`` has the warehouse view's columns (plus ``rkey``), cells and keys as UBIGINT;
    ``cube`` and, where written, ``rollup`` (a table in memory) have theirs, cells as UBIGINT
    and ``rkey`` as the stored BIGINT bits (XORed as they are; ``CUBE_KEY_SQL`` reads a
    group's key back).
    """
    path = Path(path)
    manifest = layout.read_manifest(path)
    con = duckdb.connect()
    con.execute("SET memory_limit = ?", [memory_limit])
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")
    for name in layout.TABLES:
        file = path / f"{name}.parquet"
        cols = ", ".join(layout.SCHEMAS[name].names)
        if name == "datasets":
            cols = cols.replace("loaded_at", "CAST(loaded_at AS TIMESTAMP) AS loaded_at")
        # The catalogue's small tables are read by every aggregate, several times: held in
        # memory (a Parquet file is opened and its footer parsed on every read of a view).
        kind = "TABLE" if name in _IN_MEMORY else "VIEW"
        con.execute(f"CREATE {kind} {name} AS SELECT {cols} FROM read_parquet({_quoted(file)})")
    for name in layout.OPTIONAL_TABLES:  # a gazetteer, where the store was written with one
        if name in manifest.get("tables", {}):
            cols = ", ".join(layout.SCHEMAS[name].names)
            file = path / f"{name}.parquet"
            con.execute(f"CREATE TABLE {name} AS SELECT {cols} FROM read_parquet({_quoted(file)})")
    con.execute(f"CREATE VIEW events AS {_partitioned_select(path / layout.EVENTS, 'events')}")
    con.execute(f"CREATE VIEW cube AS {_partitioned_select(path / layout.CUBE, 'cube')}")
    smallest = "cube"
    if layout.ROLLUP in manifest.get("tables", {}):
        # Small (a tenth of the records or less) and read by every map of whole months: held in
        # memory, in the order its files are sorted in, so a period skips most of it.
        select = _partitioned_select(path / layout.ROLLUP, "rollup")
        order = ", ".join((layout.PARTITION, *layout.SORT_ROLLUP))
        con.execute(f"CREATE TABLE rollup AS {select} ORDER BY {order}")
        smallest = "rollup"
    # Every (dataset, agency) pair the records hold, numbered in their order: the units ward
    # counts are listed for, and a small number to group the map's hexes by.
    con.execute(
        f"""CREATE TABLE {UNITS} AS
            SELECT CAST(row_number() OVER (ORDER BY {layout.PARTITION}, agency) AS INTEGER) AS unit,
                   {layout.PARTITION}, agency
            FROM (SELECT DISTINCT {layout.PARTITION}, agency FROM {smallest})"""
    )
    if smallest == "rollup":
        _derive(con)
    facts.mark(con)
    return con


def _derive(con: duckdb.DuckDBPyConnection) -> None:
    """The roll-up summed over what a question does not ask, exactly (counts add, keys combine
    by XOR): a ward's counts need no cell, nor a map's hexes its wards and categories (a
    tenth of the roll-up's rows at 10M records), nor a map of every month its months (a few
    rows per cell). Which one answers is ``app.store.cube_source``'s choice.

    The cell tables carry each row's ``unit`` (``UNITS``): hexes are counted by cell and unit,
    two integers, and named after (grouping by two strings costs twice as much)."""
    sums = "sum(n)::BIGINT AS n, sum(weight) AS weight, bit_xor(rkey) AS rkey"
    for name, columns, order in (
        (WARD_ROLLUP, "ward_code, month, agency, kind, category", "month, ward_code, agency, kind, category"),
        (CELL_ROLLUP, "u.unit, cell9, month, agency, kind", "month, cell9, agency, kind"),
        (CELL_TOTALS, "u.unit, cell9, agency, kind", "cell9, agency, kind"),
    ):
        units = f" JOIN {UNITS} u USING ({layout.PARTITION}, agency)" if "u.unit" in columns else ""
        con.execute(
            f"CREATE TABLE {name} AS SELECT {layout.PARTITION}, {columns}, {sums} FROM rollup{units} "
            f"GROUP BY ALL ORDER BY {layout.PARTITION}, {order}"
        )


def has_relation(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``name`` is a table or view ``con`` can read (a store's cube, say)."""
    return name in facts.remembered(con, "relations", lambda: _relations(con))


def _relations(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    found = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal UNION SELECT table_name FROM duckdb_tables()"
    ).fetchall()
    return frozenset(r[0] for r in found)


def open_any(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to what ``path`` names: a store folder (it holds a manifest) or a
    warehouse file (``app.warehouse.open_readonly``, which refuses an outdated one)."""
    if layout.is_store(path):
        return open_store(path)
    from app.warehouse import open_readonly  # the warehouse module imports nothing from here

    return open_readonly(path)


# --------------------------------------------------------------------------------------------
# The dialect of the scans: a filter as a WHERE clause, cells' parents, cell keys, and the
# datasets as one viewer sees them.

# A group's cell key over records (``e.rkey``, UBIGINT) and over cube rows (BIGINT bits, XORed
# as they are and read back as UBIGINT once per group).
CELL_KEY_SQL = "bit_xor(e.rkey)"
CUBE_KEY_SQL = layout.unsigned_sql("bit_xor(e.rkey)")


def where_sql(f, alias: str = "e", source: str = "events") -> tuple[str, dict]:
    """A WHERE clause (without the keyword) over ``source`` (``events``, ``cube`` or
    ``rollup``) for the filter ``f`` (an ``app.filters.Filter``), with its parameters: every
    value bound, and the viewer's datasets only.

    The cube has days and hours where the events have times, and no coordinates: a filter with
    a bounding box is never asked of it (``cube_answers``). The roll-up and the tables derived
    from it (``_derive``) have months only, and ``cell_totals`` not even those: it is asked
    only without dates."""
    import datetime as dt

    from app.access import check_viewer

    check_viewer(getattr(f, "access", None))  # where people sign in, never without the viewer
    clauses, params = ["TRUE"], {}

    def any_of(column: str, name: str, values) -> None:
        if values:
            clauses.append(f"list_contains(${name}, {alias}.{column})")
            params[name] = list(values)

    visible = getattr(getattr(f, "access", None), "visible", None)
    if visible is not None:
        any_of("dataset", "v_visible", tuple(visible) or ("",))
    any_of("dataset", "f_datasets", f.datasets)
    if f.agencies and getattr(f, "folded", None):
        # A rare agency's records stand under "Other agencies" (``Filter.folded``): each
        # record is chosen by the name the viewer sees it under.
        from app.disclosure import OTHER_AGENCIES

        clauses.append(
            f"CASE WHEN list_contains($f_folded, {alias}.dataset || chr(31) || {alias}.agency) "
            f"THEN $f_other_chosen ELSE list_contains($f_agencies, {alias}.agency) END"
        )
        params["f_agencies"] = list(f.agencies)
        params["f_folded"] = [f"{d}\x1f{a}" for d, a in f.folded]
        params["f_other_chosen"] = OTHER_AGENCIES in f.agencies
    else:
        any_of("agency", "f_agencies", f.agencies)
    any_of("kind", "f_kinds", f.kinds)
    if f.categories:
        clause = f"list_contains($f_categories, {alias}.category)"
        if f.category_scope is not None:
            clause = f"(NOT list_contains($f_category_scope, {alias}.dataset) OR {clause})"
            params["f_category_scope"] = list(f.category_scope)
        clauses.append(clause)
        params["f_categories"] = list(f.categories)
    if source == "events":
        if f.start:
            clauses.append(f"{alias}.ts >= $f_start")
            params["f_start"] = dt.datetime.combine(f.start, dt.time())
        if f.end:
            clauses.append(f"{alias}.ts < $f_end")
            params["f_end"] = dt.datetime.combine(f.end + dt.timedelta(days=1), dt.time())
        if f.weekdays:
            clauses.append(f"list_contains($f_weekdays, isodow({alias}.ts))")
            params["f_weekdays"] = list(f.weekdays)
        if f.hours:
            clauses.append(f"list_contains($f_hours, hour({alias}.ts))")
            params["f_hours"] = list(f.hours)
        if f.bbox is not None:
            clauses.append(f"{alias}.lon BETWEEN $f_west AND $f_east")
            clauses.append(f"{alias}.lat BETWEEN $f_south AND $f_north")
            params.update(f_west=f.bbox[0], f_south=f.bbox[1], f_east=f.bbox[2], f_north=f.bbox[3])
        return " AND ".join(clauses), params
    day = f"{alias}.day" if source == "cube" else f"{alias}.month"
    if f.start:
        clauses.append(f"{day} >= $f_start::DATE")
        params["f_start"] = f.start
    if f.end:
        clauses.append(f"{day} <= $f_end::DATE")
        params["f_end"] = f.end
    if f.weekdays:
        clauses.append(f"list_contains($f_weekdays, isodow({alias}.day))")
        params["f_weekdays"] = list(f.weekdays)
    if f.hours:
        clauses.append(f"list_contains($f_hours, {alias}.hour)")
        params["f_hours"] = list(f.hours)
    return " AND ".join(clauses), params


def viewer_datasets_sql(access) -> tuple[str, dict]:
    """The ``datasets`` table as one viewer sees it (``access``: an ``AccessContext`` or None for
    every dataset): only the datasets they may see, and a protected one they see exactly
    (their agency owns it) with ``sharing`` 'open', so every figure of it is released exactly
    and no query needs to read the stored sharing level and the viewer's rights apart."""
    from app.access import check_viewer

    check_viewer(access)  # where people sign in, never without the viewer
    visible = getattr(access, "visible", None)
    exact = tuple(getattr(access, "exact", ()) or ())
    if visible is None and not exact:
        return "datasets", {}  # every dataset, each at its own sharing level
    params = {"v_exact": list(exact) or [""], "v_all": visible is None, "v_ids": list(visible or ()) or [""]}
    sql = (
        "(SELECT d.id, d.title, d.agency, d.kind, "
        "CASE WHEN list_contains($v_exact, d.id) THEN 'open' ELSE d.sharing END AS sharing, "
        "d.licence, d.attribution, d.owner, d.report_json "
        "FROM datasets d WHERE $v_all OR list_contains($v_ids, d.id))"
    )
    return sql, params


def parent_sql(column: str, res: int) -> str:
    """The parent at ``res`` of a UBIGINT cell column (``app.h3cells.parent_sql``)."""
    from app.h3cells import parent_sql as h3_parent

    return h3_parent(column, res)
