"""What a filter selects: categories apply only to the datasets that hold them, and a file
that names an agency per row reaches every aggregate with its rows' own agencies."""

from __future__ import annotations

import pytest
from conftest import CATALOGS, REALDATA

from app import aggregate, hotspots
from app.filters import Filter, FilterError, categories_in, dataset_categories, validate
from app.ingest import load
from app.warehouse import connect


@pytest.fixture(scope="module")
def con(small_demo_db):
    connection = connect(small_demo_db[0], read_only=True)
    yield connection
    connection.close()


def count(con, dataset: str, category: str | None = None) -> int:
    sql = "SELECT count(*) FROM events WHERE dataset = ?" + (" AND category = ?" if category else "")
    return con.execute(sql, [dataset, category] if category else [dataset]).fetchone()[0]


def test_a_category_of_one_kind_keeps_the_datasets_of_the_other(con):
    """Choosing the fire service's "Fire" narrows the fire incidents and leaves every dataset
    without that category whole (fire-safety visits, patrols): before, it emptied them all and
    every fire hotspot read "unserved"."""
    f = validate(con, Filter(categories=("Fire",)))
    assert f.category_scope == ("fire_incidents",)
    raw = aggregate.raw_hex_counts(con, f, 7)
    per_dataset = raw.groupby("dataset")["count"].sum()
    assert per_dataset["fire_incidents"] == count(con, "fire_incidents", "Fire")
    for other in ("fire_safety_visits", "police_patrols", "council_env"):
        assert per_dataset[other] == count(con, other)


def test_unknown_categories_are_refused(con):
    with pytest.raises(FilterError, match="unknown category 'No such thing'"):
        aggregate.hex_aggregate(con, Filter(categories=("No such thing",)), 8)


def test_offered_categories_are_the_released_ones(con):
    released = dataset_categories(con)
    assert categories_in(con, ("fire_incidents",)) == sorted(released["fire_incidents"])
    assert "Fire" in released["fire_incidents"]


@pytest.mark.realdata
@pytest.mark.skipif(not REALDATA.exists(), reason="no real data")
def test_agencies_named_per_row_reach_every_aggregate(tmp_path):
    """New York's 311 file names the agency of each request: the hexes, wards, trends,
    categories and per-dataset hotspots carry those agencies, not the catalogue's one."""
    report = load(CATALOGS / "nyc-311-nypd.toml", tmp_path / "w.duckdb")
    with connect(report["db"], read_only=True) as con:
        truth = dict(
            con.execute("SELECT agency, count(*) FROM events WHERE dataset = 'nyc_311' GROUP BY 1").fetchall()
        )
        assert len(truth) > 2
        f = Filter(datasets=("nyc_311",))
        hexes = aggregate.raw_hex_counts(con, f, 8).groupby("agency")["count"].sum().to_dict()
        assert hexes == truth
        wards = aggregate.ward_aggregate(con, f, by_dataset=True)
        assert wards.groupby("agency")["count"].sum().to_dict() == truth
        series = aggregate.time_series(con, f, "month")
        assert series.groupby("agency")["count"].sum().to_dict() == truth
        cats = aggregate.category_counts(con, f)
        assert cats.groupby("agency")["count"].sum().to_dict() == truth
        _, per_unit = hotspots.per_dataset_hotspots(con, f, 8)
        assert {frame["agency"].iloc[0] for frame in per_unit.values()} == set(truth)
        one = sorted(truth)[0]
        only = aggregate.raw_hex_counts(con, Filter(agencies=(one,)), 8)
        assert set(only["agency"]) == {one} and only["count"].sum() == truth[one]
