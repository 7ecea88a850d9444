"""H3 cells: assign points at resolution 15 once, derive every coarser cell by bit arithmetic.

Storing only the finest cell lets one column serve every map resolution: a parent cell is the
stored cell with its resolution field rewritten and the finer digits set to 7 (unused), which
DuckDB and numpy do in a few instructions instead of a second pass over the points.
"""

from __future__ import annotations

import h3
import numpy as np

from app.h3vec import latlng_to_cells_vec

FINE_RES = 15
MIN_RES, MAX_RES = 0, 15
_RES_SHIFT = 52
_RES_MASK = 0xF << _RES_SHIFT


def check_res(res: int) -> int:
    if not isinstance(res, int | np.integer) or not MIN_RES <= int(res) <= MAX_RES:
        raise ValueError(f"H3 resolution must be an integer from {MIN_RES} to {MAX_RES}, not {res!r}")
    return int(res)


def is_cell_at(text: object, res: int) -> bool:
    """Whether ``text`` names a valid H3 cell at ``res``: a cell id that comes from a browser (a
    click on the map) is checked before any query or h3 call sees it."""
    return isinstance(text, str) and h3.is_valid_cell(text) and h3.get_resolution(text) == res


def parent_np(cells: np.ndarray, res: int) -> np.ndarray:
    """Parents at ``res`` of resolution-15 cells (uint64), without calling h3."""
    res = check_res(res)
    cells = cells.astype(np.uint64, copy=False)
    unused = np.uint64((1 << (3 * (FINE_RES - res))) - 1)
    return (cells & np.uint64(~_RES_MASK & 0xFFFFFFFFFFFFFFFF)) | np.uint64(res << _RES_SHIFT) | unused


def parent_sql(column: str, res: int) -> str:
    """SQL for the parent at ``res`` of a UBIGINT resolution-15 cell column.

    ``res`` is validated as an integer, so the text is safe to embed; ``column`` must be an
    identifier chosen by the code, never by a user.
    """
    res = check_res(res)
    unused = (1 << (3 * (FINE_RES - res))) - 1
    keep = ~_RES_MASK & 0xFFFFFFFFFFFFFFFF
    return f"(({column} & {keep}::UBIGINT) | {res << _RES_SHIFT}::UBIGINT | {unused}::UBIGINT)"


def latlng_to_cells(lat: np.ndarray, lng: np.ndarray, res: int = FINE_RES) -> np.ndarray:
    """H3 cells (uint64) of WGS84 points: vectorised, identical to h3-py (see app.h3vec)."""
    res = check_res(res)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lng = np.ascontiguousarray(lng, dtype=np.float64)
    return latlng_to_cells_vec(lat, lng, res)


def cell_to_hex(cell: int) -> str:
    return h3.int_to_str(int(cell))
