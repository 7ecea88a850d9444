"""Shared fixtures: a small demo city loaded once per session, and paths to the real data."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The Map page's map element (``app/dashboard/deck_map.js``) and the deck.gl canvas in it.
MAP_ELEMENT = ".deck-map"
MAP_CANVAS = ".deck-map canvas"
REALDATA = REPO.parent / "shared" / "realdata"
CATALOGS = REPO / "tests" / "catalogs"
DEMO_CATALOG = REPO / "data" / "catalog.toml"
# The small demo's wards as a study area, for catalogues a test writes beside them.
FAIRHAVEN = """[study_area]
name = "Fairhaven"
boundaries = "demo/wards.geojson"
code_field = "ward_code"
name_field = "ward_name"
population_field = "population"
"""


def map_decks(at) -> list[dict]:
    """The deck JSON of every map an AppTest run drew: the Map page's own map element
    (``app.dashboard.deck_map``) and Streamlit's pydeck charts (the Data page's preview)."""
    decks = [json.loads(json.loads(m.proto.json)["spec"]) for m in at.get("bidi_component")]
    return decks + [json.loads(chart.proto.json) for chart in at.get("deck_gl_json_chart")]


def map_deck(at) -> dict:
    """The deck JSON of the first map drawn."""
    decks = map_decks(at)
    assert decks, "no map was drawn"
    return decks[0]


def fairhaven_catalog(root: Path, datasets: str) -> Path:
    """``root/catalog.toml``: the Fairhaven study area (its wards at ``root/demo/wards.geojson``)
    and the ``[[datasets]]`` entries given."""
    path = root / "catalog.toml"
    path.write_text(FAIRHAVEN + "\n" + textwrap.dedent(datasets).strip() + "\n", encoding="utf-8")
    return path


def pytest_collection_modifyitems(config, items):
    if not REALDATA.exists():
        skip = pytest.mark.skip(reason=f"real data not found at {REALDATA}")
        for item in items:
            if "realdata" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    """A 60,000-record Fairhaven with the repository's demo catalogue beside it."""
    from app.demo_city import generate

    root = tmp_path_factory.mktemp("demo")
    generate(root / "demo", events=60_000, seed=7)
    shutil.copy(DEMO_CATALOG, root / "catalog.toml")
    return root


@pytest.fixture(scope="session")
def small_demo_db(small_demo, tmp_path_factory) -> tuple[Path, dict]:
    """The small demo loaded into a warehouse once; tests must only read it."""
    from app.ingest import load

    db = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    report = load(small_demo / "catalog.toml", db)
    return db, report


@pytest.fixture(scope="session")
def full_demo(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The full-size Fairhaven (default seed, about a million records), loaded once."""
    import json

    from app.demo_city import generate
    from app.ingest import load

    root = tmp_path_factory.mktemp("full")
    generate(root / "demo")
    shutil.copy(DEMO_CATALOG, root / "catalog.toml")
    db = root / "warehouse.duckdb"
    load(root / "catalog.toml", db)
    planted = json.loads((root / "demo" / "planted.json").read_text())
    return root, db, planted


@pytest.fixture(scope="session")
def full_con(full_demo):
    from app.warehouse import connect

    con = connect(full_demo[1], read_only=True)
    yield con
    con.close()
