"""Disclosure control: what a count from a partner agency may look like when it leaves the engine.

Counts from ``partners`` and ``restricted`` datasets are suppressed when below the threshold
(shown as "<5"); every other count is perturbed and then rounded to the nearest multiple of the
base. Zero is suppressed too: if "<5" meant "at least one", a suppressed parent of four with four
suppressed children would give each child away as exactly 1. ``open`` datasets are shown as they
are.

Why perturb as well as round: rounding alone can be undone by differencing. A parent cell of 17
released as 15, two children of 8 released as 10 each, and a suppressed child: the child is at
most 17 - 16 = 1, so exactly 1. Following the ONS cell-key method, every record carries a key (a
portable hash of its dataset, file name and row: ``app.record_key``) and a cell's key is the XOR
of its records' keys; the key drives a symmetric perturbation with no upper bound (two-sided
geometric, mostly 0 or +-1) added before rounding. The same records always give the same
released figure, however they were selected, so repeating a query teaches nothing; any
difference of released figures carries perturbations that no bound rules out, so it never pins a
small count to one value. Statistics (Gi*, trends) on protected data are computed from the
released values. ``tests/test_disclosure.py`` runs the attacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import duckdb

    from app.access import AccessContext

PROTECTED = ("partners", "restricted")
SUPPRESSED_STAND_IN = 2.0  # the value statistics use for a suppressed count (middle of 0..4)


@dataclass(frozen=True)
class Rule:
    threshold: int = 5
    base: int = 5

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.base < 1:
            raise ValueError("threshold and base must be positive whole numbers")

    def describe(self) -> str:
        return (
            f"Counts from partners' and restricted datasets below {self.threshold}, zero included, are "
            f"suppressed (shown as <{self.threshold}, or not listed where only places, categories or days "
            f"with figures are listed); others are rounded to the nearest {self.base} after a small, "
            "consistent perturbation. Open datasets are shown as they are."
        )

    def as_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "base": self.base,
            "applies_to": list(PROTECTED),
            "listing": (
                "Tables that list places, categories or days with records list a protected "
                "dataset's row only where its figure is released; tables of every ward, every "
                "cell of the study area or every period a dataset covers list them all, a "
                "suppressed figure (zero included) as empty."
            ),
            "text": self.describe(),
        }

    def release(
        self, counts: np.ndarray, protected: np.ndarray | bool, keys: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(released values as float, NaN where suppressed; suppressed flags).

        ``keys`` are the cells' keys (XOR of their records' keys), required for protected
        counts; NaN counts (no figure at all) stay NaN.
        """
        counts = np.asarray(counts, dtype=np.float64)
        protected = np.broadcast_to(np.asarray(protected, dtype=bool), counts.shape)
        small = protected & (counts >= 0) & (counts < self.threshold)  # NaN (no figure) is not small
        if protected.any() and keys is None:
            raise ValueError("protected counts need their cell keys")
        noise = perturbation(keys, counts.shape) if keys is not None else np.zeros(counts.shape)
        rounded = self.base * np.floor((counts + noise) / self.base + 0.5)
        # A count at or above the threshold is never released as below it.
        rounded = np.maximum(
            rounded, np.where(counts >= self.threshold, self.base * np.ceil(self.threshold / self.base), 0)
        )
        values = np.where(protected, rounded, counts)
        values = np.where(small, np.nan, values)
        return values, small

    def stand_in(self, values: np.ndarray, suppressed: np.ndarray) -> np.ndarray:
        """Released values with suppressed ones replaced by a neutral stand-in, for statistics."""
        return np.where(suppressed, SUPPRESSED_STAND_IN, np.nan_to_num(values))

    def label(self, value: float, suppressed: bool) -> str:
        if suppressed:
            return f"<{self.threshold}"
        return f"{value:,.0f}"


DEFAULT_RULE = Rule()
_GEOMETRIC_Q = 0.35  # P(|noise| >= 1) = 0.35 x 2 / (1 + 0.35); the tail never ends


def perturbation(keys: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Symmetric two-sided geometric noise, a deterministic function of each cell key."""
    if keys is None:
        return np.zeros(shape)
    keys = np.broadcast_to(np.asarray(keys, dtype=np.uint64), shape)
    mixed = _splitmix(keys)
    u = ((mixed >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)  # uniform (0, 1)
    # Inverse CDF of the two-sided geometric distribution P(e) ~ q^|e|.
    p0 = (1 - _GEOMETRIC_Q) / (1 + _GEOMETRIC_Q)
    centred = np.abs(u - 0.5) * 2  # distance from the middle, uniform (0, 1)
    magnitude = np.where(
        centred < p0, 0, np.ceil(np.log((1 - centred) / (1 - p0)) / np.log(_GEOMETRIC_Q) + 1e-12)
    )
    magnitude = np.maximum(magnitude, np.where(centred < p0, 0, 1))
    return np.where(u < 0.5, -magnitude, magnitude)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """A fixed 64-bit mixer, so that neighbouring keys give unrelated noise."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


# SQL for a group's cell key: the XOR of its records' keys (order-free and additive over groups).
# The record key is computed once at load by app.record_key, the same bits in any engine.
RECORD_KEY_SQL = "e.rkey"
CELL_KEY_SQL = f"bit_xor({RECORD_KEY_SQL})"


def apply(frame: pd.DataFrame, rule: Rule, columns: tuple[str, ...] = ("count",)) -> pd.DataFrame:
    """Protect count columns of a frame with a ``sharing`` column; add ``suppressed``.

    The first column decides suppression; the others (e.g. a weight sum) are rounded alike and
    hidden where it is suppressed.
    """
    out = frame.copy()
    protected = out["sharing"].isin(PROTECTED).to_numpy()
    keys = out["cell_key"].to_numpy(dtype=np.uint64) if "cell_key" in out else None
    values, suppressed = rule.release(out[columns[0]].to_numpy(), protected, keys)
    out[columns[0]] = values
    for col in columns[1:]:
        # A weight sum is rounded alike (with a key of its own) and hidden where counts are.
        other_keys = _splitmix(keys) if keys is not None else None
        other, _ = rule.release(out[col].to_numpy(), protected, other_keys)
        out[col] = np.where(suppressed, np.nan, other)
    out["suppressed"] = suppressed
    return out.drop(columns=["cell_key"], errors="ignore")


def apply_listed(frame: pd.DataFrame, rule: Rule, columns: tuple[str, ...] = ("count",)) -> pd.DataFrame:
    """Protect a frame as ``apply`` does, then keep only the rows whose figure is released.

    For releases that list places, categories or days where records are found: if such a list
    also held the suppressed rows, a "<5" in it would mean one to four (the zeros being the
    rows left out), and four listed children of a suppressed parent of four would each be
    exactly 1. Leaving out every row below the threshold makes a missing row mean "fewer than
    the threshold, zero included", whatever the count. Releases that list every place or
    period (wards, the whole grid, a trend over what a dataset covers) keep suppressed rows
    and use ``apply``."""
    out = apply(frame, rule, columns)
    return out[~out["suppressed"].to_numpy(dtype=bool)].reset_index(drop=True)


def most_restrictive(sharing: pd.Series) -> str:
    for level in ("restricted", "partners"):
        if (sharing == level).any():
            return level
    return "open"


# Rare agencies of a shared file --------------------------------------------------------------
#
# A partners' or restricted file that names an agency on each row (``agency_column``) lists
# each agency as a unit of its own: in the agency choices, legends, trend lines, "hot demand
# of" and every per-agency table or file. An agency with one to four records in the whole file
# would so tell every partner that it has records there at all, and how few. As with a rare
# category, such an agency is not offered: for a viewer who sees the file released, its
# records are counted under one plain unit, ``OTHER_AGENCIES``, on every surface alike; the
# owning agency, who sees the file exactly, sees every agency by name. The plain unit is
# offered and listed for every such file, whether or not it holds a rare agency (its figures
# then read "fewer than 5", as a zero of any protected unit does), so that its presence tells
# nothing either. Which files those are is decided by the catalogue (the file declares
# ``agency_column``), never by the records.

OTHER_AGENCIES = "Other agencies"


def agency_table(
    con: duckdb.DuckDBPyConnection, access: AccessContext | None = None
) -> dict[str, dict[str, int]]:
    """Records per agency in each dataset whose agencies may be folded for this viewer: a
    dataset they see released (partners' or restricted, not theirs) whose catalogue entry
    names an agency per row (``agency_column``), however many agencies its rows name (a
    file with no records is listed with none).

    Counted over the whole file, never under a filter, so which agencies are rare does not
    depend on what is asked. Every aggregate asks, so the answer is kept while a store folder
    or a read-only warehouse is open (``app.store.facts``); finding that no such dataset
    exists costs two catalogue queries."""
    from app.store import facts

    key = ("agency_table", facts.access_key(access))
    return facts.remembered(con, key, lambda: _agency_table(con, access))


def _agency_table(con: duckdb.DuckDBPyConnection, access: AccessContext | None) -> dict[str, dict[str, int]]:
    from app import store
    from app.access import AccessContext

    visible = getattr(access, "visible", None)
    exact = set(getattr(access, "exact", ()) or ())
    sharing = con.execute("SELECT id, sharing FROM datasets").fetchall()
    ids = tuple(
        sorted(
            d for d, s in sharing if s in PROTECTED and d not in exact and (visible is None or d in visible)
        )
    )
    if not ids:
        return {}
    several = tuple(sorted(store.several_agency_datasets(con) & set(ids)))
    table: dict[str, dict[str, int]] = {d: {} for d in several}
    if several:
        only = AccessContext(visible=several, local=False)  # those datasets, at their own level
        for dataset, agency, n, _ in store.agency_counts_by_dataset(con, only):
            table[dataset][agency] = int(n)
    return table


def rare_agencies(
    con: duckdb.DuckDBPyConnection, access: AccessContext | None = None, threshold: int | None = None
) -> dict[str, frozenset[str]]:
    """For each dataset the viewer sees released that names several agencies, the agencies
    with fewer than ``threshold`` records in it (zero such datasets: an empty dict)."""
    threshold = DEFAULT_RULE.threshold if threshold is None else threshold
    found = {
        d: frozenset(a for a, n in agencies.items() if n < threshold)
        for d, agencies in agency_table(con, access).items()
    }
    return {d: rare for d, rare in found.items() if rare}


def offered_agencies(con: duckdb.DuckDBPyConnection, access: AccessContext | None = None) -> set[str]:
    """The agency names a viewer may choose or see: every agency their datasets' records name,
    except one named only as a rare agency of a file they see released, and
    ``OTHER_AGENCIES`` wherever they see a file of several agencies released (whether or not
    it holds a rare agency)."""
    from app import store

    names = set(store.agencies(con, access))
    table = agency_table(con, access)
    if not table:
        return names
    rare = rare_agencies(con, access)
    for name in {a for agencies in rare.values() for a in agencies}:
        elsewhere = set(store.datasets_naming(con, (name,), access)) - set(table)
        plainly = any(name in agencies and name not in rare.get(d, ()) for d, agencies in table.items())
        if not elsewhere and not plainly:
            names.discard(name)
    return names | {OTHER_AGENCIES}


def datasets_naming(
    con: duckdb.DuckDBPyConnection, names: tuple[str, ...], access: AccessContext | None = None
) -> set[str]:
    """The viewer's datasets whose records name any of the agencies ``names`` as the viewer
    sees them: a file they see released is named by one of its rare agencies only through
    ``OTHER_AGENCIES``, so choosing a rare agency's name never tells which file holds it."""
    from app import store

    table = agency_table(con, access)
    rare = rare_agencies(con, access)
    plain = tuple(n for n in names if n != OTHER_AGENCIES)
    found = set(store.datasets_naming(con, plain, access)) - set(table) if plain else set()
    for dataset, agencies in table.items():
        plainly = any(n in agencies and n not in rare.get(dataset, ()) for n in plain)
        if plainly or OTHER_AGENCIES in names:
            found.add(dataset)
    return found


def fold_agencies(
    frame: pd.DataFrame,
    rare: dict[str, frozenset[str]],
    chosen: tuple[str, ...] = (),
    sums: tuple[str, ...] = ("count", "weight"),
    keys: tuple[str, ...] = ("cell_key",),
    order: tuple[str, ...] = (),
) -> pd.DataFrame:
    """``frame`` (with ``dataset`` and ``agency`` columns) with each rare agency of a dataset
    counted under ``OTHER_AGENCIES``: counts and weights added, cell keys combined by XOR
    (so the folded figure is released like any count of those records). When the viewer
    chose agencies (``chosen``) without choosing ``OTHER_AGENCIES``, the folded rows are left
    out: a rare agency is chosen only as "Other agencies", never by its own name (as a
    validated filter's scans already select, ``Filter.folded``).

    ``order`` is the frame's sort (columns, ``-`` before one sorted descending): the folded
    rows are sorted again under their plain name, or where they stand would tell where the
    rare agency's own name sorts."""
    if not rare or frame.empty or not {"dataset", "agency"} <= set(frame.columns):
        return frame
    hit = np.fromiter(
        (a in rare.get(d, ()) for d, a in zip(frame["dataset"], frame["agency"], strict=True)),
        dtype=bool,
        count=len(frame),
    )
    if not hit.any():
        return frame
    out = frame.copy()
    out.loc[hit, "agency"] = OTHER_AGENCIES
    if chosen and OTHER_AGENCIES not in chosen:
        return out[~hit].reset_index(drop=True)
    summed = [c for c in sums if c in out.columns]
    xored = [c for c in keys if c in out.columns]
    if not summed and not xored:
        folded = out.drop_duplicates(ignore_index=True)
    else:
        by = [c for c in out.columns if c not in summed and c not in xored]
        spec = {c: "sum" for c in summed} | {c: _xor_all for c in xored}
        folded = out.groupby(by, sort=False, dropna=False, as_index=False).agg(spec)
        for c in xored:
            folded[c] = folded[c].to_numpy(dtype=np.uint64)
        folded = folded[list(frame.columns)]
    if order:
        columns = [c.lstrip("-") for c in order]
        ascending = [not c.startswith("-") for c in order]
        folded = folded.sort_values(columns, ascending=ascending, kind="stable", ignore_index=True)
    return folded


def _xor_all(values: pd.Series) -> np.uint64:
    return np.bitwise_xor.reduce(values.to_numpy(dtype=np.uint64), initial=np.uint64(0))
