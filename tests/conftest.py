"""Shared fixtures: a small demo city loaded once per session, and paths to the real data."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REALDATA = REPO.parent / "shared" / "realdata"
CATALOGS = REPO / "tests" / "catalogs"
DEMO_CATALOG = REPO / "data" / "catalog.toml"


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
