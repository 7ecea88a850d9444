"""Place validated rows: the H3 cell and the ward of every point.

Most points are placed inside DuckDB, in the pass that reads and validates them
(``app.h3sql``): that pass stores each point's fine digits and the key of its coarse cell, and
one join on the key with the study area's coarse cells gives both the cell's high bits and
what the ward index knows of it. Numpy takes only the rest: points in cells that cross a ward
boundary (tested exactly against the polygons), points the SQL cannot place (a pentagon's cell,
a face edge) and points outside every ward. Every pass is checked on a sample against h3-py;
a disagreement sends the whole file to the numpy path, so a wrong cell is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import h3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.boundaries import Wards
from app.h3cells import latlng_to_cells, parent_np
from app.h3sql import digit_columns, digits_sql, flag_sql, join_cells_sql, plan_for_region
from app.ward_index import WardIndex

_CELLS = "__cells"  # the temp table of the study area's coarse cells
_SAMPLE = 256  # points drawn from every pass to compare with h3-py


@dataclass
class Placed:
    """A file's validated rows, placed.

    ``inside`` is a query (with ``params``) over the rows DuckDB placed in a ward: every column
    of the points plus ``__h3`` and ``ward``. ``fixed`` holds the rows numpy placed in a ward,
    with the same columns; ``outside`` the rows no ward holds (``__row``, ``__a``, ``__b``).
    ``trusted`` is False when the sample check failed and numpy placed every row.
    """

    inside: str
    params: dict
    fixed: pa.Table
    outside: pa.Table
    trusted: bool


class Placer:
    """The study area's coarse-cell table, registered once per load connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, wards: Wards, index: WardIndex):
        self.index = index
        self.plan = plan_for_region(wards.bounds, index.res)
        high = np.asarray(self.plan.table["high"], dtype=np.int64).astype(np.uint64)
        ward = index.cell_values(parent_np(high, index.res))
        self.interior = ward >= 0  # coarse cells wholly inside one ward
        lookup = self.plan.table.append_column("ward", pa.array(ward, type=pa.int32()))  # noqa: F841
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_CELLS} AS SELECT * FROM lookup")

    def digits(self, source: str, lat: str, lng: str, keep: list[str]) -> tuple[str, dict]:
        """A query over ``source`` that keeps the ``keep`` columns and adds what ``place``
        needs of each point: its fine digits and its coarse cell's key (``app.h3sql``)."""
        return digits_sql(self.plan, source, lat, lng, keep)

    def interior_sql(self, key: str) -> tuple[str, dict]:
        """SQL that is true where the coarse cell with key ``key`` (a column ``digits`` adds)
        lies wholly inside one ward, so that every valid point in it will be loaded, and its
        parameters. It needs no join, so it can run in the reading pass."""
        return flag_sql(self.plan, self.interior, key)

    @property
    def digit_columns(self) -> list[str]:
        return [*digit_columns(self.plan), "__key"]

    def place(self, con: duckdb.DuckDBPyConnection, points: str, carried: list[str], params: dict) -> Placed:
        """Place the rows of ``points``, a FROM item (with bound ``params``) yielding ``__row``,
        ``__lat``, ``__lon``, the ``carried`` columns and the columns ``digits`` adds."""
        joined, join_params = join_cells_sql(self.plan, points, _CELLS, ["ward"])
        params = {**params, **join_params}
        trusted = self._sample_agrees(con, points, params)
        # The rows left to numpy: all of them if the sample disagreed, else those in no interior cell.
        rest_where = "ward IS NULL OR ward < 0" if trusted else "TRUE"
        columns = ", ".join(["__row", "__lat", "__lon", *carried])
        rest = con.sql(
            f"SELECT {columns}, __key IS NOT NULL AS __in_box, __h3, ward FROM ({joined}) WHERE {rest_where}",
            params=params,
        ).to_arrow_table()
        cells, ward = self._numpy_place(rest, trusted)
        rest = rest.drop_columns(["__in_box", "__h3", "ward"])
        rest = rest.append_column("__h3", pa.array(cells, type=pa.uint64()))
        rest = rest.append_column("ward", pa.array(ward, type=pa.int32()))
        found = ward >= 0
        inside = f"SELECT * FROM ({joined}) WHERE {'ward >= 0' if trusted else 'FALSE'}"
        return Placed(
            inside=inside,
            params=params,
            fixed=rest.filter(pa.array(found)),
            outside=rest.filter(pa.array(~found)).select(["__row", "__a", "__b"]),
            trusted=trusted,
        )

    def _numpy_place(self, rest: pa.Table, trusted: bool) -> tuple[np.ndarray, np.ndarray]:
        """Cells and wards of the rows DuckDB left: h3-py's cell where SQL had none in the box
        (or for every row if untrusted), the exact polygon test in boundary cells, and -1 (no
        ward) for a point outside the box or in a coarse cell outside every ward."""
        lat = rest.column("__lat").to_numpy()
        lon = rest.column("__lon").to_numpy()
        in_box = rest.column("__in_box").to_numpy(zero_copy_only=False)
        h3_col = rest.column("__h3")
        cells = pc.fill_null(h3_col, 0).to_numpy().astype(np.uint64)
        values = pc.fill_null(rest.column("ward"), -1).to_numpy().astype(np.int32)
        unplaced = (pc.is_null(h3_col).to_numpy(zero_copy_only=False) & in_box) | (not trusted)
        ward = np.full(len(lat), -1, dtype=np.int32)
        if unplaced.any():
            cells[unplaced] = latlng_to_cells(lat[unplaced], lon[unplaced])
            ward[unplaced] = self.index.assign(cells[unplaced], lat[unplaced], lon[unplaced])
        edge = ~unplaced & (values <= -2)
        if edge.any():
            ward[edge] = self.index.resolve(values[edge], lat[edge], lon[edge])
        return cells, ward

    def _sample_agrees(self, con: duckdb.DuckDBPyConnection, points: str, params: dict) -> bool:
        drawn = f"""(SELECT __lat, __lon, __key, {", ".join(digit_columns(self.plan))} FROM {points}
                     WHERE __key IS NOT NULL USING SAMPLE reservoir({_SAMPLE} ROWS) REPEATABLE (7))"""
        joined, join_params = join_cells_sql(self.plan, drawn, _CELLS, [])
        sample = con.execute(
            f"SELECT __lat, __lon, __h3 FROM ({joined}) WHERE __h3 IS NOT NULL", {**params, **join_params}
        ).fetchall()
        return all(h3.str_to_int(h3.latlng_to_cell(a, b, 15)) == c for a, b, c in sample)
