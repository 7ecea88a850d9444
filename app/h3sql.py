"""H3 ``latLngToCell`` at resolution 15 in DuckDB SQL, so that a load places its points in one
parallel pass with no round trip through Python.

It follows ``app.h3vec`` (a numpy port of H3, checked against h3-py): the closest icosahedron
face, the gnomonic projection onto it, rounding to the hex that holds the point, then one
aperture-7 step per resolution, each giving one digit. Three speed-ups make it cheap in SQL:

- The projection as dot products. H3 reaches the point's place on the face by an arc cosine,
  an azimuth and a tangent; the same gnomonic projection is three dot products with the face's
  centre and axes. The two differ by rounding only, far less than a millionth of a hex, so a
  point whose hex that could change (one within a guard band of a hex edge: a few in a
  hundred thousand) is left to the exact path, and no other point can land in another cell.
- Two levels at once. The child-centre maps of a class II and a class III level multiply to
  7 times the identity, so a cell is 7 times its grandparent plus an offset that the residues of
  its coordinates modulo 7 name: a 49-entry table gives the offset and both digits.
- Only the fine levels per point. The steps stop at a coarse resolution (the ward index's),
  and a lookup table of the region's coarse cells, keyed by face coordinates, supplies the rest:
  the coarse digits, base cell and rotation already folded into the index's high bits. The
  same join hands over whatever else the caller keeps per coarse cell (its ward).

A point outside the region's box, in a coarse cell the table lacks (a pentagon's base cell,
say) or in a guard band gets NULL; the caller places it with ``app.h3cells`` and checks a
sample of every pass against h3-py.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from app import h3vec
from app.h3cells import FINE_RES, latlng_to_cells

_RES = FINE_RES
_DEG = math.pi / 180.0
# Box margin in degrees beyond the study area's bounds: a point outside the box is outside every
# ward, so the margin only guards against rounding.
_MARGIN_DEG = 0.01
_KEY_BIAS = 1 << 24  # face coordinates of coarse cells are far smaller than this
_KEY_MASK = (1 << 25) - 1


@dataclass(frozen=True)
class H3Plan:
    """A region's box, candidate faces, and its coarse cells (``table``: key, high, rot)."""

    box: tuple[float, float, float, float]  # lat_min, lat_max, lng_min, lng_max (degrees)
    faces: tuple[int, ...]
    res: int  # the coarse resolution at which the SQL steps stop
    table: pa.Table


def plan_for_region(bounds: tuple[float, float, float, float], res: int) -> H3Plan:
    """A plan for points within ``bounds`` (minx, miny, maxx, maxy, degrees) plus a margin,
    with the per-point steps stopping at resolution ``res``."""
    if not 1 <= res < _RES:
        raise ValueError(f"coarse resolution must be from 1 to {_RES - 1}, not {res}")
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    lat_min, lat_max = max(miny - _MARGIN_DEG, -89.0), min(maxy + _MARGIN_DEG, 89.0)
    lng_min, lng_max = max(minx - _MARGIN_DEG, -180.0), min(maxx + _MARGIN_DEG, 180.0)
    lat, lng = np.meshgrid(np.linspace(lat_min, lat_max, 160), np.linspace(lng_min, lng_max, 160))
    lat, lng = lat.ravel(), lng.ravel()
    latlng_to_cells(lat, lng)  # teaches app.h3vec the face frames of this region
    xyz = h3vec._icosahedron()[0]
    la, ln = np.radians(lat), np.radians(lng)
    dots = h3vec._unit_vectors(la, ln) @ xyz.T
    # Every face that is closest, or nearly so, anywhere in the box: the SQL picks among them.
    near = dots >= dots.max(axis=1, keepdims=True) - 1e-3
    faces = tuple(int(f) for f in np.flatnonzero(near.any(axis=0)))
    tables = [_coarse_cells(face, res, la, ln) for face in faces]
    table = pa.concat_tables(tables) if tables else _coarse_table([], [], [])
    return H3Plan((lat_min, lat_max, lng_min, lng_max), faces, res, table)


def _coarse_cells(face: int, res: int, la: np.ndarray, ln: np.ndarray) -> pa.Table:
    """Every coarse cell of ``face`` whose face coordinates lie within the box's, padded: key,
    the cell's high bits (header and digits 1..res, rotated into the base cell's frame) and the
    rotation the finer digits need."""
    i, j = h3vec.face_hex(la, ln, face, res)
    ii, jj = np.meshgrid(np.arange(i.min() - 2, i.max() + 3), np.arange(j.min() - 2, j.max() + 3))
    ci, cj = ii.ravel().astype(np.int64), jj.ravel().astype(np.int64)
    codes = np.empty((res, len(ci)), dtype=np.int64)
    pi, pj = ci, cj
    for level in range(res - 1, -1, -1):
        up_i, up_j, down_i, down_j = h3vec._up_down(pi, pj, class3=(level + 1) % 2 == 1)
        codes[level] = (pi - down_i) * 3 + (pj - down_j) + 4
        pi, pj = up_i, up_j
    i0, j0, k0 = h3vec._normalize(pi, pj, np.zeros_like(pi))
    known = h3vec._FRAMES.get(_RES, h3vec._Frames()).known
    frame_key = face * 27 + np.minimum(i0, 2) * 9 + np.minimum(j0, 2) * 3 + np.minimum(k0, 2)
    in_range = (i0 <= 2) & (j0 <= 2) & (k0 <= 2)
    base = np.full(len(ci), -1, dtype=np.int64)
    rot = np.zeros(len(ci), dtype=np.int64)
    for key in np.unique(frame_key[in_range]):
        frame = known.get(int(key))
        if frame is not None:  # None: a pentagon's base cell, or a frame never met
            members = in_range & (frame_key == key)
            base[members], rot[members] = frame
    ok = base >= 0
    high = np.uint64((1 << 59) | (_RES << 52)) | (base[ok].astype(np.uint64) << np.uint64(45))
    for steps in np.unique(rot[ok]):
        table = h3vec._code_table(int(steps))
        members = rot[ok] == steps
        for r in range(1, res + 1):
            high[members] |= table[codes[r - 1, ok][members]] << np.uint64(3 * (_RES - r))
    keys = (np.int64(face) << 50) | ((ci[ok] + _KEY_BIAS) << 25) | (cj[ok] + _KEY_BIAS)
    return _coarse_table(keys, high.astype(np.int64), rot[ok])


def _coarse_table(keys: np.ndarray | list, highs: np.ndarray | list, rots: np.ndarray | list) -> pa.Table:
    return pa.table(
        {
            "key": pa.array(keys, type=pa.int64()),
            "high": pa.array(highs, type=pa.int64()),
            "rot": pa.array(rots, type=pa.int32()),
        }
    )


def _f(x: float) -> str:
    """A double literal that DuckDB reads back as exactly the same double."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def _by_face(plan: H3Plan, values: np.ndarray) -> str:
    """The per-face constant of the row's face as SQL."""
    if len(plan.faces) == 1:
        return _f(values[plan.faces[0]])
    whens = " ".join(f"WHEN {f} THEN {_f(values[f])}" for f in plan.faces)
    return f"(CASE __face {whens} END)"


def cells_sql(
    plan: H3Plan, source: str, lat: str, lng: str, keep: list[str], lookup: str, extra: list[str]
) -> tuple[str, dict]:
    """A query over ``source`` giving the ``keep`` columns, ``__in_box`` (whether the point is in
    the plan's box), ``__h3`` (the resolution-15 cell of (``lat``, ``lng``) as UBIGINT, or NULL
    where the plan cannot place the point) and the ``extra`` columns of the point's coarse cell
    in ``lookup`` (the plan's table, stored with any columns the caller added).

    All names and expressions here are the code's own; values travel as bound parameters.
    """
    digits, params = digits_sql(plan, source, lat, lng, keep)
    joined, join_params = join_cells_sql(plan, f"({digits})", lookup, extra)
    columns = "".join(f"{c}, " for c in keep) + "__key IS NOT NULL AS __in_box, __h3"
    sql = f"SELECT {columns}{''.join(f', {c}' for c in extra)} FROM ({joined})"
    return sql, {**params, **join_params}


def join_cells_sql(plan: H3Plan, points: str, lookup: str, extra: list[str]) -> tuple[str, dict]:
    """A query over ``points`` (a FROM item with the columns ``digits_sql`` adds) giving all its
    columns, ``__h3`` (the resolution-15 cell, NULL where the point's key has no coarse cell in
    ``lookup``) and the ``extra`` columns ``lookup`` keeps per coarse cell."""
    cell, params = cell_sql(plan, "p", "l")
    sql = (
        f"SELECT p.*, {cell} AS __h3{''.join(f', l.{c}' for c in extra)} "
        f"FROM {points} p LEFT JOIN {lookup} l ON l.key = p.__key"
    )
    return sql, params


def digit_columns(plan: H3Plan) -> list[str]:
    """The per-point columns ``digits_sql`` adds besides ``__key``: one per group of fine levels."""
    return [f"__g{top}" for top, _ in _fine_groups(plan.res)]


def digits_sql(plan: H3Plan, source: str, lat: str, lng: str, keep: list[str]) -> tuple[str, dict]:
    """A query over ``source`` giving the ``keep`` columns, the point's fine digits
    (``digit_columns``) and ``__key``, its coarse cell's key in the plan's table: NULL outside
    the box, -1 (a key no cell has) in a guard band. Only projections: the rows come out in the
    order they went in, so a table made from it keeps its source's order.
    """
    xyz = h3vec._icosahedron()[0]
    params: dict = {}
    lat_min, lat_max, lng_min, lng_max = plan.box
    k = "".join(f"{c}, " for c in keep)
    in_box = (
        f"{lat} BETWEEN {_f(lat_min)} AND {_f(lat_max)} AND {lng} BETWEEN {_f(lng_min)} AND {_f(lng_max)}"
    )
    layers = [
        f"SELECT {k}CASE WHEN {in_box} THEN {lat} * {_f(_DEG)} END AS __la, "
        f"CASE WHEN {in_box} THEN {lng} * {_f(_DEG)} END AS __ln FROM {source}",
        f"SELECT {k}__la, __ln, cos(__la) AS __cla FROM ({{prev}})",
        f"SELECT {k}__la, __ln, __cla, cos(__ln) * __cla AS __vx, sin(__ln) * __cla AS __vy, "
        f"sin(__la) AS __vz FROM ({{prev}})",
    ]
    if len(plan.faces) == 1:
        face = str(plan.faces[0])
    else:
        # The closest face: the smallest squared distance, the lowest face on a tie (H3's rule).
        sq = [_square_distance(*(_f(c) for c in xyz[f])) for f in plan.faces]
        layers.append(
            f"SELECT {k}__la, __ln, __cla, __vx, __vy, __vz, "
            + ", ".join(f"{s} AS __s{f}" for s, f in zip(sq, plan.faces, strict=True))
            + " FROM ({prev})"
        )
        least = f"least({', '.join(f'__s{f}' for f in plan.faces)})"
        face = "CASE " + " ".join(f"WHEN __s{f} = {least} THEN {f}" for f in plan.faces) + " END"
    layers.append(f"SELECT {k}__la, __ln, __cla, __vx, __vy, __vz, {face} AS __face FROM ({{prev}})")
    centre, i_axis, j_axis = _face_frames(_RES)
    sqd = _square_distance(*(_by_face(plan, xyz[:, a]) for a in range(3)))
    layers.append(
        f"SELECT {k}__face, {sqd} AS __sqd, {_dot(plan, centre)} AS __vc, {_dot(plan, i_axis)} AS __vi, "
        f"{_dot(plan, j_axis)} AS __vj FROM ({{prev}})"
    )
    scale = _f(_gnomonic_scale(_RES))
    layers.append(
        f"SELECT {k}__face, {scale} * __vi / __vc AS __x, {scale} * __vj / __vc AS __y, "
        f"{_f(_GUARD_FLAT)} + {_f(_GUARD_NEAR)} / greatest(sqrt(__sqd), 1e-300) AS __w FROM ({{prev}})"
    )
    layers.extend(_hex2d_layers(k))
    k += "__risky, "
    names: list[str] = []
    for top, n in _fine_groups(plan.res):
        carried = "".join(f"{g}, " for g in names)
        name = f"__g{top}"
        if n == 1:  # one level by H3's own rounding (_upAp7 or _upAp7r)
            if top % 2 == 1:
                pi, pj = "CAST((3 * __i - __j) / 7 AS BIGINT)", "CAST((__i + 2 * __j) / 7 AS BIGINT)"
                ci, cj = "(2 * __pi + __pj)", "(3 * __pj - __pi)"
            else:
                pi, pj = "CAST((2 * __i + __j) / 7 AS BIGINT)", "CAST((3 * __j - __i) / 7 AS BIGINT)"
                ci, cj = "(3 * __pi - __pj)", "(__pi + 2 * __pj)"
            layers.append(f"SELECT {k}{carried}__face, __i, __j, {pi} AS __pi, {pj} AS __pj FROM ({{prev}})")
            layers.append(
                f"SELECT {k}{carried}__face, __pi AS __i, __pj AS __j, "
                f"(__i - {ci}) * 3 + (__j - {cj}) + 4 AS {name} FROM ({{prev}})"
            )
        else:
            layers.append(
                f"SELECT {k}{carried}__face, __i, __j, "
                f"((__i % 7) + 7) % 7 * 7 + ((__j % 7) + 7) % 7 AS {name} FROM ({{prev}})"
            )
            layers.append(
                f"SELECT {k}{carried}{name}, __face, (__i - $h3_oi_{top}[{name} + 1]) // 7 AS __i, "
                f"(__j - $h3_oj_{top}[{name} + 1]) // 7 AS __j FROM ({{prev}})"
            )
            oi, oj, _ = _pair_table(top)
            params[f"h3_oi_{top}"], params[f"h3_oj_{top}"] = oi.tolist(), oj.tolist()
        names.append(name)
    # A group's digits index a table of at most 49 entries: a small type is cheaper to store.
    carried = "".join(f"CAST({g} AS UTINYINT) AS {g}, " for g in names)
    k = k.removesuffix("__risky, ")
    layers.append(
        f"SELECT {k}{carried}CASE WHEN __risky THEN -1 ELSE (__face::BIGINT << 50) "
        f"| ((__i + {_KEY_BIAS}) << 25) | (__j + {_KEY_BIAS}) END AS __key FROM ({{prev}})"
    )
    return _compose(layers), params


def cell_sql(plan: H3Plan, point: str, cell: str) -> tuple[str, dict]:
    """The resolution-15 cell (UBIGINT) of a ``digits_sql`` row (alias ``point``) joined with its
    coarse cell in the plan's table (alias ``cell``): the coarse cell's high bits with the fine
    digits, rotated into the base cell's frame, written in. NULL where the join found no cell."""
    params: dict = {}
    digits = []
    for top, n in _fine_groups(plan.res):
        size = 9 if n == 1 else 49
        params[f"h3_d_{top}"] = _rotated_digits(top, n)
        digits.append(f"$h3_d_{top}[{cell}.rot * {size} + {point}.__g{top} + 1]")
    return f"CAST({cell}.high | {' | '.join(digits)} AS UBIGINT)", params


def flag_sql(plan: H3Plan, flags: np.ndarray, key: str) -> tuple[str, dict]:
    """SQL that is true where the coarse cell whose key is ``key`` has its flag set (``flags``
    is aligned with the plan's table), and false for a cell the table lacks.

    The flags travel as one bound bit string indexed by the cell's place in its face's rectangle
    of coordinates: a lookup that costs the same however many cells the study area has, where a
    list or a join would not.
    """
    keys = np.asarray(plan.table["key"], dtype=np.int64)
    face, i, j = keys >> 50, ((keys >> 25) & _KEY_MASK) - _KEY_BIAS, (keys & _KEY_MASK) - _KEY_BIAS
    bits = []
    whens = []
    offset = 0
    for f in np.unique(face):
        on = face == f
        i0, j0 = int(i[on].min()), int(j[on].min())
        height = int(j[on].max()) - j0 + 1
        size = (int(i[on].max()) - i0 + 1) * height
        grid = np.zeros(size, dtype=bool)
        grid[(i[on] - i0) * height + (j[on] - j0)] = np.asarray(flags, dtype=bool)[on]
        bits.append(grid)
        ki = f"((({key}) >> 25) & {_KEY_MASK}) - {_KEY_BIAS + i0}"
        kj = f"(({key}) & {_KEY_MASK}) - {_KEY_BIAS + j0}"
        # The bit is read only in THEN, which DuckDB evaluates for the rows its WHEN holds:
        # a key outside the rectangle never reaches get_bit with an index out of range.
        whens.append(
            f"WHEN ({key}) >> 50 = {int(f)} AND {kj} BETWEEN 0 AND {height - 1} "
            f"AND {ki} BETWEEN 0 AND {size // height - 1} "
            f"THEN get_bit($h3_flags::BIT, CAST({offset} + ({ki}) * {height} + {kj} AS INTEGER)) = 1"
        )
        offset += size
    if not whens:
        return "FALSE", {}
    flat = np.concatenate(bits)
    sql = f"(CASE {' '.join(whens)} ELSE FALSE END)"
    return sql, {"h3_flags": "".join(np.where(flat, "1", "0"))}


def _square_distance(x: str, y: str, z: str) -> str:
    """H3's _pointSquareDist from the point's unit vector to (x, y, z)."""
    return f"((__vx - {x}) * (__vx - {x}) + (__vy - {y}) * (__vy - {y}) + (__vz - {z}) * (__vz - {z}))"


def _fine_groups(res: int) -> list[tuple[int, int]]:
    """The levels from 15 down to res + 1 as (finest resolution, levels): pairs, then a single."""
    groups, top = [], _RES
    while top - 1 > res:
        groups.append((top, 2))
        top -= 2
    if top > res:
        groups.append((top, 1))
    return groups


@functools.cache
def _units() -> dict[int, tuple[int, int]]:
    """Unrotated digit -> its axial unit step, from app.h3vec's table."""
    return {int(d): (code // 3 - 1, code % 3 - 1) for code, d in enumerate(h3vec._AXIAL_DIGIT) if d >= 0}


def _child_centre(res: int) -> np.ndarray:
    """H3's _downAp7 (class III, odd resolutions) or _downAp7r (class II) on axial coordinates."""
    return np.array([[2, 1], [-1, 3]]) if res % 2 == 1 else np.array([[3, -1], [1, 2]])


@functools.cache
def _pair_table(top: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the two levels ``top`` and ``top - 1``: per residue of (i, j) modulo 7, the offset
    from the grandparent's centre (7 times the grandparent) and the two unrotated digits."""
    oi, oj = np.zeros(49, dtype=np.int64), np.zeros(49, dtype=np.int64)
    digits = np.zeros((49, 2), dtype=np.int64)
    seen = np.zeros(49, dtype=bool)
    units = _units()
    for fine, coarse in itertools.product(range(7), repeat=2):
        offset = np.array(units[fine]) + _child_centre(top) @ np.array(units[coarse])
        idx = int(offset[0] % 7) * 7 + int(offset[1] % 7)
        if seen[idx]:
            raise AssertionError("aperture-7 offsets are not a complete residue system")
        seen[idx] = True
        oi[idx], oj[idx], digits[idx] = offset[0], offset[1], (fine, coarse)
    return oi, oj, digits


def _rotated_digits(top: int, n: int) -> list[int]:
    """Per rotation (0-5) and group index: the group's digits rotated and shifted into place."""
    out = []
    for steps in range(6):
        rot = h3vec._rotation(steps)
        if n == 1:  # index: the axial step code (0-8) of one level
            out.extend(int(d) << (3 * (_RES - top)) for d in rot[np.maximum(h3vec._AXIAL_DIGIT, 0)])
            continue
        digits = _pair_table(top)[2]
        fine = rot[digits[:, 0]].astype(np.int64) << (3 * (_RES - top))
        coarse = rot[digits[:, 1]].astype(np.int64) << (3 * (_RES - top + 1))
        out.extend(int(v) for v in fine | coarse)
    return out


def _compose(layers: list[str]) -> str:
    sql = layers[0]
    for layer in layers[1:]:
        sql = layer.replace("{prev}", sql)
    return sql


@functools.cache
def _face_frames(res: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per face: its centre and the two axes of its hex grid at ``res``, as unit vectors.

    H3 projects a point at angle r from the face's centre and azimuth az to the polar point
    (tan r, theta = az_face - az), turned back by the aperture-7 angle at odd resolutions. In
    vectors that is the gnomonic projection: with v the point's unit vector and c the centre,
    x = v.I / v.c and y = v.J / v.c, where I is the unit tangent at c at azimuth az_face and J
    the one 90 degrees clockwise from it. Three dot products replace seven trigonometric calls.
    """
    xyz, lat, lng, az = h3vec._icosahedron()
    north = np.stack([-np.sin(lat) * np.cos(lng), -np.sin(lat) * np.sin(lng), np.cos(lat)], axis=1)
    east = np.stack([-np.sin(lng), np.cos(lng), np.zeros_like(lng)], axis=1)
    a = (az - (h3vec.AP7_ROT_RADS if res % 2 == 1 else 0.0))[:, None]
    return xyz, np.cos(a) * north + np.sin(a) * east, np.sin(a) * north - np.cos(a) * east


def _gnomonic_scale(res: int) -> float:
    """From tan r to hex units at ``res``, multiplied as H3 does."""
    scale = 1.0 / h3vec.RES0_U_GNOMONIC
    for _ in range(res):
        scale *= h3vec.SQRT7
    return scale


# How far H3's own x and y (arc cosine, azimuth, tangent, in doubles) can be from the gnomonic
# ones: about 4.7e-9 / s + 6e-8 hex units at resolution 15 by an error analysis, where s is the
# chord from the face's centre (the arc cosine loses precision near it). Measured on 4M points
# over every face: at most a tenth of that. A point whose rounding in _hex2dToCoordIJK is decided
# within 50 times that bound (the widths below) is left to numpy, so the fast projection never
# puts a point in another cell than H3 does.
_GUARD_FLAT = 3e-6
_GUARD_NEAR = 2.5e-7


def _dot(plan: H3Plan, vectors: np.ndarray) -> str:
    """The dot product of the point's unit vector with the row's face's vector."""
    x, y, z = (_by_face(plan, vectors[:, a]) for a in range(3))
    return f"(__vx * {x} + __vy * {y} + __vz * {z})"


def _hex2d_layers(k: str) -> list[str]:
    """H3's _hex2dToCoordIJK: the hex holding (x, y) in the face's grid, as axial (i, j), and
    ``__risky``: whether any of its decisions lies within ``__w`` of its threshold, where a
    projection that far off could have decided otherwise."""
    rsin60 = _f(h3vec.RSIN60)
    third, two_thirds = _f(1.0 / 3.0), _f(2.0 / 3.0)
    margins = [
        "abs(__x)", "abs(__y)", "__r1", "1.0 - __r1", "__r2", "1.0 - __r2",
        f"abs(__r1 - {third})", "abs(__r1 - 0.5)", f"abs(__r1 - {two_thirds})",
        "abs(__r2 - (1.0 + __r1) / 2.0)", "abs(__r2 - (1.0 - __r1))", "abs(__r2 - 2.0 * __r1)",
        "abs(__r2 - (2.0 * __r1 - 1.0))", "abs(__r2 - __r1 / 2.0)",
    ]  # fmt: skip
    risky = "(" + " OR ".join(f"{m} < __w" for m in margins) + ") AS __risky"  # faster than least()
    return [
        f"SELECT {k}__face, __x, __y, __w, abs(__x) + abs(__y) * {rsin60} / 2.0 AS __x1, "
        f"abs(__y) * {rsin60} AS __x2 FROM ({{prev}})",
        f"SELECT {k}__face, __x, __y, __w, CAST(trunc(__x1) AS BIGINT) AS __m1, "
        f"CAST(trunc(__x2) AS BIGINT) AS __m2, __x1 - trunc(__x1) AS __r1, "
        f"__x2 - trunc(__x2) AS __r2 FROM ({{prev}})",
        f"SELECT {k}__face, __x, __y, {risky}, "
        f"__m1 + CASE WHEN __r1 < {third} THEN 0 WHEN __r1 >= {two_thirds} THEN 1 "
        "WHEN __r1 < 0.5 THEN CASE WHEN (1.0 - __r1) <= __r2 AND __r2 < 2.0 * __r1 THEN 1 ELSE 0 END "
        "ELSE CASE WHEN (2.0 * __r1 - 1.0) < __r2 AND __r2 < (1.0 - __r1) THEN 0 ELSE 1 END END AS __i, "
        f"__m2 + CASE WHEN __r1 < {third} THEN CASE WHEN __r2 >= (1.0 + __r1) / 2.0 THEN 1 ELSE 0 END "
        f"WHEN __r1 >= {two_thirds} THEN CASE WHEN __r2 >= __r1 / 2.0 THEN 1 ELSE 0 END "
        "ELSE CASE WHEN __r2 >= (1.0 - __r1) THEN 1 ELSE 0 END END AS __j FROM ({prev})",
        # Fold across the axes for the other quadrants.
        f"SELECT {k}__face, __y, __risky, __j, CASE WHEN __x >= 0.0 THEN __i "
        "WHEN __j % 2 = 0 THEN __i - 2 * (__i - __j // 2) "
        "ELSE __i - (2 * (__i - (__j + 1) // 2) + 1) END AS __i FROM ({prev})",
        f"SELECT {k}__face, __risky, CASE WHEN __y < 0.0 THEN __i - (2 * __j + 1) // 2 ELSE __i END AS __i, "
        "CASE WHEN __y < 0.0 THEN -__j ELSE __j END AS __j FROM ({prev})",
    ]
