"""Cached engine calls for the pages: each keyed by the warehouse version and the view, so a
filter change recomputes only what it touches and a reload of the warehouse refreshes all.

The version (``stamp``, from ``ui.db_version``) is an ordinary argument on purpose: Streamlit
leaves arguments whose names begin with an underscore out of the cache key. Each call reads the
warehouse through ``warehouse(stamp)``, the connection of that very version, so a cache miss
never computes on a file a load has renamed into place since the page's run began."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import aggregate, briefing, emerging, hotspots, overlap, quality, trends
from app.dashboard.ui import MAX_HEXES, warehouse
from app.filters import Filter


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def ward_shapes(stamp) -> pd.DataFrame:
    return quality.ward_shapes(warehouse(stamp))


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def wards(stamp, f: Filter) -> pd.DataFrame:
    frame = aggregate.ward_aggregate(warehouse(stamp), f, by_dataset=False)
    return frame.merge(ward_shapes(stamp)[["ward_code", "geojson"]], on="ward_code")


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def ward_by_dataset(stamp, f: Filter) -> pd.DataFrame:
    return aggregate.ward_aggregate(warehouse(stamp), f, by_dataset=True)


def map_res(stamp, f: Filter, res: int) -> tuple[int, str]:
    """The requested resolution, or a coarser one when it would send over 50,000 hexes."""
    requested = res
    while res > 5 and (len(hexes(stamp, f, res)) > MAX_HEXES or _grid_size(stamp, res, f.access) > MAX_HEXES):
        res -= 1
    note = (
        ""
        if res == requested
        else f"shown at resolution {res}: {requested} would draw over {MAX_HEXES:,} hexes"
    )
    return res, note


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def _grid_size(stamp, res: int, access) -> int:
    """Cells of the whole study area as this viewer sees it: the hotspot layers draw from all
    of them."""
    from app.grid import study_area_cells

    return len(study_area_cells(warehouse(stamp), res, access))


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def hexes(stamp, f: Filter, res: int) -> pd.DataFrame:
    return aggregate.hex_totals(warehouse(stamp), f, res)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def hotspot_cells(stamp, f: Filter, res: int, k: int) -> tuple[pd.DataFrame, str | None]:
    frame, result = hotspots.hex_hotspots(warehouse(stamp), f, res, k)
    return frame, result.warning


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def emerging_cells(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    return emerging.emerging_hotspots(warehouse(stamp), f, res, "month", k)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def classes(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    return overlap.cell_classes(warehouse(stamp), f, res, k)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def colocation(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    return overlap.colocation_matrix(warehouse(stamp), f, res, k)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def ward_agencies(stamp, f: Filter, res: int, k: int) -> pd.DataFrame:
    return overlap.ward_agencies(warehouse(stamp), f, res, k, classes=classes(stamp, f, res, k))


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def trend(stamp, f: Filter, freq: str, ward: str | None = None, cell: str | None = None) -> pd.DataFrame:
    """Released counts per period, agency and kind, for a ward, a cell or the city."""
    series = aggregate.time_series(warehouse(stamp), f, freq, ward=ward, cell=cell)
    return trends.agency_trend(series, freq)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def categories(stamp, f: Filter, ward: str | None = None, cell: str | None = None) -> pd.DataFrame:
    """Records per category (protected) for a ward, a cell or the city."""
    return aggregate.category_counts(warehouse(stamp), f, ward=ward, cell=cell)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def coverage_note(stamp, f: Filter) -> str | None:
    """A warning when the selected datasets cover different parts of the period."""
    return trends.coverage_note(warehouse(stamp), f)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def selected_datasets(stamp, f: Filter) -> pd.DataFrame:
    """The catalogue rows the filter selects (id, agency, kind, sharing, first and last time)."""
    from app.filters import datasets_in, validate

    con = warehouse(stamp)
    return datasets_in(con, validate(con, f))


def coarse_locations(reports: list[dict], ids) -> list[dict]:
    """The load reports (``quality.load_report``) of the datasets ``ids`` whose locations are
    coarse (snapped to a grid, or to a few points): their ``location_precision`` says how coarse.
    A warehouse loaded before that key existed has none, so nothing is said of it."""
    wanted = set(ids)
    return [r for r in reports if r.get("id") in wanted and (r.get("location_precision") or {}).get("coarse")]


def precision_warnings(reports: list[dict], ids, res: int) -> list[str]:
    """A warning for each selected dataset drawn finer than its locations support: at a finer
    resolution its hexes show the grid its points were snapped to, not where things happened."""
    out = []
    for r in coarse_locations(reports, ids):
        finest = r["location_precision"].get("finest_res")
        if finest is not None and res > int(finest):
            grid = r["location_precision"].get("grid_m")
            apart = f" (its points lie about {float(grid):,.0f} m apart)" if grid else ""
            out.append(
                f"{r.get('title') or r['id']} is drawn at resolution {res}, but its locations support "
                f"resolution {int(finest)} at the finest{apart}: its hexes here show where its "
                "locations were rounded to, not where things happened."
            )
    return out


def selected_ids(stamp, f: Filter) -> list[str]:
    """The ids of the datasets the filter selects."""
    return [str(i) for i in selected_datasets(stamp, f)["id"]]


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def ward_warnings(stamp, f: Filter) -> pd.DataFrame:
    """Wards and agencies whose latest whole month ran higher than expected (app.early_warning),
    for the filter's datasets; computed once per view and shared by every ward's profile."""
    from app import early_warning

    return early_warning.warnings(warehouse(), f, kinds=("ward",))


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def briefing_inputs(stamp, f: Filter, own: bool) -> briefing.CityInputs:
    """The city-wide parts of every ward's briefing (ranking, each dataset's windows and every
    ward's counts in them, the city's categories), read once per view and shared by every
    ward's profile: a ward click then reads only that ward's categories."""
    return briefing.city_briefing_inputs(warehouse(stamp), f, own_windows=own)
