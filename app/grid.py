"""The study area as a grid: every H3 cell of a resolution, and who neighbours whom.

Gi* must see the places where nothing happened as well as those where something did, so the
grid is the complete set of cells that overlap a ward at all (plus any cell holding an event),
not just the cells that appear in the data.

Every cell touching the city counts, as in grid crime forecasting (the NIJ challenge's grid is
every cell intersecting the jurisdiction), rather than the cells whose centre lies inside: a
cell on the shore or the city edge whose centre falls in the water is still a place where
events can happen, and the grid no longer depends on which datasets are loaded (with the
centre rule, a dataset's records near the edge added cells to every other dataset's grid).
"""

from __future__ import annotations

import functools
import json

import duckdb
import h3
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely

from app import store
from app.access import AccessContext
from app.h3cells import check_res


def study_area_cells(
    con: duckdb.DuckDBPyConnection, res: int, access: AccessContext | None = None
) -> np.ndarray:
    """Sorted uint64 cells that overlap the study area at ``res`` (and any cell holding a record
    of a dataset the viewer, ``access``, may see)."""
    res = check_res(res)
    boundary_hash, geojson = _wards_geojson(con)
    cells = _polyfill(boundary_hash, geojson, res)
    return np.union1d(cells, store.cells_with_events(con, res, access))


def _wards_geojson(con: duckdb.DuckDBPyConnection) -> tuple[str, tuple[str, ...]]:
    row = con.execute("SELECT value FROM meta WHERE key = 'boundary_hash'").fetchall()
    geo = tuple(r[0] for r in con.execute("SELECT geojson FROM wards ORDER BY code").fetchall())
    return (row[0][0] if row else ""), geo


@functools.lru_cache(maxsize=32)
def _polyfill(boundary_hash: str, geojson: tuple[str, ...], res: int) -> np.ndarray:
    cells: set[int] = set()
    for g in geojson:
        geom = shapely.from_geojson(g)
        parts = geom.geoms if isinstance(geom, shapely.MultiPolygon) else [geom]
        for part in parts:
            shape = h3.geo_to_h3shape(json.loads(shapely.to_geojson(part)))
            found = h3.h3shape_to_cells_experimental(shape, res, contain="overlap")
            cells.update(h3.str_to_int(c) for c in found)
    return np.array(sorted(cells), dtype=np.uint64)


def cell_frame(cells: np.ndarray, res: int) -> pd.DataFrame:
    """The grid as a table: the cell (integer and hex string), resolution and centre."""
    ids = [h3.int_to_str(int(c)) for c in cells]
    centres = np.array([h3.cell_to_latlng(c) for c in ids]).reshape(-1, 2)
    return pd.DataFrame(
        {"h3": cells, "h3_cell": ids, "resolution": res, "cell_lat": centres[:, 0], "cell_lng": centres[:, 1]}
    )


def kring_weights(cells: np.ndarray, k: int = 1) -> sp.csr_matrix:
    """Binary weights: 1 between a cell and every grid cell within k steps, itself included."""
    if k < 0:
        raise ValueError("k must be 0 or more")
    return _kring(cells.tobytes(), k)


@functools.lru_cache(maxsize=16)
def _kring(cells_bytes: bytes, k: int) -> sp.csr_matrix:
    cells = np.frombuffer(cells_bytes, dtype=np.uint64)
    index = {int(c): i for i, c in enumerate(cells)}
    rows, cols = [], []
    for i, c in enumerate(cells):
        for nb in h3.grid_disk(h3.int_to_str(int(c)), k):
            j = index.get(h3.str_to_int(nb))
            if j is not None:
                rows.append(i)
                cols.append(j)
    data = np.ones(len(rows), dtype=np.float64)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(cells), len(cells)))


def ward_weights(geometries: list[shapely.Geometry]) -> sp.csr_matrix:
    """Binary contiguity (queen: sharing a boundary or a corner) with each ward's self-weight."""
    tree = shapely.STRtree(geometries)
    left, right = tree.query(geometries, predicate="intersects")
    keep = left != right
    n = len(geometries)
    rows = np.concatenate([left[keep], np.arange(n)])
    cols = np.concatenate([right[keep], np.arange(n)])
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
