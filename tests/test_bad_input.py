"""Bad input gets a clear answer: boundary files that are wrong in ways a council's GIS export can
be, and names from files that look like markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

from app.boundaries import BoundaryError, read_wards
from app.catalog import StudyArea
from app.ingest import LoadError, load

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")
HOSTILE = "**Bold** <b>x</b> [link](http://x)"


def _square(x: float, y: float, size: float) -> list:
    return [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]


def _boundaries(path: Path, squares: list[tuple[str, float, float, float, float | None]]) -> Path:
    """A GeoJSON of square wards (code, x, y, side, population), written with no ``crs`` member."""
    features = [
        {
            "type": "Feature",
            "properties": {"code": code, "name": f"Ward {code}", "population": pop},
            "geometry": {"type": "Polygon", "coordinates": _square(x, y, size)},
        }
        for code, x, y, size, pop in squares
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _study_area(path: Path, crs: str | None = None) -> StudyArea:
    return StudyArea("Test", path, "code", "name", "population", crs=crs)


def _city(root: Path, boundaries: Path, rows: list[tuple], datasets: str) -> Path:
    """A catalogue over ``boundaries`` and one CSV of (lat, lon, time, category, agency) rows."""
    lines = ["ref,lat,lon,time,category,agency"]
    lines += [f"r{i},{lat},{lon},{ts},{cat},{agency}" for i, (lat, lon, ts, cat, agency) in enumerate(rows)]
    (root / "events.csv").write_text("\n".join(lines) + "\n")
    catalog = root / "catalog.toml"
    catalog.write_text(
        f"""[study_area]
name = "Test town"
boundaries = "{boundaries.name}"
code_field = "code"
name_field = "name"
population_field = "population"
{datasets}"""
    )
    return catalog


def _dataset(ds_id: str, agency: str, extra: str = "") -> str:
    return f"""
[[datasets]]
id = "{ds_id}"
title = "{ds_id} records"
agency = {json.dumps(agency)}
kind = "demand"
path = "events.csv"
lat = "lat"
lon = "lon"
time = "time"
time_format = "%Y-%m-%d"
category = "category"
record_id = "ref"
sharing = "open"
{extra}"""


# -- Boundaries --------------------------------------------------------------------------------


def test_projected_boundaries_without_a_crs_ask_for_one(tmp_path):
    path = _boundaries(tmp_path / "wards.geojson", [("A", 530_000, 180_000, 1000, 100)])
    with pytest.raises(BoundaryError, match=r"not longitude/latitude degrees.*crs.*\[study_area\]"):
        read_wards(_study_area(path))
    wards = read_wards(_study_area(path, crs="EPSG:27700"))
    assert wards.areas_km2[0] == pytest.approx(1.0, rel=0.01)


def test_a_load_of_projected_boundaries_without_a_crs_is_a_load_error(tmp_path):
    path = _boundaries(tmp_path / "wards.geojson", [("A", 530_000, 180_000, 1000, 100)])
    catalog = _city(tmp_path, path, [(51.5, -0.1, "2025-01-01", "x", "")], _dataset("d", "Agency"))
    with pytest.raises(LoadError, match="not longitude/latitude degrees"):
        load(catalog, tmp_path / "w.duckdb")
    assert not (tmp_path / "w.duckdb").exists()


def test_overlapping_wards_are_named_with_the_overlap(tmp_path):
    path = _boundaries(
        tmp_path / "wards.geojson",
        [("A", 0.0, 0.0, 0.01, 10), ("B", 0.005, 0.0, 0.01, 10), ("C", 0.015, 0.0, 0.01, 10)],
    )
    notes = read_wards(_study_area(path)).notes
    overlap = [n for n in notes if "overlap" in n]
    assert len(overlap) == 1, notes
    # A and B share half a 0.01° square at the equator: about 0.6 km². B and C only touch.
    assert "1 pair(s)" in overlap[0] and "A (Ward A) and B (Ward B): 0.6" in overlap[0]
    assert "C (Ward C)" not in overlap[0]


def test_a_negative_population_is_named_and_treated_as_missing(tmp_path):
    path = _boundaries(tmp_path / "wards.geojson", [("A", 0.0, 0.0, 0.01, -5), ("B", 0.01, 0.0, 0.01, 10)])
    wards = read_wards(_study_area(path))
    assert wards.populations == [None, 10.0]
    assert any("negative population" in n and "A (Ward A)" in n for n in wards.notes), wards.notes


def test_boundary_notes_reach_the_load_report(tmp_path):
    path = _boundaries(tmp_path / "wards.geojson", [("A", 0.0, 0.0, 0.01, -5), ("B", 0.005, 0.0, 0.01, 10)])
    catalog = _city(tmp_path, path, [(0.002, 0.002, "2025-01-01", "x", "")], _dataset("d", "Agency"))
    notes = load(catalog, tmp_path / "w.duckdb")["study_area"]["notes"]
    assert any("negative population" in n for n in notes) and any("overlap" in n for n in notes)


def test_more_wards_than_a_smallint_holds_load(tmp_path):
    """England has 33,755 LSOAs; ward numbers once overflowed at 32,767."""
    side, size = 182, 0.001  # 33,124 squares
    squares = [(f"W{i:05d}", (i % side) * size, (i // side) * size, size, 1.0) for i in range(side * side)]
    path = _boundaries(tmp_path / "wards.geojson", squares)
    last = side * side - 1
    x, y = (last % side + 0.5) * size, (last // side + 0.5) * size
    rows = [(y, x, "2025-01-01", "x", ""), (0.0005, 0.0005, "2025-01-02", "x", "")]
    catalog = _city(tmp_path, path, rows, _dataset("d", "Agency"))
    report = load(catalog, tmp_path / "w.duckdb")
    assert report["study_area"]["wards"] == side * side
    assert report["datasets"][0]["rows_loaded"] == 2
    from app.warehouse import open_readonly

    with open_readonly(tmp_path / "w.duckdb") as con:
        codes = sorted(r[0] for r in con.execute("SELECT ward_code FROM events").fetchall())
    assert codes == ["W00000", f"W{last:05d}"]


def test_a_warehouse_with_narrow_ward_numbers_is_rebuilt(tmp_path):
    import duckdb

    from app.warehouse import SCHEMA_VERSION, ensure_schema

    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        con.execute("CREATE TABLE wards (code VARCHAR, ward_no SMALLINT)")
        ensure_schema(con)
        kind = con.execute(
            "SELECT data_type FROM duckdb_columns() WHERE table_name = 'wards' AND column_name = 'ward_no'"
        ).fetchall()
    assert kind == [("INTEGER",)]


# -- Names from files are text ---------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_names_db(tmp_path_factory) -> Path:
    """A town with a dataset whose agency looks like markup, and a 311-style file whose rows name
    five agencies."""
    root = tmp_path_factory.mktemp("odd")
    path = _boundaries(root / "wards.geojson", [("A", 0.0, 0.0, 0.01, 100), ("B", 0.01, 0.0, 0.01, 100)])
    agencies = ["NYPD"] * 5 + ["DSNY"] * 4 + ["HPD"] * 3 + ["DOT"] * 2 + ["DEP"]
    rows = [
        (0.005, 0.001 + 0.001 * (i % 15), f"2025-01-{1 + i % 28:02d}", "noise", a)
        for i, a in enumerate(agencies)
    ]
    datasets = _dataset("odd", HOSTILE) + _dataset("nyc_311", "NYC 311", 'agency_column = "agency"')
    catalog = _city(root, path, rows, datasets)
    db = root / "w.duckdb"
    report = load(catalog, db)
    assert report["totals"]["datasets_failed"] == 0, report
    return db


def test_dataset_agencies_come_from_the_rows(odd_names_db):
    from app import quality
    from app.warehouse import open_readonly

    with open_readonly(odd_names_db) as con:
        found = quality.dataset_agencies(con)
    assert found == {"nyc_311": ["NYPD", "DSNY", "HPD", "DOT", "DEP"], "odd": [HOSTILE]}


def test_a_partners_file_names_only_agencies_with_released_counts(tmp_path):
    """For a partners' file, an agency with one to four records is not named (it would show
    that it has some), and the names are not ranked by their counts."""
    from app import quality
    from app.warehouse import open_readonly

    path = _boundaries(tmp_path / "wards.geojson", [("A", 0.0, 0.0, 0.01, 100), ("B", 0.01, 0.0, 0.01, 100)])
    agencies = ["NYPD"] * 5 + ["DSNY"] * 6 + ["HPD"] * 3 + ["DEP"]
    rows = [
        (0.005, 0.001 + 0.001 * (i % 15), f"2025-01-{1 + i % 28:02d}", "noise", a)
        for i, a in enumerate(agencies)
    ]
    shared = _dataset("p311", "NYC 311", 'agency_column = "agency"').replace(
        'sharing = "open"', 'sharing = "partners"'
    )
    load(_city(tmp_path, path, rows, shared), tmp_path / "w.duckdb")
    with open_readonly(tmp_path / "w.duckdb") as con:
        # HPD's 3 and DEP's 1 are counted under the plain unit, listed for every such file.
        assert quality.dataset_agencies(con) == {"p311": ["DSNY", "NYPD", "Other agencies"]}


def test_the_sidebar_labels_a_many_agency_file_with_its_agencies_as_text(odd_names_db, monkeypatch):
    monkeypatch.setenv("COMMON_GROUND_DB", str(odd_names_db))
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("screens/data.py").run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    options = at.multiselect(key="f_datasets").options
    assert "NYC 311: nyc_311 records (NYPD, DSNY, HPD and 2 more)" in options
    # Option labels are shown as text: the name is passed as written, not escaped into noise.
    assert f"{HOSTILE}: odd records" in options


def _legend_page(title: str, label: str) -> None:
    from types import SimpleNamespace

    from app.dashboard import ui

    ui.legend(title, [SimpleNamespace(label=label, color=(1, 2, 3))])


def test_the_legend_shows_names_as_text():
    at = AppTest.from_function(_legend_page, args=(HOSTILE, HOSTILE)).run()
    assert not at.exception
    shown = at.markdown[0].value
    assert "<b>x</b>" not in shown and "&lt;b&gt;x&lt;/b&gt;" in shown
    # One HTML block: Markdown inside it is not read, so no Markdown escape may show as "\*".
    assert shown.startswith("<div") and "\n\n" not in shown and "\\" not in shown


def test_the_legend_shows_its_labels_without_escape_marks():
    at = AppTest.from_function(_legend_page, args=("Gi* hot and cold spots (FDR)", "Multi-agency")).run()
    shown = at.markdown[0].value
    assert "Gi* hot and cold spots (FDR)" in shown and "Multi-agency" in shown
