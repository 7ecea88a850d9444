"""Place validated rows: the H3 cell and the ward of every point.

Most points are placed inside DuckDB in the pass that reads them (``app.h3sql``): one join on
their coarse cell gives both the finer cell's high bits and what the ward index knows of the
coarse cell. Numpy takes only the rest: points in cells that cross a ward boundary (tested
exactly against the polygons) and points the SQL cannot place (a pentagon's cell, a face edge).
Every pass is checked on a sample against h3-py; a disagreement sends the whole file to the
numpy path, so a wrong cell is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import h3
import numpy as np
import pyarrow as pa

from app.boundaries import Wards
from app.h3cells import latlng_to_cells, parent_np
from app.h3sql import cells_sql, plan_for_region
from app.ward_index import WardIndex

_CELLS = "__cells"  # the temp table of the study area's coarse cells
_CHECK = 64  # placed points compared with h3-py in every pass


@dataclass
class Placed:
    """A file's validated rows with cells and wards: ``table`` holds every row with its
    columns, ``__h3`` and ``ward`` as DuckDB placed them; ``fixed`` has the final cell and ward
    of the rows numpy placed (they override ``table``); ``trusted`` is False when the sample
    check failed and numpy placed every row."""

    table: str
    fixed: pa.Table
    trusted: bool


class Placer:
    """The study area's coarse-cell table, registered once per load connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, wards: Wards, index: WardIndex):
        self.index = index
        self.plan = plan_for_region(wards.bounds, index.res)
        high = np.asarray(self.plan.table["high"], dtype=np.int64).astype(np.uint64)
        ward = index.cell_values(parent_np(high, index.res))
        lookup = self.plan.table.append_column("ward", pa.array(ward, type=pa.int32()))  # noqa: F841
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_CELLS} AS SELECT * FROM lookup")

    def place(self, con: duckdb.DuckDBPyConnection, source: str, keep: list[str], name: str) -> Placed:
        """Place the rows of ``source`` (a FROM item with ``__row``, ``__lat`` and ``__lon``)
        into the temp table ``name``, keeping the ``keep`` columns."""
        columns = ["__row", "__lat", "__lon", *keep]
        sql, h3_params = cells_sql(self.plan, source, "__lat", "__lon", columns, _CELLS, ["ward"])
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", h3_params)
        trusted = self._sample_agrees(con, name)
        where = "__in_box AND (__h3 IS NULL OR ward <= -2)" if trusted else "TRUE"
        rows = con.execute(f"SELECT __row, __lat, __lon, __h3, ward FROM {name} WHERE {where}").fetchnumpy()
        row = np.asarray(rows["__row"], dtype=np.int64)
        lat = np.asarray(rows["__lat"], dtype=np.float64)
        lon = np.asarray(rows["__lon"], dtype=np.float64)
        values = np.asarray(np.ma.filled(rows["ward"], -1), dtype=np.int32)
        unplaced = np.ma.getmaskarray(rows["__h3"]) | (not trusted)
        cells = np.asarray(np.ma.filled(rows["__h3"], 0), dtype=np.uint64)
        ward = np.full(len(row), -1, dtype=np.int32)
        if unplaced.any():
            cells[unplaced] = latlng_to_cells(lat[unplaced], lon[unplaced])
            ward[unplaced] = self.index.assign(cells[unplaced], lat[unplaced], lon[unplaced])
        edge = ~unplaced
        if edge.any():
            ward[edge] = self.index.resolve(values[edge], lat[edge], lon[edge])
        fixed = pa.table(
            {
                "__row": pa.array(row, type=pa.int64()),
                "h3": pa.array(cells, type=pa.uint64()),
                "ward": pa.array(ward, type=pa.int32()),
            }
        )
        return Placed(name, fixed, trusted)

    def _sample_agrees(self, con: duckdb.DuckDBPyConnection, name: str) -> bool:
        sample = con.execute(
            f"""SELECT __lat, __lon, __h3 FROM {name} WHERE __h3 IS NOT NULL
                USING SAMPLE reservoir({_CHECK} ROWS) REPEATABLE (7)"""
        ).fetchall()
        return all(h3.str_to_int(h3.latlng_to_cell(a, b, 15)) == c for a, b, c in sample)
