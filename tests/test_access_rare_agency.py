"""Attack: a partners' file that names an agency on each row, one agency holding two records.

A partner agency sees the file released. Through every surface that lists agencies (the
agency choices, the dataset label, the early-warning and priorities pickers, hex, ward, trend
and category tables, hotspots per agency, exports and the forecast export) the rare agency's
name never appears, choosing it is refused as a typo is, and the plain unit it is counted
under ("Other agencies") has no released figure that would give its count away. The plain
unit is there for the same file without a rare agency too, listed alike, so its presence
tells nothing. The owning agency sees every agency by name, exactly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import fairhaven_catalog

from app import aggregate, export, forecast_cli, quality, store
from app import early_warning as ew
from app import priorities as pr
from app.access import LOCAL, AccessContext
from app.disclosure import OTHER_AGENCIES, fold_agencies, rare_agencies
from app.filters import Filter, FilterError, datasets_in, validate
from app.hotspots import per_dataset_hotspots
from app.trends import agency_trend
from app.warehouse import open_readonly

DATASET = "shared_calls"
OWNER = "Fairhaven Police"
MIDDLE = "Midshire Ambulance Service"
RARE = "Harbourside Mediation Trust"  # two records in the whole file
ROWS = 4000


NAMESAKE = "trust_visits"  # the trust's own open file, in the namesake warehouse
NAMESAKE_ROWS = 300


def _entry(ident: str, title: str, agency: str, path: str, extra: str) -> str:
    """A catalogue entry for a file cut from the demo's recorded crime (its columns), with
    ``extra`` lines (sharing, agency column)."""
    return (
        f'\n[[datasets]]\nid = "{ident}"\ntitle = "{title}"\nagency = "{agency}"\nkind = "demand"\n'
        f'path = "{path}"\nlat = "latitude"\nlon = "longitude"\ntime = "reported_at"\n'
        'time_format = "%Y-%m-%d %H:%M:%S"\ncategory = "category"\nrecord_id = "ref"\n'
        f"{extra}\n"
    )


def _shared_warehouse(small_demo, root, rare_rows: int, namesake: bool = False):
    """A warehouse of one partners' file whose rows name their agency: most the police's
    (the file's owner), many the ambulance service's, and ``rare_rows`` a small trust's; with
    ``namesake``, also an open file of the trust's own, where it is an ordinary agency."""
    from app.ingest import load

    (root / "demo").mkdir()
    shutil.copy(small_demo / "demo" / "wards.geojson", root / "demo" / "wards.geojson")
    raw = pd.read_csv(small_demo / "demo" / "police_crime.csv", dtype=str)
    lat = pd.to_numeric(raw["latitude"], errors="coerce")
    lon = pd.to_numeric(raw["longitude"], errors="coerce")
    when = pd.to_datetime(raw["reported_at"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    clean = raw[lat.notna() & lon.notna() & when.notna() & raw["category"].notna()]
    clean = clean.iloc[:: max(1, len(clean) // ROWS)].head(ROWS).copy()  # every month of the file
    handled = np.where(np.arange(len(clean)) % 3 == 0, MIDDLE, "").astype(object)  # blank: the owner
    handled[[100, 2000][:rare_rows]] = RARE
    clean["handled_by"] = handled
    clean.to_csv(root / "demo" / "shared_calls.csv", index=False)
    own = ""
    if namesake:
        clean.drop(columns="handled_by").iloc[1::13].head(NAMESAKE_ROWS).to_csv(
            root / "demo" / "trust_visits.csv", index=False
        )
        own = _entry(NAMESAKE, "Trust visits", RARE, "demo/trust_visits.csv", 'sharing = "open"')
    fairhaven_catalog(
        root,
        own
        + _entry(
            DATASET,
            "Shared call log",
            OWNER,
            "demo/shared_calls.csv",
            'agency_column = "handled_by"\nsharing = "partners"',
        ),
    )
    db = root / "warehouse.duckdb"
    load(root / "catalog.toml", db)
    return db


@pytest.fixture(scope="module")
def shared_db(small_demo, tmp_path_factory):
    """The file with two records of the small trust."""
    return _shared_warehouse(small_demo, tmp_path_factory.mktemp("rare"), 2)


@pytest.fixture(scope="module")
def plain_con(small_demo, tmp_path_factory):
    """The same file with no rare agency: the trust's two rows are left as they were."""
    connection = open_readonly(_shared_warehouse(small_demo, tmp_path_factory.mktemp("plain"), 0))
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def namesake_con(small_demo, tmp_path_factory):
    """The file with two records of the small trust, beside an open file of the trust's own."""
    connection = open_readonly(_shared_warehouse(small_demo, tmp_path_factory.mktemp("namesake"), 2, True))
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def con(shared_db):
    connection = open_readonly(shared_db)
    yield connection
    connection.close()


OWNER_CTX = AccessContext(email="p@police", agency=OWNER, visible=(DATASET,), exact=(DATASET,), local=False)
PARTNER = AccessContext(email="c@council", agency="Fairhaven City Council", visible=(DATASET,), local=False)


def _names(frame: pd.DataFrame) -> set[str]:
    return set(frame["agency"].astype(str)) if "agency" in frame else set()


def test_the_file_holds_two_records_of_the_rare_agency(con):
    counts = {(d, a): n for d, a, n, _ in store.agency_counts_by_dataset(con, OWNER_CTX)}
    assert counts[(DATASET, RARE)] == 2
    assert rare_agencies(con, PARTNER) == {DATASET: frozenset({RARE})}
    assert rare_agencies(con, LOCAL) == {DATASET: frozenset({RARE})}  # local mode sees it released
    assert rare_agencies(con, OWNER_CTX) == {}


@pytest.mark.parametrize("viewer", [PARTNER, LOCAL], ids=["partner", "local"])
def test_agency_choices_never_offer_the_rare_agency(con, viewer):
    assert RARE not in str(quality.dataset_agencies(con, access=viewer))
    picker = ew.units(con, Filter(access=viewer))
    assert RARE not in _names(picker) and OTHER_AGENCIES in _names(picker)
    assert RARE not in pr.demand_agencies(con, viewer)
    with pytest.raises(FilterError) as rare:
        validate(con, Filter(agencies=(RARE,), access=viewer))
    with pytest.raises(FilterError) as typo:
        validate(con, Filter(agencies=("Harbourside Mediation Trusts",), access=viewer))
    assert str(rare.value).replace(RARE, "X") == str(typo.value).replace("Harbourside Mediation Trusts", "X")
    # The plain unit may be chosen, and selects the file as any agency of it does.
    chosen = validate(con, Filter(agencies=(OTHER_AGENCIES,), access=viewer))
    assert datasets_in(con, chosen)["id"].tolist() == [DATASET]


def test_tables_and_trends_never_name_it_nor_release_its_count(con):
    f = Filter(access=PARTNER)
    hexes = aggregate.hex_aggregate(con, f, 8)
    assert RARE not in _names(hexes)
    assert OTHER_AGENCIES not in _names(hexes)  # fewer than five: listed nowhere
    wards = aggregate.ward_aggregate(con, f)
    assert RARE not in _names(wards)
    other = wards[wards["agency"] == OTHER_AGENCIES]
    assert len(other) == wards["ward_code"].nunique()  # every ward, as for any unit
    assert other["suppressed"].all() and other["count"].isna().all()
    series = aggregate.time_series(con, f, "month")
    assert RARE not in _names(series)
    assert series.loc[series["agency"] == OTHER_AGENCIES, "suppressed"].all()
    trend = agency_trend(series)
    assert RARE not in json.dumps(trend.astype(str).to_dict("records"))
    categories = aggregate.category_counts(con, f)
    assert RARE not in _names(categories) and OTHER_AGENCIES not in _names(categories)
    units = aggregate.dataset_units(con, f)
    assert set(units["agency"]) == {OWNER, MIDDLE, OTHER_AGENCIES}


def test_hotspots_by_agency_and_exports_never_name_it(con, tmp_path):
    f = Filter(access=PARTNER)
    _, per_unit = per_dataset_hotspots(con, f, 8)
    assert not any(RARE in name for name in per_unit)
    assert all(RARE not in _names(frame) for frame in per_unit.values())
    for kind in ("hexes", "wards", "hotspots"):
        result = export.build(con, kind, f, res=8)
        text = export.to_bytes(con, result, "csv").decode() + json.dumps(result.metadata, default=str)
        assert RARE not in text, kind
    forecast = forecast_cli.build_forecast_export(con, DATASET, None, months=12, access=PARTNER)
    text = forecast.frame.to_csv() + json.dumps(forecast.metadata, default=str)
    assert RARE not in text
    assert OTHER_AGENCIES in set(forecast.frame["agency"])
    other = forecast.frame[forecast.frame["agency"] == OTHER_AGENCIES]
    # Every month of the unit is suppressed, so its forecast is the stand-in's, the same in
    # every ward: nothing tells where its records are, or how many.
    shown = other.groupby("horizon")[["expected", "lower", "upper", "suppressed"]].nunique(dropna=False)
    assert (shown == 1).all().all()


def test_choosing_the_plain_unit_gives_nothing_that_a_small_count_would_not(con):
    """The unit's figures are released like any count: under the threshold, suppressed in
    tables of every ward, left out of lists. They are the same whichever agency and however
    few records (one to four) lie behind them."""
    f = Filter(agencies=(OTHER_AGENCIES,), access=PARTNER)
    wards = aggregate.ward_aggregate(con, f)
    assert set(wards["agency"]) == {OTHER_AGENCIES}
    assert wards["suppressed"].all()
    assert aggregate.hex_aggregate(con, f, 8).empty
    assert aggregate.category_counts(con, f).empty


def test_the_owner_sees_every_agency_exactly(con):
    f = Filter(access=OWNER_CTX)
    assert RARE in quality.dataset_agencies(con, access=OWNER_CTX)[DATASET]
    validate(con, Filter(agencies=(RARE,), access=OWNER_CTX))
    with pytest.raises(FilterError):
        validate(con, Filter(agencies=(OTHER_AGENCIES,), access=OWNER_CTX))
    wards = aggregate.ward_aggregate(con, f)
    assert OTHER_AGENCIES not in _names(wards)
    assert wards.loc[wards["agency"] == RARE, "count"].sum() == 2
    hexes = aggregate.hex_aggregate(con, f, 8)
    assert hexes.loc[hexes["agency"] == RARE, "count"].sum() == 2
    forecast = forecast_cli.build_forecast_export(con, DATASET, None, months=12, access=OWNER_CTX)
    assert set(forecast.frame["agency"]) == {OWNER, MIDDLE, RARE}
    assert not forecast.frame["suppressed"].any()


def test_folding_adds_counts_and_combines_keys():
    frame = pd.DataFrame(
        {
            "ward_code": ["W1", "W1", "W1", "W2"],
            "dataset": ["d", "d", "d", "d"],
            "agency": ["A", "B", "C", "B"],
            "count": [7, 1, 2, 3],
            "cell_key": np.array([1, 2, 4, 8], dtype=np.uint64),
        }
    )
    folded = fold_agencies(frame, {"d": frozenset({"B", "C"})})
    assert folded.to_dict("list") == {
        "ward_code": ["W1", "W1", "W2"],
        "dataset": ["d", "d", "d"],
        "agency": ["A", OTHER_AGENCIES, OTHER_AGENCIES],
        "count": [7, 3, 3],
        "cell_key": [1, 6, 8],
    }
    assert folded["cell_key"].dtype == np.uint64
    # Chosen by another name, a rare agency's rows are not shown under the plain unit.
    assert set(fold_agencies(frame, {"d": frozenset({"B", "C"})}, ("A",))["agency"]) == {"A"}


def _listing(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """Which rows a table lists (not their figures), and whether each is suppressed."""
    return sorted(map(tuple, frame[[*columns, "suppressed"]].astype(str).to_numpy().tolist()))


@pytest.mark.parametrize("viewer", [PARTNER, LOCAL], ids=["partner", "local"])
@pytest.mark.parametrize(
    "chosen", [(), (OTHER_AGENCIES,), (OWNER, OTHER_AGENCIES)], ids=["all", "other", "two"]
)
def test_a_file_without_a_rare_agency_lists_the_plain_unit_alike(con, plain_con, viewer, chosen):
    """Attack: compare what a partner is shown of the file with two records of a small trust
    and of the same file without them. Whether the plain unit is offered, which rows of it
    are listed and that each is suppressed are the same: nothing tells which file is which."""
    assert validate(con, Filter(agencies=chosen, access=viewer))  # the unit may be chosen in both
    assert validate(plain_con, Filter(agencies=chosen, access=viewer))
    f = Filter(agencies=chosen, access=viewer)
    assert quality.dataset_agencies(con, access=viewer) == quality.dataset_agencies(plain_con, access=viewer)
    assert set(ew.units(con, f)["agency"]) == set(ew.units(plain_con, f)["agency"])
    assert pr.demand_agencies(con, viewer) == pr.demand_agencies(plain_con, viewer)
    assert datasets_in(con, f)["id"].tolist() == datasets_in(plain_con, f)["id"].tolist() == [DATASET]
    units = aggregate.dataset_units(con, f)
    assert units.equals(aggregate.dataset_units(plain_con, f))
    assert (OTHER_AGENCIES in set(units["agency"])) == (not chosen or OTHER_AGENCIES in chosen)
    shown = {}
    for name, c in (("rare", con), ("plain", plain_con)):
        wards = aggregate.ward_aggregate(c, f)
        series = aggregate.time_series(c, f, "month")
        other_wards = wards[wards["agency"] == OTHER_AGENCIES]
        other_months = series[series["agency"] == OTHER_AGENCIES]
        assert other_wards["suppressed"].all() and other_wards["count"].isna().all()
        assert other_months["suppressed"].all()
        assert OTHER_AGENCIES not in _names(aggregate.hex_aggregate(c, f, 8))
        assert OTHER_AGENCIES not in _names(aggregate.category_counts(c, f))
        shown[name] = (
            _listing(wards, ["ward_code", "dataset", "agency"]),
            _listing(series, ["period", "dataset", "agency"]),
        )
    assert shown["rare"] == shown["plain"]


def test_the_plain_units_forecast_is_the_same_with_or_without_a_rare_agency(con, plain_con):
    frames = [
        forecast_cli.build_forecast_export(c, DATASET, None, months=12, access=PARTNER).frame
        for c in (con, plain_con)
    ]
    other = [f[f["agency"] == OTHER_AGENCIES].reset_index(drop=True) for f in frames]
    assert len(other[0]) > 0
    pd.testing.assert_frame_equal(other[0], other[1])


def test_the_owner_sees_no_plain_unit_in_a_file_without_a_rare_agency(plain_con):
    assert OTHER_AGENCIES not in quality.dataset_agencies(plain_con, access=OWNER_CTX)[DATASET]
    with pytest.raises(FilterError):
        validate(plain_con, Filter(agencies=(OTHER_AGENCIES,), access=OWNER_CTX))
    assert OTHER_AGENCIES not in _names(aggregate.ward_aggregate(plain_con, Filter(access=OWNER_CTX)))


BOTH = AccessContext(
    email="c@council", agency="Fairhaven City Council", visible=(DATASET, NAMESAKE), local=False
)


def _chosen_totals(con, chosen: tuple[str, ...]) -> dict[str, int]:
    """The exact records a choice of agencies selects, as every kind of scan counts them:
    per cell, per ward (per unit and all together) and in the emerging-hotspot cube."""
    from app.emerging import STEPS

    f = validate(con, Filter(agencies=chosen, access=BOTH))
    cells = aggregate.raw_hex_counts(con, f, 8)
    by_unit = aggregate.ward_counts(con, f, by_dataset=True)
    return {
        "cells": int(cells["count"].sum()),
        "cell datasets": tuple(sorted(set(cells["dataset"]))),
        "ward units": int(by_unit["count"].sum()),
        "ward unit datasets": tuple(sorted(set(by_unit.loc[by_unit["count"] > 0, "dataset"]))),
        "wards": int(aggregate.ward_counts(con, f, by_dataset=False)["count"].sum()),
        "steps": int(store.cell_step_counts(con, f, 8, STEPS["month"])["count"].sum()),
    }


def test_a_namesake_agency_elsewhere_is_chosen_apart_from_the_plain_unit(namesake_con):
    """The trust is rare in the shared file but an ordinary agency of its own open file.
    Choosing "Other agencies" selects the shared file's two records only, never the trust's
    own file; choosing the trust selects its own file only, never the two folded records."""
    assert rare_agencies(namesake_con, BOTH) == {DATASET: frozenset({RARE})}
    exact = AccessContext(visible=(DATASET, NAMESAKE), exact=(DATASET, NAMESAKE), local=False)
    counts = {(d, a): int(n) for d, a, n, _ in store.agency_counts_by_dataset(namesake_con, exact)}
    own = counts[(NAMESAKE, RARE)]
    assert own > NAMESAKE_ROWS * 0.9 and counts[(DATASET, RARE)] == 2  # a few fall outside the area
    in_wards = aggregate.ward_counts(
        namesake_con, Filter(datasets=(NAMESAKE,), access=BOTH), by_dataset=False
    )
    own_in_wards = int(in_wards["count"].sum())
    other = _chosen_totals(namesake_con, (OTHER_AGENCIES,))
    assert other["cell datasets"] == other["ward unit datasets"] == (DATASET,)
    assert other["cells"] == other["steps"] == 2
    assert other["ward units"] == other["wards"] <= 2
    trust = _chosen_totals(namesake_con, (RARE,))
    assert trust["cell datasets"] == trust["ward unit datasets"] == (NAMESAKE,)
    assert trust["cells"] == trust["steps"] == own
    assert trust["ward units"] == trust["wards"] == own_in_wards
    both = _chosen_totals(namesake_con, (RARE, OTHER_AGENCIES))
    assert both["cells"] == both["steps"] == own + 2
    assert both["wards"] == own_in_wards + other["wards"]
