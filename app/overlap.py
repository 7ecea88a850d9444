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


def cell_classes(
    con: duckdb.DuckDBPyConnection, f: Filter, res: int, k: int = 1, rule: Rule = DEFAULT_RULE
) -> pd.DataFrame:
    """Per cell: hot demand agencies, concentrated intervention agencies, and the class."""
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
        agency = d["agency"].iloc[0]
        by_agency[agency] = by_agency.get(agency, np.zeros(len(cells))) + d["stat_value"].to_numpy()
    concentrated = {a: gi_star(v, weights).bin >= INTERVENTION_HOT for a, v in by_agency.items()}
    n_concentrated = sum((v.astype(int) for v in concentrated.values()), np.zeros(len(cells), int))
    intervention_agencies = [
        ", ".join(sorted(a for a, hot in concentrated.items() if hot[i])) for i in range(len(cells))
    ]
    served = n_concentrated > 0
    cls = np.select(
        [n_concentrated >= 2, demand_hot & served, demand_hot & ~served, served & ~demand_hot],
        CLASSES,
        "none",
    )
    return cell_frame(cells, res).assign(
        demand_hot=demand_hot,
        hot_demand_agencies=hot_demand_agencies,
        intervention_agencies=intervention_agencies,
        **{"class": cls},
    )


def _agencies_where(frames: list[pd.DataFrame], test, n: int) -> list[str]:
    sets: list[set[str]] = [set() for _ in range(n)]
    for d in frames:
        for i in np.flatnonzero(test(d)):
            sets[i].add(d["agency"].iloc[0])
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
