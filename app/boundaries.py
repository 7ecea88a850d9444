"""Ward boundaries: read any CRS, reproject to WGS84, repair, and measure.

Boundary files arrive in whatever a council's GIS exported (British National Grid written as a
custom WKT, State Plane feet, GeoJSON in degrees), sometimes with self-intersections. Everything
downstream assumes valid WGS84 polygons with one row per ward code, so this module is where that
promise is made or a clear error is raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Geod

from app.catalog import StudyArea

_GEOD = Geod(ellps="WGS84")


class BoundaryError(ValueError):
    """A boundary file that cannot serve as the study area's wards."""


@dataclass
class Wards:
    """Valid WGS84 ward polygons, one per code, with names, populations and areas."""

    codes: list[str]
    names: list[str]
    populations: list[float | None]
    geoms: list[shapely.Geometry]
    areas_km2: list[float]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return tuple(shapely.total_bounds(np.array(self.geoms, dtype=object)))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "code": self.codes,
                "name": self.names,
                "population": pd.array(self.populations, dtype="Float64"),
                "area_km2": self.areas_km2,
                "geom_wkb": [shapely.to_wkb(g) for g in self.geoms],
                "geojson": [shapely.to_geojson(shapely.set_precision(g, 1e-6)) for g in self.geoms],
            }
        )


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The polygonal part of a geometry, as repair can leave lines or points beside it."""
    if geom is None or geom.is_empty:
        return None
    if isinstance(geom, shapely.Polygon | shapely.MultiPolygon):
        return geom
    if isinstance(geom, shapely.GeometryCollection):
        parts = [p for g in geom.geoms if (p := _polygonal(g)) is not None]
        return shapely.union_all(parts) if parts else None
    return None


def read_wards(sa: StudyArea) -> Wards:
    path = Path(sa.boundaries)
    try:
        gdf = gpd.read_file(path, layer=sa.layer) if sa.layer else gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise BoundaryError(f"{path}: cannot read boundaries: {exc}") from exc
    notes: list[str] = []
    for key in ("code_field", "name_field", "population_field"):
        column = getattr(sa, key)
        if column and column not in gdf.columns:
            raise BoundaryError(
                f"{path}: [study_area] key '{key}': no field '{column}' in the boundaries "
                f"(fields: {', '.join(c for c in gdf.columns if c != 'geometry')})"
            )
    if sa.crs:
        gdf = gdf.set_crs(sa.crs, allow_override=True)
    elif gdf.crs is None:
        _check_degrees(path, gdf.total_bounds)
        gdf = gdf.set_crs("EPSG:4326")
        notes.append("no CRS in the boundary file: read as WGS84 degrees")
    elif gdf.crs.is_geographic:
        # A GeoJSON without a ``crs`` member is read as degrees whatever its numbers are.
        _check_degrees(path, gdf.total_bounds)
    if gdf.crs.to_epsg() != 4326:
        notes.append(f"reprojected from {gdf.crs.name} to WGS84")
        gdf = gdf.to_crs("EPSG:4326")

    geoms = gdf.geometry.values
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms = np.where(invalid, shapely.make_valid(geoms), geoms)
        notes.append(f"repaired {int(invalid.sum())} invalid polygon(s)")
    polys = [_polygonal(g) for g in geoms]
    keep = [p is not None for p in polys]
    if not any(keep):
        raise BoundaryError(f"{path}: no polygons in the boundary file")
    if not all(keep):
        notes.append(f"dropped {keep.count(False)} feature(s) with no polygon")

    frame = pd.DataFrame(
        {
            "code": gdf[sa.code_field].astype("string").str.strip(),
            "name": gdf[sa.name_field].astype("string").str.strip(),
            "population": (
                pd.to_numeric(gdf[sa.population_field], errors="coerce") if sa.population_field else np.nan
            ),
            "geom": polys,
        }
    )[keep]
    if frame["code"].isna().any() or (frame["code"] == "").any():
        raise BoundaryError(f"{path}: field '{sa.code_field}' is empty for some features")
    frame = _drop_negative_populations(frame, sa.population_field, notes)
    wards = _one_row_per_code(frame, notes)
    notes.extend(_overlap_notes(wards))
    return wards


def _check_degrees(path: Path, bounds) -> None:
    """Coordinates beyond ±180/±90 are metres or feet of a projected system: read as degrees,
    every area would come out undefined, so the catalogue has to name the system."""
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    if -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90:
        return
    raise BoundaryError(
        f"{path}: the coordinates (x {minx:,.0f} to {maxx:,.0f}, y {miny:,.0f} to {maxy:,.0f}) are not "
        'longitude/latitude degrees and the file names no coordinate system; add crs = "EPSG:..." '
        "to the catalogue's [study_area] (British National Grid is EPSG:27700)"
    )


def _drop_negative_populations(frame: pd.DataFrame, field_name: str | None, notes: list[str]) -> pd.DataFrame:
    """A negative population is a data error: it would make rates per resident meaningless, so
    it is treated as missing and the wards are named in the load report."""
    negative = frame["population"] < 0 if field_name else pd.Series(False, index=frame.index)
    if not negative.any():
        return frame
    named = _listed(
        [f"{c} ({n})" for c, n in zip(frame.loc[negative, "code"], frame.loc[negative, "name"], strict=True)]
    )
    notes.append(
        f"{int(negative.sum())} ward(s) with a negative population in '{field_name}', "
        f"treated as missing: {named}"
    )
    return frame.assign(population=frame["population"].mask(negative))


_OVERLAP_M2 = 1.0  # below this an overlap is rounding in the file's coordinates, not a mistake
_LISTED = 5  # wards or pairs named in one note; the rest are counted


def _overlap_notes(wards: Wards) -> list[str]:
    """Wards whose interiors overlap: a record in the overlap is counted in one of them only, so
    the file is probably wrong (two vintages mixed, or a parent area beside its parts)."""
    geoms = np.array(wards.geoms, dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = left < right
    left, right = left[pairs], right[pairs]
    inner = shapely.relate_pattern(geoms[left], geoms[right], "T********")
    left, right = left[inner], right[inner]
    found = []
    for a, b, shared in zip(left, right, shapely.intersection(geoms[left], geoms[right]), strict=True):
        m2 = abs(_GEOD.geometry_area_perimeter(shared)[0])
        if m2 >= _OVERLAP_M2:
            found.append((m2, wards.codes[a], wards.names[a], wards.codes[b], wards.names[b]))
    if not found:
        return []
    found.sort(reverse=True)
    listed = _listed([f"{ca} ({na}) and {cb} ({nb}): {_area(m2)}" for m2, ca, na, cb, nb in found])
    total = sum(f[0] for f in found)
    return [
        f"{len(found)} pair(s) of wards overlap, {_area(total)} in all; a record in an overlap is "
        f"counted in one ward only: {listed}"
    ]


def _area(m2: float) -> str:
    return f"{m2 / 1e6:,.3f} km²" if m2 >= 10_000 else f"{m2:,.0f} m²"


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:_LISTED])
    return shown + (f"; and {len(items) - _LISTED:,} more" if len(items) > _LISTED else "")


def _one_row_per_code(frame: pd.DataFrame, notes: list[str]) -> Wards:
    """Merge features that share a ward code (a ward drawn in several pieces). Whole columns at
    a time: England's 33,755 LSOAs are read in seconds, not minutes."""
    shared = frame["code"].duplicated(keep=False)
    if dupes := int(frame["code"].duplicated().sum()):
        notes.append(f"merged {dupes} extra feature(s) sharing a ward code")
    pieces = frame[shared].groupby("code", sort=False)["geom"]
    merged = {code: shapely.union_all(group.tolist()) for code, group in pieces}
    frame = frame.sort_values("code", kind="stable", ignore_index=True)
    first = frame[~frame["code"].duplicated()]
    codes = [str(c) for c in first["code"]]
    pops = frame.groupby("code", sort=False)["population"].sum(min_count=1).reindex(first["code"])
    geoms = [merged.get(code, geom) for code, geom in zip(codes, first["geom"], strict=True)]
    return Wards(
        codes=codes,
        names=[str(n) for n in first["name"]],
        populations=[None if pd.isna(p) else float(p) for p in pops],
        geoms=geoms,
        areas_km2=[abs(_GEOD.geometry_area_perimeter(g)[0]) / 1e6 for g in geoms],
        notes=notes,
    )
