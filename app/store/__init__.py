"""Every read of the records goes through here: the one seam between the engine's figures and
the back-end that holds the events.

Everything above this package (aggregates, Gi*, emerging patterns, forecasts, exports) works on
the small frames these functions return and never builds event SQL, so a back-end other than
DuckDB (a store written by Spark, say) needs only this package to agree. The functions read
either a warehouse file or a store folder (``app.store.duckdb.open_any``); where a store has the
aggregate cube and the filter asks nothing the cube lacks, the map's counts come from the cube,
not the records. Counts here are exact and carry their groups' cell keys: disclosure control
(``app.disclosure``) is applied by the callers before anything leaves the engine.

Every function takes the ``Filter`` already validated (``app.filters.validate``): its dataset,
category and agency names are known ones, and its ``access`` says which datasets this viewer
may see and which they see exactly; the scans obey both.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from app.store import facts
from app.store.duckdb import (
    CELL_KEY_SQL,
    CELL_ROLLUP,
    CELL_TOTALS,
    CUBE_KEY_SQL,
    UNITS,
    WARD_ROLLUP,
    has_relation,
    parent_sql,
    viewer_datasets_sql,
    where_sql,
)

if TYPE_CHECKING:
    from app.filters import Filter

FINE_CUBE_RES = 11
ROLLUP_RES = 9


def _warehouse(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` is a warehouse file (events split into rows and files), where some
    scans have a cheaper form than over the ``events`` view."""
    return has_relation(con, "event_rows")


def _smallest(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """The smallest relation of a store that holds every (dataset, agency, kind, category) the
    records hold, and its count expression: the roll-up, the cube, or the records themselves."""
    for name in ("rollup", "cube"):
        if has_relation(con, name):
            return name, "sum(e.n)::BIGINT"
    return "events", "count(*)"


def _access(f: Filter | None):
    return getattr(f, "access", None)


def _visible_clause(access, column: str, params: dict) -> str:
    """SQL keeping only the viewer's datasets (``column`` names the dataset)."""
    visible = getattr(access, "visible", None)
    if visible is None:
        return "TRUE"
    params["v_visible"] = list(visible) or [""]
    return f"list_contains($v_visible, {column})"


# --------------------------------------------------------------------------------------------
# Catalogue-level facts: which agencies, categories and cells hold records


def agencies(con: duckdb.DuckDBPyConnection, access=None) -> set[str]:
    """Every agency named by the records of the viewer's datasets."""
    found = facts.remembered(con, ("agencies", facts.access_key(access)), lambda: _agencies(con, access))
    return set(found)


def _agencies(con: duckdb.DuckDBPyConnection, access) -> frozenset[str]:
    params: dict = {}
    if _warehouse(con):
        # A file's agency, or one its rows name (stored only where it differs): no scan of the
        # events view, which would join every row to its file and ward first.
        visible = _visible_clause(access, "f.dataset", params)
        sql = f"""SELECT f.agency FROM event_files f WHERE {visible}
                  UNION SELECT r.agency FROM event_rows r JOIN event_files f USING (file_no)
                  WHERE r.agency IS NOT NULL AND {visible}"""
    else:
        source, _ = _smallest(con)
        sql = f"SELECT DISTINCT agency FROM {source} WHERE {_visible_clause(access, 'dataset', params)}"
    return frozenset(r[0] for r in con.execute(sql, params).fetchall())


def datasets_naming(con: duckdb.DuckDBPyConnection, names: tuple[str, ...], access=None) -> set[str]:
    """The viewer's datasets whose records name any of the agencies ``names``."""
    key = ("datasets_naming", tuple(names), facts.access_key(access))
    return set(facts.remembered(con, key, lambda: _datasets_naming(con, names, access)))


def _datasets_naming(con: duckdb.DuckDBPyConnection, names: tuple[str, ...], access) -> frozenset[str]:
    params: dict = {"a": list(names)}
    if _warehouse(con):
        visible = _visible_clause(access, "f.dataset", params)
        sql = f"""SELECT DISTINCT f.dataset FROM event_files f WHERE list_contains($a, f.agency) AND {visible}
                  UNION SELECT DISTINCT f.dataset FROM event_rows r JOIN event_files f USING (file_no)
                  WHERE r.agency IS NOT NULL AND list_contains($a, r.agency) AND {visible}"""
    else:
        source, _ = _smallest(con)
        visible = _visible_clause(access, "dataset", params)
        sql = f"SELECT DISTINCT dataset FROM {source} WHERE list_contains($a, agency) AND {visible}"
    return frozenset(r[0] for r in con.execute(sql, params).fetchall())


def category_counts_by_dataset(con: duckdb.DuckDBPyConnection, access=None) -> list[tuple]:
    """(dataset, category, records, sharing as the viewer sees it) for the viewer's datasets,
    sorted by dataset and category."""
    key = ("category_counts_by_dataset", facts.access_key(access))
    return list(facts.remembered(con, key, lambda: _category_counts_by_dataset(con, access)))


def _category_counts_by_dataset(con: duckdb.DuckDBPyConnection, access) -> tuple[tuple, ...]:
    rel, params = viewer_datasets_sql(access)
    if _warehouse(con):
        sql = f"""SELECT f.dataset, r.category, count(*) AS n, any_value(d.sharing) AS sharing
                  FROM event_rows r JOIN event_files f USING (file_no) JOIN {rel} d ON d.id = f.dataset
                  GROUP BY 1, 2 ORDER BY 1, 2"""
    else:
        source, n = _smallest(con)
        sql = f"""SELECT e.dataset, e.category, {n} AS n, any_value(d.sharing) AS sharing
                  FROM {source} e JOIN {rel} d ON d.id = e.dataset GROUP BY 1, 2 ORDER BY 1, 2"""
    return tuple(con.execute(sql, params).fetchall())


def agency_counts_by_dataset(con: duckdb.DuckDBPyConnection, access=None) -> list[tuple]:
    """(dataset, agency, records, sharing as the viewer sees it) for the viewer's datasets,
    most records first within a dataset."""
    key = ("agency_counts_by_dataset", facts.access_key(access))
    return list(facts.remembered(con, key, lambda: _agency_counts_by_dataset(con, access)))


def _agency_counts_by_dataset(con: duckdb.DuckDBPyConnection, access) -> tuple[tuple, ...]:
    rel, params = viewer_datasets_sql(access)
    if _warehouse(con):
        sql = f"""SELECT f.dataset, coalesce(r.agency, f.agency) AS agency, count(*) AS n,
                         any_value(d.sharing)
                  FROM event_rows r JOIN event_files f USING (file_no) JOIN {rel} d ON d.id = f.dataset
                  GROUP BY 1, 2 ORDER BY f.dataset, n DESC, agency"""
    else:
        source, n = _smallest(con)
        sql = f"""SELECT e.dataset, e.agency, {n} AS n, any_value(d.sharing)
                  FROM {source} e JOIN {rel} d ON d.id = e.dataset
                  GROUP BY 1, 2 ORDER BY e.dataset, n DESC, e.agency"""
    return tuple(con.execute(sql, params).fetchall())


def several_agency_datasets(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """The datasets whose catalogue entry names an agency per row (``agency_column``), the
    only ones whose agencies can be rare (``app.disclosure.rare_agencies``). Read from the
    catalogue, never from the records: which agencies a file's rows name must not decide
    whether its plain unit for rare agencies exists."""
    return facts.remembered(con, "several_agency_datasets", lambda: _several_agency_datasets(con))


def _several_agency_datasets(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    sql = "SELECT id FROM datasets WHERE json_extract_string(entry_json, '$.agency_column') IS NOT NULL"
    return frozenset(r[0] for r in con.execute(sql).fetchall())


def cells_with_events(con: duckdb.DuckDBPyConnection, res: int, access=None) -> np.ndarray:
    """The cells at ``res`` (uint64, unsorted) that hold a record of the viewer's datasets."""
    key = ("cells_with_events", int(res), facts.access_key(access))
    return facts.remembered(con, key, lambda: _cells_with_events(con, res, access)).copy()


def _cells_with_events(con: duckdb.DuckDBPyConnection, res: int, access) -> np.ndarray:
    params: dict = {}
    if _warehouse(con) and getattr(access, "visible", None) is None:
        sql = f"SELECT DISTINCT {parent_sql('h3', res)} AS h3 FROM event_rows"
    elif has_relation(con, "rollup") and res <= ROLLUP_RES:
        visible = _visible_clause(access, "dataset", params)
        sql = f"SELECT DISTINCT {parent_sql('cell9', res)} AS h3 FROM rollup WHERE {visible}"
    elif has_relation(con, "cube") and res <= FINE_CUBE_RES:
        visible = _visible_clause(access, "dataset", params)
        sql = f"SELECT DISTINCT {parent_sql('cell11', res)} AS h3 FROM cube WHERE {visible}"
    else:
        visible = _visible_clause(access, "dataset", params)
        sql = f"SELECT DISTINCT {parent_sql('h3', res)} AS h3 FROM events WHERE {visible}"
    found = con.execute(sql, params).fetchnumpy()
    return found["h3"].astype(np.uint64) if len(found["h3"]) else np.zeros(0, np.uint64)


def datasets(con: duckdb.DuckDBPyConnection, access=None) -> pd.DataFrame:
    """The catalogue rows the viewer may see (``sharing`` as they see it), with each dataset's
    first and last record time as released (``span_sql``), sorted by id."""
    key = ("datasets", facts.access_key(access))
    return facts.remembered(con, key, lambda: _datasets(con, access)).copy()


def _datasets(con: duckdb.DuckDBPyConnection, access) -> pd.DataFrame:
    rel, params = viewer_datasets_sql(access)
    tmin, tmax = span_sql("d")
    return con.execute(
        f"SELECT id, title, agency, kind, sharing, {tmin} AS time_min, {tmax} AS time_max "
        f"FROM {rel} d ORDER BY id",
        params,
    ).df()


def span_sql(alias: str) -> tuple[str, str]:
    """SQL for the first and last time of a dataset's records, from its stored load report
    (``alias``: the datasets relation's), as released: a partners' or restricted dataset's
    span is given in whole months (the first and last record's own times would each tell
    that a record exists at that moment)."""
    from app.disclosure import PROTECTED

    first, last = (
        f"CAST(json_extract_string({alias}.report_json, '$.{k}') AS TIMESTAMP)"
        for k in ("time_min", "time_max")
    )
    protected = f"{alias}.sharing IN ({', '.join(repr(p) for p in PROTECTED)})"
    month_end = f"date_trunc('month', {last}) + INTERVAL 1 MONTH - INTERVAL 1 SECOND"
    return (
        f"CASE WHEN {protected} THEN date_trunc('month', {first}) ELSE {first} END",
        f"CASE WHEN {protected} THEN {month_end} ELSE {last} END",
    )


# --------------------------------------------------------------------------------------------
# Counts under a filter


def cube_source(con: duckdb.DuckDBPyConnection, f: Filter, res: int | None = None) -> str | None:
    """Which aggregate answers ``f`` at cell resolution ``res`` (None: by ward): ``rollup`` for
    whole months with no hour or weekday choice at resolution 9 or coarser, ``cube`` for any
    filter without a bounding box, or None (the records must be read).

    A store folder's smaller roll-ups (``app.store.duckdb._derive``) answer in the roll-up's
    place where they hold what is asked: ``ward_rollup`` by ward, ``cell_rollup`` by cell
    without a category choice, and ``cell_totals`` for that over every month."""
    if f.bbox is not None or (res is not None and res > FINE_CUBE_RES):
        return None
    if not has_relation(con, "cube"):
        return None
    f = _open_ended(con, f)
    whole_months = (f.start is None or f.start.day == 1) and (
        f.end is None or (f.end + dt.timedelta(days=1)).day == 1
    )
    coarse = res is None or res <= ROLLUP_RES
    if not (whole_months and coarse and not f.hours and not f.weekdays and has_relation(con, "rollup")):
        return "cube"
    if res is None:
        return WARD_ROLLUP if has_relation(con, WARD_ROLLUP) else "rollup"
    if f.categories or not has_relation(con, CELL_ROLLUP):
        return "rollup"
    return CELL_TOTALS if f.start is None and f.end is None else CELL_ROLLUP


def _open_ended(con: duckdb.DuckDBPyConnection, f: Filter) -> Filter:
    """``f`` without a first or last day that no record of its datasets lies beyond: the same
    records, and a period the roll-up can answer. A filter without dates is closed by the
    data's own first and last day (``filters.with_period``), which seldom fall on a month's
    edges; left as they are, a map of all the data would read the fine cube."""
    if f.start is None and f.end is None:
        return f
    edges = facts.remembered(con, "day_edges", lambda: _day_edges(con))
    chosen = [edges[d] for d in (f.datasets or edges) if d in edges]
    if not chosen:
        return f
    first, last = min(e[0] for e in chosen), max(e[1] for e in chosen)
    start = None if f.start is not None and f.start <= first else f.start
    end = None if f.end is not None and f.end >= last else f.end
    return f if (start, end) == (f.start, f.end) else f.with_(start=start, end=end)


def _day_edges(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[dt.date, dt.date]]:
    """Each dataset's first and last day with a record, from the cube."""
    rows = con.execute("SELECT dataset, min(day), max(day) FROM cube GROUP BY dataset").fetchall()
    return {d: (first, last) for d, first, last in rows}


def _counts_from(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int | None
) -> tuple[str, str, str, str, dict]:
    """(FROM item, cell expression at ``res``, count expression, key expression, parameters
    of the WHERE) for a grouped count under ``f``: the cube's where it answers, else the
    records'."""
    source = cube_source(con, f, res)
    if source is not None:
        f = _open_ended(con, f)
    if source is None:
        sql, params = where_sql(f, "e", "events")
        cell = parent_sql("e.h3", res) if res is not None else "NULL"
        return f"events e WHERE {sql}", cell, "count(*)", CELL_KEY_SQL, params
    sql, params = where_sql(f, "e", source)
    column = "e.cell11" if source == "cube" else "e.cell9"  # a ward_rollup is asked by ward only
    own = FINE_CUBE_RES if source == "cube" else ROLLUP_RES  # the column's resolution: its own parent
    cell = "NULL" if res is None else column if res == own else parent_sql(column, res)
    return f"{source} e WHERE {sql}", cell, "sum(e.n)::BIGINT", CUBE_KEY_SQL, params


def hex_counts(con: duckdb.DuckDBPyConnection, f: Filter, res: int) -> pd.DataFrame:
    """Exact counts, weight sums and cell keys per cell at ``res``, dataset and agency, with
    each dataset's kind and sharing (as the viewer sees it); sorted by cell, dataset, agency."""
    scan, cell, n, key, params = _counts_from(con, f, res)
    rel, rel_params = viewer_datasets_sql(_access(f))
    weight = "sum(e.weight)"
    if scan.startswith((f"{CELL_ROLLUP} ", f"{CELL_TOTALS} ")):
        # Counted by cell and unit number, named after: the same groups, the same order.
        return con.execute(
            f"""
            WITH counts AS (
                SELECT {cell} AS h3, e.unit, {n} AS count, {weight} AS weight, {key} AS cell_key
                FROM {scan} GROUP BY 1, 2
            )
            SELECT c.h3, u.dataset, u.agency, d.kind, d.sharing, c.count, c.weight, c.cell_key
            FROM counts c JOIN {UNITS} u ON u.unit = c.unit JOIN {rel} d ON d.id = u.dataset
            ORDER BY c.h3, c.unit
            """,
            {**params, **rel_params},
        ).df()
    # Counted first and joined to the catalogue after: a join before the count would look up
    # every record's dataset by name, one group per cell and dataset after it.
    return con.execute(
        f"""
        WITH counts AS (
            SELECT {cell} AS h3, e.dataset, e.agency, {n} AS count, {weight} AS weight, {key} AS cell_key
            FROM {scan} GROUP BY 1, 2, 3
        )
        SELECT c.h3, c.dataset, c.agency, d.kind, d.sharing, c.count, c.weight, c.cell_key
        FROM counts c JOIN {rel} d ON d.id = c.dataset
        ORDER BY 1, 2, 3
        """,
        {**params, **rel_params},
    ).df()


# The (dataset, agency) pairs of the datasets listed in $ids: each file's agency where some of
# its rows take it, and the ones its rows name where they differ (stored only then).
# With $unit_agencies (a list, or NULL for all), only those agencies' pairs, and the rare
# agencies' pairs in $unit_folded ("dataset\x1fagency", when "Other agencies" is chosen: the
# engine folds them into it); and for each dataset in $other_units, the plain unit of its
# rare agencies (``unit_params``).
_UNITS_WAREHOUSE = """units AS (
    SELECT * FROM (
        SELECT DISTINCT f.dataset, f.agency FROM event_files f
        WHERE list_contains($ids, f.dataset)
          AND EXISTS (SELECT 1 FROM event_rows r WHERE r.file_no = f.file_no AND r.agency IS NULL)
        UNION SELECT DISTINCT f.dataset, r.agency FROM event_rows r JOIN event_files f USING (file_no)
        WHERE r.agency IS NOT NULL AND list_contains($ids, f.dataset)
    ) WHERE $unit_agencies::VARCHAR[] IS NULL OR list_contains($unit_agencies::VARCHAR[], agency)
        OR list_contains($unit_folded::VARCHAR[], dataset || chr(31) || agency)
    UNION SELECT unnest($other_units::VARCHAR[]) AS dataset, $other_name AS agency
)"""
_UNITS_STORE = """units AS (
    SELECT DISTINCT dataset, agency FROM {source} WHERE list_contains($ids, dataset)
    AND ($unit_agencies::VARCHAR[] IS NULL OR list_contains($unit_agencies::VARCHAR[], agency)
         OR list_contains($unit_folded::VARCHAR[], dataset || chr(31) || agency))
    UNION SELECT unnest($other_units::VARCHAR[]) AS dataset, $other_name AS agency
)"""


def _units_sql(con: duckdb.DuckDBPyConnection) -> str:
    """A WITH item ``units``: the (dataset, agency) pairs of the datasets in ``$ids``."""
    if _warehouse(con):
        return _UNITS_WAREHOUSE
    # A store folder lists its pairs once, on opening (``app.store.duckdb.UNITS``).
    source = UNITS if has_relation(con, UNITS) else _smallest(con)[0]
    return _UNITS_STORE.format(source=source)


def unit_params(ids: list[str], f: Filter) -> dict:
    """The parameters of ``_units_sql``: the datasets ``ids``, the agencies ``f`` chooses, and
    the datasets whose "Other agencies" unit is listed (``Filter.other_units``)."""
    from app.disclosure import OTHER_AGENCIES

    others = [d for d in f.other_units if d in set(ids)]
    folded = f.folded if f.agencies and OTHER_AGENCIES in f.agencies and f.folded else ()
    return {
        "ids": ids,
        "unit_agencies": list(f.agencies) or None,
        "unit_folded": [f"{d}\x1f{a}" for d, a in folded],
        "other_units": others,
        "other_name": OTHER_AGENCIES,
    }


def units(con: duckdb.DuckDBPyConnection, ids: list[str], f: Filter) -> pd.DataFrame:
    """The (dataset, agency) pairs of the datasets ``ids``: one per dataset, or one per agency
    that a file of several agencies names, with each dataset's kind and sharing (as the viewer
    sees it); only the agencies ``f`` chooses, if any."""
    rel, params = viewer_datasets_sql(_access(f))
    return con.execute(
        f"""WITH {_units_sql(con)}
            SELECT u.dataset, u.agency, d.kind, d.sharing
            FROM units u JOIN {rel} d ON d.id = u.dataset ORDER BY 1, 2""",
        {**params, **unit_params(ids, f)},
    ).df()


def ward_counts(con: duckdb.DuckDBPyConnection, f: Filter, by_dataset: bool, ids: list[str]) -> pd.DataFrame:
    """Exact counts and cell keys for every ward (zero-filled), per dataset (of ``ids``) and
    agency, or all together; with each ward's name, population and area."""
    return ward_window_counts(con, f, by_dataset, ids, ())


def ward_window_counts(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    by_dataset: bool,
    ids: list[str],
    windows: tuple[tuple[dt.date, dt.date], ...],
) -> pd.DataFrame:
    """``ward_counts`` under ``f``, and beside each row the same count over each of
    ``windows`` (first and last day; every other choice of ``f`` kept) as ``count_1``,
    ``cell_key_1``, ``count_2``, ...: a ward aggregate's comparison windows in the same
    statement as its period, each period read from the aggregate that answers it alone."""
    params: dict = {}
    groups = "e.ward_code, e.dataset, e.agency" if by_dataset else "e.ward_code"
    ctes, columns, joins = [], [], []
    for i, g in enumerate((f, *(f.with_(start=a, end=b) for a, b in windows))):
        scan, _, n, key, own = _counts_from(con, g, None)
        # Each period's parameters under names of its own (they share names across periods).
        scan = re.sub(r"\$(\w+)", lambda m, i=i: f"${m.group(1)}_{i}", scan)
        params.update({f"{k}_{i}": v for k, v in own.items()})
        ctes.append(f"c{i} AS (SELECT {groups}, {n} AS count, {key} AS cell_key FROM {scan} GROUP BY ALL)")
        suffix = f"_{i}" if i else ""
        columns.append(
            f"coalesce(c{i}.count, 0) AS count{suffix}, coalesce(c{i}.cell_key, 0) AS cell_key{suffix}"
        )
        on = f"c{i}.ward_code = w.code"
        if by_dataset:
            on += f" AND c{i}.dataset = u.dataset AND c{i}.agency = u.agency"
        joins.append(f"LEFT JOIN c{i} ON {on}")
    if by_dataset:
        rel, rel_params = viewer_datasets_sql(_access(f))
        params.update(rel_params, **unit_params(ids, f))
        ctes.append(_units_sql(con))
        select = (
            "w.code AS ward_code, w.name AS ward_name, w.population, w.area_km2, "
            "d.id AS dataset, u.agency, d.kind, d.sharing"
        )
        source = f"wards w CROSS JOIN units u JOIN {rel} d ON d.id = u.dataset"
        order = "w.code, d.id, u.agency"
    else:
        select = "w.code AS ward_code, w.name AS ward_name, w.population, w.area_km2"
        source = "wards w"
        order = "w.code"
    sql = (
        f"WITH {', '.join(ctes)} SELECT {select}, {', '.join(columns)} "
        f"FROM {source} {' '.join(joins)} ORDER BY {order}"
    )
    return con.execute(sql, params).df()


def _place_sql(ward: str | None, cell: int | None, res: int | None, params: dict) -> str:
    """SQL limiting records to one ward or one cell (``cell`` at resolution ``res``)."""
    if ward is not None:
        params["ward"] = ward
        return "e.ward_code = $ward"
    if cell is not None:
        params["cell"] = int(cell)
        return f"{parent_sql('e.h3', res)} = $cell::UBIGINT"
    return "TRUE"


def category_counts(
    con: duckdb.DuckDBPyConnection, f: Filter, ward: str | None, cell: int | None, res: int | None
) -> pd.DataFrame:
    """Exact records and cell keys per dataset, agency and category, most first, for the city,
    one ward or one cell; with each dataset's title, kind and sharing (as the viewer sees it)."""
    sql, params = where_sql(f)
    place = _place_sql(ward, cell, res, params)
    rel, rel_params = viewer_datasets_sql(_access(f))
    return con.execute(
        f"""
        WITH counts AS (
            SELECT e.dataset, e.agency, e.category, count(*) AS count, {CELL_KEY_SQL} AS cell_key
            FROM events e WHERE {sql} AND {place} GROUP BY 1, 2, 3
        )
        SELECT c.dataset, d.title, c.agency, d.kind, c.category, d.sharing, c.count, c.cell_key
        FROM counts c JOIN {rel} d ON d.id = c.dataset
        ORDER BY c.count DESC, c.dataset, c.agency, c.category
        """,
        {**params, **rel_params},
    ).df()


def period_counts(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    unit: str,
    ward: str | None,
    cell: int | None,
    res: int | None,
    ids: list[str],
) -> pd.DataFrame:
    """Exact counts and cell keys per period (``unit``: day, week or month), dataset (of
    ``ids``) and agency, for every period each dataset covers within the filter's period,
    records or not (zero-filled); with ``covered_from`` and ``covered_to``."""
    if unit not in ("day", "week", "month"):
        raise ValueError(f"unit must be day, week or month, not {unit!r}")
    sql, params = where_sql(f)
    place = _place_sql(ward, cell, res, params)
    rel, rel_params = viewer_datasets_sql(_access(f))
    params.update(rel_params)
    # What each dataset covers, from its load report, within the filter's period: a period
    # inside it with no record here is a zero (or a suppressed zero), outside it is no data.
    params["cover_start"] = dt.datetime.combine(f.start, dt.time()) if f.start else None
    params["cover_end"] = dt.datetime.combine(f.end, dt.time()) if f.end else None
    params.update(unit_params(ids, f))
    tmin, tmax = span_sql("d")
    # Periods are cast to dates once per group, not once per record (a third of the time).
    return con.execute(
        f"""
        WITH counts AS (
            SELECT date_trunc('{unit}', e.ts)::DATE AS period, e.dataset, e.agency, count(*) AS count,
                   {CELL_KEY_SQL} AS cell_key
            FROM events e WHERE {sql} AND {place} GROUP BY 1, 2, 3
        ),
        {_units_sql(con)},
        covered AS (
            SELECT d.id, d.title, d.kind, d.sharing,
                   date_trunc('{unit}', greatest({tmin}, coalesce($cover_start::TIMESTAMP, {tmin})))::DATE
                       AS covered_from,
                   date_trunc('{unit}', least({tmax}, coalesce($cover_end::TIMESTAMP, {tmax})))::DATE
                       AS covered_to
            FROM {rel} d
        ),
        grid AS (
            SELECT u.dataset, u.agency,
                   unnest(generate_series(v.covered_from, v.covered_to, INTERVAL 1 {unit}))::DATE AS period
            FROM units u JOIN covered v ON v.id = u.dataset
            WHERE v.covered_from <= v.covered_to
        )
        SELECT g.period, g.dataset, v.title, g.agency, v.kind, v.sharing,
               coalesce(c.count, 0) AS count, coalesce(c.cell_key, 0::UBIGINT) AS cell_key,
               v.covered_from, v.covered_to
        FROM grid g JOIN covered v ON v.id = g.dataset
        LEFT JOIN counts c ON c.period = g.period AND c.dataset = g.dataset AND c.agency = g.agency
        ORDER BY 1, 2, 4
        """,
        params,
    ).df()


def cell_month_counts(con: duckdb.DuckDBPyConnection, f: Filter, res: int) -> pd.DataFrame:
    """Exact counts and cell keys per cell at ``res``, calendar month, dataset and agency."""
    sql, params = where_sql(f)
    return con.execute(
        f"""
        SELECT {parent_sql("e.h3", res)} AS h3, date_trunc('month', e.ts)::DATE AS month, e.dataset,
               e.agency, count(*) AS count, {CELL_KEY_SQL} AS cell_key
        FROM events e WHERE {sql} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        """,
        params,
    ).df()


def ward_month_counts(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    """Exact counts and cell keys per ward, calendar month, dataset and agency."""
    sql, params = where_sql(f)
    return con.execute(
        f"""
        SELECT e.ward_code, date_trunc('month', e.ts)::DATE AS month, e.dataset, e.agency,
               count(*) AS count, {CELL_KEY_SQL} AS cell_key
        FROM events e WHERE {sql} AND e.ward_code IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        """,
        params,
    ).df()


def cell_step_counts(con: duckdb.DuckDBPyConnection, f: Filter, res: int, unit: str) -> pd.DataFrame:
    """Exact counts and cell keys per cell at ``res`` and step (``unit``: week or month), all
    selected datasets together: the space-time cube of emerging patterns."""
    if unit not in ("week", "month"):
        raise ValueError(f"unit must be week or month, not {unit!r}")
    sql, params = where_sql(f)
    return con.execute(
        f"""
        SELECT h3, step::DATE AS step, count, cell_key FROM (
            SELECT {parent_sql("e.h3", res)} AS h3, date_trunc('{unit}', e.ts) AS step,
                   count(*) AS count, {CELL_KEY_SQL} AS cell_key
            FROM events e WHERE {sql} GROUP BY 1, 2
        )
        """,
        params,
    ).df()


def split_cell_counts(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, ward: str, cells: list[int]
) -> pd.DataFrame:
    """For each of ``cells`` (at ``res``) that holds records: the exact records inside
    ``ward`` and in all, each with its cell key: (h3, in_ward, in_ward_key, total, total_key)."""
    sql, params = where_sql(f)
    params.update(split_ward=ward, split_cells=[int(c) for c in cells])
    return con.execute(
        f"""
        SELECT h3,
               count(*) FILTER (WHERE in_ward) AS in_ward,
               coalesce(bit_xor(rkey) FILTER (WHERE in_ward), 0) AS in_ward_key,
               count(*) AS total,
               bit_xor(rkey) AS total_key
        FROM (
            SELECT {parent_sql("e.h3", res)} AS h3, e.ward_code = $split_ward AS in_ward, e.rkey
            FROM events e WHERE {sql}
        )
        WHERE list_contains($split_cells, h3)
        GROUP BY h3
        """,
        params,
    ).df()
