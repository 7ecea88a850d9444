"""A ward's briefing: a few plain sentences generated from released figures, each carrying the
figures it rests on, so that every sentence a councillor reads can be traced to a table.

What it says, and why each part is done this way:

- where the ward ranks among all wards for demand per 1,000 residents, overall and for each
  agency (demand only: calls for help and patrols added up measure nothing; only where the
  boundary file gives populations, as a rate without residents is not a rate);
- what rose or fell most in each dataset's own last twelve months against the twelve before,
  by dataset (and agency) and by category. Partners' files end at different dates, so each
  dataset is compared over its own window, and one with under 24 months is left out rather
  than compared with months it does not cover. A change is called rising or falling only when
  the conditional binomial test for two Poisson counts rejects "no change" at 5 % after a
  Benjamini-Hochberg correction over every change tested: a ward's yearly counts move by
  chance alone, and a briefing that calls every wobble a rise is soon ignored;
- which categories are more common among the ward's records than across the city (location
  quotient, with a one-sided binomial test against the rest of the city, corrected alike);
- its hotspot areas, where they are, and whether interventions reach them.

Only released figures are used (``app.disclosure``): a protected figure below the threshold
reads "fewer than 5" whether it is zero or not, and a change is tested only where both of its
figures are released, so which changes are tested tells nothing the released figures do not.

Most of a briefing is the same for every ward under one filter: the ranking, each dataset's
windows, every ward's counts in them, the city's categories. ``city_briefing_inputs`` reads
those once (the page caches them per filter), ``ward_inputs`` reads the ward's own category
counts, and ``ward_briefing_from`` writes the sentences from both, so a ward click costs a few
small reads and milliseconds of arithmetic rather than every city-wide count again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import binom

from app.aggregate import category_counts, ward_counts
from app.disclosure import DEFAULT_RULE, PROTECTED, Rule, apply, most_restrictive
from app.filters import (
    Comparison,
    Filter,
    compare_within,
    covered_spans,
    last_year_against_the_one_before,
    period_words,
    validate,
    with_period,
)
from app.stats import bh_fdr

ALPHA = 0.05  # the test's level, after the Benjamini-Hochberg correction
MIN_MONTHS = 24  # a year against the year before needs two whole years of a dataset
ALL_DEMAND = "All demand"
MOST = 2  # changes named per direction and kind; categories named as more common
# A record whose file gives no category is stored with "unknown" (``app.ingest``): stored data,
# record keys, filters and files keep that value; what people read says it in plain words.
UNRECORDED = "unknown"
NOT_RECORDED = "Not recorded"


def category_label(category: object) -> str:
    """A category as people read it: the stored "unknown" is "Not recorded"."""
    return NOT_RECORDED if category == UNRECORDED else str(category)


TEST_HELP = (
    "A change is called rising or falling only when it is unlikely to be chance: the two "
    "counts are taken as Poisson, and given their total, the share in the later window is "
    "tested against the share its length would give (an even split for windows of equal length; "
    "the conditional binomial test), at 5 % after a Benjamini-Hochberg correction over every "
    "change tested. A category is called more common here than across the city when its share "
    "of the ward's records of that dataset is higher than its share in the rest of the city "
    "(location quotient above 1) and a one-sided binomial test, corrected alike, says so at 5 %. "
    "Partners' figures are tested as released (rounded to 5); a change one of whose figures is "
    "suppressed is not tested."
)


@dataclass(frozen=True)
class Sentence:
    """One sentence of the briefing and the figures it rests on, each as the page shows it."""

    topic: str  # rank, change, windows, categories, areas, coverage, note
    text: str
    figures: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Briefing:
    """The sentences, and the tables they were drawn from (for the page and the analyst)."""

    ward_code: str
    ward_name: str
    sentences: list[Sentence]
    ranking: pd.DataFrame  # ``ward_ranking``
    changes: pd.DataFrame  # ``changes``: every change, tested or not
    quotients: pd.DataFrame  # ``location_quotients``
    areas: pd.DataFrame  # the hotspot areas that touch the ward
    windows: pd.DataFrame  # ``dataset_windows``
    method: str = TEST_HELP

    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


# --- Figures in words ---------------------------------------------------------------------------


def count_words(value: float, suppressed: bool, rule: Rule = DEFAULT_RULE) -> str:
    """A released count as a sentence says it: "fewer than 5" where suppressed (zero or not)."""
    if suppressed or value != value:
        return f"fewer than {rule.threshold}"
    return f"{value:,.0f}"


def rate_words(rate: float) -> str:
    return f"{rate:,.1f}"


def pct_words(previous: float, current: float) -> str:
    if not previous:
        return "new"
    change = round(100 * (current - previous) / previous)
    return "0 %" if change == 0 else f"{change:+,d} %"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- Ranking ------------------------------------------------------------------------------------


def ward_ranking(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    rule: Rule = DEFAULT_RULE,
    exact: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every ward's demand per 1,000 residents and its rank, for all demand together
    (``measure`` "All demand") and for each agency whose demand the filter selects; released
    figures only. A ward whose count is suppressed or that has no population has no rate and
    no rank (``rank`` missing); rank 1 is the highest rate. ``ranked`` is how many wards have
    a rank under that measure. ``exact``: ``demand_counts`` when the caller has it already."""
    columns = ["measure", "ward_code", "ward_name", "population", "records", "suppressed", "label",
               "rate_per_1000", "rank", "ranked"]  # fmt: skip
    exact = demand_counts(con, f) if exact is None else exact
    if exact is None or exact.empty:
        return pd.DataFrame(columns=columns)
    agencies = sorted(set(exact["agency"]))
    measures = [(ALL_DEMAND, exact)]
    if len(agencies) > 1:
        measures += [(a, exact[exact["agency"] == a]) for a in agencies]
    frames = []
    for measure, part in measures:
        released = apply(_per_ward(part), rule)
        population = released["population"].astype(float)
        rate = np.where(
            (population > 0) & ~released["suppressed"], 1000 * released["count"] / population, np.nan
        )
        frame = released.assign(measure=measure, records=released["count"], rate_per_1000=rate)
        frame["label"] = [
            count_words(v, s, rule) for v, s in zip(frame["records"], frame["suppressed"], strict=True)
        ]
        frame["rank"] = frame["rate_per_1000"].rank(ascending=False, method="min").astype("Int64")
        frame["ranked"] = int(frame["rate_per_1000"].notna().sum())
        frames.append(frame[columns])
    return pd.concat(frames, ignore_index=True)


def demand_counts(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame | None:
    """Exact demand counts and keys per ward, dataset and agency (``aggregate.ward_counts``),
    read once for the ranking and the location quotients; None when no demand is selected.
    Engine only: released by ``ward_ranking`` and ``location_quotients``."""
    if not _has_demand(con, f):
        return None
    return ward_counts(con, validate(con, f.with_(kinds=("demand",))), by_dataset=True)


def _per_ward(part: pd.DataFrame) -> pd.DataFrame:
    """Per ward, the exact total of some (dataset, agency) rows and the key of all their
    records (the XOR of theirs), at the most restrictive sharing among them: what a count of
    those records together would give."""
    totals = part.groupby("ward_code", sort=True).agg(
        count=("count", "sum"),
        cell_key=("cell_key", lambda k: np.bitwise_xor.reduce(k.to_numpy(dtype=np.uint64))),
    )
    wards = part.drop_duplicates("ward_code").set_index("ward_code")[["ward_name", "population"]]
    out = wards.join(totals).reset_index()
    out["sharing"] = most_restrictive(part["sharing"])
    return out


def _has_demand(con: duckdb.DuckDBPyConnection, f: Filter) -> bool:
    from app.filters import datasets_in

    return bool((datasets_in(con, validate(con, f))["kind"] == "demand").any())


def rank_sentences(
    ranking: pd.DataFrame, code: str, period: str, rule: Rule = DEFAULT_RULE
) -> list[Sentence]:
    """Where the ward ranks for all demand, and in one sentence for each agency (highest rank
    first), or why it is not ranked."""
    if ranking.empty:
        return [Sentence("rank", "No demand dataset is selected, so the ward is not ranked for demand.")]
    if ranking["population"].fillna(0).le(0).all():
        text = "Wards are not ranked for demand per 1,000 residents: the boundary file gives no populations."
        return [Sentence("rank", text)]
    rows = ranking[ranking["ward_code"] == code].set_index("measure")
    overall = rows.loc[ALL_DEMAND]
    if pd.isna(overall["rank"]):
        why = (
            "the boundary file gives it no population"
            if not overall["population"] > 0
            else f"it has {overall['label']} demand records"
        )
        out = [
            Sentence(
                "rank",
                f"It is not ranked for demand per 1,000 residents ({period}): {why}.",
                {"records": overall["label"]},
            )
        ]
    else:
        figures = {
            "rank": ordinal(int(overall["rank"])),
            "ranked": str(int(overall["ranked"])),
            "rate per 1,000": rate_words(overall["rate_per_1000"]),
            "records": overall["label"],
        }
        text = (
            f"It ranks {figures['rank']} of {figures['ranked']} wards for demand per 1,000 residents, "
            f"with {figures['rate per 1,000']} per 1,000 ({figures['records']} records, {period})."
        )
        out = [Sentence("rank", text, figures)]
    agencies = rows.drop(index=ALL_DEMAND).dropna(subset=["rank"]).sort_values("rank")
    if len(agencies):
        figures, parts = {}, []
        for agency, r in agencies.iterrows():
            figures[f"{agency}: rank"] = ordinal(int(r["rank"]))
            figures[f"{agency}: rate per 1,000"] = rate_words(r["rate_per_1000"])
            parts.append(
                f"{ordinal(int(r['rank']))} for {agency} ({rate_words(r['rate_per_1000'])} per 1,000)"
            )
        out.append(Sentence("rank", f"By agency, it ranks {_listing(parts)}.", figures))
    unranked = rows.drop(index=ALL_DEMAND)
    unranked = unranked[unranked["rank"].isna() & (unranked["population"] > 0)]
    if len(unranked):
        names = _listing([str(a) for a in unranked.index])
        text = f"It is not ranked for {names}: fewer than {rule.threshold} records here."
        out.append(Sentence("rank", text, {"records": f"fewer than {rule.threshold}"}))
    return out


# --- Changes: each dataset over its own last twelve months ---------------------------------------


def dataset_windows(con: duckdb.DuckDBPyConnection, f: Filter) -> pd.DataFrame:
    """Per selected dataset: the two windows its change compares (``current``, ``previous``:
    (first day, last day)), or ``reason`` why it is left out.

    Without dates in the filter, each dataset's own last twelve whole months against the twelve
    before, so files that end at different dates are each compared over their latest year;
    with a period, that period against the one of equal length before it, for each dataset that
    covers both. A dataset covering under 24 months is left out."""
    f = validate(con, f)
    spans = covered_spans(con, f)
    rows = []
    closed = with_period(con, f) if f.start or f.end else None
    for i, span in enumerate(spans.itertuples()):
        one = spans.iloc[[i]]
        months = (pd.Period(span.last, "M") - pd.Period(span.first, "M")).n + 1
        if closed is None:
            if months < MIN_MONTHS:
                compare = Comparison(
                    None,
                    None,
                    f"it covers only {period_words(span.first, span.last)} ({months} months), under the "
                    f"{MIN_MONTHS} a year against the year before needs",
                )
            else:
                compare = last_year_against_the_one_before(one)
        else:
            before = closed.previous()
            compare = compare_within(one, (closed.start, closed.end), (before.start, before.end))
        reason = "" if compare.current else compare.sentence.removeprefix("no previous period: ")
        rows.append(
            {
                "id": span.id,
                "title": span.title,
                "first": span.first,
                "last": span.last,
                "months": months,
                "current": compare.current,
                "previous": compare.previous,
                "reason": reason,
            }
        )
    return pd.DataFrame(
        rows, columns=["id", "title", "first", "last", "months", "current", "previous", "reason"]
    )


def _share_of_current(current: tuple[dt.date, dt.date], previous: tuple[dt.date, dt.date]) -> float:
    """The later window's expected share of the two counts were nothing to change: an even
    split for windows of as many whole months, else in proportion to their days."""

    def months(w: tuple[dt.date, dt.date]) -> int | None:
        whole = w[0].day == 1 and (w[1] + dt.timedelta(days=1)).day == 1
        return (pd.Period(w[1], "M") - pd.Period(w[0], "M")).n + 1 if whole else None

    if months(current) is not None and months(current) == months(previous):
        return 0.5
    days = [(w[1] - w[0]).days + 1 for w in (current, previous)]
    return days[0] / sum(days)


def changes(
    con: duckdb.DuckDBPyConnection, f: Filter, code: str, rule: Rule = DEFAULT_RULE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every change in the ward, per dataset (and agency) and per category, with its test:
    (changes, ``dataset_windows``). Columns: level ("dataset" or "category"), dataset, title,
    agency, kind, category, current/previous windows, released counts and their labels, p
    (conditional binomial test), q (Benjamini-Hochberg over every change tested), and
    ``verdict``: "rising", "falling", "no clear change", or why it is not tested."""
    f = validate(con, f)
    windows = dataset_windows(con, f)
    parts = []
    for group in window_groups(con, f, windows, rule):
        cats = tuple(
            category_counts(con, f.with_(datasets=group.ids, start=w[0], end=w[1]), ward=code, rule=rule)
            for w in (group.current, group.previous)
        )
        parts.append((group, cats))
    return change_frame(parts, code, rule), windows


@dataclass(frozen=True)
class WindowGroup:
    """Datasets compared over the same two windows, with every ward's released counts of each
    (dataset, agency) in both (``disclosure.apply`` of ``aggregate.ward_counts``): the same for
    every ward, so read once per filter."""

    current: tuple[dt.date, dt.date]
    previous: tuple[dt.date, dt.date]
    ids: tuple[str, ...]
    titles: dict[str, str]
    counts: tuple[pd.DataFrame, pd.DataFrame]  # (current, previous), every ward


def window_groups(
    con: duckdb.DuckDBPyConnection, f: Filter, windows: pd.DataFrame, rule: Rule = DEFAULT_RULE
) -> list[WindowGroup]:
    """The compared datasets grouped by their pair of windows, each with every ward's released
    counts in both: two grouped counts per pair, whatever the number of wards."""
    out = []
    usable = windows[windows["reason"] == ""]
    for (current, previous), group in usable.groupby(["current", "previous"], sort=False):
        ids = tuple(group["id"])
        counts = tuple(
            apply(ward_counts(con, f.with_(datasets=ids, start=w[0], end=w[1]), by_dataset=True), rule)
            for w in (current, previous)
        )
        titles = dict(zip(group["id"], group["title"], strict=True))
        out.append(WindowGroup(current, previous, ids, titles, counts))
    return out


def change_frame(
    parts: list[tuple[WindowGroup, tuple[pd.DataFrame, pd.DataFrame]]], code: str, rule: Rule = DEFAULT_RULE
) -> pd.DataFrame:
    """Every change in the ward (``changes``' first frame) from each window group and the ward's
    released category counts in its two windows (``aggregate.category_counts`` for the ward)."""
    rows: list[dict] = []
    for group, (cats_now, cats_before) in parts:
        current, previous = group.current, group.previous
        values = ["count", "suppressed", "kind", "sharing"]
        now_of, before_of = (
            _lookup(frame[frame["ward_code"] == code], ["dataset", "agency"], values)
            for frame in group.counts
        )
        # Each (dataset, agency)'s categories in either window, and their released counts.
        cats: dict[tuple, dict[str, list]] = {}
        for i, frame in enumerate((cats_now, cats_before)):
            for (d, a, c), (n,) in _lookup(frame, ["dataset", "agency", "category"], ["count"]).items():
                cats.setdefault((d, a), {}).setdefault(c, [None, None])[i] = float(n)
        share = _share_of_current(current, previous)
        agencies_of = pd.Series([d for d, _ in now_of]).value_counts().to_dict()
        for key, (count, suppressed, kind, sharing) in now_of.items():
            before_count, before_suppressed, _, _ = before_of[key]
            base = {
                "dataset": key[0],
                "title": group.titles[key[0]],
                "agency": key[1],
                "several_agencies": agencies_of[key[0]] > 1,
                "kind": kind,
                "sharing": sharing,
                "current_window": current,
                "previous_window": previous,
                "share": share,
            }
            rows.append(base | _pair("dataset", None, count, suppressed, before_count, before_suppressed))
            # A category not listed in a window: zero for an open dataset, not released for a
            # protected one (``apply_listed`` leaves out what it suppresses).
            missing = [np.nan, True] if sharing in PROTECTED else [0.0, False]
            for category, pair in sorted(cats.get(key, {}).items()):
                figures = [x for n in pair for x in ([n, False] if n is not None else missing)]
                rows.append(base | _pair("category", category, *figures))
    if not rows:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    frame = _test(pd.DataFrame(rows), rule)
    return frame[CHANGE_COLUMNS]


CHANGE_COLUMNS = [
    "level", "dataset", "title", "agency", "several_agencies", "kind", "sharing", "category",
    "current_window", "previous_window", "current", "previous", "current_label", "previous_label",
    "tested", "p", "q", "verdict",
]  # fmt: skip


def _pair(level: str, category: str | None, now: float, now_s: bool, before: float, before_s: bool) -> dict:
    return {
        "level": level,
        "category": category,
        "current": np.nan if now_s else float(now),
        "previous": np.nan if before_s else float(before),
        "current_suppressed": bool(now_s),
        "previous_suppressed": bool(before_s),
    }


def binom_p_greater(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``scipy.stats.binomtest(k, n, p, alternative="greater").pvalue`` for arrays: the same
    survival function, one call for a whole ward's categories instead of one per category."""
    return binom.sf(np.asarray(k) - 1, np.asarray(n), np.asarray(p, dtype=float))


def binom_p_two_sided(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``scipy.stats.binomtest(k, n, p).pvalue`` (two-sided) for arrays, by scipy's very steps
    (the mass of every outcome no likelier than ``k``, found by a binary search on the other
    side of the mode), so each p-value is the one scipy gives, bit for bit; one pass for all
    of a ward's changes instead of a Python search per change (a third of a second a ward)."""
    k = np.asarray(k, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    p = np.broadcast_to(np.asarray(p, dtype=float), k.shape)
    out = np.ones(k.shape)
    if not k.size:
        return out
    d = binom.pmf(k, n, p)
    rerr = 1 + 1e-7
    mode = p * n
    low, high = k < mode, k > mode  # k == p n: 1, as scipy's shortcut
    # Below the mode: search [ceil(p n), n] on -pmf for -d rerr; above: [0, floor(p n)] on pmf.
    sign = np.where(low, -1.0, 1.0)
    lo = np.where(low, np.ceil(mode), 0.0)
    hi = np.where(low, n.astype(float), np.floor(mode))
    target = sign * (d * rerr)
    found = np.full(k.shape, np.nan)
    active = (low | high) & (lo < hi)
    while active.any():
        mid = lo + (hi - lo) // 2
        value = sign * binom.pmf(mid, n, p)
        below, above = active & (value < target), active & (value > target)
        equal = active & ~below & ~above
        found[equal] = mid[equal]
        lo = np.where(below, mid + 1, lo)
        hi = np.where(above, mid - 1, hi)
        active = active & ~equal & (lo < hi)
    ends = np.isnan(found)
    at_lo = sign * binom.pmf(lo, n, p) <= target
    ix = np.where(ends, np.where(at_lo, lo, lo - 1), found)
    with np.errstate(invalid="ignore"):
        y_low = n - ix + (d * rerr == binom.pmf(ix, n, p))
        p_low = binom.cdf(k, n, p) + binom.sf(n - y_low, n, p)
        p_high = binom.cdf(ix, n, p) + binom.sf(k - 1, n, p)
    out = np.where(low, p_low, np.where(high, p_high, out))
    return np.minimum(1.0, out)


def _test(frame: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """The conditional binomial test of each change whose figures are both released, and the
    Benjamini-Hochberg correction over all of them."""
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
    tested = frame["tested"].to_numpy(dtype=bool)
    k1 = np.round(frame["current"].to_numpy(dtype=float)[tested]).astype(np.int64)
    k2 = np.round(frame["previous"].to_numpy(dtype=float)[tested]).astype(np.int64)
    p[tested] = binom_p_two_sided(k1, k1 + k2, frame["share"].to_numpy(dtype=float)[tested])
    frame["p"] = p
    q = np.full(len(frame), np.nan)
    q[tested] = bh_fdr(p[tested])
    frame["q"] = q
    rising = frame["current"] > frame["previous"]
    frame["verdict"] = np.select(
        [~released, ~frame["tested"], (frame["q"] < ALPHA) & rising, (frame["q"] < ALPHA) & ~rising],
        ["not tested: a figure is suppressed", "no records in either window", "rising", "falling"],
        "no clear change",
    )
    return frame


def change_sentences(frame: pd.DataFrame, windows: pd.DataFrame) -> list[Sentence]:
    """The windows compared, the datasets left out, and the largest rises and falls that pass
    the test (demand and interventions apart)."""
    out: list[Sentence] = []
    used = windows[windows["reason"] == ""]
    if len(used):
        pairs = {(r.current, r.previous) for r in used.itertuples()}
        if len(pairs) == 1:
            current, previous = next(iter(pairs))
            text = f"Changes compare {period_words(*current)} with {period_words(*previous)}."
            figures = {"window": period_words(*current), "previous window": period_words(*previous)}
        else:
            each = "; ".join(
                f"{r.title}: {period_words(*r.current)} against {period_words(*r.previous)}"
                for r in used.itertuples()
            )
            text = (
                "The datasets end at different dates, so each is compared over its own last twelve months "
                f"with the twelve before ({each})."
            )
            figures = {}
        out.append(Sentence("windows", text, figures))
    for r in windows[windows["reason"] != ""].itertuples():
        out.append(Sentence("windows", f"{r.title} is left out of the changes: {r.reason}.", {}))
    if frame.empty:
        if len(used):
            out.append(Sentence("change", "No change could be tested.", {}))
        return out
    tested = frame[frame["tested"]]
    calls = tested[tested["verdict"].isin(["rising", "falling"])]
    if calls.empty:
        n = len(tested)
        out.append(
            Sentence(
                "change",
                f"Nothing rose or fell by more than chance would explain: none of the {n:,} changes tested "
                "passes the test.",
                {"changes tested": f"{n:,}"},
            )
        )
        return out
    for kind in ("demand", "intervention"):
        mine = calls[calls["kind"] == kind]
        for verdict, verb in (("rising", "rose"), ("falling", "fell")):
            picked = mine[mine["verdict"] == verdict]
            picked = picked.assign(size=(picked["current"] - picked["previous"]).abs())
            for r in picked.sort_values("size", ascending=False).head(MOST).itertuples():
                out.append(change_sentence(r, verb))
    return out


def unit_words(r) -> str:
    """A dataset (and agency, for a file of several) or a category of it, as a sentence names it."""
    who = f"{r.title} ({r.agency})" if r.several_agencies else str(r.title)
    if r.level != "category":
        return who
    return f"records with no category in {who}" if r.category == UNRECORDED else f"{r.category} in {who}"


def change_sentence(r, verb: str) -> Sentence:
    figures = {
        "records": r.current_label,
        "previous records": r.previous_label,
        "change": pct_words(r.previous, r.current),
        "window": period_words(*r.current_window),
    }
    text = (
        f"{unit_words(r)} {verb}: {figures['records']} records in {figures['window']} against "
        f"{figures['previous records']} in the twelve months before ({figures['change']})."
        if (pd.Period(r.current_window[1], "M") - pd.Period(r.current_window[0], "M")).n == 11
        else f"{unit_words(r)} {verb}: {figures['records']} records in {figures['window']} against "
        f"{figures['previous records']} in {period_words(*r.previous_window)} ({figures['change']})."
    )
    return Sentence("change", text, figures)


# --- Categories more common here ---------------------------------------------------------------


def location_quotients(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    code: str,
    rule: Rule = DEFAULT_RULE,
    exact: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each demand category's share of the ward's records of its dataset (and agency) against
    its share in the rest of the city, over the filter's period: ``lq`` is the ward's share over
    the city's, ``p`` a one-sided binomial test of the ward's count against the rest of the
    city's share, ``q`` Benjamini-Hochberg adjusted, ``more_common`` where q < 5 % and lq > 1.
    Released figures only: a protected category listed in the ward is one whose figure is
    released."""
    exact = demand_counts(con, f) if exact is None else exact
    if exact is None or exact.empty:
        return pd.DataFrame(columns=LQ_COLUMNS)
    demand = validate(con, f.with_(kinds=("demand",)))
    here = category_counts(con, demand, ward=code, rule=rule)
    everywhere = category_counts(con, demand, rule=rule)
    return quotient_frame(apply(exact, rule), _released_totals(exact, rule), here, everywhere, code)


def _lookup(frame: pd.DataFrame, keys: list[str], values: list[str]) -> dict[tuple, tuple]:
    """A frame's rows as a dict from the key columns to the value columns: a ward's few hundred
    lookups in it cost microseconds where ``DataFrame.loc`` costs a tenth of a millisecond each."""
    columns = [frame[c].tolist() for c in keys + values]
    return {tuple(row[: len(keys)]): tuple(row[len(keys) :]) for row in zip(*columns, strict=True)}


def quotient_frame(
    wards: pd.DataFrame, city: pd.DataFrame, here: pd.DataFrame, everywhere: pd.DataFrame, code: str
) -> pd.DataFrame:
    """``location_quotients`` from released figures: every ward's demand per dataset and
    agency (``disclosure.apply`` of ``demand_counts``), the city's (``_released_totals``), and
    the categories' released counts in the ward (``here``) and the city (``everywhere``)."""
    ward = _lookup(wards[wards["ward_code"] == code], ["dataset", "agency"], ["count", "suppressed"])
    city = _lookup(city, ["dataset", "agency"], ["count", "suppressed"])
    cat_city_of = {
        k: v[0] for k, v in _lookup(everywhere, ["dataset", "agency", "category"], ["count"]).items()
    }
    rows, tests = [], []
    for r in here.itertuples():
        key = (r.dataset, r.agency)
        (here_count, here_suppressed), (city_count, city_suppressed) = ward[key], city[key]
        if here_suppressed or city_suppressed or (r.dataset, r.agency, r.category) not in cat_city_of:
            continue
        cat_city = float(cat_city_of[(r.dataset, r.agency, r.category)])
        n_here, n_city = float(here_count), float(city_count)
        k = min(float(r.count), n_here)
        rest_n, rest_k = n_city - n_here, cat_city - k
        if n_here <= 0 or n_city <= 0 or rest_n <= 0:
            continue
        tests.append((round(k), round(n_here), min(max(rest_k / rest_n, 1e-9), 1 - 1e-9)))
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
            }
        )
    if rows:
        k, n, share = (np.array(column) for column in zip(*tests, strict=True))
        for row, p in zip(rows, binom_p_greater(k, n, share), strict=True):
            row["p"] = float(p)
    frame = pd.DataFrame(rows, columns=LQ_COLUMNS[:-2])
    frame["q"] = bh_fdr(frame["p"].to_numpy()) if len(frame) else []
    frame["more_common"] = (frame["q"] < ALPHA) & (frame["lq"] > 1)
    return frame.sort_values("lq", ascending=False, ignore_index=True)[LQ_COLUMNS]


LQ_COLUMNS = [
    "dataset", "title", "agency", "category", "records", "ward_total", "city_records", "city_total",
    "share_here", "share_city", "lq", "p", "q", "more_common",
]  # fmt: skip


def _released_totals(exact: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """The city's released total per dataset and agency, from exact per-ward counts and keys
    (the XOR of the wards' keys is the key of all their records)."""
    if exact.empty:
        return exact.assign(suppressed=False)
    totals = exact.groupby(["dataset", "agency", "sharing"], as_index=False).agg(
        count=("count", "sum"),
        cell_key=("cell_key", lambda k: np.bitwise_xor.reduce(k.to_numpy(dtype=np.uint64))),
    )
    return apply(totals, rule)


def share_words(share: float) -> str:
    pct = 100 * share
    return f"{pct:.0f} %" if pct >= 1 else "under 1 %"


def category_sentences(frame: pd.DataFrame) -> list[Sentence]:
    more = frame[frame["more_common"] & (frame["category"] != UNRECORDED)].head(MOST + 1)
    if more.empty:
        return (
            [Sentence("categories", "No category is clearly more common here than across the city.", {})]
            if len(frame)
            else []
        )
    out = []
    for r in more.itertuples():
        figures = {
            "share here": share_words(r.share_here),
            "share in the city": share_words(r.share_city),
            "times as common": f"{r.lq:.1f}",
        }
        out.append(
            Sentence(
                "categories",
                f"{r.category} is more common here than across the city: {figures['share here']} of "
                f"{r.title} records here against {figures['share in the city']} across the city "
                f"({figures['times as common']} times as common).",
                figures,
            )
        )
    return out


# --- Hotspot areas and whether interventions reach them ----------------------------------------


NO_DEMAND_AREAS = "No demand dataset is selected, so no area of concentrated demand is told."


def areas_in_ward(areas: pd.DataFrame | None, code: str) -> pd.DataFrame:
    """The hot areas (``app.areas.hotspot_areas`` rows, in its order: most records first) that
    touch the ward."""
    if areas is None or areas.empty:
        return pd.DataFrame(columns=list(areas.columns) if areas is not None else [])
    touches = areas["ward_codes"].map(lambda codes: code in set(codes if codes is not None else ()))
    side = areas["side"] if "side" in areas else areas["cls"].astype(str).str.split().str[0]
    return areas[touches & (side == "hot")].reset_index(drop=True)


def area_sentences(mine: pd.DataFrame, interventions: bool) -> list[Sentence]:
    """How many hot areas touch the ward and their names, and whether concentrated
    interventions reach them (``app.areas.intervention_words``: "served", "partly served ...",
    "unserved")."""
    if mine.empty:
        return [Sentence("areas", "It has no area of concentrated demand (95 % confidence).", {"areas": "0"})]
    names = [str(n) for n in mine["name"]]
    n = len(mine)
    listed = _listing(names[:4]) + (f" and {n - 4} more" if n > 4 else "")
    noun = "area" if n == 1 else "areas"
    out = [Sentence("areas", f"It has {n} {noun} of concentrated demand: {listed}.", {"areas": str(n)})]
    if not interventions:
        text = "No intervention data is selected, so whether interventions reach them cannot be told."
        out.append(Sentence("coverage", text, {}))
        return out
    status = mine["intervention_status"].fillna("").astype(str)
    figures = dict(zip(names, status, strict=True))
    served = [x for x, st in zip(names, status, strict=True) if st.startswith("served")]
    partly = [x for x, st in zip(names, status, strict=True) if st.startswith("partly")]
    unserved = [x for x, st in zip(names, status, strict=True) if st == "unserved"]
    them = "it" if n == 1 else ("both" if n == 2 else f"all {n}")
    if len(served) == n:
        text = f"Concentrated interventions reach {them}."
    elif len(unserved) == n:
        text = f"No concentrated intervention reaches {'it' if n == 1 else 'any of them'}."
    else:
        parts = []
        if served:
            parts.append(f"reach {_listing(served)}")
        if partly:
            parts.append(f"reach part of {_listing(partly)}")
        if unserved:
            parts.append(f"do not reach {_listing(unserved)}")
        text = f"Concentrated interventions {_listing(parts)}." if parts else ""
    if text:
        out.append(Sentence("coverage", text, figures))
    return out


# --- The whole briefing ------------------------------------------------------------------------


@dataclass(frozen=True)
class CityInputs:
    """What every ward's briefing under one filter shares: read once for all wards (the page
    caches it per filter), so that a ward's own briefing is a few slices of these frames and
    one small read (``ward_inputs``). Released figures only, so it may be cached as it is."""

    filter: Filter  # validated
    change_filter: Filter  # the filter the changes are read under (without dates for own windows)
    rule: Rule
    names: dict[str, str]  # ward code -> name
    period: str  # the filter's period in words, for the ranks and categories
    ranking: pd.DataFrame  # ``ward_ranking``
    windows: pd.DataFrame  # ``dataset_windows``
    groups: tuple[WindowGroup, ...]  # ``window_groups``
    demand: pd.DataFrame | None  # released demand per ward, dataset and agency; None: none selected
    city_demand: pd.DataFrame | None  # the city's released demand per dataset and agency
    city_categories: pd.DataFrame | None  # released demand per dataset, agency and category
    interventions: bool  # whether any intervention dataset is selected


@dataclass(frozen=True)
class WardInputs:
    """The one part of a briefing read for its ward alone: the ward's released category counts
    over the filter's period (for the location quotients) and in each window group's two
    windows (for the changes). Three small grouped counts; one grouped count of every ward by
    category would make them city-wide too."""

    code: str
    categories: pd.DataFrame | None  # demand, the filter's period; None: no demand selected
    window_categories: tuple[tuple[pd.DataFrame, pd.DataFrame], ...]  # per group: (current, previous)


def city_briefing_inputs(
    con: duckdb.DuckDBPyConnection, f: Filter, *, rule: Rule = DEFAULT_RULE, own_windows: bool = True
) -> CityInputs:
    """The city-wide parts of every ward's briefing under ``f`` (see ``ward_briefing`` for
    ``own_windows``): the ranking, each dataset's windows and every ward's counts in them, and
    the city's demand per dataset, agency and category."""
    f = validate(con, f)
    names = {str(c): str(n or c) for c, n in con.execute("SELECT code, name FROM wards").fetchall()}
    closed = with_period(con, f)
    period = period_words(closed.start, closed.end) if closed.start and closed.end else "the whole period"
    exact = demand_counts(con, f)
    ranking = ward_ranking(con, f, rule, exact)
    change_filter = validate(con, f.with_(start=None, end=None) if own_windows else f)
    windows = dataset_windows(con, change_filter)
    groups = tuple(window_groups(con, change_filter, windows, rule))
    demand = city_demand = city_categories = None
    if exact is not None:
        demand, city_demand = apply(exact, rule), _released_totals(exact, rule)
        if not exact.empty:
            city_categories = category_counts(con, validate(con, f.with_(kinds=("demand",))), rule=rule)
    from app.filters import datasets_in

    interventions = bool((datasets_in(con, f)["kind"] == "intervention").any())
    return CityInputs(
        f, change_filter, rule, names, period, ranking, windows, groups, demand, city_demand, city_categories,
        interventions,
    )  # fmt: skip


def _check_ward(inputs: CityInputs, code: str) -> None:
    if code not in inputs.names:
        raise ValueError(f"no ward has the code {code!r}")


def ward_inputs(con: duckdb.DuckDBPyConnection, inputs: CityInputs, code: str) -> WardInputs:
    """The ward's own category counts that its briefing needs (``WardInputs``)."""
    _check_ward(inputs, code)
    rule, cf = inputs.rule, inputs.change_filter
    categories = None
    if inputs.city_categories is not None:
        demand = validate(con, inputs.filter.with_(kinds=("demand",)))
        categories = category_counts(con, demand, ward=code, rule=rule)
    windows = tuple(
        tuple(
            category_counts(con, cf.with_(datasets=g.ids, start=w[0], end=w[1]), ward=code, rule=rule)
            for w in (g.current, g.previous)
        )
        for g in inputs.groups
    )
    return WardInputs(code, categories, windows)


def ward_briefing_from(
    inputs: CityInputs,
    local: WardInputs,
    *,
    areas: pd.DataFrame | None = None,
    interventions: bool | None = None,
) -> Briefing:
    """The briefing of ``local``'s ward from the shared city-wide inputs and its own category
    counts: no read of the warehouse, so a ward after the first costs milliseconds. ``areas``
    and ``interventions`` as for ``ward_briefing``."""
    code, rule = local.code, inputs.rule
    _check_ward(inputs, code)
    change = change_frame(list(zip(inputs.groups, local.window_categories, strict=True)), code, rule)
    if inputs.demand is None or inputs.demand.empty or local.categories is None:
        quotients = pd.DataFrame(columns=LQ_COLUMNS)
    else:
        quotients = quotient_frame(
            inputs.demand, inputs.city_demand, local.categories, inputs.city_categories, code
        )
    interventions = inputs.interventions if interventions is None else interventions
    mine = areas_in_ward(areas, code) if areas is not None else pd.DataFrame()
    sentences = [
        *rank_sentences(inputs.ranking, code, inputs.period, rule),
        *change_sentences(change, inputs.windows),
        *category_sentences(quotients),
        *(area_sentences(mine, interventions) if areas is not None else []),
        *([] if inputs.demand is not None else [Sentence("areas", NO_DEMAND_AREAS)]),
    ]
    return Briefing(
        code, inputs.names[code], sentences, inputs.ranking, change, quotients, mine, inputs.windows
    )


def ward_briefing(
    con: duckdb.DuckDBPyConnection,
    f: Filter,
    ward_code: str,
    *,
    rule: Rule = DEFAULT_RULE,
    areas: pd.DataFrame | None = None,
    interventions: bool | None = None,
    own_windows: bool = True,
) -> Briefing:
    """The ward's briefing under the filter. ``areas`` are the study area's areas of
    concentrated demand (``app.areas.hotspot_areas`` over the selected demand records alone),
    computed by the caller at the map's resolution (the page has them cached); without them
    the briefing says nothing of areas, except that there are none to tell when no demand
    dataset is selected. ``interventions``: whether
    any intervention dataset is selected (found from the filter when not given).
    ``own_windows``: changes compare each dataset's own last twelve months with the twelve
    before (the default, whatever the filter's period); False compares the filter's period
    with the one of equal length before it. Ranks and categories cover the filter's period.

    One ward at a time, this reads the city-wide parts too; a page showing ward after ward
    keeps ``city_briefing_inputs`` and calls ``ward_inputs`` and ``ward_briefing_from``."""
    f = validate(con, f)
    known = {str(c) for (c,) in con.execute("SELECT code FROM wards").fetchall()}
    if ward_code not in known:
        raise ValueError(f"no ward has the code {ward_code!r}")
    inputs = city_briefing_inputs(con, f, rule=rule, own_windows=own_windows)
    return ward_briefing_from(
        inputs, ward_inputs(con, inputs, ward_code), areas=areas, interventions=interventions
    )
