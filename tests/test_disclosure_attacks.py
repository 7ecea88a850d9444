"""Attacks on everything the engine releases for a protected dataset, as an analyst with every
download could run them: whether a row is listed, released figures at every resolution, by
category, by period and by ward, and the sums that tie them together.

What the attacker can be sure of: a released figure means a true count of at least the
threshold (the perturbation has no bound, so nothing more). A release that lists some
suppressed rows but not every place tells that a listed row holds at least one record and an
unlisted one none; otherwise a suppressed or missing row means anything from 0 to
threshold - 1. Sums (a parent cell and its children, a cell and its categories, a period and
its halves, a ward and its categories or months) narrow the intervals until nothing changes.
An attack succeeds where an interval closes on one value from 1 to threshold - 1: that count
is then known for certain. (Under the old listing, a suppressed cell with four listed
suppressed children was exactly 4, and each child exactly 1.)"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import h3
import numpy as np
import pandas as pd
import pytest

from app import aggregate
from app.disclosure import DEFAULT_RULE, PROTECTED
from app.filters import Filter, dataset_categories
from app.warehouse import connect

T = DEFAULT_RULE.threshold
RESOLUTIONS = range(5, 12)


class Knowledge:
    """Intervals on true counts, keyed by unit, with the sums that tie units together."""

    def __init__(self) -> None:
        self.bounds: dict[tuple, tuple[float, float]] = {}
        self.default: dict[str, tuple[float, float]] = {}  # per release family: an unlisted unit
        self.sums: list[tuple[tuple, list[tuple]]] = []

    def get(self, key: tuple) -> tuple[float, float]:
        return self.bounds.get(key, self.default.get(key[0], (0, np.inf)))

    def observe(self, family: str, rows: pd.DataFrame, key_cols: list[str], exhaustive: bool) -> None:
        """What one release says: every listed row, and what an unlisted row must mean."""
        listed_suppressed = rows["suppressed"].to_numpy(dtype=bool)
        leaky = listed_suppressed.any() and not exhaustive
        self.default[family] = (0, 0) if leaky else (0, T - 1)
        hidden = rows[listed_suppressed]
        for row in hidden[key_cols].itertuples(index=False):
            self.bounds[(family, *row)] = (1, T - 1) if leaky else (0, T - 1)
        for row in rows.loc[~listed_suppressed, key_cols].itertuples(index=False):
            self.bounds[(family, *row)] = (T, np.inf)

    def propagate(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            changed = False
            for parent, children in self.sums:
                plo, phi = self.get(parent)
                cb = [self.get(c) for c in children]
                new_p = (max(plo, sum(b[0] for b in cb)), min(phi, sum(b[1] for b in cb)))
                if new_p != (plo, phi):
                    self.bounds[parent], changed = new_p, True
                for i, (child, (clo, chi)) in enumerate(zip(children, cb, strict=True)):
                    others_lo = sum(b[0] for j, b in enumerate(cb) if j != i)
                    others_hi = sum(b[1] for j, b in enumerate(cb) if j != i)
                    new_c = (max(clo, new_p[0] - others_hi), min(chi, new_p[1] - others_lo))
                    if new_c != (clo, chi):
                        self.bounds[child], changed = new_c, True
            if not changed:
                return

    def pinned(self, truth: dict[tuple, int]) -> list[tuple]:
        """Units whose interval closed on their true count, from 1 to threshold - 1."""
        return [
            key
            for key, true in truth.items()
            if 1 <= true < T and self.get(key)[0] == self.get(key)[1] == true
        ]


@pytest.fixture(scope="module")
def con(small_demo_db):
    connection = connect(small_demo_db[0], read_only=True)
    yield connection
    connection.close()


def protected_datasets(con) -> list[str]:
    frame = con.execute("SELECT id, sharing FROM datasets ORDER BY id").df()
    return frame.loc[frame["sharing"].isin(PROTECTED), "id"].tolist()


def exact_cells(con, dataset: str, res: int, category: str | None = None, period=None) -> dict:
    sql = "SELECT h3, ts, category FROM events WHERE dataset = ?"
    frame = con.execute(sql, [dataset]).df()
    if category is not None:
        frame = frame[frame["category"] == category]
    if period is not None:
        frame = frame[(frame["ts"] >= pd.Timestamp(period[0])) & (frame["ts"] < pd.Timestamp(period[1]))]
    cells = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), res)) for c in frame["h3"]]
    return pd.Series(cells, dtype="uint64").value_counts().to_dict()


def test_hex_listings_pin_nothing(con):
    """Every resolution of the hex export, each category and each half of the period apart:
    the parent-children, cell-categories and period-halves sums pin no count from 1 to 4."""
    for dataset in protected_datasets(con):
        know, truth = Knowledge(), {}
        f = Filter(datasets=(dataset,))
        for res in RESOLUTIONS:
            rows = aggregate.hex_aggregate(con, f, res).assign(res=res)
            assert not rows["suppressed"].any(), f"{dataset}: suppressed rows listed at resolution {res}"
            know.observe(f"r{res}", rows, ["h3"], exhaustive=False)
            truth.update({(f"r{res}", c): n for c, n in exact_cells(con, dataset, res).items()})
        # Parent = sum of its seven children, for every cell with a record at any resolution.
        for res in RESOLUTIONS[:-1]:
            parents = {k[1] for k in truth if k[0] == f"r{res}"}
            for p in parents:
                children = [h3.str_to_int(c) for c in h3.cell_to_children(h3.int_to_str(int(p)), res + 1)]
                know.sums.append(((f"r{res}", p), [(f"r{res + 1}", c) for c in children]))
        # A cell = the sum of its categories (the attacker is granted every category's name).
        res = 9
        every = con.execute("SELECT DISTINCT category FROM events WHERE dataset = ?", [dataset]).fetchall()
        categories = sorted(c for (c,) in every)
        released = set(dataset_categories(con).get(dataset, []))
        for category in categories:
            family = f"c{category}"
            if category in released:
                rows = aggregate.hex_aggregate(con, f.with_(categories=(category,)), res)
                know.observe(family, rows, ["h3"], exhaustive=False)
            else:
                know.default[family] = (0, np.inf)  # not offered: nothing released about it
            truth.update({(family, c): n for c, n in exact_cells(con, dataset, res, category).items()})
        for cell in {k[1] for k in truth if k[0] == f"r{res}"}:
            know.sums.append(((f"r{res}", cell), [(f"c{c}", cell) for c in categories]))
        # A cell over the whole period = its two halves.
        start, end = con.execute(
            "SELECT min(ts), max(ts) FROM events WHERE dataset = ?", [dataset]
        ).fetchone()
        middle = (start + (end - start) / 2).date()
        halves = [(start.date(), middle - dt.timedelta(days=1)), (middle, end.date())]
        for i, (lo, hi) in enumerate(halves):
            rows = aggregate.hex_aggregate(con, f.with_(start=lo, end=hi), res)
            know.observe(f"h{i}", rows, ["h3"], exhaustive=False)
            bounds = (lo, hi + dt.timedelta(days=1))
            truth.update({(f"h{i}", c): n for c, n in exact_cells(con, dataset, res, period=bounds).items()})
        for cell in {k[1] for k in truth if k[0] == f"r{res}"}:
            know.sums.append(((f"r{res}", cell), [("h0", cell), ("h1", cell)]))
        know.propagate()
        assert not know.pinned(truth), f"{dataset}: {len(know.pinned(truth))} counts pinned"


def test_ward_category_and_month_releases_pin_nothing(con):
    """Wards (every ward listed), a ward's categories, its months and days, and the city's
    categories: the ward-categories and ward-months sums pin no count from 1 to 4."""
    for dataset in protected_datasets(con):
        know, truth = Knowledge(), {}
        f = Filter(datasets=(dataset,))
        wards = aggregate.ward_aggregate(con, f, by_dataset=True)
        assert wards["ward_code"].nunique() == con.execute("SELECT count(*) FROM wards").fetchone()[0]
        know.observe("w", wards, ["ward_code"], exhaustive=True)
        exact = con.execute(
            "SELECT ward_code, category, date_trunc('month', ts)::DATE AS m, count(*) AS n FROM events "
            "WHERE dataset = ? GROUP BY ALL",
            [dataset],
        ).df()
        truth.update({("w", w): int(n) for w, n in exact.groupby("ward_code")["n"].sum().items()})
        categories = sorted(exact["category"].unique())
        for code in wards["ward_code"].head(8):
            cats = aggregate.category_counts(con, f, ward=code)
            assert not cats["suppressed"].any(), f"{dataset}: suppressed categories listed in {code}"
            know.observe(f"wc{code}", cats, ["category"], exhaustive=False)
            for category in categories:
                n = exact[(exact["ward_code"] == code) & (exact["category"] == category)]["n"].sum()
                truth[(f"wc{code}", category)] = int(n)
            know.sums.append((("w", code), [(f"wc{code}", c) for c in categories]))
            series = aggregate.time_series(con, f, "month", ward=code)
            periods = pd.to_datetime(series["period"])
            full = pd.date_range(series["covered_from"].min(), series["covered_to"].max(), freq="MS")
            assert set(periods) == set(full), f"{dataset}: months of {code} not all listed"
            know.observe(f"wm{code}", series.assign(period=periods), ["period"], exhaustive=True)
            months = exact[exact["ward_code"] == code].groupby("m")["n"].sum()
            truth.update({(f"wm{code}", pd.Timestamp(m)): int(n) for m, n in months.items()})
            know.sums.append((("w", code), [(f"wm{code}", p) for p in full]))
            days = aggregate.time_series(con, f, "day", ward=code)
            assert len(days) == days["period"].nunique() * days["agency"].nunique()
            assert (days["count"].isna() == days["suppressed"]).all()
        city = aggregate.category_counts(con, f)
        assert not city["suppressed"].any()
        know.propagate()
        assert not know.pinned(truth), f"{dataset}: {len(know.pinned(truth))} counts pinned"


def test_lists_of_categories_hide_rare_ones(con):
    """A protected dataset's category with one to four records city-wide is offered nowhere;
    every other is."""
    exact = con.execute(
        "SELECT e.dataset, e.category, count(*) AS n, any_value(d.sharing) AS sharing "
        "FROM events e JOIN datasets d ON d.id = e.dataset GROUP BY 1, 2"
    ).df()
    released = dataset_categories(con)
    for row in exact.itertuples():
        listed = row.category in released.get(row.dataset, [])
        assert listed == (row.sharing not in PROTECTED or row.n >= T), row


def test_what_a_filter_selects_does_not_depend_on_records(con):
    """A filter that finds no record of a partner's dataset still treats the figures as
    protected and still lists the dataset: an exact figure or a missing line would tell that
    it has none under the filter."""
    f = Filter(datasets=("council_env", "early_help"), start=dt.date(2024, 3, 1), end=dt.date(2024, 3, 1))
    totals = aggregate.hex_totals(con, f, 7)
    assert set(totals["sharing"]) <= {"restricted"}
    series = aggregate.time_series(con, f, "month")
    assert set(series["dataset"]) == {"council_env", "early_help"}
    seen = defaultdict(set)
    for row in series.itertuples():
        seen[row.dataset].add(row.period)
    assert seen["early_help"] == seen["council_env"]


def test_a_protected_datasets_span_is_released_in_whole_months(con):
    """The first and last record's own times would each tell that a partner's record exists at
    that moment: the period a protected dataset covers is released in whole months, everywhere
    it is read (the filter's period, trends' coverage, load reports in exports and pages)."""
    from app import quality
    from app.filters import datasets_in

    spans = datasets_in(con, Filter()).set_index("id")
    reports = {r["id"]: r for r in quality.load_report(con)}
    for dataset in protected_datasets(con):
        first, last = spans.loc[dataset, "time_min"], spans.loc[dataset, "time_max"]
        assert first == first.to_period("M").start_time
        assert last == last.to_period("M").end_time.floor("s")
        assert pd.Timestamp(reports[dataset]["time_min"]) == first
        assert pd.Timestamp(reports[dataset]["time_max"]) == last
    exact = con.execute("SELECT min(ts) FROM events WHERE dataset = 'council_env'").fetchone()[0]
    assert spans.loc["council_env", "time_min"] == exact  # open datasets are shown as they are
