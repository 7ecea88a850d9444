"""Exact point-in-ward assignment that tests only the points near a ward boundary.

Most points lie deep inside one ward. The index covers the study area with H3 cells of a
middling resolution and sorts them into cells wholly inside one ward (every point in them is
in that ward: a table lookup) and cells that touch a boundary (their points are tested exactly
against the few candidate wards). Cells are judged against wards shrunk and grown by a margin
far larger than the gap between an H3 cell's true edges and its polygon, so the shortcut never
changes an answer.

The margin matters because H3 does not nest: the points whose resolution-15 cell has a given
parent spill out of that parent's hexagon by up to about 0.19 of its edge length (measured at
resolutions 7 to 11). A parent cell counts as inside a ward only if its hexagon grown by 0.35
edge lengths is, and as touching a ward if that grown hexagon could reach it.
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import h3
import h3.api.basic_int as h3_int
import numpy as np
import pandas as pd
import shapely

from app.boundaries import Wards
from app.h3cells import latlng_to_cells, parent_np

_MIN_RES, _MAX_RES = 7, 11
_CELLS_PER_WARD = 60  # enough cells per ward that most of its points fall in interior cells
_WORKERS = min(4, os.cpu_count() or 1)
_SIMPLIFY = 1 / 16  # outline simplification, in margins
# What a stored index holds; bump the version whenever cells would be classed differently.
_STORED = ("interior_cells", "interior_ward", "edge_cells", "edge_offsets", "edge_wards")
INDEX_VERSION = 1
_SPILL = 0.35  # margin, in edge lengths of the index resolution (measured spill: 0.19)


def _cells(geom: shapely.Geometry, res: int, contain: str) -> set[int]:
    """Cells of ``geom`` under H3's containment mode."""
    out: set[int] = set()
    if geom.is_empty:
        return out
    polys = geom.geoms if isinstance(geom, shapely.MultiPolygon) else [geom]
    for poly in polys:
        shape = h3.geo_to_h3shape(shapely.geometry.mapping(poly))
        out.update(h3_int.h3shape_to_cells_experimental(shape, res, contain))
    return out


def _vertex_cells(geoms: list[shapely.Geometry], res: int) -> list[set[int]]:
    """Per geometry, the cells of its vertices, so that a fragment smaller than a cell (an
    island, a sliver) is never missed; one vectorised call for all of them."""
    xy, owner = shapely.get_coordinates(np.array(geoms, dtype=object), return_index=True)
    cells = latlng_to_cells(xy[:, 1], xy[:, 0], res) if len(xy) else np.zeros(0, dtype=np.uint64)
    out: list[set[int]] = [set() for _ in geoms]
    for i, cell in zip(owner.tolist(), cells.tolist(), strict=True):
        out[i].add(cell)
    return out


class WardIndex:
    def __init__(self, wards: Wards, res: int | None = None):
        self._adopt(wards, res if res is not None else index_resolution(wards))
        self._classify()
        self._build_lookup()

    def _adopt(self, wards: Wards, res: int) -> None:
        self.wards = wards
        self.res = res
        self.margin = _margin_deg(res, wards.bounds)
        self.geoms = np.array(wards.geoms, dtype=object)
        shapely.prepare(self.geoms)

    def to_bytes(self) -> bytes:
        """The classified cells, to store beside the boundaries they were built from: building
        them takes seconds for a detailed city, reading them back milliseconds."""
        buffer = io.BytesIO()
        np.savez(
            buffer, **{name: getattr(self, name) for name in _STORED}, version=INDEX_VERSION, res=self.res
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, wards: Wards, data: bytes) -> WardIndex | None:
        """The index ``to_bytes`` stored for these wards, or None if another version stored it."""
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            if int(stored["version"]) != INDEX_VERSION:
                return None
            index = cls.__new__(cls)
            index._adopt(wards, int(stored["res"]))
            for name in _STORED:
                setattr(index, name, stored[name])
        index._build_lookup()
        return index

    def _classify(self) -> None:
        wards, res = self.wards, self.res
        inner: dict[int, int] = {}
        touching: dict[int, list[int]] = defaultdict(list)
        outlines = [_grown_and_shrunk(geom, self.margin) for geom in wards.geoms]
        grown_vertices = _vertex_cells([grown for grown, _ in outlines], res)
        vertices = _vertex_cells(list(wards.geoms), res)
        for w, geom in enumerate(wards.geoms):
            grown, shrunk = outlines[w]
            for cell in _cells(grown, res, "overlap") | grown_vertices[w] | vertices[w]:
                touching[cell].append(w)
            full = np.array(sorted(_cells(shrunk, res, "full")), dtype=np.uint64)
            for cell in full[_cells_within(full, geom, self.margin)]:
                inner[int(cell)] = w
        # A cell inside one ward's shrunk polygon may still touch a neighbour's grown one only
        # if wards overlap; then it is tested exactly like any boundary cell.
        interior = {c: w for c, w in inner.items() if touching.get(c) == [w]}
        self.interior_cells = np.array(sorted(interior), dtype=np.uint64)
        self.interior_ward = np.array([interior[c] for c in sorted(interior)], dtype=np.int32)
        edge = sorted(c for c in touching if c not in interior)
        self.edge_cells = np.array(edge, dtype=np.uint64)
        offsets = np.zeros(len(edge) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(touching[c]) for c in edge])
        self.edge_offsets = offsets
        self.edge_wards = np.array([w for c in edge for w in touching[c]], dtype=np.int32)

    def _build_lookup(self) -> None:
        # One hash lookup serves both kinds of cell: a ward index (>= 0) for an interior cell,
        # -2 - position for an edge cell; cells in neither are outside every ward.
        self._lookup = pd.Index(np.concatenate([self.interior_cells, self.edge_cells]))
        self._value = np.concatenate(
            [self.interior_ward, -2 - np.arange(len(self.edge_cells), dtype=np.int32)]
        ).astype(np.int32)

    def assign(self, cells15: np.ndarray, lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
        """Ward index (into ``wards``) of each point, or -1 for a point outside every ward."""
        if len(cells15) == 0:
            return np.full(0, -1, dtype=np.int32)
        return self.resolve(self.cell_values(parent_np(cells15, self.res)), lat, lng)

    def cell_values(self, cells: np.ndarray) -> np.ndarray:
        """What the index knows of cells at its resolution: a ward index (>= 0) for a cell inside
        one ward, -2 - position for a cell on a boundary, -1 for a cell outside every ward."""
        found = self._lookup.get_indexer(cells.astype(np.uint64, copy=False))
        return np.where(found >= 0, self._value[np.maximum(found, 0)], -1).astype(np.int32)

    def resolve(self, values: np.ndarray, lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
        """Wards of points given their cells' ``cell_values``: boundary cells are tested exactly."""
        out = np.where(values >= 0, values, -1).astype(np.int32)
        at_edge = np.flatnonzero(values <= -2)
        if len(at_edge):
            out[at_edge] = self._exact(at_edge, -2 - values[at_edge], lat, lng)
        return out

    def _exact(self, idx: np.ndarray, pos: np.ndarray, lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
        """Test each point against its cell's candidate wards in their order, each point only
        until one holds it: the first candidate that does wins, so a point on a shared edge gets
        one ward, and most points need one test. Wards are tested in parallel (GEOS releases the
        GIL)."""
        starts, ends = self.edge_offsets[pos], self.edge_offsets[pos + 1]
        x, y = lng[idx], lat[idx]
        result = np.full(len(idx), -1, dtype=np.int32)
        todo = np.arange(len(idx))
        rank = 0
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            while len(todo):
                todo = todo[starts[todo] + rank < ends[todo]]
                if not len(todo):
                    break
                cand = self.edge_wards[starts[todo] + rank]
                order = np.argsort(cand, kind="stable")
                wards, firsts = np.unique(cand[order], return_index=True)
                groups = np.split(order, firsts[1:])
                tasks = [(self.geoms[w], x[todo[g]], y[todo[g]]) for w, g in zip(wards, groups, strict=True)]
                hit = np.zeros(len(todo), dtype=bool)
                tested = pool.map(lambda task: shapely.intersects_xy(*task), tasks)
                for group, inside in zip(groups, tested, strict=True):
                    hit[group] = inside
                result[todo[hit]] = cand[hit]
                todo = todo[~hit]
                rank += 1
        return result


def index_resolution(wards: Wards) -> int:
    """The coarsest resolution at which a typical ward spans about 60 cells."""
    typical_km2 = float(np.median(wards.areas_km2))
    for res in range(_MIN_RES, _MAX_RES + 1):
        if h3.average_hexagon_area(res, unit="km^2") * _CELLS_PER_WARD <= typical_km2:
            return res
    return _MAX_RES


def _margin_deg(res: int, bounds: tuple[float, float, float, float]) -> float:
    """The spill margin in degrees, sized for the study area's longitude scale (the larger)."""
    edge_m = h3.average_hexagon_edge_length(res, unit="m") * 1.2  # cells vary about the mean
    widest = max(abs(bounds[1]), abs(bounds[3]))
    return _SPILL * edge_m / (111_320.0 * max(np.cos(np.radians(widest)), 0.05))


def _cells_within(cells: np.ndarray, geom: shapely.Geometry, margin: float) -> np.ndarray:
    """Which cells' polygons, grown by the margin, lie inside ``geom`` (checked exactly)."""
    if len(cells) == 0:
        return np.zeros(0, dtype=bool)
    polys = shapely.polygons(
        [[(lng, lat) for lat, lng in h3.cell_to_boundary(h3.int_to_str(int(c)))] for c in cells]
    )
    grown = shapely.buffer(polys, margin, quad_segs=2, join_style="mitre")
    shapely.prepare(geom)
    return shapely.contains(geom, grown)


def _grown_and_shrunk(geom: shapely.Geometry, margin: float) -> tuple[shapely.Geometry, shapely.Geometry]:
    """The ward grown and shrunk by the margin. GEOS takes tens of milliseconds to buffer a
    detailed outline (a coastline of thousands of vertices), so both are buffered from an
    outline simplified by ``_SIMPLIFY`` margins, by the margin plus a slack: how far the
    simplified outline strays from the true one (measured at every true vertex) plus the
    tolerance again for the edges between vertices, and at least twice the tolerance. The
    grown one then still covers every point within the margin of the ward; the shrunk one need
    not be exact, as every interior cell is checked against the true polygon."""
    tolerance = margin * _SIMPLIFY
    simple = shapely.simplify(geom, tolerance, preserve_topology=True)
    xy = shapely.get_coordinates(geom)
    if len(shapely.get_coordinates(simple)) == len(xy):  # nothing to simplify: buffer as it is
        return _polygonal_buffer(geom, margin), _polygonal_buffer(geom, -margin)
    strayed = float(shapely.distance(simple, shapely.points(xy)).max())
    slack = max(2 * tolerance, strayed + tolerance)
    return _polygonal_buffer(simple, margin + slack), _polygonal_buffer(simple, -(margin + slack))


def _polygonal_buffer(geom: shapely.Geometry, distance: float) -> shapely.Geometry:
    buffered = shapely.buffer(geom, distance, quad_segs=2, join_style="mitre")
    return buffered if not buffered.is_empty else shapely.Polygon()
