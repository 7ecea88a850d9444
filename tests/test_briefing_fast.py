"""A ward's briefing built from the shared city-wide inputs says exactly what the briefing read
for that ward alone says: the same sentences, the same figures in them, the same tables down
to the p-values, for ward after ward from one set of inputs, under the default comparison, a
chosen period and a category choice, with protected datasets among them.

The reference below is the per-ward reading as the briefing did it before its city-wide parts
were shared (every count read and released for the one ward, one scipy test per change), kept
here so that the shared path is held to the figures people were shown."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from app import briefing
from app.aggregate import category_counts, ward_counts
from app.briefing import (
    CHANGE_COLUMNS,
    LQ_COLUMNS,
    PROTECTED,
    _pair,
    _released_totals,
    _share_of_current,
    count_words,
)
from app.disclosure import DEFAULT_RULE, apply
from app.filters import Filter, period_words, validate, with_period
from app.stats import bh_fdr
from app.warehouse import connect

# --- The per-ward reading, as the reference -----------------------------------------------------


def reference_test(frame: pd.DataFrame, rule=DEFAULT_RULE) -> pd.DataFrame:
    frame = frame.copy()
    frame["current_label"] = [
        count_words(v, s, rule) for v, s in zip(frame["current"], frame["current_suppressed"], strict=True)
    ]
    frame["previous_label"] = [
        count_words(v, s, rule) for v, s in zip(frame["previous"], frame["previous_suppressed"], strict=True)
    ]
    released = ~(frame["current_suppressed"] | frame["previous_suppressed"])
    total = frame["current"].fillna(0) + frame["previous"].fillna(0)
    frame["tested"] = released & (total > 0)
    p = np.full(len(frame), np.nan)
    for i in np.flatnonzero(frame["tested"].to_numpy()):
        k1, k2 = round(frame["current"].iat[i]), round(frame["previous"].iat[i])
        p[i] = binomtest(k1, k1 + k2, float(frame["share"].iat[i])).pvalue
    frame["p"] = p
    q = np.full(len(frame), np.nan)
    tested = frame["tested"].to_numpy()
    q[tested] = bh_fdr(p[tested])
    frame["q"] = q
    rising = frame["current"] > frame["previous"]
    frame["verdict"] = np.select(
        [~released, ~frame["tested"], (frame["q"] < 0.05) & rising, (frame["q"] < 0.05) & ~rising],
        ["not tested: a figure is suppressed", "no records in either window", "rising", "falling"],
        "no clear change",
    )
    return frame


def reference_changes(con, f: Filter, code: str, rule=DEFAULT_RULE) -> tuple[pd.DataFrame, pd.DataFrame]:
    f = validate(con, f)
    windows = briefing.dataset_windows(con, f)
    rows: list[dict] = []
    usable = windows[windows["reason"] == ""]
    for (current, previous), group in usable.groupby(["current", "previous"], sort=False):
        ids = tuple(group["id"])
        counts, cats = {}, {}
        for name, window in (("current", current), ("previous", previous)):
            wf = f.with_(datasets=ids, start=window[0], end=window[1])
            units = ward_counts(con, wf, by_dataset=True)
            counts[name] = apply(units[units["ward_code"] == code], rule).set_index(["dataset", "agency"])
            cats[name] = category_counts(con, wf, ward=code, rule=rule).set_index(
                ["dataset", "agency", "category"]
            )
        share = _share_of_current(current, previous)
        several = counts["current"].reset_index().groupby("dataset")["agency"].transform("size").gt(1)
        several_of = dict(zip(counts["current"].index, several, strict=True))
        titles = dict(zip(group["id"], group["title"], strict=True))
        for key, now in counts["current"].iterrows():
            before = counts["previous"].loc[key]
            base = {
                "dataset": key[0],
                "title": titles[key[0]],
                "agency": key[1],
                "several_agencies": bool(several_of[key]),
                "kind": now["kind"],
                "sharing": now["sharing"],
                "current_window": current,
                "previous_window": previous,
                "share": share,
            }
            rows.append(
                base
                | _pair(
                    "dataset", None, now["count"], now["suppressed"], before["count"], before["suppressed"]
                )
            )
            protected = now["sharing"] in PROTECTED
            mine = [cats["current"], cats["previous"]]
            names = sorted({c for frame in mine for (d, a, c) in frame.index if (d, a) == key})
            for category in names:
                pair = []
                for frame in mine:
                    at = (key[0], key[1], category)
                    if at in frame.index:
                        pair += [float(frame.loc[at, "count"]), False]
                    else:
                        pair += [np.nan, True] if protected else [0.0, False]
                rows.append(base | _pair("category", category, *pair))
    if not rows:
        return pd.DataFrame(columns=CHANGE_COLUMNS), windows
    return reference_test(pd.DataFrame(rows), rule)[CHANGE_COLUMNS], windows


def reference_quotients(con, f: Filter, code: str, exact, rule=DEFAULT_RULE) -> pd.DataFrame:
    if exact is None or exact.empty:
        return pd.DataFrame(columns=LQ_COLUMNS)
    demand = validate(con, f.with_(kinds=("demand",)))
    ward = apply(exact[exact["ward_code"] == code], rule).set_index(["dataset", "agency"])
    city = _released_totals(exact, rule).set_index(["dataset", "agency"])
    here = category_counts(con, demand, ward=code, rule=rule)
    everywhere = category_counts(con, demand, rule=rule).set_index(["dataset", "agency", "category"])
    rows = []
    for r in here.itertuples():
        key = (r.dataset, r.agency)
        total_here, total_city = ward.loc[key], city.loc[key]
        if (
            total_here["suppressed"]
            or total_city["suppressed"]
            or (r.dataset, r.agency, r.category) not in everywhere.index
        ):
            continue
        cat_city = float(everywhere.loc[(r.dataset, r.agency, r.category), "count"])
        n_here, n_city = float(total_here["count"]), float(total_city["count"])
        k = min(float(r.count), n_here)
        rest_n, rest_k = n_city - n_here, cat_city - k
        if n_here <= 0 or n_city <= 0 or rest_n <= 0:
            continue
        rest_share = min(max(rest_k / rest_n, 1e-9), 1 - 1e-9)
        p = binomtest(round(k), round(n_here), rest_share, alternative="greater").pvalue
        rows.append(
            {
                "dataset": r.dataset,
                "title": r.title,
                "agency": r.agency,
                "category": r.category,
                "records": k,
                "ward_total": n_here,
                "city_records": cat_city,
                "city_total": n_city,
                "share_here": k / n_here,
                "share_city": cat_city / n_city,
                "lq": (k / n_here) / (cat_city / n_city) if cat_city else np.nan,
                "p": p,
            }
        )
    frame = pd.DataFrame(rows, columns=LQ_COLUMNS[:-2])
    frame["q"] = bh_fdr(frame["p"].to_numpy()) if len(frame) else []
    frame["more_common"] = (frame["q"] < 0.05) & (frame["lq"] > 1)
    return frame.sort_values("lq", ascending=False, ignore_index=True)[LQ_COLUMNS]


def reference_briefing(con, f: Filter, code: str, own_windows: bool = True) -> briefing.Briefing:
    f = validate(con, f)
    name = dict(con.execute("SELECT code, name FROM wards").fetchall())[code]
    closed = with_period(con, f)
    period = period_words(closed.start, closed.end) if closed.start and closed.end else "the whole period"
    exact = briefing.demand_counts(con, f)
    ranking = briefing.ward_ranking(con, f, DEFAULT_RULE, exact)
    change, windows = reference_changes(con, f.with_(start=None, end=None) if own_windows else f, code)
    quotients = reference_quotients(con, f, code, exact)
    sentences = [
        *briefing.rank_sentences(ranking, code, period),
        *briefing.change_sentences(change, windows),
        *briefing.category_sentences(quotients),
        *([] if exact is not None else [briefing.Sentence("areas", briefing.NO_DEMAND_AREAS)]),
    ]
    return briefing.Briefing(
        code, str(name or code), sentences, ranking, change, quotients, pd.DataFrame(), windows
    )


# --- The shared path against it ----------------------------------------------------------------


def same(fast: briefing.Briefing, slow: briefing.Briefing) -> None:
    assert fast.ward_code == slow.ward_code and fast.ward_name == slow.ward_name
    assert [(s.topic, s.text, s.figures) for s in fast.sentences] == [
        (s.topic, s.text, s.figures) for s in slow.sentences
    ]
    for table in ("ranking", "changes", "quotients", "windows"):
        mine, theirs = getattr(fast, table), getattr(slow, table)
        pd.testing.assert_frame_equal(
            mine.reset_index(drop=True), theirs.reset_index(drop=True), check_exact=True, check_dtype=False
        )


FILTERS = {
    "default": (Filter(), True),
    "period": (Filter(start=dt.date(2025, 1, 1), end=dt.date(2025, 6, 30)), False),
    "some demand datasets": (
        Filter(kinds=("demand",), datasets=("police_crime", "early_help", "ambulance")),
        True,
    ),
    "a category choice": (Filter(categories=("Assault", "Falls")), True),
}


@pytest.fixture(scope="module")
def con(small_demo_db):
    with connect(small_demo_db[0], read_only=True) as c:
        yield c


@pytest.mark.parametrize("name", list(FILTERS))
def test_shared_inputs_give_every_ward_the_briefing_read_for_it_alone(con, name):
    f, own = FILTERS[name]
    codes = [c for (c,) in con.execute("SELECT code FROM wards ORDER BY code").fetchall()]
    picked = [codes[0], codes[len(codes) // 3], codes[len(codes) // 2], codes[-1], codes[0]]
    inputs = briefing.city_briefing_inputs(con, f, own_windows=own)
    for code in picked:  # the first ward again at the end: nothing shared was changed in between
        fast = briefing.ward_briefing_from(inputs, briefing.ward_inputs(con, inputs, code))
        same(fast, reference_briefing(con, f, code, own_windows=own))
        assert len(fast.changes) and fast.changes["tested"].any()


def test_the_public_briefing_is_the_shared_path(con):
    code = con.execute("SELECT max(code) FROM wards").fetchone()[0]
    same(briefing.ward_briefing(con, Filter(), code), reference_briefing(con, Filter(), code))


def test_protected_figures_stay_words_in_the_shared_path(con):
    f = Filter(datasets=("early_help", "ambulance"))
    inputs = briefing.city_briefing_inputs(con, f)
    for code in [c for (c,) in con.execute("SELECT code FROM wards ORDER BY code LIMIT 6").fetchall()]:
        b = briefing.ward_briefing_from(inputs, briefing.ward_inputs(con, inputs, code))
        same(b, reference_briefing(con, f, code))
        suppressed = b.changes[b.changes["current"].isna()]
        assert (suppressed["current_label"] == "fewer than 5").all()


def test_an_unknown_ward_is_refused(con):
    inputs = briefing.city_briefing_inputs(con, Filter(datasets=("police_asb",)))
    with pytest.raises(ValueError, match="no ward has the code"):
        briefing.ward_inputs(con, inputs, "NOWHERE")
    with pytest.raises(ValueError, match="no ward has the code"):
        briefing.ward_briefing(con, Filter(), "NOWHERE")


def test_the_vectorised_tests_give_scipys_p_values_bit_for_bit():
    rng = np.random.default_rng(12)
    n = rng.integers(1, 5000, 3000)
    n[:200] = rng.integers(1, 12, 200)
    k = (rng.random(3000) * (n + 1)).astype(np.int64).clip(0, n)
    p = np.where(rng.random(3000) < 0.5, 0.5, rng.random(3000).clip(1e-9, 1 - 1e-9))
    p[:50] = 1e-9
    two = briefing.binom_p_two_sided(k, n, p)
    greater = briefing.binom_p_greater(k, n, p)
    for i in range(len(k)):
        assert two[i] == binomtest(int(k[i]), int(n[i]), float(p[i])).pvalue
        assert greater[i] == binomtest(int(k[i]), int(n[i]), float(p[i]), alternative="greater").pvalue
    assert len(briefing.binom_p_two_sided(np.array([], dtype=int), np.array([], dtype=int), 0.5)) == 0
