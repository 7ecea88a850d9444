"""Significant hotspots on the hex grid and on wards, from the filtered records.

Gi* runs over the study area's complete grid (empty cells count as zero). For partners' and
restricted datasets it runs on the released counts (rounded, suppressed ones as a neutral
stand-in), so that z-scores cannot be inverted into exact small counts.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import shapely

from app.aggregate import check_hex_res, dataset_units, raw_hex_counts, ward_counts
from app.disclosure import DEFAULT_RULE, PROTECTED, Rule
from app.filters import Filter, sharing_level, validate
from app.grid import cell_frame, kring_weights, study_area_cells, ward_weights
from app.stats import GiStar, gi_star


def released_grid(
    counts: pd.DataFrame, cells: np.ndarray, sharing: str, rule: Rule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-filled counts over ``cells`` for the datasets in ``counts`` taken together,
    protected at ``sharing`` (the level of the datasets selected, not of those that happen to
    have records): (released values, suppressed flags, values for statistics)."""
    exact = np.zeros(len(cells))
    keys = np.zeros(len(cells), dtype=np.uint64)
    if len(counts):
        pos = np.searchsorted(cells, counts["h3"].astype("uint64").to_numpy())
        np.add.at(exact, pos, counts["count"].to_numpy(dtype=np.float64))
        np.bitwise_xor.at(keys, pos, counts["cell_key"].to_numpy(dtype=np.uint64))
    values, suppressed = rule.release(exact, sharing in PROTECTED, keys)
    return values, suppressed, rule.stand_in(values, suppressed)


def with_gi_star(frame: pd.DataFrame, values, suppressed, sharing: str, result: GiStar) -> pd.DataFrame:
    """Places with their released counts and Gi* figures, as every hotspot table carries them."""
    return frame.assign(
        count=values,
        suppressed=suppressed,
        sharing=sharing,
        z=result.z,
        p=result.p,
        p_fdr=result.p_fdr,
        bin=result.bin,
    )


def hex_hotspots(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, k: int = 1, rule: Rule = DEFAULT_RULE
) -> tuple[pd.DataFrame, GiStar]:
    """Gi* of the selected records per cell; every cell of the study area, hot or not."""
    res = check_hex_res(res)
    cells = study_area_cells(con, res, f.access)
    f = validate(con, f)
    counts = raw_hex_counts(con, f, res)
    sharing = sharing_level(con, f)
    values, suppressed, stat_values = released_grid(counts, cells, sharing, rule)
    result = gi_star(stat_values, kring_weights(cells, k))
    return with_gi_star(cell_frame(cells, res), values, suppressed, sharing, result), result


def ward_hotspots(
    con: duckdb.DuckDBPyConnection, f: Filter, rule: Rule = DEFAULT_RULE
) -> tuple[pd.DataFrame, GiStar]:
    """Gi* of the selected records per ward, with contiguity neighbours."""
    frame = ward_counts(con, validate(con, f), by_dataset=False)
    sharing = sharing_level(con, f)
    values, suppressed = rule.release(
        frame["count"].to_numpy(), sharing in PROTECTED, frame["cell_key"].to_numpy(dtype=np.uint64)
    )
    wkb = dict(con.execute("SELECT code, geom_wkb FROM wards").fetchall())
    geoms = [shapely.from_wkb(bytes(wkb[code])) for code in frame["ward_code"]]
    result = gi_star(rule.stand_in(values, suppressed), ward_weights(geoms))
    places = frame[["ward_code", "ward_name", "population"]]
    return with_gi_star(places, values, suppressed, sharing, result), result


def per_dataset_hotspots(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, k: int = 1, rule: Rule = DEFAULT_RULE
) -> tuple[np.ndarray, dict[str, pd.DataFrame]]:
    """Gi* for each selected dataset (and each agency a file names per row) on its own, over
    one shared grid. Keyed by dataset id, or "id (agency)" for a file of several agencies.
    Every selected dataset is there, records under the filter or not: a partner's dataset
    missing from the result would tell that it has none."""
    res = check_hex_res(res)
    f = validate(con, f)
    cells = study_area_cells(con, res, f.access)
    weights = kring_weights(cells, k)
    counts = raw_hex_counts(con, f, res)
    units = dataset_units(con, f)
    several = units.groupby("dataset")["agency"].transform("size") > 1
    out: dict[str, pd.DataFrame] = {}
    for unit, many in zip(units.itertuples(), several, strict=True):
        group = counts[(counts["dataset"] == unit.dataset) & (counts["agency"] == unit.agency)]
        values, suppressed, stat_values = released_grid(group, cells, unit.sharing, rule)
        result = gi_star(stat_values, weights)
        name = f"{unit.dataset} ({unit.agency})" if many else str(unit.dataset)
        out[name] = pd.DataFrame(
            {
                "h3": cells,
                "dataset": unit.dataset,
                "agency": unit.agency,
                "kind": unit.kind,
                "count": values,
                "suppressed": suppressed,
                "stat_value": stat_values,
                "z": result.z,
                "p_fdr": result.p_fdr,
                "bin": result.bin,
            }
        )
    return cells, out


HOTSPOT_COLUMNS = [
    "h3_cell",
    "records",
    "z",
    "p_fdr",
    "bin",
    "pattern",
    "hot_demand_agencies",
    "intervention_agencies",
    "intervention status",  # overlap's class, named as the table and its CSV show it
]


def ranked_hotspots(
    spots: pd.DataFrame,
    classes: pd.DataFrame,
    trend: pd.DataFrame,
    rule: Rule = DEFAULT_RULE,
    also: set[str] | None = None,
) -> pd.DataFrame:
    """The significant hotspots (95 % or more) of ``hex_hotspots``, and any cells named in
    ``also``, strongest first, with what a service manager asks of each: its released count as
    shown ("<5" when suppressed), the agencies whose demand is hot there, the interventions
    concentrated there and their class (``overlap.cell_classes``), and its pattern over time
    (``emerging.emerging_hotspots``)."""
    hot = spots[(spots["bin"] >= 2) | spots["h3_cell"].isin(also or set())]
    ranked = (
        hot.merge(
            classes[["h3_cell", "class", "hot_demand_agencies", "intervention_agencies"]],
            on="h3_cell",
            how="left",
        )
        .merge(trend[["h3_cell", "pattern"]], on="h3_cell", how="left")
        .sort_values("z", ascending=False, ignore_index=True)
    )
    ranked["records"] = [rule.label(v, s) for v, s in zip(ranked["count"], ranked["suppressed"], strict=True)]
    return ranked.rename(columns={"class": "intervention status"})[HOTSPOT_COLUMNS]
