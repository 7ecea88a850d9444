"""Where agencies meet: whose demand is hot where, whether interventions reach it, and how
alike two datasets' maps are.

"Served" is judged by concentration, not mere presence: routine patrols or visits spread thinly
over the whole city touch nearly every cell, so a demand hotspot counts as served only where
interventions are themselves significantly concentrated (Gi* at 90 % or more). Each cell gets
one class, in this order:

- multi-agency intervention: two or more agencies' interventions are concentrated there;
- served hotspot: some agency's demand is hot (95 % or more) and interventions are
  concentrated there;
- unserved hotspot: demand is hot and no intervention is concentrated there;
- intervention outside need: interventions are concentrated where demand is not hot;
- none.

With no intervention dataset selected (or none loaded) nothing can be served, so a demand
hotspot is "no intervention data selected", never "unserved": the absence of data is not the
absence of a service. Every row names the interventions considered
(``interventions_considered``), so a reader knows what "served" was judged against.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from app.disclosure import DEFAULT_RULE, Rule
from app.filters import Filter, validate
from app.hotspots import per_dataset_hotspots
from app.stats import gi_star

DEMAND_HOT = 2  # Gi* bin for a demand hotspot (95 %)
INTERVENTION_HOT = 1  # Gi* bin for a concentration of interventions (90 %)
CLASSES = ["multi-agency intervention", "served hotspot", "unserved hotspot", "intervention outside need"]
NO_INTERVENTIONS = "no intervention data selected"


def cell_classes(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, k: int = 1, rule: Rule = DEFAULT_RULE
) -> pd.DataFrame:
    """Per cell: hot demand agencies, concentrated intervention agencies, and the class.

    Each (dataset, agency) group of ``per_dataset_hotspots`` counts under its own agency, so a
    file that names an agency per row (New York's 311) is read as the agencies it holds."""
    f = validate(con, f)
    cells, per_dataset = per_dataset_hotspots(con, f, res, k, rule)
    from app.grid import cell_frame, kring_weights

    weights = kring_weights(cells, k)
    demand = [d for d in per_dataset.values() if d["kind"].iloc[0] == "demand"]
    interventions = [d for d in per_dataset.values() if d["kind"].iloc[0] == "intervention"]

    hot_demand_agencies = _agencies_where(demand, lambda d: d["bin"].to_numpy() >= DEMAND_HOT, len(cells))
    demand_hot = np.array([bool(a) for a in hot_demand_agencies], dtype=bool)

    by_agency: dict[str, np.ndarray] = {}
    for d in interventions:
        agency = str(d["agency"].iloc[0])
        by_agency[agency] = by_agency.get(agency, np.zeros(len(cells))) + d["stat_value"].to_numpy()
    concentrated = {a: gi_star(v, weights).bin >= INTERVENTION_HOT for a, v in by_agency.items()}
    n_concentrated = sum((v.astype(int) for v in concentrated.values()), np.zeros(len(cells), int))
    intervention_agencies = [
        ", ".join(sorted(a for a, hot in concentrated.items() if hot[i])) for i in range(len(cells))
    ]
    served = n_concentrated > 0
    unserved = NO_INTERVENTIONS if not interventions else "unserved hotspot"
    cls = np.select(
        [n_concentrated >= 2, demand_hot & served, demand_hot & ~served, served & ~demand_hot],
        [*CLASSES[:2], unserved, CLASSES[3]],
        "none",
    )
    return cell_frame(cells, res).assign(
        demand_hot=demand_hot,
        hot_demand_agencies=hot_demand_agencies,
        intervention_agencies=intervention_agencies,
        interventions_considered=considered_sentence(con, interventions),
        **{"class": cls},
    )


def considered_sentence(con: duckdb.DuckDBPyConnection, interventions: list[pd.DataFrame]) -> str:
    """Which intervention data "served" was judged against, in words: "Interventions
    considered: Police patrols (Fairhaven Police), Outreach visits (Fairhaven City Council)"."""
    if not interventions:
        return (
            "No intervention data selected: a demand hotspot cannot be called served or unserved. "
            "Add an intervention dataset to the filter to compare."
        )
    titles = dict(con.execute("SELECT id, title FROM datasets").fetchall())
    named = sorted(
        {
            f"{titles.get(d['dataset'].iloc[0]) or d['dataset'].iloc[0]} ({d['agency'].iloc[0]})"
            for d in interventions
        }
    )
    return "Interventions considered: " + ", ".join(named) + "."


def interventions_considered(classes: pd.DataFrame) -> str:
    """The sentence ``cell_classes`` gives every row, or "" for a frame without it."""
    if "interventions_considered" not in classes or not len(classes):
        return ""
    return str(classes["interventions_considered"].iloc[0])


def _agencies_where(frames: list[pd.DataFrame], test, n: int) -> list[str]:
    sets: list[set[str]] = [set() for _ in range(n)]
    for d in frames:  # one frame per (dataset, agency) group: its agency as it comes
        agency = str(d["agency"].iloc[0])
        for i in np.flatnonzero(test(d)):
            sets[i].add(agency)
    return [", ".join(sorted(s)) for s in sets]


def colocation_matrix(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, k: int = 1, rule: Rule = DEFAULT_RULE
) -> pd.DataFrame:
    """For each pair of datasets: Jaccard of their hotspot sets (95 %) and the Spearman rank
    correlation of their counts over every cell of the study area."""
    _, per_dataset = per_dataset_hotspots(con, validate(con, f), res, k, rule)
    names = sorted(per_dataset)
    rows = []
    for a in names:
        for b in names:
            hot_a = per_dataset[a]["bin"].to_numpy() >= DEMAND_HOT
            hot_b = per_dataset[b]["bin"].to_numpy() >= DEMAND_HOT
            union = (hot_a | hot_b).sum()
            jaccard = (hot_a & hot_b).sum() / union if union else np.nan
            va, vb = per_dataset[a]["stat_value"].to_numpy(), per_dataset[b]["stat_value"].to_numpy()
            rho = spearmanr(va, vb).statistic if va.std() > 0 and vb.std() > 0 else np.nan
            rows.append(
                {
                    "dataset_a": a,
                    "dataset_b": b,
                    "jaccard": jaccard,
                    "spearman": rho,
                    "hot_cells_a": int(hot_a.sum()),
                    "hot_cells_b": int(hot_b.sum()),
                }
            )
    return pd.DataFrame(rows)


def ward_agencies(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    res: int = 8,
    k: int = 1,
    rule: Rule = DEFAULT_RULE,
    classes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per ward: which agencies' demand has a significant hotspot (hex Gi*, 95 %) inside it.

    Hex cells rather than ward-level Gi*: with a few dozen wards, a ward that stands out alone
    rarely survives the FDR correction, while its hot streets do.
    """
    import shapely

    if classes is None:  # callers that already hold the cell classes pass them in
        classes = cell_classes(con, f, res, k, rule)
    wards = con.execute("SELECT code, name, geom_wkb FROM wards ORDER BY code").df()
    geoms = [shapely.from_wkb(bytes(b)) for b in wards["geom_wkb"]]
    tree = shapely.STRtree(geoms)
    centres = shapely.points(classes["cell_lng"].to_numpy(), classes["cell_lat"].to_numpy())
    cell_idx, ward_idx = tree.query(centres, predicate="within")
    hot: dict[int, set[str]] = {}
    unserved: dict[int, int] = {}
    for c, w in zip(cell_idx, ward_idx, strict=True):
        agencies = classes["hot_demand_agencies"].iloc[c]
        if agencies:
            hot.setdefault(int(w), set()).update(agencies.split(", "))
        if classes["class"].iloc[c] == "unserved hotspot":
            unserved[int(w)] = unserved.get(int(w), 0) + 1
    return pd.DataFrame(
        {
            "ward_code": wards["code"],
            "ward_name": wards["name"],
            "hot_demand_agencies": [", ".join(sorted(hot.get(i, set()))) for i in range(len(wards))],
            "agencies_hot": [len(hot.get(i, set())) for i in range(len(wards))],
            "unserved_hot_cells": [unserved.get(i, 0) for i in range(len(wards))],
        }
    )


def cell_wards(con: duckdb.DuckDBPyConnection, lat, lng) -> pd.DataFrame:
    """The ward (code and name) whose polygon holds each point; empty strings outside every
    ward. A cell's ward is the one holding its centre, as ``ward_agencies`` counts it."""
    import shapely

    wards = con.execute("SELECT code, name, geom_wkb FROM wards ORDER BY code").df()
    tree = shapely.STRtree([shapely.from_wkb(bytes(b)) for b in wards["geom_wkb"]])
    points = shapely.points(np.asarray(lng, dtype=float), np.asarray(lat, dtype=float))
    point_idx, ward_idx = tree.query(points, predicate="within")
    codes, names = np.full(len(points), "", dtype=object), np.full(len(points), "", dtype=object)
    codes[point_idx] = wards["code"].to_numpy()[ward_idx]
    names[point_idx] = wards["name"].to_numpy()[ward_idx]
    return pd.DataFrame({"ward_code": codes, "ward_name": names})


EXPORT_COLUMNS = [
    "h3_cell",
    "ward_code",
    "ward_name",
    "cell_lat",
    "cell_lng",
    "records",
    "records_suppressed",
    "z",
    "p_fdr",
    "gi_bin",
    "pattern",
    "hot_demand_agencies",
    "intervention_agencies",
    "intervention_status",
    "interventions_considered",
]


def hotspot_export(
    con: duckdb.DuckDBPyConnection, table: pd.DataFrame, spots: pd.DataFrame, classes: pd.DataFrame
) -> pd.DataFrame:
    """The ranked hotspots (``hotspots.ranked_hotspots``) as a file for other tools: numbers as
    numbers (a suppressed count is empty, with ``records_suppressed`` true, never "<5" in a
    column of numbers), snake_case headers, and each place's ward and centre."""
    places = table[["h3_cell"]].merge(
        spots[["h3_cell", "cell_lat", "cell_lng", "count", "suppressed"]], on="h3_cell", how="left"
    )
    wards = cell_wards(con, places["cell_lat"], places["cell_lng"])
    suppressed = places["suppressed"].fillna(False).astype(bool).to_numpy()
    out = pd.DataFrame(
        {
            "h3_cell": table["h3_cell"].to_numpy(),
            "ward_code": wards["ward_code"].to_numpy(),
            "ward_name": wards["ward_name"].to_numpy(),
            "cell_lat": places["cell_lat"].round(6).to_numpy(),
            "cell_lng": places["cell_lng"].round(6).to_numpy(),
            "records": pd.array(np.where(suppressed, np.nan, places["count"]), dtype="Int64"),
            "records_suppressed": suppressed,
            "z": table["z"].round(3).to_numpy(),
            "p_fdr": table["p_fdr"].to_numpy(),
            "gi_bin": table["bin"].astype(int).to_numpy(),
            "pattern": table["pattern"].fillna("").to_numpy(),
            "hot_demand_agencies": table["hot_demand_agencies"].fillna("").to_numpy(),
            "intervention_agencies": table["intervention_agencies"].fillna("").to_numpy(),
            "intervention_status": table["intervention status"].fillna("").to_numpy(),
            "interventions_considered": interventions_considered(classes),
        }
    )
    return out[EXPORT_COLUMNS]
