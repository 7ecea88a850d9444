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
        minx, miny, maxx, maxy = gdf.total_bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise BoundaryError(f"{path}: boundaries have no CRS; name one with [study_area] crs")
        gdf = gdf.set_crs("EPSG:4326")
        notes.append("no CRS in the boundary file: read as WGS84 degrees")
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
    return _one_row_per_code(frame, notes)


def _one_row_per_code(frame: pd.DataFrame, notes: list[str]) -> Wards:
    """Merge features that share a ward code (a ward drawn in several pieces)."""
    dupes = int(frame["code"].duplicated().sum())
    if dupes:
        notes.append(f"merged {dupes} extra feature(s) sharing a ward code")
    codes, names, pops, geoms, areas = [], [], [], [], []
    for code, group in frame.groupby("code", sort=True):
        geom = shapely.union_all(group["geom"].tolist()) if len(group) > 1 else group["geom"].iloc[0]
        pop = group["population"].sum(min_count=1) if group["population"].notna().any() else None
        codes.append(str(code))
        names.append(str(group["name"].iloc[0]))
        pops.append(None if pop is None or pd.isna(pop) else float(pop))
        geoms.append(geom)
        areas.append(abs(_GEOD.geometry_area_perimeter(geom)[0]) / 1e6)
    return Wards(codes, names, pops, geoms, areas, notes)
