"""Hotspot areas: neighbouring significant cells grouped into places people can name.

A service manager cannot pass on "88194368ddfffff"; they can pass on "Old Market" or "north of
Abbey ward centre". Gi* marks cells; a hotspot on the ground covers several touching cells, so
significant cells of the same side (hot or cold) that share an edge (H3 grid-disk distance 1)
are one area. Each area is named from the gazetteer or by ward and direction
(``app.places``), and carries what a service manager asks of it: the wards it touches, the
agencies involved, whether interventions reach it (``app.overlap``'s classes) and its trend in
plain words (``app.emerging``'s patterns).

An area's record count is released afresh from its cells' exact counts and their cell keys
(``app.disclosure``): a sum of released cell figures is not itself a released figure (the
rounding errors add up, and five suppressed cells summed would read as a number).
"""

from __future__ import annotations

from collections import Counter

import duckdb
import h3
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components

from app import store
from app.aggregate import check_hex_res, raw_hex_counts, xor_by
from app.disclosure import DEFAULT_RULE, PROTECTED, Rule
from app.filters import Filter, sharing_level, validate
from app.overlap import CLASSES, NO_INTERVENTIONS
from app.places import DEFAULT_MAX_KM, distance_km, place_name, zoom_for_bounds

SIGNIFICANT = 2  # Gi* bin: 95 % confidence or more, as the hotspot table counts a hotspot
CONFIDENCE = {1: "90 %", 2: "95 %", 3: "99 %"}
MIN_WARD_SHARE = 0.02  # a ward holding less of an area's cells than this does not count as touched
SERVED = {CLASSES[0], CLASSES[1]}  # multi-agency intervention, served hotspot
UNSERVED = "unserved hotspot"

# Emerging-hotspot patterns (app.emerging) in words a councillor uses.
HOT_TREND = {
    "new": "new in the latest month",
    "consecutive": "hot in recent months",
    "intensifying": "rising",
    "persistent": "steady",
    "diminishing": "falling",
    "sporadic": "on and off",
    "oscillating": "on and off",
    "historical": "hot before, not lately",
}
COLD_TREND = {
    "new": "newly quiet",
    "consecutive": "quiet in recent months",
    "intensifying": "getting quieter",
    "persistent": "steadily quiet",
    "diminishing": "less quiet than before",
    "sporadic": "quiet on and off",
    "oscillating": "quiet on and off",
    "historical": "quiet before, not lately",
}
NO_TREND = "no clear trend"

AREA_COLUMNS = [
    "area_id",
    "name",
    "side",
    "cls",
    "level",
    "n_cells",
    "cells",
    "h3_cells",
    "records",
    "records_suppressed",
    "records_label",
    "ward_codes",
    "ward_names",
    "wards",
    "lat",
    "lon",
    "min_lat",
    "min_lon",
    "max_lat",
    "max_lon",
    "zoom",
    "max_abs_z",
    "hot_demand_agencies",
    "intervention_agencies",
    "agencies",
    "intervention_status",
    "pattern",
    "trend",
]


def _as_int_cells(values) -> np.ndarray:
    """Cells as uint64, from ints or hex strings."""
    out = [h3.str_to_int(v) if isinstance(v, str) else int(v) for v in values]
    return np.array(out, dtype=np.uint64)


def connected_areas(cells: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """A component label for each cell: cells sharing an edge (grid distance 1) and the same
    group value are in one component; cells of different groups never are, however they touch.
    Labels are 0..n-1 in the order of each component's smallest cell."""
    cells = np.asarray(cells, dtype=np.uint64)
    n = len(cells)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    index = {int(c): i for i, c in enumerate(cells)}
    rows, cols = [], []
    for i, c in enumerate(cells):
        for nb in h3.grid_disk(h3.int_to_str(int(c)), 1):
            j = index.get(h3.str_to_int(nb))
            if j is not None and j != i and groups[j] == groups[i]:
                rows.append(i)
                cols.append(j)
    graph = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # Relabel by smallest cell so that labels do not depend on the input order.
    smallest = pd.Series(cells).groupby(labels).min()
    order = {old: new for new, old in enumerate(smallest.sort_values(kind="stable").index)}
    return np.array([order[x] for x in labels], dtype=np.int64)


def _cell_polygon(cell: int) -> shapely.Polygon:
    boundary = h3.cell_to_boundary(h3.int_to_str(int(cell)))
    return shapely.Polygon([(lng, lat) for lat, lng in boundary])


def _touched_wards(polygons: list[shapely.Polygon], wards: pd.DataFrame, tree) -> list[tuple[str, str]]:
    """The wards an area's cells overlap, most overlapped first; slivers along a shared edge
    (under MIN_WARD_SHARE of the area) do not count."""
    shape = shapely.union_all(polygons)
    total = shape.area
    found = []
    for w in tree.query(shape, predicate="intersects"):
        share = shape.intersection(wards["geom"].iloc[int(w)]).area / total if total else 0.0
        if share >= MIN_WARD_SHARE:
            found.append((share, str(wards["code"].iloc[int(w)]), str(wards["name"].iloc[int(w)])))
    found.sort(key=lambda t: (-t[0], t[1]))
    return [(code, name) for _, code, name in found]


def intervention_words(classes: list[str]) -> str:
    """An area's intervention status from its cells' overlap classes: "served" when
    concentrated interventions reach every hot cell that some agency's demand makes hot,
    "partly served (2 of 5 cells)", "unserved", or "no intervention data selected"."""
    present = [c for c in classes if isinstance(c, str) and c]
    if not present or all(c == NO_INTERVENTIONS for c in present):
        return NO_INTERVENTIONS
    served = sum(c in SERVED for c in present)
    unserved = sum(c in (UNSERVED, NO_INTERVENTIONS) for c in present)
    if served and not unserved:
        several = any(c == CLASSES[0] for c in present)
        return "served by several agencies" if several else "served"
    if served:
        return f"partly served ({served} of {served + unserved} cells)"
    if unserved:
        return "unserved"
    return "no single agency's demand is hot here"


def trend_words(patterns: list[str], side: str = "hot") -> tuple[str, str]:
    """(pattern, words) for an area from its cells' emerging-hotspot patterns: the most common
    pattern of its side, when at least a third of its cells share one; else "no clear trend"."""
    suffix = f" {side} spot"
    named = [p[: -len(suffix)] for p in patterns if isinstance(p, str) and p.endswith(suffix)]
    if not named or len(named) * 3 < len(patterns):
        return "no pattern", NO_TREND
    counts = Counter(named)
    top = max(counts.values())
    order = list(HOT_TREND)
    best = min((p for p, n in counts.items() if n == top), key=lambda p: order.index(p) if p in order else 99)
    words = (HOT_TREND if side == "hot" else COLD_TREND).get(best, NO_TREND)
    return best + suffix, words


def _join(values: list[str]) -> str:
    found: set[str] = set()
    for v in values:
        if isinstance(v, str) and v:
            found.update(a.strip() for a in v.split(",") if a.strip())
    return ", ".join(sorted(found))


def area_name(
    polygons: list[shapely.Polygon],
    peak: tuple[float, float],
    *,
    wards: pd.DataFrame,
    places: pd.DataFrame | None,
    ward_code: str | None = None,
    max_km: float = DEFAULT_MAX_KM,
) -> str:
    """The name people would give an area of cells: the gazetteer places it covers (a named
    point inside it, or a named area holding one of its cells' centres), the nearest to its
    peak first, two at most ("Old Market and Queens Wharf station"), and "and nearby" when it
    covers more ("Old Market, Queens Wharf station and nearby": a reader must not take a
    large area for the two places alone); else the place nearest its peak
    (``places.place_name``), which falls back to ward and direction."""
    if places is not None and len(places):
        shape = shapely.union_all(polygons)
        lat, lon = peak
        covered: list[tuple[float, str]] = []
        centres = [p.centroid for p in polygons]
        for name, plat, plon, geom in zip(
            places["name"],
            places["lat"],
            places["lon"],
            places.get("geom", [None] * len(places)),
            strict=True,
        ):
            inside = (
                any(geom.covers(c) for c in centres)
                if geom is not None
                else shape.covers(shapely.Point(plon, plat))
            )
            if inside:
                covered.append((float(distance_km(lat, lon, plat, plon)), str(name)))
        names = list(dict.fromkeys(n for _, n in sorted(covered)))
        if len(names) > 2:
            return f"{names[0]}, {names[1]} and nearby"
        if names:
            return " and ".join(names)
    return place_name(peak[0], peak[1], wards=wards, places=places, ward_code=ward_code, max_km=max_km)


def hotspot_areas(
    cells: pd.DataFrame,
    *,
    res: int,
    wards: pd.DataFrame,
    places: pd.DataFrame | None = None,
    sharing: str | None = None,
    rule: Rule = DEFAULT_RULE,
    min_level: int = SIGNIFICANT,
    split_confidence: bool = False,
    max_km: float = DEFAULT_MAX_KM,
) -> pd.DataFrame:
    """One row per hotspot area (``AREA_COLUMNS``), hot areas first, the most records first.

    ``cells``: one row per grid cell with ``h3`` (uint64 or hex text) and Gi* ``bin`` (and ``z``);
    for the records, ``exact_count`` and ``cell_key`` (exact counts and cell keys, engine only:
    the area total is released from them at ``sharing``, by default the frame's own ``sharing``
    column); without them only an open selection gets a figure (the sum of its exact
    ``count``), and a protected one raises ValueError. Optional per-cell columns add to each area:
    ``hot_demand_agencies``, ``intervention_agencies``, ``class`` (``overlap.cell_classes``) and
    ``pattern`` (``emerging.emerging_hotspots``). ``wards`` and ``places`` are
    ``places.ward_frame`` and ``places.place_frame``.

    Cells of the same side (hot, cold) that touch form one area; with ``split_confidence`` an
    area is also one confidence level (99 % and 95 % cells stay apart)."""
    res = check_hex_res(res)
    bins = cells["bin"].to_numpy(dtype=np.int64)
    keep = np.abs(bins) >= min_level
    sig = cells[keep].reset_index(drop=True)
    if not len(sig):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in AREA_COLUMNS})
    ids = _as_int_cells(sig["h3"])
    sig_bins = bins[keep]
    groups = sig_bins if split_confidence else np.sign(sig_bins)
    labels = connected_areas(ids, groups)
    if sharing is None:  # hex_hotspots' frame says at which level its figures were released
        sharing = str(cells["sharing"].iloc[0]) if "sharing" in cells and len(cells) else "open"
    protected = sharing in PROTECTED
    has_exact = "exact_count" in sig and "cell_key" in sig
    if protected and not has_exact:
        raise ValueError(
            "a protected selection's area totals need exact_count and cell_key per cell: "
            "call areas.areas_for(con, f, res, spots, ...), which reads them"
        )
    tree = shapely.STRtree(np.array(wards["geom"], dtype=object)) if len(wards) else None
    rows = []
    for label in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == label)
        area_cells = np.sort(ids[members])
        part = sig.iloc[members]
        side = "hot" if sig_bins[members[0]] > 0 else "cold"
        level = int(np.abs(sig_bins[members]).max())
        polygons = [_cell_polygon(int(c)) for c in area_cells]
        minx, miny, maxx, maxy = shapely.total_bounds(np.array(polygons, dtype=object))
        # The middle of its bounding box: a map centred there at ``zoom`` shows all of it.
        lat, lon = float((miny + maxy) / 2), float((minx + maxx) / 2)
        touched = _touched_wards(polygons, wards, tree) if tree is not None else []
        z = part["z"].to_numpy(dtype=float) if "z" in part else np.zeros(len(part))
        peak = int(np.argmax(np.abs(z))) if len(z) else 0
        peak_cell = int(ids[members[peak]])
        name = area_name(
            polygons,
            h3.cell_to_latlng(h3.int_to_str(peak_cell)),
            wards=wards,
            places=places,
            ward_code=touched[0][0] if touched else None,
            max_km=max_km,
        )
        if has_exact:
            exact = float(np.nansum(part["exact_count"].to_numpy(dtype=float)))
            key = np.bitwise_xor.reduce(part["cell_key"].fillna(0).to_numpy(dtype=np.uint64))
            values, suppressed = rule.release(np.array([exact]), protected, np.array([key], dtype=np.uint64))
            records, is_suppressed = float(values[0]), bool(suppressed[0])
        else:
            records, is_suppressed = float(np.nansum(part["count"].to_numpy(dtype=float))), False
        pattern, trend = trend_words(list(part["pattern"]) if "pattern" in part else [], side)
        hot_agencies = _join(list(part["hot_demand_agencies"])) if "hot_demand_agencies" in part else ""
        int_agencies = _join(list(part["intervention_agencies"])) if "intervention_agencies" in part else ""
        status = intervention_words(list(part["class"])) if "class" in part and side == "hot" else ""
        hexes = [h3.int_to_str(int(c)) for c in area_cells]
        tag = f"{side}{CONFIDENCE[level].split()[0]}" if split_confidence else side
        rows.append(
            {
                "area_id": f"{tag}-{hexes[0]}",
                "name": name,
                "side": side,
                "cls": f"{side} spot, {CONFIDENCE[level]} confidence",
                "level": level,
                "n_cells": len(area_cells),
                "cells": [int(c) for c in area_cells],
                "h3_cells": hexes,
                "records": np.nan if is_suppressed else records,
                "records_suppressed": is_suppressed,
                "records_label": rule.label(records, is_suppressed),
                "ward_codes": [c for c, _ in touched],
                "ward_names": [n for _, n in touched],
                "wards": ", ".join(n for _, n in touched),
                "lat": lat,
                "lon": lon,
                "min_lat": float(miny),
                "min_lon": float(minx),
                "max_lat": float(maxy),
                "max_lon": float(maxx),
                "zoom": max(zoom_for_bounds(miny, minx, maxy, maxx) - 1, 11),
                "max_abs_z": float(np.abs(z).max()) if len(z) else 0.0,
                "hot_demand_agencies": hot_agencies,
                "intervention_agencies": int_agencies,
                "agencies": _join([hot_agencies, int_agencies]),
                "intervention_status": status,
                "pattern": pattern,
                "trend": trend,
            }
        )
    out = pd.DataFrame(rows)
    out["_rank_side"] = (out["side"] != "hot").astype(int)
    out["_rank_records"] = out["records"].fillna(0)
    out = out.sort_values(
        ["_rank_side", "_rank_records", "max_abs_z", "area_id"],
        ascending=[True, False, False, True],
        ignore_index=True,
    ).drop(columns=["_rank_side", "_rank_records"])
    out["name"] = _distinct(out["name"].tolist())
    return out[AREA_COLUMNS]


def _distinct(names: list[str]) -> list[str]:
    """Two areas named alike are told apart by number, in rank order: "Old Market", "Old
    Market (2)"."""
    seen: Counter = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


# --------------------------------------------------------------------------------------------
# From the warehouse


def exact_cell_counts(con: duckdb.DuckDBPyConnection, f: Filter, res: int) -> pd.DataFrame:
    """Per cell: the exact count of the selected records and the cell key (engine only)."""
    raw = raw_hex_counts(con, f, res)
    if raw.empty:
        return pd.DataFrame({"h3": pd.Series(dtype="uint64"), "exact_count": [], "cell_key": []})
    totals = raw.groupby("h3", as_index=False)["count"].sum().rename(columns={"count": "exact_count"})
    totals["cell_key"] = xor_by(raw, "h3")
    return totals


def cell_inputs(
    spots: pd.DataFrame,
    classes: pd.DataFrame | None = None,
    trend: pd.DataFrame | None = None,
    exact: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The per-cell frame ``hotspot_areas`` reads, from ``hotspots.hex_hotspots``'s cells,
    ``overlap.cell_classes``, ``emerging.emerging_hotspots`` and ``exact_cell_counts``."""
    wanted = [c for c in ("h3", "h3_cell", "count", "suppressed", "sharing", "z", "bin") if c in spots]
    frame = spots[wanted].copy()
    frame["h3"] = frame["h3"].astype("uint64")
    if classes is not None:
        wanted = ["h3_cell", "class", "hot_demand_agencies", "intervention_agencies"]
        frame = frame.merge(classes[wanted], on="h3_cell", how="left")
    if trend is not None:
        frame = frame.merge(trend[["h3_cell", "pattern"]], on="h3_cell", how="left")
    if exact is not None:
        exact = exact.assign(h3=exact["h3"].astype("uint64"))
        frame = frame.merge(exact[["h3", "exact_count", "cell_key"]], on="h3", how="left")
        frame["exact_count"] = frame["exact_count"].fillna(0)
        frame["cell_key"] = frame["cell_key"].fillna(0).astype("uint64")
    return frame


def areas_for(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    res: int,
    spots: pd.DataFrame,
    classes: pd.DataFrame | None = None,
    trend: pd.DataFrame | None = None,
    rule: Rule = DEFAULT_RULE,
    **options,
) -> pd.DataFrame:
    """``hotspot_areas`` for a filter, from the hotspot, class and trend tables a page already
    holds; the exact counts it needs are read here and never returned."""
    f = validate(con, f)
    from app.places import place_frame, ward_frame

    cells = cell_inputs(spots, classes, trend, exact_cell_counts(con, f, res))
    return hotspot_areas(
        cells,
        res=res,
        wards=ward_frame(con),
        places=place_frame(con),
        sharing=sharing_level(con, f),
        rule=rule,
        **options,
    )


def area_cells(areas: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Cell-level rows (e.g. ``overlap.hotspot_export``) with the area each cell belongs to:
    ``area_id`` and ``area_name`` first, rows of no area left with them empty."""
    lookup = {
        h: (a, n)
        for a, n, cells in zip(areas["area_id"], areas["name"], areas["h3_cells"], strict=True)
        for h in cells
    }
    found = [lookup.get(h, ("", "")) for h in table["h3_cell"]]
    out = table.copy()
    out.insert(0, "area_name", [n for _, n in found])
    out.insert(0, "area_id", [a for a, _ in found])
    return out


def cell_ward_split(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    cells,
    ward_code: str,
    rule: Rule = DEFAULT_RULE,
) -> pd.DataFrame:
    """For hotspot cells seen from one ward: the records inside the ward beside the cell's
    total, both released (each from its own exact count and key), and whether the cell's
    outline reaches into other wards (``spans_wards``, ``other_wards``) -- decided by geometry,
    never by comparing counts, which would tell whether a protected remainder is zero.

    ``cells``: cell ids (int or hex text) of one resolution. Columns: h3, h3_cell, in_ward,
    in_ward_suppressed, in_ward_label, total, total_suppressed, total_label, spans_wards,
    other_wards (names)."""
    ids = _as_int_cells(list(cells))
    columns = [
        "h3",
        "h3_cell",
        "in_ward",
        "in_ward_suppressed",
        "in_ward_label",
        "total",
        "total_suppressed",
        "total_label",
        "spans_wards",
        "other_wards",
    ]
    if not len(ids):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    resolutions = {h3.get_resolution(h3.int_to_str(int(c))) for c in ids}
    if len(resolutions) != 1:
        raise ValueError("cells must all be of one resolution")
    res = check_hex_res(resolutions.pop())
    f = validate(con, f)
    found = store.split_cell_counts(con, f, res, ward_code, [int(c) for c in ids])
    frame = pd.DataFrame({"h3": ids}).merge(
        found.assign(h3=found["h3"].astype("uint64")), on="h3", how="left"
    )
    for col in ("in_ward", "total"):
        frame[col] = frame[col].fillna(0)
    for col in ("in_ward_key", "total_key"):
        frame[col] = frame[col].fillna(0).astype("uint64")
    protected = sharing_level(con, f) in PROTECTED
    inside, inside_s = rule.release(frame["in_ward"].to_numpy(), protected, frame["in_ward_key"].to_numpy())
    total, total_s = rule.release(frame["total"].to_numpy(), protected, frame["total_key"].to_numpy())
    from app.places import ward_frame

    wards = ward_frame(con)
    tree = shapely.STRtree(np.array(wards["geom"], dtype=object)) if len(wards) else None
    others = []
    for c in ids:
        touched = _touched_wards([_cell_polygon(int(c))], wards, tree) if tree is not None else []
        others.append([n for code, n in touched if code != ward_code])
    return pd.DataFrame(
        {
            "h3": ids,
            "h3_cell": [h3.int_to_str(int(c)) for c in ids],
            "in_ward": inside,
            "in_ward_suppressed": inside_s,
            "in_ward_label": [rule.label(v, s) for v, s in zip(inside, inside_s, strict=True)],
            "total": total,
            "total_suppressed": total_s,
            "total_label": [rule.label(v, s) for v, s in zip(total, total_s, strict=True)],
            "spans_wards": [bool(o) for o in others],
            "other_wards": others,
        }
    )[columns]
