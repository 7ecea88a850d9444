"""Fairhaven, a fictional demo city: wards, ten agency datasets and planted patterns.

Everything is drawn from one seeded generator, so the same seed writes byte-identical files. The
city is fictional (it sits on open country in the English Midlands so that British National Grid
coordinates are realistic) and every file says so. ``planted.json`` records the patterns the
analytics must find: persistent, emerging and fading hotspots, multi-agency overlap, an
unserved hotspot and interventions far from need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import shapely
from pyproj import Transformer

CITY = "Fairhaven (fictional demo city)"
LABEL = "FICTIONAL DEMO DATA - Fairhaven does not exist; every record is synthetic."
CENTRE = (52.36, -0.92)  # lat, lon
START = np.datetime64("2023-01-01")
DAYS = 365 * 3 + 1  # 2023-01-01 .. 2025-12-31
WARD_RES = 10
KM_LAT = 111.32
KM_LON = 111.32 * np.cos(np.radians(CENTRE[0]))

WARD_NAMES = [
    "Abbey Fields",
    "Ashby Green",
    "Barrow Hill",
    "Bellfield",
    "Brookside",
    "Castle Quarter",
    "Cheyne Park",
    "Coldharbour",
    "Copper Beech",
    "Dunmore",
    "Eastgate",
    "Elm Vale",
    "Fenwick",
    "Foxley",
    "Greyfriars",
    "Harbour Mill",
    "Hollins Cross",
    "Kingsmead",
    "Larkrise",
    "Lower Ford",
    "Marsh End",
    "Northgate",
    "Oakhurst",
    "Old Market",
    "Pennyfield",
    "Queens Wharf",
    "Redcross",
    "Riverside",
    "St Aldhelm",
    "Southwick",
    "Thornbury Heath",
    "Upper Ford",
    "Westbrook",
    "Willow Bank",
]


@dataclass(frozen=True)
class Spot:
    """A planted cluster: centre (km east, km north of the city centre), spread, and how its
    intensity runs over the three years."""

    name: str
    x: float
    y: float
    sigma_km: float
    profile: str  # persistent | emerging | fading | constant


SPOTS = {
    "town_centre": Spot("town_centre", 0.2, 0.3, 0.35, "persistent"),
    "northgate_estate": Spot("northgate_estate", -1.0, 5.0, 0.45, "persistent"),
    "industrial_estate": Spot("industrial_estate", 5.0, -2.5, 0.4, "emerging"),
    "eastgate_burglary": Spot("eastgate_burglary", 3.5, 2.0, 0.4, "fading"),
    "station_quarter": Spot("station_quarter", -2.5, -1.2, 0.3, "persistent"),
    "leafy_oakhurst": Spot("leafy_oakhurst", -5.0, -4.5, 0.6, "constant"),
}


def _profile(kind: str, t: np.ndarray) -> np.ndarray:
    """Relative intensity over time, t in 0..1 across the three years."""
    if kind == "emerging":  # nothing until mid-2024, then growing
        return np.where(t < 0.55, 0.0, 0.1 + 2.0 * (t - 0.55) / 0.45)
    if kind == "fading":  # still a hotspot at the end, but a weakening one
        return 1.8 - 1.35 * t
    return np.ones_like(t)


# Each dataset: agency, kind, format, size, categories with shares, hour-of-day peak, weekday
# weights (Mon..Sun), and the planted spots it draws from with the share of its records.
DATASETS = {
    "police_crime": dict(
        title="Recorded crime",
        agency="Fairhaven Police",
        kind="demand",
        fmt="csv_latlon",
        n=300_000,
        sharing="partners",
        categories={
            "Violence and sexual offences": 0.3,
            "Burglary": 0.12,
            "Vehicle crime": 0.12,
            "Criminal damage and arson": 0.12,
            "Shoplifting": 0.14,
            "Drugs": 0.08,
            "Public order": 0.12,
        },
        hours=(22, 4.0),
        weekdays=(0.9, 0.85, 0.9, 0.95, 1.2, 1.45, 1.15),
        spots={
            "town_centre": 0.12,
            "northgate_estate": 0.05,
            "eastgate_burglary": 0.05,
            "station_quarter": 0.05,
        },
    ),
    "police_asb": dict(
        title="Anti-social behaviour (police.uk style, by month)",
        agency="Fairhaven Police",
        kind="demand",
        fmt="csv_policeuk",
        n=120_000,
        sharing="open",
        categories={"Personal": 0.25, "Nuisance": 0.6, "Environmental": 0.15},
        hours=(21, 4.0),
        weekdays=(0.9, 0.9, 0.95, 1.0, 1.2, 1.35, 1.1),
        spots={"town_centre": 0.10, "northgate_estate": 0.12},
    ),
    "fire_incidents": dict(
        title="Fire and rescue incidents",
        agency="Fairhaven Fire and Rescue",
        kind="demand",
        fmt="csv_bng",
        n=40_000,
        sharing="open",
        categories={"Fire": 0.35, "False alarm": 0.45, "Special service": 0.2},
        hours=(18, 5.0),
        weekdays=(1, 1, 1, 1, 1.05, 1.1, 1.05),
        spots={"northgate_estate": 0.12, "industrial_estate": 0.08},
    ),
    "council_env": dict(
        title="Environmental reports (fly-tipping, noise, litter)",
        agency="Fairhaven City Council",
        kind="demand",
        fmt="parquet",
        n=200_000,
        sharing="open",
        categories={
            "Fly-tipping": 0.3,
            "Noise": 0.25,
            "Litter": 0.2,
            "Graffiti": 0.1,
            "Pests": 0.1,
            "Abandoned vehicle": 0.05,
        },
        hours=(13, 3.5),
        weekdays=(1.2, 1.1, 1.05, 1.0, 0.95, 0.75, 0.7),
        spots={"industrial_estate": 0.10, "northgate_estate": 0.05, "town_centre": 0.05},
    ),
    "housing_repairs": dict(
        title="Council housing repairs",
        agency="Fairhaven Homes",
        kind="demand",
        fmt="csv_latlon_iso",
        n=120_000,
        sharing="partners",
        categories={
            "Damp and mould": 0.22,
            "Heating and hot water": 0.25,
            "Leaks": 0.2,
            "Electrical": 0.13,
            "Doors and windows": 0.2,
        },
        hours=(11, 3.0),
        weekdays=(1.3, 1.15, 1.05, 1.0, 0.95, 0.35, 0.25),
        spots={"northgate_estate": 0.25},
    ),
    "ambulance": dict(
        title="Ambulance call-outs",
        agency="Midshire Ambulance Service",
        kind="demand",
        fmt="parquet",
        n=150_000,
        sharing="partners",
        categories={
            "Falls": 0.25,
            "Breathing": 0.15,
            "Chest pain": 0.12,
            "Alcohol related": 0.1,
            "Assault": 0.08,
            "Mental health": 0.12,
            "Other": 0.18,
        },
        hours=(20, 6.0),
        weekdays=(1, 0.95, 0.95, 1, 1.1, 1.25, 1.1),
        spots={"town_centre": 0.08, "northgate_estate": 0.06, "station_quarter": 0.03},
    ),
    "early_help": dict(
        title="Children's early-help referrals",
        agency="Fairhaven Children's Services",
        kind="demand",
        fmt="geojson",
        n=15_000,
        sharing="restricted",
        categories={
            "Parenting support": 0.35,
            "School attendance": 0.25,
            "Domestic abuse": 0.2,
            "Neglect concern": 0.2,
        },
        hours=(11, 3.0),
        weekdays=(1.2, 1.15, 1.1, 1.05, 1.0, 0.2, 0.15),
        spots={"northgate_estate": 0.3},
    ),
    "police_patrols": dict(
        title="Police patrol points",
        agency="Fairhaven Police",
        kind="intervention",
        fmt="csv_latlon",
        n=100_000,
        sharing="partners",
        categories={"Foot patrol": 0.6, "Vehicle patrol": 0.4},
        hours=(21, 5.0),
        weekdays=(0.9, 0.9, 0.9, 0.95, 1.2, 1.35, 1.0),
        spots={"town_centre": 0.45, "station_quarter": 0.2, "eastgate_burglary": 0.1},
        weight=("duration_hours", 0.25, 3.0),
    ),
    "outreach_visits": dict(
        title="Street outreach visits",
        agency="Fairhaven City Council",
        kind="intervention",
        fmt="csv_bng_outreach",
        n=20_000,
        sharing="partners",
        categories={"Rough sleeping outreach": 0.5, "Youth outreach": 0.5},
        hours=(15, 3.0),
        weekdays=(1.1, 1.1, 1.1, 1.1, 1.1, 0.6, 0.5),
        spots={"town_centre": 0.5, "station_quarter": 0.3},
    ),
    "fire_safety_visits": dict(
        title="Home fire-safety visits",
        agency="Fairhaven Fire and Rescue",
        kind="intervention",
        fmt="parquet",
        n=25_000,
        sharing="open",
        categories={"Home fire safety check": 0.8, "Smoke alarm fitting": 0.2},
        hours=(11, 2.5),
        weekdays=(1.2, 1.2, 1.2, 1.2, 1.1, 0.3, 0.0),
        spots={"leafy_oakhurst": 0.55},
    ),
}


# What a planted cluster is made of, where it is not the dataset's usual mix.
SPOT_CATEGORIES = {
    ("police_crime", "eastgate_burglary"): {"Burglary": 0.85, "Vehicle crime": 0.15},
    ("police_crime", "town_centre"): {
        "Violence and sexual offences": 0.5,
        "Public order": 0.3,
        "Shoplifting": 0.2,
    },
    ("council_env", "industrial_estate"): {"Fly-tipping": 0.8, "Abandoned vehicle": 0.2},
    ("housing_repairs", "northgate_estate"): {
        "Damp and mould": 0.6,
        "Heating and hot water": 0.2,
        "Leaks": 0.2,
    },
}

# --------------------------------------------------------------------------------------------
# Geometry helpers (a local flat approximation is plenty for a 20 km city)


def km_to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return CENTRE[1] + x / KM_LON, CENTRE[0] + y / KM_LAT


def lonlat_to_km(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (lon - CENTRE[1]) * KM_LON, (lat - CENTRE[0]) * KM_LAT


def _outline_radius(theta: np.ndarray) -> np.ndarray:
    return 8.5 * (
        1 + 0.13 * np.sin(3 * theta + 0.7) + 0.08 * np.sin(5 * theta + 2.1) + 0.05 * np.sin(9 * theta + 0.3)
    )


def _in_city(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.hypot(x, y) <= _outline_radius(np.arctan2(y, x))


def _seed_points(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ward centres, denser in the middle as real wards are smaller where people are."""
    pts: list[tuple[float, float]] = []
    while len(pts) < n:
        r = 8.0 * np.sqrt(rng.uniform()) ** 1.35
        th = rng.uniform(0, 2 * np.pi)
        x, y = r * np.cos(th), r * np.sin(th)
        spacing = 1.0 + 0.22 * np.hypot(x, y)
        if _in_city(np.array([x]), np.array([y]))[0] and all(
            np.hypot(x - a, y - b) > spacing for a, b in pts
        ):
            pts.append((x, y))
    return np.array(pts)


def build_wards(rng: np.random.Generator, n_wards: int = 32) -> pd.DataFrame:
    """Ward polygons made of H3 cells assigned to seeds under a warped distance, so boundaries
    meander like streets and streams instead of running straight."""
    outline_th = np.linspace(0, 2 * np.pi, 361)[:-1]
    ox, oy = (
        _outline_radius(outline_th) * np.cos(outline_th),
        _outline_radius(outline_th) * np.sin(outline_th),
    )
    olon, olat = km_to_lonlat(ox, oy)
    shape = h3.LatLngPoly(list(zip(olat.tolist(), olon.tolist(), strict=True)))
    cells = np.array(sorted(h3.h3shape_to_cells(shape, WARD_RES)))
    centres = np.array([h3.cell_to_latlng(c) for c in cells])
    cx, cy = lonlat_to_km(centres[:, 1], centres[:, 0])
    seeds = _seed_points(rng, n_wards)
    phase = rng.uniform(0, 2 * np.pi, 4)
    wx = cx + 0.45 * np.sin(cy * 1.1 + phase[0]) + 0.2 * np.sin(cy * 2.9 + phase[1])
    wy = cy + 0.45 * np.cos(cx * 1.0 + phase[2]) + 0.2 * np.cos(cx * 3.1 + phase[3])
    scale = 1.0 + 0.22 * np.hypot(seeds[:, 0], seeds[:, 1])
    dist = np.hypot(wx[:, None] - seeds[None, :, 0], wy[:, None] - seeds[None, :, 1]) / scale
    owner = dist.argmin(axis=1)
    owner = _make_contiguous(cells, owner)
    codes = [f"E05{900001 + i:06d}" for i in range(n_wards)]
    names = sorted(rng.choice(WARD_NAMES, n_wards, replace=False).tolist())
    # Centre wards are named so the planted spots land in recognisable places.
    rows = []
    for w in range(n_wards):
        ward_cells = cells[owner == w].tolist()
        geo = h3.cells_to_geo(ward_cells)
        geom = shapely.geometry.shape(geo)
        x, y = seeds[w]
        density = 5200 * np.exp(-np.hypot(x, y) / 4.0) + 350  # residents per km²
        area = len(ward_cells) * h3.average_hexagon_area(WARD_RES, unit="km^2")
        rows.append(
            {
                "code": codes[w],
                "seed_x": x,
                "seed_y": y,
                "geom": geom,
                "population": int(round(density * area * rng.uniform(0.85, 1.15), -1)),
            }
        )
    frame = pd.DataFrame(rows)
    frame["name"] = _names_by_place(frame, names)
    return frame


def _names_by_place(frame: pd.DataFrame, names: list[str]) -> list[str]:
    """Give the wards that hold planted spots the names the README uses for them."""
    fixed = {
        "town_centre": "Old Market",
        "northgate_estate": "Northgate",
        "industrial_estate": "Harbour Mill",
        "eastgate_burglary": "Eastgate",
        "station_quarter": "Queens Wharf",
        "leafy_oakhurst": "Oakhurst",
    }
    chosen: dict[int, str] = {}
    for spot, name in fixed.items():
        s = SPOTS[spot]
        lon, lat = km_to_lonlat(np.array([s.x]), np.array([s.y]))
        pt = shapely.Point(lon[0], lat[0])
        for i, geom in enumerate(frame["geom"]):
            if geom.covers(pt) and i not in chosen:
                chosen[i] = name
                break
    rest = iter(n for n in names + WARD_NAMES if n not in chosen.values())
    used: set[str] = set(chosen.values())
    out = []
    for i in range(len(frame)):
        if i in chosen:
            out.append(chosen[i])
            continue
        name = next(rest)
        while name in used:
            name = next(rest)
        used.add(name)
        out.append(name)
    return out


def _make_contiguous(cells: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Hand cells cut off from their ward's main body to the neighbour that surrounds them."""
    position = {c: i for i, c in enumerate(cells)}
    for _ in range(3):
        changed = False
        for w in np.unique(owner):
            members = set(np.flatnonzero(owner == w).tolist())
            parts = []
            while members:
                start = members.pop()
                part, frontier = {start}, [start]
                while frontier:
                    i = frontier.pop()
                    for nb in h3.grid_ring(cells[i], 1):
                        j = position.get(nb)
                        if j is not None and j in members:
                            members.remove(j)
                            part.add(j)
                            frontier.append(j)
                parts.append(part)
            parts.sort(key=len, reverse=True)
            for part in parts[1:]:
                for i in part:
                    nbs = [owner[position[nb]] for nb in h3.grid_ring(cells[i], 1) if nb in position]
                    others = [o for o in nbs if o != w]
                    if others:
                        owner[i] = max(set(others), key=others.count)
                        changed = True
        if not changed:
            break
    return owner


# --------------------------------------------------------------------------------------------
# Records


def _sample_in_wards(rng: np.random.Generator, wards: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Background points: ward chosen by population, point uniform inside the ward."""
    weights = wards["population"].to_numpy(float)
    ward_of = rng.choice(len(wards), size=n, p=weights / weights.sum())
    lon = np.empty(n)
    lat = np.empty(n)
    for w in range(len(wards)):
        idx = np.flatnonzero(ward_of == w)
        if len(idx) == 0:
            continue
        geom = wards["geom"].iloc[w]
        shapely.prepare(geom)
        minx, miny, maxx, maxy = geom.bounds
        got_x: list[np.ndarray] = []
        got_y: list[np.ndarray] = []
        need = len(idx)
        while need > 0:
            k = int(need * 1.6) + 16
            x = rng.uniform(minx, maxx, k)
            y = rng.uniform(miny, maxy, k)
            ok = shapely.contains_xy(geom, x, y)
            got_x.append(x[ok][:need])
            got_y.append(y[ok][:need])
            need -= int(min(ok.sum(), need))
        lon[idx] = np.concatenate(got_x)
        lat[idx] = np.concatenate(got_y)
    return lon, lat


def _day_weights(weekdays: tuple[float, ...], profile: str = "constant") -> np.ndarray:
    day = np.arange(DAYS)
    dates = START + day
    weekday = (dates.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-01 was a Thursday
    doy = day % 365.25
    seasonal = 1 + 0.22 * np.cos(2 * np.pi * (doy - 200) / 365.25)  # summer peak
    w = seasonal * np.asarray(weekdays)[weekday] * _profile(profile, day / (DAYS - 1))
    return w / w.sum()


def _times(rng: np.random.Generator, n: int, spec: dict, profile: str = "constant") -> np.ndarray:
    days = rng.choice(DAYS, size=n, p=_day_weights(spec["weekdays"], profile))
    peak, spread = spec["hours"]
    hours = np.round(rng.normal(peak, spread, n)) % 24
    minutes = rng.integers(0, 60, n)
    return (START + days).astype("datetime64[m]") + (hours * 60 + minutes).astype("timedelta64[m]")


def _spot_points(rng: np.random.Generator, city: shapely.Geometry, s: Spot, k: int) -> tuple:
    """Points of a planted cluster, redrawn until all lie in the city, so that only the planted
    damage (never the clusters' tails) falls outside."""
    lon_parts, lat_parts, need = [], [], k
    while need > 0:
        x = rng.normal(s.x, s.sigma_km, need + 8)
        y = rng.normal(s.y, s.sigma_km, need + 8)
        lon, lat = km_to_lonlat(x, y)
        ok = shapely.contains_xy(city, lon, lat)
        lon_parts.append(lon[ok][:need])
        lat_parts.append(lat[ok][:need])
        need -= int(min(ok.sum(), need))
    return np.concatenate(lon_parts), np.concatenate(lat_parts)


def make_records(
    rng: np.random.Generator, wards: pd.DataFrame, ds_id: str, spec: dict, n: int
) -> pd.DataFrame:
    parts = []
    spot_total = 0
    city = shapely.union_all(wards["geom"].tolist())
    shapely.prepare(city)
    for name, share in spec["spots"].items():
        s = SPOTS[name]
        k = int(n * share)
        spot_total += k
        lon, lat = _spot_points(rng, city, s, k)
        mix = SPOT_CATEGORIES.get((ds_id, name), spec["categories"])
        cats = rng.choice(list(mix), size=k, p=np.array(list(mix.values())) / sum(mix.values()))
        parts.append(
            pd.DataFrame({"lon": lon, "lat": lat, "ts": _times(rng, k, spec, s.profile), "category": cats})
        )
    k = n - spot_total
    lon, lat = _sample_in_wards(rng, wards, k)
    cats = list(spec["categories"])
    probs = np.array(list(spec["categories"].values()))
    background = rng.choice(cats, size=k, p=probs / probs.sum())
    parts.append(pd.DataFrame({"lon": lon, "lat": lat, "ts": _times(rng, k, spec), "category": background}))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    if "weight" in spec:
        _, lo, hi = spec["weight"]
        frame["weight"] = np.round(rng.uniform(lo, hi, len(frame)), 2)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def plant_bad_rows(rng: np.random.Generator, frame: pd.DataFrame, share: float = 0.025) -> dict:
    """Damage a few per cent of rows the way real exports are damaged; return the counts."""
    n = len(frame)
    kinds = ["missing", "swapped", "zero", "outside", "bad_date", "future", "empty_category"]
    picks = rng.choice(n, size=int(n * share), replace=False)
    which = rng.choice(len(kinds), size=len(picks))
    planted = {}
    frame["_damage"] = None
    for k, kind in enumerate(kinds):
        rows = picks[which == k]
        planted[kind] = len(rows)
        frame.loc[rows, "_damage"] = kind
    return planted


# --------------------------------------------------------------------------------------------
# Writers, one per file shape


_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)


def _fmt_num(values: np.ndarray, decimals: int) -> np.ndarray:
    return np.char.mod(f"%.{decimals}f", values).astype(object)


def _text_columns(frame: pd.DataFrame, a: np.ndarray, b: np.ndarray, when: np.ndarray) -> tuple:
    """Apply the planted damage to text coordinates and times."""
    d = frame["_damage"].to_numpy()
    a, b, when = a.copy(), b.copy(), when.copy()
    a[d == "missing"] = ""
    b[d == "missing"] = ""
    swapped = d == "swapped"
    a[swapped], b[swapped] = b[swapped], a[swapped].copy()
    a[d == "zero"] = "0"
    b[d == "zero"] = "0"
    when[d == "bad_date"] = "31/02/2024 25:61"
    when[d == "future"] = "2031-06-01 10:00:00"
    return a, b, when


def _outside(frame: pd.DataFrame) -> None:
    """Move 'outside' rows 40 km north-east, beyond the city."""
    m = frame["_damage"] == "outside"
    frame.loc[m, "lat"] += 0.36
    frame.loc[m, "lon"] += 0.55


def _category(frame: pd.DataFrame) -> np.ndarray:
    cat = frame["category"].to_numpy(object).copy()
    cat[frame["_damage"].to_numpy() == "empty_category"] = ""
    return cat


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    table = pa.table({k: pa.array(v.tolist() if v.dtype == object else v) for k, v in columns.items()})
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))


def write_dataset(path_stem: Path, ds_id: str, spec: dict, frame: pd.DataFrame) -> str:
    """Write one dataset in its format; return the file name."""
    _outside(frame)
    fmt = spec["fmt"]
    iso = np.datetime_as_string(frame["ts"].to_numpy("datetime64[m]"), unit="s").astype(object)
    iso = np.char.replace(iso.astype(str), "T", " ").astype(object)
    ids = np.array([f"{ds_id[:3].upper()}-{i:07d}" for i in range(len(frame))], dtype=object)
    cat = _category(frame)
    lat, lon = frame["lat"].to_numpy(), frame["lon"].to_numpy()
    if fmt in ("csv_latlon", "csv_latlon_iso", "csv_policeuk"):
        a, b, when = _text_columns(frame, _fmt_num(lat, 6), _fmt_num(lon, 6), iso)
        if fmt == "csv_policeuk":
            months = np.array([s[:7] for s in iso], dtype=object)
            _, _, when = _text_columns(frame, a, b, months)
            when[frame["_damage"].to_numpy() == "bad_date"] = "2024-13"
            when[frame["_damage"].to_numpy() == "future"] = "2031-06"
            cols = {
                "Crime ID": np.full(len(frame), "", dtype=object),
                "Month": when,
                "Reported by": np.full(len(frame), spec["agency"], dtype=object),
                "Longitude": b,
                "Latitude": a,
                "Crime type": np.full(len(frame), "Anti-social behaviour", dtype=object),
                "ASB type": cat,
            }
        else:
            if fmt == "csv_latlon_iso":
                when = np.char.replace(when.astype(str), " ", "T").astype(object)
            cols = {"ref": ids, "reported_at": when, "latitude": a, "longitude": b, "category": cat}
            if "weight" in spec:
                cols[spec["weight"][0]] = _fmt_num(frame["weight"].to_numpy(), 2)
        name = f"{path_stem.name}.csv"
        _write_csv(path_stem.with_suffix(".csv"), cols)
        return name
    if fmt in ("csv_bng", "csv_bng_outreach"):
        e, n = _TO_BNG.transform(lon, lat)
        e_txt, n_txt = _fmt_num(np.round(e), 0), _fmt_num(np.round(n), 0)
        d = frame["_damage"].to_numpy()
        # In a grid file, "swapped" means easting and northing swapped, and "zero" is 0, 0.
        day_first = np.array([f"{s[8:10]}/{s[5:7]}/{s[0:4]} {s[11:16]}" for s in iso], dtype=object)
        e_txt, n_txt, when = _text_columns(frame, e_txt, n_txt, day_first)
        when[d == "future"] = "01/06/2031 10:00"
        when[d == "bad_date"] = "2024-02-31"
        cols = {
            "incident_ref": ids,
            "call_time": when,
            "easting": e_txt,
            "northing": n_txt,
            "incident_type": cat,
        }
        name = f"{path_stem.name}.csv"
        _write_csv(path_stem.with_suffix(".csv"), cols)
        return name
    if fmt == "parquet":
        d = frame["_damage"].to_numpy()
        lat = lat.copy()
        lon = lon.copy()
        lat[d == "missing"] = np.nan
        lon[d == "missing"] = np.nan
        lat[d == "zero"] = 0.0
        lon[d == "zero"] = 0.0
        sw = d == "swapped"
        lat[sw], lon[sw] = lon[sw], lat[sw].copy()
        ts = frame["ts"].to_numpy("datetime64[us]").copy()
        ts[d == "future"] = np.datetime64("2031-06-01T10:00")
        valid_ts = d != "bad_date"  # a typed column cannot hold a bad date: it is null instead
        table = pa.table(
            {
                "record_id": pa.array(ids.tolist()),
                "occurred": pa.array(ts, mask=~valid_ts),
                "lat": pa.array(lat, mask=np.isnan(lat)),
                "lng": pa.array(lon, mask=np.isnan(lon)),
                "category": pa.array(cat.tolist()),
            }
        )
        name = f"{path_stem.name}.parquet"
        pq.write_table(table, path_stem.with_suffix(".parquet"))
        return name
    if fmt == "geojson":
        d = frame["_damage"].to_numpy()
        when = np.array([s[:10] for s in iso], dtype=object)
        when[d == "bad_date"] = "unknown"
        when[d == "future"] = "2031-06-01"
        features = []
        for i in range(len(frame)):
            if d[i] == "missing":
                geometry = None
            else:
                x, y = (0.0, 0.0) if d[i] == "zero" else (float(lon[i]), float(lat[i]))
                if d[i] == "swapped":
                    x, y = y, x
                geometry = {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]}
            features.append(
                {
                    "type": "Feature",
                    "geometry": geometry,
                    "properties": {"referral_id": ids[i], "referred_on": when[i], "need": cat[i]},
                }
            )
        name = f"{path_stem.name}.geojson"
        with open(path_stem.with_suffix(".geojson"), "w") as handle:
            json.dump({"type": "FeatureCollection", "name": LABEL, "features": features}, handle)
        return name
    raise ValueError(f"unknown demo format {fmt}")


# --------------------------------------------------------------------------------------------
# The gazetteer: names people use for the planted spots, and a postcode lookup


# (name, kind, the planted spot it names or None, km east, km north, radius in km for an area,
# 0 for a point). The planted spots carry the names the README gives them; the other places lie
# well away from every spot, so a hotspot is never named after a landmark it does not reach.
def _at(spot: str) -> tuple[float, float]:
    return SPOTS[spot].x, SPOTS[spot].y


PLACES = [
    ("Old Market", "town centre", "town_centre", *_at("town_centre"), 0.55),
    ("Northgate estate", "housing estate", "northgate_estate", *_at("northgate_estate"), 0.7),
    (
        "Harbour Mill industrial estate",
        "industrial estate",
        "industrial_estate",
        *_at("industrial_estate"),
        0.65,
    ),
    ("Eastgate Road", "street", "eastgate_burglary", *_at("eastgate_burglary"), 0.0),
    ("Queens Wharf station", "station", "station_quarter", *_at("station_quarter"), 0.0),
    ("Oakhurst Park", "park", "leafy_oakhurst", *_at("leafy_oakhurst"), 0.0),
    ("Fairhaven General Hospital", "hospital", None, 2.0, -5.0, 0.0),
    ("St Aldhelm's Church", "landmark", None, -3.5, 3.0, 0.0),
    ("Riverside Retail Park", "retail park", None, 4.5, 5.0, 0.0),
    ("Fairhaven Parkway station", "station", None, -4.0, 1.5, 0.0),
    ("Castle Street", "street", None, 1.5, -1.5, 0.0),
    ("Coldharbour Lane", "street", None, -1.0, -4.0, 0.0),
    ("Marsh End allotments", "park", None, 6.0, 0.5, 0.0),
]
POSTCODE_AREA = "FH"  # not a real UK postcode area
POSTCODE_SPACING_KM = 0.5
_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters Royal Mail uses in the inward code


def write_places(out: Path, wards: pd.DataFrame) -> dict[str, str]:
    """Write the demo gazetteer (GeoJSON: areas for the town centre and the two estates, points
    for the rest) and a postcode lookup in the ONS Postcode Directory layout; both are
    deterministic and draw nothing from the city's random generator, so the datasets'
    bytes do not depend on them."""
    features = []
    for name, kind, _spot, x, y, radius in PLACES:
        if radius > 0:
            theta = np.linspace(0, 2 * np.pi, 25)[:-1]
            # A slightly irregular outline, as a drawn estate boundary would be.
            r = radius * (1 + 0.12 * np.sin(3 * theta + len(name)))
            lon, lat = km_to_lonlat(x + r * np.cos(theta), y + r * np.sin(theta))
            ring = [[round(float(a), 6), round(float(b), 6)] for a, b in zip(lon, lat, strict=True)]
            geometry = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
        else:
            lon, lat = km_to_lonlat(np.array([x]), np.array([y]))
            geometry = {"type": "Point", "coordinates": [round(float(lon[0]), 6), round(float(lat[0]), 6)]}
        features.append({"type": "Feature", "geometry": geometry, "properties": {"name": name, "kind": kind}})
    with open(out / "places.geojson", "w") as handle:
        json.dump({"type": "FeatureCollection", "name": LABEL, "features": features}, handle, indent=1)

    frame = _postcodes(wards)
    _write_csv(out / "postcodes.csv", {c: frame[c].to_numpy() for c in frame.columns})
    return {"places": "places.geojson", "postcodes": "postcodes.csv"}


def _postcodes(wards: pd.DataFrame) -> pd.DataFrame:
    """One postcode every half kilometre inside the city: district FH1 in the middle, FH2 to
    FH9 by compass sector around it, a sector digit by distance from the centre. As in the ONS
    file, one postcode has no position (latitude 99.999999, longitude 0)."""
    half = 9.0
    steps = np.arange(-half, half + 1e-9, POSTCODE_SPACING_KM)
    gx, gy = np.meshgrid(steps, steps[::-1])
    x, y = gx.ravel(), gy.ravel()
    inside = _in_city(x, y)
    x, y = x[inside], y[inside]
    r = np.hypot(x, y)
    octant = ((np.degrees(np.arctan2(x, y)) % 360 + 22.5) // 45).astype(int) % 8
    district = np.where(r < 2.0, 1, 2 + octant)
    sector = np.clip((r // 1.0).astype(int) % 10, 0, 9)
    lon, lat = km_to_lonlat(x, y)
    tree = shapely.STRtree(np.array(wards["geom"], dtype=object))
    pts, ward_idx = tree.query(shapely.points(lon, lat), predicate="within")
    ward_code = np.full(len(x), "", dtype=object)
    ward_code[pts] = wards["code"].to_numpy()[ward_idx]
    used: dict[tuple[int, int], int] = {}
    outward, inward = [], []
    for d, s in zip(district, sector, strict=True):
        n = used.get((d, s), 0)
        used[(d, s)] = n + 1
        outward.append(f"{POSTCODE_AREA}{d}")
        inward.append(
            f"{s}{_UNIT_LETTERS[n // len(_UNIT_LETTERS) % len(_UNIT_LETTERS)]}{_UNIT_LETTERS[n % 20]}"
        )
    outward.append(f"{POSTCODE_AREA}1")
    inward.append("9ZZ")
    lat = np.append(np.round(lat, 6), 99.999999)
    lon = np.append(np.round(lon, 6), 0.0)
    ward_code = np.append(ward_code, "")
    return pd.DataFrame(
        {
            "pcd": np.array([f"{o:<4}{i}" for o, i in zip(outward, inward, strict=True)], dtype=object),
            "pcds": np.array([f"{o} {i}" for o, i in zip(outward, inward, strict=True)], dtype=object),
            "dointr": np.array(["202301"] * len(lat), dtype=object),
            "doterm": np.array([""] * len(lat), dtype=object),
            "osward": ward_code.astype(object),
            "lat": lat,
            "long": lon,
        }
    )


def generate(out: Path, events: int = 1_000_000, seed: int = 2026) -> dict:
    """Write the demo city to ``out``; ``events`` scales every dataset together."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    wards = build_wards(rng)
    ward_features = [
        {
            "type": "Feature",
            "geometry": shapely.geometry.mapping(g),
            "properties": {"ward_code": c, "ward_name": n, "population": int(p)},
        }
        for c, n, p, g in zip(wards["code"], wards["name"], wards["population"], wards["geom"], strict=True)
    ]
    with open(out / "wards.geojson", "w") as handle:
        json.dump({"type": "FeatureCollection", "name": LABEL, "features": ward_features}, handle)

    total_spec = sum(s["n"] for s in DATASETS.values())
    files, damage = {}, {}
    for ds_id, spec in DATASETS.items():
        n = max(200, round(spec["n"] * events / total_spec))
        frame = make_records(rng, wards, ds_id, spec, n)
        damage[ds_id] = plant_bad_rows(rng, frame)
        files[ds_id] = write_dataset(out / ds_id, ds_id, spec, frame)

    planted = {
        "label": LABEL,
        "spots": {
            name: {
                "lat": float(km_to_lonlat(np.array([s.x]), np.array([s.y]))[1][0]),
                "lon": float(km_to_lonlat(np.array([s.x]), np.array([s.y]))[0][0]),
                "sigma_km": s.sigma_km,
                "profile": s.profile,
                "datasets": {d: sp["spots"][name] for d, sp in DATASETS.items() if name in sp["spots"]},
            }
            for name, s in SPOTS.items()
        },
        "patterns": {
            "persistent_hotspots": ["town_centre", "northgate_estate", "station_quarter"],
            "emerging_hotspots": ["industrial_estate"],
            "fading_hotspots": ["eastgate_burglary"],
            "multi_agency_overlap": ["northgate_estate", "town_centre"],
            "unserved_hotspots": ["northgate_estate", "industrial_estate"],
            "served_hotspots": ["town_centre", "station_quarter"],
            "interventions_outside_need": ["leafy_oakhurst"],
        },
        "damaged_rows": damage,
        "files": files,
        "seed": seed,
        "events": events,
    }
    gazetteer = write_places(out, wards)
    planted["gazetteer"] = {spot: name for name, _kind, spot, *_ in PLACES if spot}
    planted["gazetteer_files"] = gazetteer
    (out / "planted.json").write_text(json.dumps(planted, indent=2))
    (out / "README.txt").write_text(LABEL + "\nWritten by `make demo` (python -m app demo).\n")
    return {
        "out": str(out),
        "wards": len(wards),
        "population": int(wards["population"].sum()),
        "files": files,
        "damaged_rows": {k: sum(v.values()) for k, v in damage.items()},
    }
