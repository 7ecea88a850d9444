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


# --------------------------------------------------------------------------------------------
# How precise a dataset's locations are

_GRID_SPACINGS_M = (100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0)
_ON_GRID_SHARE = 0.9  # of distinct points within tolerance of one offset, on both axes
_GRID_TOLERANCE = 0.02  # of the spacing: room for the rounding of a reprojection
_MIN_POINTS = 20  # fewer distinct points say nothing about a grid
_FEW_POINTS_SHARE = 0.05  # distinct points under this share of the rows (and ...)
_FEW_POINTS_ROWS = 1000  # ... at least this many rows) read as coarse even off any grid
_POINTS_SAMPLE = 20_000  # distinct points drawn to look for a grid or measure a spacing


def location_precision(con: duckdb.DuckDBPyConnection, dataset_id: str, crs: str | None = None) -> dict:
    """Whether a loaded dataset's points are coarse: few distinct points for many rows, or
    points on a regular grid (the centres of 1 km squares, say). Figures finer than such a grid
    follow the grid, not the records, and a map or a ward table should say so.

    The grid is sought in British National Grid metres inside Great Britain, in the dataset's
    own ``crs`` if it has one, and in the local UTM zone."""
    rows_sql = """SELECT lat, lon FROM event_rows
                  WHERE file_no IN (SELECT file_no FROM event_files WHERE dataset = $id)"""
    rows, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT (lat, lon)) FROM ({rows_sql})", {"id": dataset_id}
    ).fetchall()[0]
    # A sample of the distinct points shows a grid or a spacing as well as all of them would.
    found = con.execute(
        f"""SELECT lat, lon FROM (SELECT DISTINCT lat, lon FROM ({rows_sql}))
            USING SAMPLE reservoir({_POINTS_SAMPLE} ROWS) REPEATABLE (7)""",
        {"id": dataset_id},
    ).fetchnumpy()
    lat, lon = np.asarray(found["lat"], np.float64), np.asarray(found["lon"], np.float64)
    grid = _grid_spacing(lat, lon, crs)
    few = rows >= _FEW_POINTS_ROWS and distinct < _FEW_POINTS_SHARE * rows
    spacing = grid if grid is not None else (_typical_spacing(lat, lon) if few else None)
    finest = _finest_res(spacing) if spacing else None
    coarse = grid is not None or few
    return {
        "coarse": bool(coarse),
        "rows": rows,
        "distinct_points": distinct,
        "grid_m": grid,
        "finest_res": finest,
        "note": _precision_note(coarse, rows, distinct, grid, finest),
    }


def _grid_spacing(lat: np.ndarray, lon: np.ndarray, crs: str | None) -> float | None:
    """The largest spacing (metres) of a regular grid that nearly all points sit on, if any."""
    if len(lat) < _MIN_POINTS:
        return None
    for xs, ys in _projections(lat, lon, crs):
        for spacing in sorted(_GRID_SPACINGS_M, reverse=True):
            if _on_grid(xs, spacing) and _on_grid(ys, spacing):
                return spacing
    return None


def _projections(lat: np.ndarray, lon: np.ndarray, crs: str | None):
    from pyproj import Transformer

    lat0, lon0 = float(np.median(lat)), float(np.median(lon))
    targets = [crs] if crs else []
    if 49.0 <= lat0 <= 61.0 and -9.0 <= lon0 <= 2.0:
        targets.append("EPSG:27700")
    zone = int((lon0 + 180) // 6) + 1
    targets.append(f"EPSG:{32600 + zone if lat0 >= 0 else 32700 + zone}")
    for target in dict.fromkeys(targets):
        x, y = Transformer.from_crs("EPSG:4326", target, always_xy=True).transform(lon, lat)
        yield np.asarray(x), np.asarray(y)


def _on_grid(values: np.ndarray, spacing: float) -> bool:
    """Whether nearly all values lie at one offset from multiples of ``spacing``."""
    phase = np.mod(values, spacing)
    tolerance = _GRID_TOLERANCE * spacing
    bins = np.round(phase / tolerance).astype(np.int64) % round(1 / _GRID_TOLERANCE)
    offset = np.bincount(bins).argmax() * tolerance
    distance = np.abs((phase - offset + spacing / 2) % spacing - spacing / 2)
    return bool(np.mean(distance <= tolerance) >= _ON_GRID_SHARE)


def _typical_spacing(lat: np.ndarray, lon: np.ndarray) -> float:
    """The median distance (metres) from a distinct point to its nearest neighbour."""
    from scipy.spatial import cKDTree

    if len(lat) < 2:
        return 0.0
    k = np.cos(np.radians(np.median(lat)))
    xy = np.column_stack([lon * k, lat]) * 111_320.0
    distance, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(distance[:, 1]))


def _finest_res(spacing_m: float) -> int | None:
    """The finest H3 resolution (5 to 11) whose cells are no smaller than the squares that
    ``spacing_m`` leaves between points; None where even resolution 11 is coarser."""
    square_km2 = (spacing_m / 1000.0) ** 2
    supported = [r for r in range(5, 12) if h3.average_hexagon_area(r, unit="km^2") >= square_km2]
    if not supported or supported[-1] == 11:
        return None if supported else 5
    return supported[-1]


def _precision_note(coarse: bool, rows: int, distinct: int, grid: float | None, finest: int | None) -> str:
    counts = f"{distinct:,} distinct points for {rows:,} records"
    if not coarse:
        return f"Locations are precise ({counts})."
    finer = f"figures finer than H3 resolution {finest} or by ward" if finest else "figures by ward"
    if grid is not None:
        size = f"{grid / 1000:g} km" if grid >= 1000 else f"{grid:g} m"
        return (
            f"Locations are the centres of {size} grid squares ({counts}): "
            f"{finer} follow the grid, not the records."
        )
    return f"Locations are snapped to few points ({counts}): {finer} follow those points, not the records."
