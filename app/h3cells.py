"""H3 cells: assign points at resolution 15 once, derive every coarser cell by bit arithmetic.

Storing only the finest cell lets one column serve every map resolution: a parent cell is the
stored cell with its resolution field rewritten and the finer digits set to 7 (unused), which
DuckDB and numpy do in a few instructions instead of a second pass over the points.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import h3
import numpy as np

FINE_RES = 15
MIN_RES, MAX_RES = 0, 15
_RES_SHIFT = 52
_RES_MASK = 0xF << _RES_SHIFT
# Below this many points the cost of starting worker processes outweighs the second core.
_PARALLEL_THRESHOLD = 400_000


def check_res(res: int) -> int:
    if not isinstance(res, int | np.integer) or not MIN_RES <= int(res) <= MAX_RES:
        raise ValueError(f"H3 resolution must be an integer from {MIN_RES} to {MAX_RES}, not {res!r}")
    return int(res)


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


def _cells_chunk(args: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    lat, lng, res = args
    to_cell = h3.api.basic_int.latlng_to_cell
    return np.fromiter(
        (to_cell(a, b, res) for a, b in zip(lat.tolist(), lng.tolist(), strict=True)),
        dtype=np.uint64,
        count=len(lat),
    )


def latlng_to_cells(lat: np.ndarray, lng: np.ndarray, res: int = FINE_RES) -> np.ndarray:
    """H3 cells (uint64) of WGS84 points, using every core for large inputs."""
    res = check_res(res)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lng = np.ascontiguousarray(lng, dtype=np.float64)
    workers = min(os.cpu_count() or 1, 8)
    if len(lat) < _PARALLEL_THRESHOLD or workers < 2:
        return _cells_chunk((lat, lng, res))
    bounds = np.linspace(0, len(lat), workers + 1).astype(int)
    chunks = [(lat[a:b], lng[a:b], res) for a, b in itertools.pairwise(bounds)]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return np.concatenate(list(pool.map(_cells_chunk, chunks)))


def cell_to_hex(cell: int) -> str:
    return h3.int_to_str(int(cell))
