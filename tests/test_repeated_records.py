"""A dataset that counts each record once (``repeated_record_id = "quarantine"``): a row whose
record_id a row loaded before it already holds (one row per victim of one shooting, say) is
quarantined with its reason, column and raw row, not counted again, across the dataset's
files; the first valid row of a record is the one loaded; blank ids repeat nothing.

NYPD's shootings are the real case: 20,659 victims' rows, 16,255 incidents
(``test_realdata``, ``test_forecast``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from conftest import fairhaven_catalog

from app.catalog import CatalogError, load_catalog
from app.ingest import load
from app.warehouse import open_readonly

ROWS = 240


def city_with_repeats(small_demo: Path, root: Path) -> tuple[Path, dict]:
    """A catalogue of one dataset in two files (``calls_1.csv``, ``calls_2.csv``) with
    repeats planted, and what a load must make of them: the ids loaded and, per file, the
    data rows (1-based) quarantined as repeats."""
    (root / "demo").mkdir(parents=True)
    shutil.copy(small_demo / "demo" / "wards.geojson", root / "demo" / "wards.geojson")
    raw = pd.read_csv(small_demo / "demo" / "police_crime.csv", dtype=str)
    clean = raw.dropna(subset=["latitude", "longitude", "reported_at", "category"])
    when = pd.to_datetime(clean["reported_at"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    lat = pd.to_numeric(clean["latitude"], errors="coerce")
    lon = pd.to_numeric(clean["longitude"], errors="coerce")
    wards = gpd.read_file(root / "demo" / "wards.geojson").union_all()
    inside = gpd.GeoSeries(gpd.points_from_xy(lon.fillna(0), lat.fillna(0)), crs=4326).within(wards)
    good = when.notna() & (when < pd.Timestamp.now()) & inside.to_numpy()  # the demo plants faults
    clean = clean[good.to_numpy()]
    clean = clean.iloc[:: max(1, len(clean) // ROWS)].head(ROWS).reset_index(drop=True)
    clean = clean[["latitude", "longitude", "reported_at", "category"]].copy()
    clean["ref"] = [f"R{i}" for i in range(len(clean))]
    clean["victim"] = "first"
    first, second = clean.iloc[:120].copy(), clean.iloc[120:].copy()

    def again(row: pd.Series, victim: str, **changes) -> pd.DataFrame:
        return pd.DataFrame([{**row.to_dict(), "victim": victim, **changes}])

    # File 1: R5 twice more (rows 121, 122), R7 first with no coordinates (row 8 is
    # quarantined for that) and then valid (row 123: loaded), two blank ids (both loaded).
    first.loc[7, "latitude"] = ""
    blank = again(first.loc[9], "blank", ref="")
    first = pd.concat(
        [
            first,
            again(first.loc[5], "second"),
            again(first.loc[5], "third"),
            again(clean.loc[7], "valid"),
            blank,
            blank.assign(victim="blank again"),
        ],
        ignore_index=True,
    )
    # File 2: R10 of the first file again (row 121), R130 of its own twice (row 122).
    second = pd.concat(
        [second, again(clean.loc[10], "later file"), again(clean.loc[130], "second")], ignore_index=True
    )
    first.to_csv(root / "demo" / "calls_1.csv", index=False)
    second.to_csv(root / "demo" / "calls_2.csv", index=False)
    fairhaven_catalog(
        root,
        """
            [[datasets]]
            id = "calls"
            title = "Calls, one row per person involved"
            agency = "Fairhaven Police"
            kind = "demand"
            path = "demo/calls_*.csv"
            lat = "latitude"
            lon = "longitude"
            time = "reported_at"
            time_format = "%Y-%m-%d %H:%M:%S"
            category = "category"
            record_id = "ref"
            repeated_record_id = "quarantine"
            sharing = "open"
            """,
    )
    expected = {
        "repeats": {"calls_1.csv": [121, 122], "calls_2.csv": [121, 122]},
        "missing": {"calls_1.csv": [8]},
        "rows": len(first) + len(second),
    }
    return root / "catalog.toml", expected


@pytest.fixture(scope="module")
def loaded(small_demo, tmp_path_factory):
    catalog, expected = city_with_repeats(small_demo, tmp_path_factory.mktemp("repeats"))
    db = catalog.parent / "w.duckdb"
    report = load(catalog, db)
    con = open_readonly(db)
    yield report, con, expected
    con.close()


def test_each_record_is_counted_once(loaded):
    report, con, expected = loaded
    (ds,) = report["datasets"]
    assert ds["status"] == "loaded"
    by_reason = ds["quarantined_by_reason"]
    assert by_reason == {"repeated_record": 4, "missing_coordinates": 1}
    assert ds["rows_loaded"] + sum(by_reason.values()) == expected["rows"]
    ids = [r[0] for r in con.execute("SELECT record_id FROM events").fetchall()]
    named = [i for i in ids if i is not None]
    assert len(named) == len(set(named)) == ROWS  # every record once, R7 included
    assert ids.count(None) == 2  # blank ids repeat nothing


def test_the_first_valid_row_of_a_record_is_the_one_loaded(loaded):
    _, con, _ = loaded
    rows = dict(
        con.execute(
            """SELECT record_id, source_file || ':' || source_row FROM events
               WHERE record_id IN ('R5', 'R7', 'R10')"""
        ).fetchall()
    )
    assert rows["R5"].endswith("calls_1.csv:6")
    assert rows["R7"].endswith("calls_1.csv:123")  # row 8 had no coordinates
    assert rows["R10"].endswith("calls_1.csv:11")  # the earlier file's


def test_repeats_are_quarantined_with_their_column_and_whole_row(loaded):
    _, con, expected = loaded
    found = con.execute(
        "SELECT source_file, source_row, column_name, raw FROM quarantine WHERE reason = 'repeated_record'"
    ).fetchall()
    by_file: dict[str, list[int]] = {}
    for file, row, column, raw in found:
        by_file.setdefault(Path(file).name, []).append(row)
        assert column == "ref"
        values = json.loads(raw)
        assert values["victim"] in {"second", "third", "later file"} and values["latitude"]
    assert {f: sorted(r) for f, r in by_file.items()} == expected["repeats"]


def test_the_option_needs_a_record_id_and_a_known_value(tmp_path, small_demo):
    catalog, _ = city_with_repeats(small_demo, tmp_path / "a")
    text = catalog.read_text()
    catalog.write_text(text.replace('record_id = "ref"\n', ""))
    with pytest.raises(CatalogError, match="'repeated_record_id': needs a record_id"):
        load_catalog(catalog)
    catalog.write_text(text.replace('"quarantine"', '"drop"'))
    with pytest.raises(CatalogError, match="'repeated_record_id': must be one of keep, quarantine"):
        load_catalog(catalog)


def test_without_the_option_every_row_counts(tmp_path, small_demo):
    catalog, expected = city_with_repeats(small_demo, tmp_path / "b")
    catalog.write_text(catalog.read_text().replace('repeated_record_id = "quarantine"\n', ""))
    (ds,) = load(catalog, tmp_path / "w.duckdb")["datasets"]
    assert ds["quarantined_by_reason"] == {"missing_coordinates": 1}
    assert ds["rows_loaded"] == expected["rows"] - 1
