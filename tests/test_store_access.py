"""The viewer's rights reach the engine: a dataset outside a viewer's ``visible`` ones does not
exist for any figure, list or export they get, and a protected dataset their agency owns is
released to them exactly."""

from __future__ import annotations

import pytest

from app import aggregate, export, quality
from app.access import AccessContext
from app.filters import (
    Filter,
    FilterError,
    categories_in,
    data_period,
    dataset_categories,
    datasets_in,
    validate,
)
from app.warehouse import open_readonly

HIDDEN = "early_help"  # restricted in the demo catalogue
OWNED = "police_crime"  # partners in the demo catalogue


@pytest.fixture(scope="module")
def con(small_demo_db):
    db, _ = small_demo_db
    connection = open_readonly(db)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def everyone(con) -> tuple[str, ...]:
    return tuple(sorted(r[0] for r in con.execute("SELECT id FROM datasets").fetchall()))


@pytest.fixture(scope="module")
def outsider(everyone) -> AccessContext:
    """A viewer who may not see the restricted dataset and owns nothing."""
    return AccessContext(
        email="a@x", agency="X", visible=tuple(d for d in everyone if d != HIDDEN), local=False
    )


@pytest.fixture(scope="module")
def owner(everyone) -> AccessContext:
    """The police: they see their own partners' dataset exactly."""
    return AccessContext(email="p@police", agency="Police", visible=everyone, exact=(OWNED,), local=False)


def test_a_hidden_dataset_is_refused_as_one_that_does_not_exist(con, outsider):
    with pytest.raises(FilterError) as hidden:
        validate(con, Filter(datasets=(HIDDEN,), access=outsider))
    with pytest.raises(FilterError) as missing:
        validate(con, Filter(datasets=("no_such_dataset",), access=outsider))
    assert str(hidden.value).replace(HIDDEN, "X") == str(missing.value).replace("no_such_dataset", "X")
    assert HIDDEN not in str(hidden.value).split("known:")[1]


def test_lists_and_spans_leave_out_a_hidden_dataset(con, outsider, everyone):
    f = Filter(access=outsider)
    assert HIDDEN not in datasets_in(con, f)["id"].tolist()
    assert HIDDEN in datasets_in(con, Filter())["id"].tolist()
    assert HIDDEN not in dataset_categories(con, access=outsider)
    assert HIDDEN in dataset_categories(con)
    hidden_only = set(dataset_categories(con)[HIDDEN]) - {
        c for d, cats in dataset_categories(con, access=outsider).items() for c in cats
    }
    assert not hidden_only & set(categories_in(con, everyone, access=outsider))
    visible = tuple(d for d in everyone if d != HIDDEN)
    assert data_period(con, f) == data_period(con, Filter(datasets=visible))
    assert HIDDEN not in {r["id"] for r in quality.load_report(con, outsider)}
    assert HIDDEN not in quality.catalogue(con, outsider)["id"].tolist()
    assert HIDDEN not in quality.quarantine_by_reason(con, outsider)["dataset"].tolist()
    with pytest.raises(KeyError):
        quality.quarantine_sample(con, HIDDEN, access=outsider)
    assert HIDDEN not in quality.dataset_agencies(con, access=outsider)


def test_totals_and_tables_count_only_what_the_viewer_may_see(con, outsider, everyone):
    visible = tuple(d for d in everyone if d != HIDDEN)
    mine = aggregate.hex_aggregate(con, Filter(access=outsider), 8)
    assert HIDDEN not in set(mine["dataset"])
    same = aggregate.hex_aggregate(con, Filter(datasets=visible), 8)
    assert mine.equals(same)
    totals = aggregate.hex_totals(con, Filter(access=outsider), 8)
    assert totals.equals(aggregate.hex_totals(con, Filter(datasets=visible), 8))
    wards = aggregate.ward_aggregate(con, Filter(access=outsider))
    assert HIDDEN not in set(wards["dataset"])
    series = aggregate.time_series(con, Filter(access=outsider))
    assert HIDDEN not in set(series["dataset"])
    cats = aggregate.category_counts(con, Filter(access=outsider))
    assert HIDDEN not in set(cats["dataset"])
    units = aggregate.dataset_units(con, Filter(access=outsider))
    assert HIDDEN not in set(units["dataset"])


@pytest.mark.parametrize("what", ["hexes", "wards", "hotspots", "emerging"])
def test_exports_never_name_a_hidden_dataset(con, outsider, what):
    built = export.build(con, what, Filter(access=outsider), res=8)
    text = export.to_bytes(con, built, "csv").decode()
    assert HIDDEN not in text
    meta = built.metadata
    assert HIDDEN not in meta["datasets"]
    assert HIDDEN not in {r["id"] for r in meta["load_report"]}
    assert HIDDEN not in {s["id"] for s in meta["dataset_spans"]}


def test_the_owner_sees_exact_counts_and_others_released_ones(con, owner):
    raw = aggregate.raw_hex_counts(con, Filter(datasets=(OWNED,)), 8)
    exact = aggregate.hex_aggregate(con, Filter(datasets=(OWNED,), access=owner), 8)
    released = aggregate.hex_aggregate(con, Filter(datasets=(OWNED,)), 8)
    assert set(exact["sharing"]) == {"open"}
    assert not exact["suppressed"].any()
    merged = exact.merge(raw, on=["h3", "dataset", "agency"], suffixes=("", "_raw"))
    assert len(merged) == len(raw)
    assert (merged["count"] == merged["count_raw"]).all()
    # The same filter for another viewer: rounded to fives, small cells suppressed or left out.
    assert set(released["sharing"]) == {"partners"}
    assert len(released) < len(exact) or (released["count"] % 5 == 0).all()
    assert not exact["count"].equals(released["count"].reindex(exact.index))
    wards_exact = aggregate.ward_aggregate(con, Filter(datasets=(OWNED,), access=owner))
    wards_released = aggregate.ward_aggregate(con, Filter(datasets=(OWNED,)))
    assert wards_exact["suppressed"].sum() == 0
    assert not wards_exact["count"].equals(wards_released["count"])
    assert wards_exact["count"].sum() == len(
        con.execute("SELECT 1 FROM events WHERE dataset = ?", [OWNED]).fetchall()
    )
