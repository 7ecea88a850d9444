"""The dashboard served from a store folder (the layout either engine writes: Parquet events,
cube, roll-up and a manifest) shows what it shows from the warehouse the store was written
from: the map's layers, a ward profile's figures, the hotspot areas and the Data page's
catalogue, page for page."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, map_deck
from streamlit.testing.v1 import AppTest

from app.store import layout
from app.warehouse import open_readonly

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")


@pytest.fixture(scope="module")
def store_and_warehouse(small_demo_db, tmp_path_factory) -> tuple[Path, Path]:
    db, _ = small_demo_db
    out = tmp_path_factory.mktemp("served") / "fairhaven"
    with open_readonly(db) as con:
        layout.write_store(con, out)
    return out, db


def opened(monkeypatch, db: Path, page: str, **params) -> AppTest:
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page).run()
    assert not at.exception, at.exception[0].message if at.exception else ""
    assert not at.error, [e.value for e in at.error]
    return at


def layers_drawn(at: AppTest) -> dict[str, list]:
    deck = map_deck(at)
    return {layer["id"]: layer.get("data") for layer in deck["layers"]}


def both(monkeypatch, store_and_warehouse, page: str, **params) -> tuple[AppTest, AppTest]:
    import streamlit as st

    store, db = store_and_warehouse
    st.cache_data.clear()
    st.cache_resource.clear()
    from_store = opened(monkeypatch, store, page, **params)
    st.cache_data.clear()
    st.cache_resource.clear()
    return from_store, opened(monkeypatch, db, page, **params)


def test_the_map_draws_the_same_layers_from_a_store(monkeypatch, store_and_warehouse):
    store, warehouse = both(
        monkeypatch, store_and_warehouse, "screens/map.py", layers="wards,density,hotspots"
    )
    drawn = layers_drawn(store)
    assert {"wards", "density", "hotspots"} <= set(drawn)
    assert drawn == layers_drawn(warehouse)
    assert [c.value for c in store.caption if "Datasets:" in c.value] == [
        c.value for c in warehouse.caption if "Datasets:" in c.value
    ]


def test_a_ward_profile_reads_the_same_from_a_store(monkeypatch, store_and_warehouse):
    store, warehouse = both(monkeypatch, store_and_warehouse, "screens/ward.py", ward="E05900001")
    assert [t.value for t in store.title] == [t.value for t in warehouse.title]
    assert [(m.label, m.value) for m in store.metric] == [(m.label, m.value) for m in warehouse.metric]
    summary = [m.value for m in store.markdown if m.value.startswith("- ")]
    assert summary and summary == [m.value for m in warehouse.markdown if m.value.startswith("- ")]


def test_hotspot_areas_and_the_catalogue_are_the_same_from_a_store(monkeypatch, store_and_warehouse):
    store, warehouse = both(monkeypatch, store_and_warehouse, "screens/hotspots.py")
    assert store.dataframe[0].value.equals(warehouse.dataframe[0].value)
    store, warehouse = both(monkeypatch, store_and_warehouse, "screens/data.py")
    assert store.dataframe[0].value.equals(warehouse.dataframe[0].value)
