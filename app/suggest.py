"""Suggest how an uploaded file maps onto a catalogue entry, from its first rows: where each
record is (latitude/longitude, easting/northing and its likely grid, a "(lat, lon)" text, or the
file's own points), when it happened (the column and every date format that reads the whole
sample), what it is (a category column) and which column identifies it.

Every suggestion comes with its reasons in words, and is only a suggestion: the analyst
confirms the mapping before anything is loaded. Where the sample cannot settle a question (day
and month both 12 or less, two columns that could each be latitude), the candidates are listed
and none is picked, because a silent guess would load every record on the wrong day or place.

Date formats are tried with DuckDB's ``try_strptime`` and ISO 8601 with its cast to a timestamp,
the very functions a load uses, so a format suggested here reads the file the same way there.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

ISO_8601 = "ISO 8601"  # the time format entry for "leave time_format blank"
SAMPLE_ROWS = 1000

# Dates and times as agencies write them. Compact forms (20240501) are left out: an id column
# of eight digits would read as dates.
_DATES = (
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y-%m-%d",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%d/%m/%y",
    "%m/%d/%y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d %Y",
)
_TIMES = ("", " %H:%M:%S", " %H:%M", " %I:%M:%S %p", " %I:%M %p", " %H:%M:%S.%f", "T%H:%M:%S", "T%H:%M")
_ZONES = ("", " %z", "%z")
_MONTHS = ("%Y-%m", "%m/%Y")
FORMATS: tuple[str, ...] = (
    *(d + t + (z if t else "") for d in _DATES for t in _TIMES for z in (_ZONES if t else ("",))),
    *_MONTHS,
)
_TIME_OF_DAY = ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")

# Grids recognised from the ranges of their coordinates: (code, name, x range, y range).
GRIDS = (
    ("EPSG:27700", "British National Grid (metres)", (0.0, 700_000.0), (0.0, 1_300_000.0)),
    (
        "EPSG:2263",
        "New York State Plane, Long Island (US feet)",
        (900_000.0, 1_100_000.0),
        (100_000.0, 300_000.0),
    ),
)
_INSIDE = 0.95  # share of a column's values that must lie in a range for the range to count

_LAT = re.compile(r"(^|[^a-z])(lat|latitude|y_?lat)([^a-z]|$)", re.I)
_LON = re.compile(r"(^|[^a-z])(lon|lng|long|longitude|x_?lon)([^a-z]|$)", re.I)
_EAST = re.compile(r"easting|(^|[^a-z])x([^a-z]|$)|x_?coord", re.I)
_NORTH = re.compile(r"northing|(^|[^a-z])y([^a-z]|$)|y_?coord", re.I)
_POINT = re.compile(r"^\(?\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)?$")
_TIME_NAME = re.compile(
    r"date|time|created|received|reported|occur|when|stamp|month|opened|logged|start", re.I
)
_NOT_TIME_NAME = re.compile(r"closed|resolv|updat|due|end|sent|modif|deadline|complet|birth", re.I)
_CATEGORY_NAME = re.compile(r"categor|complaint|crime|offen[cs]e|descriptor|object of search", re.I)
_KIND_NAME = re.compile(r"type|kind|class|nature|problem|issue|subject|what", re.I)
_NOT_CATEGORY_NAME = re.compile(
    r"status|state|borough|city|ward|lsoa|msoa|area|district|agency|reported by|falls within|outcome|"
    r"channel|how|where|zip|post ?code|council|authority|force|day|sex|race|age|boundary|address|"
    r"street|location|name|url|title|description|operation|legislation|severity|road|light|weather|"
    r"boro|flag|facility|vehicle|property|premises",
    re.I,
)
_ID_NAME = re.compile(r"(^|[^a-z])(id|ref|reference|key|number|no|num)([^a-z]|$)|_id$|^id_", re.I)


@dataclass(frozen=True)
class Suggestion:
    """The mapping suggested for a file, each part with its reason in words.

    ``place`` is "latlon", "xy", "point", "geometry" or "" (nothing fits). ``time_formats`` lists
    every format that reads the whole sample (``ISO_8601`` for a blank ``time_format``);
    ``time_format`` is the one to prefill, or None when they read the sample differently (day
    and month ambiguous) and the analyst must choose. ``alternatives`` names, per catalogue
    key, the other columns that would also fit."""

    place: str = ""
    lat: str | None = None
    lon: str | None = None
    x: str | None = None
    y: str | None = None
    crs: str | None = None
    point: str | None = None
    time: str | None = None
    time_formats: tuple[str, ...] = ()
    time_format: str | None = None
    time_of_day: str | None = None
    time_of_day_format: str | None = None
    category: str | None = None
    record_id: str | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    alternatives: dict[str, tuple[str, ...]] = field(default_factory=dict)
    rows: int = 0

    @property
    def time_ambiguous(self) -> bool:
        """True when several formats read the sample, each differently (day or month first)."""
        return self.time_format is None and len(self.time_formats) > 1

    def entry(self) -> dict:
        """The catalogue keys suggested, to prefill the mapping (never a format not settled)."""
        keys = ("lat", "lon", "x", "y", "crs", "point", "time", "time_of_day", "category", "record_id")
        entry = {k: getattr(self, k) for k in keys if getattr(self, k)}
        if self.time_format and self.time_format != ISO_8601:
            entry["time_format"] = self.time_format
        if self.time_of_day_format:
            entry["time_of_day_format"] = self.time_of_day_format
        return entry

    def sentences(self) -> list[str]:
        """The reasons, in the order a mapping is filled in."""
        order = ("place", "time", "time_of_day", "category", "record_id")
        return [self.reasons[k] for k in order if k in self.reasons]


# --------------------------------------------------------------------------------------------
# Columns as text and as numbers


def _texts(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Each column's non-blank values as stripped text (dates and numbers of a typed file too)."""
    out = {}
    for name in frame.columns:
        col = frame[name]
        values = col[col.notna()].astype(str).str.strip()
        out[str(name)] = values[values != ""]
    return out


def _numbers(values: pd.Series) -> pd.Series | None:
    """The values as numbers, or None unless every one of them is a number."""
    if values.empty:
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers.astype(float) if numbers.notna().all() else None


def _share_inside(numbers: pd.Series, low: float, high: float) -> float:
    return float(((numbers >= low) & (numbers <= high)).mean()) if len(numbers) else 0.0


def _span(numbers: pd.Series) -> str:
    return f"{numbers.min():,.6g} to {numbers.max():,.6g}"


# --------------------------------------------------------------------------------------------
# Place


def _place(texts: dict[str, pd.Series], geometry: bool) -> dict:
    """The location keys, with their reason and alternatives."""
    numeric = {c: n for c, v in texts.items() if (n := _numbers(v)) is not None}
    if geometry:
        return {"place": "geometry", "reason": "Place: suggested, the file's own points (its geometry)."}
    found = _latlon_by_name(numeric)
    if found:
        return found
    found = _xy_by_name(numeric, texts)
    if found:
        return found
    found = _point_text(texts)
    if found:
        return found
    return _by_values(numeric)


def _latlon_by_name(numeric: dict[str, pd.Series]) -> dict | None:
    lats = [c for c, n in numeric.items() if _LAT.search(c) and _share_inside(n, -90, 90) >= _INSIDE]
    lons = [c for c, n in numeric.items() if _LON.search(c) and _share_inside(n, -180, 180) >= _INSIDE]
    lons = [c for c in lons if c not in lats]
    if not lats or not lons:
        return None
    lat, lon = lats[0], lons[0]
    others = [c for c in numeric if (_EAST.search(c) or _NORTH.search(c)) and c not in (lat, lon)]
    also = (
        f" The file also has grid coordinates ({', '.join(others)}); degrees need no projection."
        if others
        else ""
    )
    return {
        "place": "latlon",
        "lat": lat,
        "lon": lon,
        "alternatives": {"lat": tuple(lats[1:]), "lon": tuple(lons[1:])},
        "reason": (
            f"Place: suggested, latitude {lat} and longitude {lon} (by their names; the values run "
            f"{_span(numeric[lat])} and {_span(numeric[lon])}, which are degrees).{also}"
        ),
    }


def _xy_by_name(numeric: dict[str, pd.Series], texts: dict[str, pd.Series]) -> dict | None:
    xs = [c for c in texts if _EAST.search(c) and not _NORTH.search(c)]
    ys = [c for c in texts if _NORTH.search(c) and not _EAST.search(c)]
    pairs = [(x, y) for x in xs for y in ys if x in numeric and y in numeric]
    if not pairs:
        unusable = [c for c in (*xs, *ys) if c not in numeric and len(texts[c])]
        if unusable and (found := _point_text(texts)):
            example = texts[unusable[0]].iloc[0]
            found["reason"] += f" {', '.join(unusable)} hold no usable numbers (for example {example})."
            return found
        return None
    # A pair whose names match each other ("X_COORD" with "Y_COORD") before any other.
    pairs.sort(key=lambda p: _name_distance(*p))
    x, y = pairs[0]
    nx, ny = numeric[x], numeric[y]
    if _share_inside(nx, -180, 180) >= _INSIDE and _share_inside(ny, -90, 90) >= _INSIDE:
        return {
            "place": "latlon",
            "lat": y,
            "lon": x,
            "reason": (
                f"Place: suggested, latitude {y} and longitude {x}: named as x and y, but their values "
                f"({_span(ny)} and {_span(nx)}) are degrees."
            ),
        }
    crs, why = _grid(nx, ny)
    return {
        "place": "xy",
        "x": x,
        "y": y,
        "crs": crs,
        "alternatives": {"x": tuple(p[0] for p in pairs[1:]), "y": tuple(p[1] for p in pairs[1:])},
        "reason": f"Place: suggested, easting {x} and northing {y} (by their names). {why}",
    }


def _name_distance(x: str, y: str) -> int:
    """How unlike two column names are once their x/y or easting/northing parts are set aside."""

    def stem(name: str) -> str:
        return re.sub(r"easting|northing|x|y", "", name.lower())

    a, b = stem(x), stem(y)
    return sum(ca != cb for ca, cb in zip(a, b, strict=False)) + abs(len(a) - len(b))


def _grid(x: pd.Series, y: pd.Series) -> tuple[str | None, str]:
    """The grid whose ranges hold the coordinates, as a suggestion in words."""
    for code, name, (x0, x1), (y0, y1) in GRIDS:
        if _share_inside(x, x0, x1) >= _INSIDE and _share_inside(y, y0, y1) >= _INSIDE:
            return code, (
                f"Their values ({_span(x)} and {_span(y)}) lie in the ranges of the {name}: "
                f"suggested CRS {code}; check it."
            )
    return None, (
        f"Their values ({_span(x)} and {_span(y)}) fit no grid recognised here (British National "
        "Grid, New York State Plane): give the CRS (an EPSG code)."
    )


def _point_text(texts: dict[str, pd.Series]) -> dict | None:
    for col, values in texts.items():
        if values.empty or not values.str.fullmatch(_POINT).all():
            continue
        parts = values.str.extract(_POINT).astype(float)
        if _share_inside(parts[0], -90, 90) >= _INSIDE and _share_inside(parts[1], -180, 180) >= _INSIDE:
            return {
                "place": "point",
                "point": col,
                "reason": (
                    f'Place: suggested, {col}, which holds each place as "(latitude, longitude)" text '
                    f"(for example {values.iloc[0]})."
                ),
            }
    return None


def _by_values(numeric: dict[str, pd.Series]) -> dict:
    """With no telling names: two neighbouring columns of degrees or of a known grid."""
    names = list(numeric)
    for a, b in itertools.pairwise(names):
        na, nb = numeric[a], numeric[b]
        crs, why = _grid(na, nb)
        if crs and na.abs().max() > 1000:
            return {
                "place": "xy",
                "x": a,
                "y": b,
                "crs": crs,
                "alternatives": {"x": (b,), "y": (a,)},
                "reason": f"Place: suggested from values alone, easting {a} and northing {b}. {why}",
            }
        a_lat, b_lat = _share_inside(na, -90, 90) >= _INSIDE, _share_inside(nb, -90, 90) >= _INSIDE
        a_lon, b_lon = _share_inside(na, -180, 180) >= _INSIDE, _share_inside(nb, -180, 180) >= _INSIDE
        if a_lat and b_lat and na.abs().max() > 0 and nb.abs().max() > 0:
            return {
                "place": "latlon",
                "lat": a,
                "lon": b,
                "alternatives": {"lat": (b,), "lon": (a,)},
                "reason": (
                    f"Place: unsure. {a} ({_span(na)}) and {b} ({_span(nb)}) could each be latitude or "
                    f"longitude; {a} is put as latitude only because it comes first: check which is which."
                ),
            }
        if (a_lat and b_lon and not b_lat) or (b_lat and a_lon and not a_lat):
            lat, lon = (a, b) if a_lat and not b_lat else (b, a)
            return {
                "place": "latlon",
                "lat": lat,
                "lon": lon,
                "reason": (
                    f"Place: suggested from values alone, latitude {lat} ({_span(numeric[lat])}) and "
                    f"longitude {lon} ({_span(numeric[lon])}: beyond ±90, so not a latitude)."
                ),
            }
    return {"place": "", "reason": "Place: no column looks like coordinates; choose them."}


# --------------------------------------------------------------------------------------------
# Time


def _formats_for(con: duckdb.DuckDBPyConnection, values: pd.Series) -> list[tuple[str, tuple]]:
    """Every format (ISO 8601 included) that reads all of ``values``, each with what it reads."""
    if values.empty or not values.str.contains(r"\d").all():
        return []
    distinct = values.drop_duplicates()
    head = list(distinct.iloc[:3])
    candidates = [f for f in FORMATS if all(_py_parses(v, f) for v in head)]
    con.register("__sample", pd.DataFrame({"i": np.arange(len(distinct)), "v": distinct.to_numpy(str)}))
    fits = []
    try:
        iso = con.execute(
            "SELECT count(t), list(CAST(t AS TIMESTAMP) ORDER BY i) "
            "FROM (SELECT i, TRY_CAST(v AS TIMESTAMPTZ) AS t FROM __sample)"
        ).fetchall()[0]
        if iso and iso[0] == len(distinct):
            fits.append((ISO_8601, tuple(iso[1])))
        for fmt in candidates:
            row = con.execute(
                "SELECT count(t), list(CAST(t AS TIMESTAMP) ORDER BY i) "
                "FROM (SELECT i, try_strptime(v, $f) AS t FROM __sample)",
                {"f": fmt},
            ).fetchall()[0]
            if row and row[0] == len(distinct):
                fits.append((fmt, tuple(row[1])))
    finally:
        con.unregister("__sample")
    return fits


def _py_parses(value: str, fmt: str) -> bool:
    """A quick first test of a format on a few values, before DuckDB tries the whole sample."""
    try:
        dt.datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def _time(con: duckdb.DuckDBPyConnection, texts: dict[str, pd.Series], typed: set[str]) -> dict:
    """The time column and its formats, with the reason."""
    fitting: dict[str, list[tuple[str, tuple]]] = {}
    for col, values in texts.items():
        if col in typed:
            fitting[col] = [(ISO_8601, ())]
        elif _numbers(values) is None and (fits := _formats_for(con, values)):
            fitting[col] = fits
    if not fitting:
        return {"reason": "Time: no column reads as dates in the sample; choose it and give its format."}

    def score(col: str) -> int:
        return 2 * bool(_TIME_NAME.search(col)) - 3 * bool(_NOT_TIME_NAME.search(col))

    ranked = sorted(fitting, key=lambda c: -score(c))
    col = ranked[0]
    others = tuple(ranked[1:])
    tie = [c for c in others if score(c) == score(col)]
    fits = fitting[col]
    # Formats that read every value alike are one answer; formats that read them differently
    # (day first, month first) are a question only the analyst can answer.
    readings: dict[tuple, list[str]] = {}
    for fmt, parsed in fits:
        readings.setdefault(parsed, []).append(fmt)
    formats = tuple(fmt for fmt, _ in fits)
    midnight = all(t.time() == dt.time(0) for parsed in readings for t in parsed)
    why_col = f"Time: suggested, {col}"
    why_col += f" (by its name; {', '.join(tie)} would also read as dates)" if tie else ""
    if col in typed:
        return {
            "time": col,
            "time_formats": (ISO_8601,),
            "time_format": ISO_8601,
            "alternatives": others,
            "reason": f"{why_col}, stored as dates in the file: no format needed.",
        }
    example = texts[col].iloc[0]
    if len(readings) == 1:
        chosen = formats[0]
        same = f" ({len(formats)} formats read it alike)" if len(formats) > 1 else ""
        return {
            "time": col,
            "time_formats": formats,
            "time_format": chosen,
            "alternatives": others,
            "midnight": midnight,
            "reason": f"{why_col}; every value in the sample reads as {_label(chosen)}{same}: {example}.",
        }
    firsts = [group[0] for group in readings.values()]
    listed = "; ".join(_label(f) for f in firsts)
    orders = {_label(f).rsplit("(", 1)[-1] for f in firsts}
    why = (
        "no day in the sample is above 12, so day and month cannot be told apart"
        if {"day first)", "month first)"} <= orders
        else "they read the sample differently"
    )
    return {
        "time": col,
        "time_formats": tuple(firsts),
        "time_format": None,
        "alternatives": others,
        "midnight": midnight,
        "reason": (
            f"{why_col}. Its dates read in {len(firsts)} ways ({listed}): {why} (e.g. {example}). "
            "Choose the format; none is picked for you."
        ),
    }


def _label(fmt: str) -> str:
    """A format in words: 'day first' or 'month first' said where it decides the date."""
    if fmt == ISO_8601:
        return "ISO 8601 (leave the format blank)"
    order = fmt.find("%d"), fmt.find("%m")
    if -1 in order or fmt.startswith("%Y"):
        return fmt
    return f"{fmt} ({'day' if order[0] < order[1] else 'month'} first)"


def describe_format(fmt: str) -> str:
    """A time format as the mapping's picker shows it."""
    return _label(fmt)


def _time_of_day(texts: dict[str, pd.Series], used: set[str]) -> dict:
    """A separate clock-time column (a date column with its time of day beside it)."""
    for col, values in texts.items():
        if col in used or values.empty or not re.search("time|hour", col, re.I):
            continue
        for fmt in _TIME_OF_DAY:
            if all(_py_parses(v, fmt) for v in values.drop_duplicates().iloc[:200]):
                return {
                    "time_of_day": col,
                    "time_of_day_format": fmt,
                    "reason": (
                        f"Time of day: suggested, {col}, read as {fmt} (e.g. {values.iloc[0]}): the "
                        "dates of the time column are all at midnight."
                    ),
                }
    return {}


# --------------------------------------------------------------------------------------------
# Category and id


def _category(texts: dict[str, pd.Series], used: set[str], rows: int) -> dict:
    candidates = []
    for col, values in texts.items():
        if col in used or len(values) < max(1, rows // 2) or _numbers(values) is not None:
            continue
        distinct = values.nunique()
        if distinct > 100 or (len(values) >= 20 and distinct > len(values) // 2):
            continue
        score = 4 * bool(_CATEGORY_NAME.search(col)) + 2 * bool(_KIND_NAME.search(col))
        score += (3 <= distinct <= 60) - 3 * bool(_NOT_CATEGORY_NAME.search(col))
        candidates.append((score, distinct, col))
    if not candidates:
        return {"reason": "Category: no text column with few distinct values; choose one."}
    candidates.sort(reverse=True)
    score, distinct, col = candidates[0]
    if score < 0:
        listed = ", ".join(c[2] for c in candidates[:5])
        return {
            "reason": f"Category: no column is clearly one; choose it (columns with few values: {listed})."
        }
    others = tuple(c[2] for c in candidates[1:])
    also = f" Other columns with few values: {', '.join(others[:5])}." if others else ""
    how = "by its name and its " if score > 1 else ""
    sure = "suggested" if score > 1 else "unsure, suggested"
    return {
        "category": col,
        "alternatives": others,
        "reason": f"Category: {sure} {col}, {how}{distinct} values in {len(texts[col]):,} rows.{also}",
    }


def _record_id(texts: dict[str, pd.Series], used: set[str]) -> dict:
    for col, values in texts.items():
        if col in used or values.empty or not _ID_NAME.search(col):
            continue
        if values.is_unique:
            return {
                "record_id": col,
                "reason": f"Record id: suggested, {col}: named as an id and no value repeats in the sample.",
            }
    return {}


# --------------------------------------------------------------------------------------------


def suggest(frame: pd.DataFrame, geometry: bool = False) -> Suggestion:
    """Suggest the mapping of a file from its first rows (``frame``, as read: text or typed).

    ``geometry`` says the file carries its own points (a GeoJSON file's geometry column is left
    out of ``frame``'s roles)."""
    frame = frame.drop(columns=[c for c in ("geometry",) if c in frame.columns])
    texts = _texts(frame)
    typed = {str(c) for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])}
    rows = len(frame)
    reasons: dict[str, str] = {}
    alternatives: dict[str, tuple[str, ...]] = {}

    place = _place(texts, geometry)
    reasons["place"] = place.pop("reason")
    alternatives.update(place.pop("alternatives", {}))
    used = {v for k, v in place.items() if k in ("lat", "lon", "x", "y", "point") and v}

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        time = _time(con, {c: v for c, v in texts.items() if c not in used}, typed)
    finally:
        con.close()
    reasons["time"] = time.pop("reason")
    if time.get("alternatives"):
        alternatives["time"] = time.pop("alternatives")
    time.pop("alternatives", None)
    used |= {time["time"]} if time.get("time") else set()

    tod = _time_of_day(texts, used) if time.pop("midnight", False) else {}
    if tod:
        reasons["time_of_day"] = tod.pop("reason")
        used.add(tod["time_of_day"])

    record = _record_id(texts, used)
    if record:
        reasons["record_id"] = record.pop("reason")
        used.add(record["record_id"])
    category = _category(texts, used, rows)
    reasons["category"] = category.pop("reason")
    if category.get("alternatives"):
        alternatives["category"] = category.pop("alternatives")
    category.pop("alternatives", None)
    return Suggestion(
        **place, **time, **tod, **category, **record, reasons=reasons, alternatives=alternatives, rows=rows
    )
