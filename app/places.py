"""Places people know: ward names, a gazetteer of named places and a postcode lookup.

People name a hotspot by the estate, street or station it sits on, not by a cell id, and look a
place up by its name or postcode. The catalogue may name two optional files in ``[study_area]``:

- ``places``: a gazetteer of named points or areas (estates, streets, stations, town centres).
  Accepted: a CSV with a ``name`` column, an optional ``kind`` (or ``type``) column and either
  ``lat``/``lon`` (also ``latitude``/``longitude``/``long``/``lng``) in WGS84 degrees or
  ``easting``/``northing`` in British National Grid (EPSG:27700); or a GeoJSON or GeoPackage
  of points or polygons with a ``name`` field (any CRS the file declares; an optional ``kind``
  or ``type`` field). An area is stored with its outline, so a hotspot inside it takes its name.
- ``postcodes``: a postcode lookup in the ONS Postcode Directory layout: a postcode column
  (``pcds``, ``pcd``, ``pcd2`` or ``postcode``) and ``lat`` + ``long`` (or ``latitude`` +
  ``longitude``). Only postcodes inside the study area's wards are kept, so the full national
  file can be named as it is.

Without a gazetteer a place is named by its ward and its direction from the ward's centre
("north-east of Abbey ward centre"), which needs nothing but the boundaries.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import shapely

from app.catalog import Catalog, CatalogError

PLACES_VERSION = "1"  # part of the stored fingerprint: a change here reloads the gazetteer
NAME_COLUMNS = ("name",)
KIND_COLUMNS = ("kind", "type")
LAT_COLUMNS = ("lat", "latitude")
LON_COLUMNS = ("lon", "long", "lng", "longitude")
EASTING_COLUMNS = ("easting", "eastings", "x")
NORTHING_COLUMNS = ("northing", "northings", "y")
POSTCODE_COLUMNS = ("pcds", "pcd", "pcd2", "postcode")
PLACE_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".geojson": "geo", ".json": "geo", ".gpkg": "geo"}
POSTCODE_FORMATS = {".csv": "csv", ".csv.gz": "csv"}
DEFAULT_MAX_KM = 0.8  # a named point further than this from a hotspot does not name it
NEAR_CENTRE_KM = 0.25  # closer than this to a ward's centre, a place is "at" the centre
KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.32

PLACES_SQL = """
CREATE OR REPLACE TABLE places (
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    lat DOUBLE NOT NULL,
    lon DOUBLE NOT NULL,
    ward_code VARCHAR,          -- the ward holding the point (an area: its representative point)
    geom_wkb BLOB               -- an area's outline in WGS84; NULL for a named point
);
CREATE OR REPLACE TABLE postcodes (
    postcode VARCHAR NOT NULL,  -- as people write it: "FH1 2AB"
    key VARCHAR NOT NULL,       -- upper case without spaces, what a search matches on
    lat DOUBLE NOT NULL,
    lon DOUBLE NOT NULL,
    ward_code VARCHAR
);
"""


class PlacesError(CatalogError):
    """A gazetteer or postcode file that cannot be read as the catalogue says: a mistake in the
    catalogue's files, reported (and caught) as one, so the load stops with one clear line and
    the warehouse stays as it was."""

    def __init__(self, message: str):
        super().__init__([message])


# --------------------------------------------------------------------------------------------
# Catalogue checks (called by app.catalog while it validates [study_area])


def file_format(path: str | Path, formats: dict[str, str]) -> str | None:
    """The kind of file (``csv`` or ``geo``) from its name, or None when it is not one we read."""
    lowered = str(path).lower()
    for ext in sorted(formats, key=len, reverse=True):
        if lowered.endswith(ext):
            return formats[ext]
    return None


def check_places_file(path: Path) -> str | None:
    """Why the gazetteer file cannot be used (one sentence), or None if its columns fit."""
    kind = file_format(path, PLACE_FORMATS)
    if kind is None:
        return "must be a CSV, GeoJSON or GeoPackage file of named places"
    try:
        columns = _csv_header(path) if kind == "csv" else _geo_fields(path)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        return f"cannot read {path.name}: {exc}"
    lowered = {c.lower() for c in columns}
    if not lowered & set(NAME_COLUMNS):
        return f"{path.name} has no 'name' column (columns: {', '.join(columns)})"
    if kind == "csv":
        has_latlon = bool(lowered & set(LAT_COLUMNS)) and bool(lowered & set(LON_COLUMNS))
        has_en = bool(lowered & set(EASTING_COLUMNS)) and bool(lowered & set(NORTHING_COLUMNS))
        if not (has_latlon or has_en):
            return (
                f"{path.name} needs lat and lon (WGS84) or easting and northing (British National "
                f"Grid) columns (columns: {', '.join(columns)})"
            )
    return None


def check_postcodes_file(path: Path) -> str | None:
    """Why the postcode file cannot be used (one sentence), or None if its columns fit."""
    if file_format(path, POSTCODE_FORMATS) is None:
        return "must be a CSV file in the ONS Postcode Directory layout (pcds, lat, long)"
    try:
        columns = _csv_header(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return f"cannot read {path.name}: {exc}"
    lowered = {c.lower() for c in columns}
    wanted = (("postcode (pcds)", POSTCODE_COLUMNS), ("lat", LAT_COLUMNS), ("long", LON_COLUMNS))
    missing = [what for what, names in wanted if not lowered & set(names)]
    if missing:
        return f"{path.name} has no {' or '.join(missing)} column (columns: {', '.join(columns[:20])})"
    return None


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        first = next(csv.reader(handle), None)
    if not first:
        raise ValueError("the file is empty")
    return [c.strip() for c in first]


def _geo_fields(path: Path) -> list[str]:
    import pyogrio

    try:
        info = pyogrio.read_info(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise ValueError(str(exc).splitlines()[0] if str(exc) else "not a readable file") from exc
    return [str(f) for f in info["fields"]]


# --------------------------------------------------------------------------------------------
# Loading into the warehouse


def places_fingerprint(catalog: Catalog, boundary_hash: str | None) -> str:
    """What the stored places depend on: the two files' bytes and the wards they are placed in."""
    sa = catalog.study_area
    digest = hashlib.sha256(f"{PLACES_VERSION}|{boundary_hash or ''}".encode())
    for path in (sa.places, sa.postcodes):
        digest.update(b"|")
        if path is not None:
            digest.update(str(path).encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def places_stale(db_path: str | Path, catalog: Catalog) -> bool:
    """True when the warehouse's places do not match the catalogue's files (or are missing),
    so that a load whose datasets are all unchanged still picks up an edited gazetteer."""
    from app.warehouse import connect

    db_path = Path(db_path)
    if not db_path.exists():
        return True
    with connect(db_path, read_only=True) as con:
        if not _has_table(con, "places") or not _has_table(con, "meta"):
            return True
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    return meta.get("places_hash") != places_fingerprint(catalog, meta.get("boundary_hash"))


def write_places(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> dict:
    """Load the gazetteer and the postcode lookup into ``places`` and ``postcodes`` (both
    created here; empty without the files), each place with the ward that holds it. Call it
    after the wards are stored. Skipped when neither the files nor the wards changed. Returns
    a short report, also kept in ``meta`` as ``places_report``."""
    import json

    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    fingerprint = places_fingerprint(catalog, meta.get("boundary_hash"))
    if meta.get("places_hash") == fingerprint and _has_table(con, "places") and _has_table(con, "postcodes"):
        return json.loads(meta.get("places_report", "{}"))
    sa = catalog.study_area
    wards = _ward_shapes(con)
    try:
        places = read_places_file(sa.places) if sa.places else _empty_places()
        postcodes = read_postcodes_file(sa.postcodes, _bounds(wards)) if sa.postcodes else _empty_postcodes()
    except PlacesError as exc:
        raise PlacesError(f"{catalog.path}: [study_area]: {exc.problems[0]}") from exc
    places["ward_code"] = _wards_of(wards, places["lat"].to_numpy(), places["lon"].to_numpy())
    postcodes["ward_code"] = _wards_of(wards, postcodes["lat"].to_numpy(), postcodes["lon"].to_numpy())
    outside = int(postcodes["ward_code"].isna().sum())
    postcodes = postcodes[postcodes["ward_code"].notna()].reset_index(drop=True)
    report = {
        "places": len(places),
        "places_outside_wards": int(places["ward_code"].isna().sum()),
        "postcodes": len(postcodes),
        "postcodes_outside_wards": outside,
    }
    con.execute("BEGIN TRANSACTION")
    con.execute(PLACES_SQL)
    con.register("places_frame", places)
    con.execute("INSERT INTO places SELECT name, kind, lat, lon, ward_code, geom_wkb FROM places_frame")
    con.unregister("places_frame")
    con.register("postcodes_frame", postcodes)
    con.execute("INSERT INTO postcodes SELECT postcode, key, lat, lon, ward_code FROM postcodes_frame")
    con.unregister("postcodes_frame")
    con.execute("INSERT OR REPLACE INTO meta VALUES ('places_hash', ?)", [fingerprint])
    con.execute("INSERT OR REPLACE INTO meta VALUES ('places_report', ?)", [json.dumps(report)])
    con.execute("COMMIT")
    return report


def _empty_places() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": pd.Series(dtype=object),
            "kind": pd.Series(dtype=object),
            "lat": pd.Series(dtype=float),
            "lon": pd.Series(dtype=float),
            "geom_wkb": pd.Series(dtype=object),
        }
    )


def _empty_postcodes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "postcode": pd.Series(dtype=object),
            "key": pd.Series(dtype=object),
            "lat": pd.Series(dtype=float),
            "lon": pd.Series(dtype=float),
        }
    )


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    """The first column whose lower-cased name is one of ``names`` (in the order of ``names``)."""
    by_lower = {c.lower(): c for c in columns}
    return next((by_lower[n] for n in names if n in by_lower), None)


def read_places_file(path: Path) -> pd.DataFrame:
    """A gazetteer file as name, kind, lat, lon (WGS84) and an area's outline (WKB or None).
    Rows without a name or a usable position are left out."""
    path = Path(path)
    if file_format(path, PLACE_FORMATS) == "csv":
        frame = _places_from_csv(path)
    else:
        frame = _places_from_geo(path)
    frame["name"] = frame["name"].astype("string").str.strip()
    frame["kind"] = frame["kind"].astype("string").fillna("").str.strip().str.lower()
    ok = (
        frame["name"].notna()
        & (frame["name"] != "")
        & frame["lat"].between(-90, 90)
        & frame["lon"].between(-180, 180)
    )
    frame = frame[ok.fillna(False).to_numpy(dtype=bool)].reset_index(drop=True)
    frame["name"] = frame["name"].astype(object)
    frame["kind"] = frame["kind"].astype(object)
    return frame[["name", "kind", "lat", "lon", "geom_wkb"]]


def _places_from_csv(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        raise PlacesError(f"key 'places': {path.name}: cannot read the file: {exc}") from exc
    columns = list(raw.columns)
    name, kind = _pick(columns, NAME_COLUMNS), _pick(columns, KIND_COLUMNS)
    if name is None:
        raise PlacesError(f"key 'places': {path.name}: no 'name' column")
    lat_col, lon_col = _pick(columns, LAT_COLUMNS), _pick(columns, LON_COLUMNS)
    if lat_col and lon_col:
        lat = pd.to_numeric(raw[lat_col], errors="coerce").to_numpy(dtype=float)
        lon = pd.to_numeric(raw[lon_col], errors="coerce").to_numpy(dtype=float)
    else:
        e_col, n_col = _pick(columns, EASTING_COLUMNS), _pick(columns, NORTHING_COLUMNS)
        if not (e_col and n_col):
            raise PlacesError(f"key 'places': {path.name}: needs lat and lon or easting and northing columns")
        from pyproj import Transformer

        east = pd.to_numeric(raw[e_col], errors="coerce").to_numpy(dtype=float)
        north = pd.to_numeric(raw[n_col], errors="coerce").to_numpy(dtype=float)
        lon, lat = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True).transform(east, north)
    return pd.DataFrame(
        {
            "name": raw[name],
            "kind": raw[kind] if kind else "",
            "lat": np.asarray(lat, dtype=float),
            "lon": np.asarray(lon, dtype=float),
            "geom_wkb": None,
        }
    )


def _places_from_geo(path: Path) -> pd.DataFrame:
    import geopandas as gpd

    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise PlacesError(f"key 'places': {path.name}: cannot read the file: {exc}") from exc
    columns = [c for c in gdf.columns if c != "geometry"]
    name, kind = _pick(columns, NAME_COLUMNS), _pick(columns, KIND_COLUMNS)
    if name is None:
        raise PlacesError(f"key 'places': {path.name}: no 'name' field")
    if gdf.crs is None:
        gdf = gdf.set_crs("EPSG:4326")
    elif gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs("EPSG:4326")
    geoms = gdf.geometry.values
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms = np.where(present & ~shapely.is_valid(geoms), shapely.make_valid(geoms), geoms)
    is_area = present & np.isin(shapely.get_type_id(geoms), (3, 6, 7))  # polygon, multi, collection
    anchor = np.where(present, shapely.point_on_surface(np.where(present, geoms, shapely.Point(0, 0))), None)
    lat = np.array([p.y if p is not None else np.nan for p in anchor], dtype=float)
    lon = np.array([p.x if p is not None else np.nan for p in anchor], dtype=float)
    return pd.DataFrame(
        {
            "name": gdf[name],
            "kind": gdf[kind] if kind else "",
            "lat": lat,
            "lon": lon,
            "geom_wkb": [shapely.to_wkb(g) if a else None for g, a in zip(geoms, is_area, strict=True)],
        }
    )


def read_postcodes_file(path: Path, bounds: tuple[float, float, float, float] | None = None) -> pd.DataFrame:
    """Postcodes with their positions from an ONS Postcode Directory style CSV, only those
    inside ``bounds`` (min lon, min lat, max lon, max lat) when given. DuckDB reads it, as the
    national file has millions of rows; the ONS marks a postcode without a position with
    latitude 99.999999, which the bounds (or the range check) leave out."""
    path = Path(path)
    columns = _csv_header(path)
    pc, lat, lon = _pick(columns, POSTCODE_COLUMNS), _pick(columns, LAT_COLUMNS), _pick(columns, LON_COLUMNS)
    if not (pc and lat and lon):
        raise PlacesError(f"key 'postcodes': {path.name}: needs postcode, lat and long columns")
    minx, miny, maxx, maxy = bounds if bounds else (-180.0, -90.0, 180.0, 90.0)
    con = duckdb.connect()
    try:
        frame = con.execute(
            """
            SELECT pc, lat, lon FROM (
                SELECT trim(CAST(columns(?) AS VARCHAR)) AS pc,
                       TRY_CAST(columns(?) AS DOUBLE) AS lat,
                       TRY_CAST(columns(?) AS DOUBLE) AS lon
                FROM read_csv(?, all_varchar = true, header = true, ignore_errors = true)
            ) WHERE pc <> '' AND lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?
            """,
            [pc, lat, lon, str(path), miny, maxy, minx, maxx],
        ).df()
    except duckdb.Error as exc:
        raise PlacesError(f"key 'postcodes': {path.name}: cannot read the file: {exc}") from exc
    finally:
        con.close()
    keys = frame["pc"].map(postcode_key)
    frame = frame[keys.notna().to_numpy()].assign(key=keys[keys.notna()])
    frame = frame.drop_duplicates("key").reset_index(drop=True)
    return pd.DataFrame(
        {
            "postcode": frame["key"].map(format_postcode).astype(object),
            "key": frame["key"].astype(object),
            "lat": frame["lat"].astype(float),
            "lon": frame["lon"].astype(float),
        }
    )


_POSTCODE_CHARS = re.compile(r"^[A-Z0-9]+$")


def postcode_key(text: object) -> str | None:
    """A postcode as a search matches it: upper case, every space removed ("fh1  2ab" and the
    ONS's 7-character "FH1 2AB" both give "FH12AB"); None for text that is not one."""
    if not isinstance(text, str):
        return None
    key = re.sub(r"\s+", "", text).upper()
    return key if 2 <= len(key) <= 8 and _POSTCODE_CHARS.match(key) else None


def format_postcode(key: str) -> str:
    """The usual written form: outward code, one space, the three-character inward code."""
    return f"{key[:-3]} {key[-3:]}" if len(key) >= 5 else key


# --------------------------------------------------------------------------------------------
# Reading places back


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND database_name = current_database()",
        [name],
    ).fetchall()
    return found[0][0] > 0


def _ward_shapes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    frame = con.execute("SELECT code, name, geom_wkb FROM wards ORDER BY code").df()
    frame["geom"] = [shapely.from_wkb(bytes(b)) for b in frame["geom_wkb"]]
    return frame.drop(columns="geom_wkb")


def _bounds(wards: pd.DataFrame) -> tuple[float, float, float, float] | None:
    if not len(wards):
        return None
    return tuple(float(b) for b in shapely.total_bounds(np.array(wards["geom"], dtype=object)))


def _wards_of(wards: pd.DataFrame, lat: np.ndarray, lon: np.ndarray) -> pd.Series:
    """The code of the ward holding each point (None outside every ward)."""
    out = np.full(len(lat), None, dtype=object)
    if len(lat) and len(wards):
        tree = shapely.STRtree(np.array(wards["geom"], dtype=object))
        point_idx, ward_idx = tree.query(shapely.points(lon, lat), predicate="intersects")
        out[point_idx] = wards["code"].to_numpy()[ward_idx]  # a point on a shared edge: either ward
    return pd.Series(out, dtype=object)


def ward_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every ward with its outline (``geom``, shapely), its centre (``lat``, ``lon``: the centroid,
    or a point inside the ward when the centroid falls outside it) and its bounding box."""
    wards = _ward_shapes(con)
    geoms = np.array(wards["geom"], dtype=object)
    centroids = shapely.centroid(geoms) if len(geoms) else np.array([], dtype=object)
    inside = shapely.contains(geoms, centroids) if len(geoms) else np.array([], dtype=bool)
    centres = np.where(inside, centroids, shapely.point_on_surface(geoms) if len(geoms) else centroids)
    bounds = shapely.bounds(geoms) if len(geoms) else np.zeros((0, 4))
    return wards.assign(
        lat=[p.y for p in centres],
        lon=[p.x for p in centres],
        min_lon=bounds[:, 0],
        min_lat=bounds[:, 1],
        max_lon=bounds[:, 2],
        max_lat=bounds[:, 3],
    )


def place_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The gazetteer as loaded: name, kind, lat, lon, ward_code and ``geom`` (shapely outline of
    an area, None for a point). Empty when the catalogue names none (or the warehouse predates
    gazetteers)."""
    if not _has_table(con, "places"):
        return _empty_places().drop(columns="geom_wkb").assign(ward_code=None, geom=None)
    frame = con.execute("SELECT name, kind, lat, lon, ward_code, geom_wkb FROM places ORDER BY name").df()
    blobs = (bytes, bytearray, memoryview)
    frame["geom"] = [shapely.from_wkb(bytes(b)) if isinstance(b, blobs) else None for b in frame["geom_wkb"]]
    return frame.drop(columns="geom_wkb")


# --------------------------------------------------------------------------------------------
# Naming a place


def distance_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Distance in km on a local flat approximation: exact enough within a city."""
    lat1, lon1, lat2, lon2 = (np.asarray(v, dtype=float) for v in (lat1, lon1, lat2, lon2))
    dx = (lon2 - lon1) * KM_PER_DEG_LON_EQUATOR * np.cos(np.radians((lat1 + lat2) / 2))
    dy = (lat2 - lat1) * KM_PER_DEG_LAT
    return np.hypot(dx, dy)


def nearest_place_name(
    places: pd.DataFrame, lat: float, lon: float, max_km: float = DEFAULT_MAX_KM
) -> str | None:
    """The gazetteer name for a point: the smallest named area holding it, else the nearest
    named point within ``max_km``; None when nothing is close enough to name it honestly."""
    if places is None or not len(places):
        return None
    if "geom" in places:
        areas = places[places["geom"].notna()]
        if len(areas):
            point = shapely.Point(lon, lat)
            pairs = zip(areas["geom"], areas["name"], strict=True)
            holding = [(g.area, n) for g, n in pairs if g.covers(point)]
            if holding:
                return str(min(holding)[1])
        points = places[places["geom"].isna()]
    else:
        points = places
    if not len(points):
        return None
    d = distance_km(lat, lon, points["lat"].to_numpy(), points["lon"].to_numpy())
    i = int(np.argmin(d))
    return str(points["name"].iloc[i]) if d[i] <= max_km else None


COMPASS = ("north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west")


def ward_label(ward_name: str) -> str:
    """The ward as people say it: "Abbey ward", but "Abbey Ward" stays as it is."""
    return ward_name if ward_name.lower().endswith(" ward") else f"{ward_name} ward"


def direction_name(ward_name: str, centre_lat: float, centre_lon: float, lat: float, lon: float) -> str:
    """A place named by its ward and its direction from the ward's centre: "north of Abbey ward
    centre", or "Abbey ward centre" within a short walk of it."""
    label = ward_label(ward_name)
    if float(distance_km(centre_lat, centre_lon, lat, lon)) < NEAR_CENTRE_KM:
        return f"{label} centre"
    dx = (lon - centre_lon) * math.cos(math.radians((lat + centre_lat) / 2))
    dy = lat - centre_lat
    bearing = math.degrees(math.atan2(dx, dy)) % 360
    return f"{COMPASS[int((bearing + 22.5) // 45) % 8]} of {label} centre"


def place_name(
    lat: float,
    lon: float,
    *,
    wards: pd.DataFrame,
    places: pd.DataFrame | None = None,
    ward_code: str | None = None,
    max_km: float = DEFAULT_MAX_KM,
) -> str:
    """A name people know for a point: the gazetteer's (``nearest_place_name``), else the ward
    (``ward_code``, or the ward holding the point) and a direction from its centre. ``wards``
    and ``places`` are ``ward_frame`` and ``place_frame``."""
    named = nearest_place_name(places, lat, lon, max_km) if places is not None else None
    if named:
        return named
    if not len(wards):
        return f"{lat:.4f}, {lon:.4f}"
    row = None
    if ward_code is not None:
        match = wards[wards["code"] == ward_code]
        row = match.iloc[0] if len(match) else None
    if row is None:
        point = shapely.Point(lon, lat)
        holding = [i for i, g in enumerate(wards["geom"]) if g.covers(point)]
        if holding:
            row = wards.iloc[holding[0]]
        else:  # outside every ward: the nearest ward centre
            row = wards.iloc[int(np.argmin(distance_km(lat, lon, wards["lat"], wards["lon"])))]
    return direction_name(str(row["name"]), float(row["lat"]), float(row["lon"]), lat, lon)


# --------------------------------------------------------------------------------------------
# Search

ZOOM_PLACE, ZOOM_POSTCODE, ZOOM_MIN, ZOOM_MAX = 15, 16, 9, 17
KIND_ORDER = {"ward": 0, "place": 1, "postcode": 2}


def zoom_for_bounds(min_lat: float, min_lon: float, max_lat: float, max_lon: float) -> int:
    """A web-map (Web Mercator) zoom at which the box fits an ordinary map panel, about 700 by
    500 pixels, with a margin. At zoom z a 256-pixel tile spans 360 / 2**z degrees of
    longitude, and latitude is stretched by 1 / cos(latitude)."""
    stretch = 1 / max(math.cos(math.radians((min_lat + max_lat) / 2)), 0.01)
    across = max(max_lon - min_lon, 1e-6) * 1.2
    down = max((max_lat - min_lat) * stretch, 1e-6) * 1.2
    zoom = math.floor(math.log2(min(700 * 360 / (256 * across), 500 * 360 / (256 * down))))
    return int(min(max(zoom, ZOOM_MIN), ZOOM_MAX))


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().casefold()


def _rank(name: str, query: str) -> int | None:
    """0 exact, 1 prefix, 2 a word starts with it, 3 contains it; None for no match."""
    n = _normalise(name)
    if n == query:
        return 0
    if n.startswith(query):
        return 1
    if any(w.startswith(query) for w in re.split(r"[\s\-/,]+", n)):
        return 2
    if query in n:
        return 3
    return None


def _like(query: str) -> str:
    return "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search(con: duckdb.DuckDBPyConnection, text: str, limit: int = 10) -> list[dict]:
    """Ward names (and codes), gazetteer places and postcodes matching ``text``, best first:
    exact matches, then names starting with it, then names with a word starting with it, then
    names containing it; wards before places before postcodes on a tie. Case and spacing do not
    matter ("fh1 2ab" finds "FH1 2AB"). Each hit: name, kind, lat, lon, ward_code, ward_name
    and the map zoom that shows it."""
    query = _normalise(text or "")
    limit = max(1, min(int(limit), 100))
    if len(query) < 2:
        return []
    hits: list[tuple[int, int, int, str, dict]] = []
    wards = con.execute(
        "SELECT code, name, geom_wkb FROM wards WHERE lower(name) LIKE ? ESCAPE '\\' OR lower(code) = ?",
        [_like(query), query],
    ).fetchall()
    for code, name, wkb in wards:
        rank = 0 if code.casefold() == query else _rank(name, query)
        if rank is None:
            continue
        geom = shapely.from_wkb(bytes(wkb))
        centre = geom.centroid if geom.contains(geom.centroid) else geom.point_on_surface()
        minx, miny, maxx, maxy = geom.bounds
        hit = {
            "name": name,
            "kind": "ward",
            "lat": centre.y,
            "lon": centre.x,
            "ward_code": code,
            "ward_name": name,
            "zoom": zoom_for_bounds(miny, minx, maxy, maxx),
        }
        hits.append((rank, KIND_ORDER["ward"], len(name), name, hit))
    if _has_table(con, "places"):
        found = con.execute(
            """
            SELECT p.name, p.kind, p.lat, p.lon, p.ward_code, w.name, p.geom_wkb
            FROM places p LEFT JOIN wards w ON w.code = p.ward_code
            WHERE lower(p.name) LIKE ? ESCAPE '\\'
            """,
            [_like(query)],
        ).fetchall()
        for name, kind, lat, lon, code, ward_name, wkb in found:
            rank = _rank(name, query)
            if rank is None:
                continue
            zoom = ZOOM_PLACE
            if wkb is not None:
                minx, miny, maxx, maxy = shapely.from_wkb(bytes(wkb)).bounds
                zoom = max(zoom_for_bounds(miny, minx, maxy, maxx), 12)
            hit = {
                "name": name,
                "kind": kind or "place",
                "lat": lat,
                "lon": lon,
                "ward_code": code,
                "ward_name": ward_name,
                "zoom": zoom,
            }
            hits.append((rank, KIND_ORDER["place"], len(name), name, hit))
    key = postcode_key(text)
    if key and _has_table(con, "postcodes") and any(ch.isdigit() for ch in key):
        found = con.execute(
            """
            SELECT p.postcode, p.key, p.lat, p.lon, p.ward_code, w.name
            FROM postcodes p LEFT JOIN wards w ON w.code = p.ward_code
            WHERE p.key LIKE ? ESCAPE '\\' ORDER BY length(p.key), p.key LIMIT ?
            """,
            [key.replace("_", "\\_").replace("%", "\\%") + "%", limit],
        ).fetchall()
        for postcode, pkey, lat, lon, code, ward_name in found:
            hit = {
                "name": postcode,
                "kind": "postcode",
                "lat": lat,
                "lon": lon,
                "ward_code": code,
                "ward_name": ward_name,
                "zoom": ZOOM_POSTCODE,
            }
            hits.append((0 if pkey == key else 1, KIND_ORDER["postcode"], len(pkey), pkey, hit))
    hits.sort(key=lambda h: h[:4])
    return [h[4] for h in hits[:limit]]
