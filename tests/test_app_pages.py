"""Every page through streamlit.testing, as councillors, service managers and analysts use them."""

from __future__ import annotations

import pytest
from conftest import REPO, map_deck
from streamlit.testing.v1 import AppTest

APP = str(REPO / "app" / "dashboard" / "streamlit_app.py")


@pytest.fixture
def app(small_demo_db, monkeypatch):
    db, _ = small_demo_db
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))

    def open_page(page: str, **params) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page(page).run()
        assert not at.exception, at.exception[0].message if at.exception else ""
        return at

    return open_page


def deck(at: AppTest) -> dict:
    return map_deck(at)


def layer_ids(at: AppTest) -> list[str]:
    return [layer["id"] for layer in deck(at)["layers"]]


def test_map_defaults_to_wards_with_names(app):
    at = app("screens/map.py")
    # Ward boundaries are drawn once: by the outlines layer, not again by the choropleth.
    assert layer_ids(at) == ["wards", "outlines", "ward-names"]
    markdown = " ".join(m.value for m in at.markdown)
    assert "cg-legend" in markdown and "Records" in markdown
    assert any("Disclosure" in c.value for c in at.caption)


def test_every_registered_layer_draws(app):
    import layers

    at = app("screens/map.py", layers=",".join(layers.REGISTRY))
    ids = layer_ids(at)
    for name in ("wards", "density", "hotspots", "emerging", "overlap", "interventions", "outlines"):
        assert name in ids


def test_the_ward_figure_is_asked_only_with_the_ward_layer_and_kept_in_the_url(app):
    at = app("screens/map.py", layers="hexes", metric="rate_per_1000")
    assert not [r for r in at.radio if r.key == "map_metric"]
    assert at.query_params["metric"] == "rate_per_1000"  # kept for when the wards come back
    at = app("screens/map.py", layers="wards,hexes", metric="rate_per_1000")
    assert at.radio(key="map_metric").value == "rate_per_1000"
    markdown = " ".join(m.value for m in at.markdown)
    assert "Rate per 1,000" in markdown  # the ward legend follows the figure


def test_the_clickable_ward_layer_draws_no_outline(app):
    """Clicking a ward opens its profile. deck.gl draws every pickable layer again to find what
    is under the pointer; a stroked ward layer made that 300 ms in a software-rendered browser,
    past deck.gl's 250 ms limit for a click, so the outline is a layer that is not picked."""
    at = app("screens/map.py", layers="wards")
    by_id = {layer["id"]: layer for layer in deck(at)["layers"]}
    assert by_id["wards"]["pickable"] is True and by_id["wards"]["stroked"] is False
    assert by_id["ward-lines"]["pickable"] is False and by_id["ward-lines"]["stroked"] is True
    assert by_id["wards"]["data"] == by_id["ward-lines"]["data"]


def test_filter_changes_the_map_and_lands_in_the_url(app):
    at = app("screens/map.py", layers="density")
    before = deck(at)["layers"][0]["data"]
    at.multiselect(key="f_datasets").set_value(["council_env"]).run()
    after = deck(at)["layers"][0]["data"]
    assert before != after
    assert at.query_params["ds"] in ("council_env", ["council_env"])


def test_url_state_round_trip(app):
    at = app(
        "screens/map.py",
        ds="council_env,fire_incidents",
        dow="6,7",
        hr="18,23",
        res="9",
        **{"from": "2024-01-01", "to": "2024-12-31"},
    )
    assert at.multiselect(key="f_datasets").value == ["council_env", "fire_incidents"]
    assert at.multiselect(key="f_weekdays").value == ["Sat", "Sun"]
    assert at.slider(key="f_hours").value == (18, 23)
    assert at.slider(key="f_res").value == 9
    assert str(at.date_input(key="f_period").value[0]) == "2024-01-01"

    def one(value):
        return value[0] if isinstance(value, list) else value

    params = {k: one(at.query_params[k]) for k in ("ds", "dow", "hr", "res", "from", "to")}
    assert params == {
        "ds": "council_env,fire_incidents",
        "dow": "6,7",
        "hr": "18,23",
        "res": "9",
        "from": "2024-01-01",
        "to": "2024-12-31",
    }


def test_suppressed_counts_are_unlisted_hexes_and_read_as_less_than_five_in_wards(app):
    """A hex of a restricted dataset is drawn only where its figure is released (a drawn "<5"
    would mean one to four); every ward is drawn, a suppressed one, zero included, reading "<5"."""
    at = app("screens/map.py", layers="density", ds="early_help", res="10")
    tips = [row["tip"] for row in deck(at)["layers"][0]["data"]]
    assert tips and not any("<5" in t for t in tips)
    at = app("screens/map.py", layers="wards", ds="early_help", hr="3,3")
    tips = [f["properties"]["tip"] for f in deck(at)["layers"][0]["data"]["features"]]
    assert any("<5" in t for t in tips)  # plain text: the "<" is shown as it is
    # ... and drawn in a colour of its own, named in the legend, not in the lowest class.
    assert any("Fewer than 5, zero included" in m.value for m in at.markdown)


def test_ward_profile(app, small_demo_db):
    at = app("screens/ward.py", ward="E05900002")
    assert at.selectbox(key="ward_pick").value == "E05900002"
    assert at.title[0].value.startswith("Ward profile:")
    labels = [m.label for m in at.metric]
    assert labels == ["Demand records", "Demand per 1,000 residents", "Change on the previous period"]
    assert len(at.get("plotly_chart")) >= 1
    names = [b.proto.label for b in at.get("download_button")]
    assert any("printable profile" in n for n in names)


def test_hotspots_page_ranks_and_shows_the_matrix(app):
    at = app("screens/hotspots.py")
    areas = at.dataframe[0].value
    assert {"Area", "Records", "Agencies involved", "Intervention status", "Trend", "Show on map"} <= set(
        areas.columns
    )
    detail = next(e for e in at.expander if "Analyst detail" in e.label).dataframe[0].value
    assert {"h3_cell", "z", "hot_demand_agencies", "intervention status"} <= set(detail.columns)
    assert detail["z"].is_monotonic_decreasing
    assert len(at.get("plotly_chart")) == 1


def test_data_page_downloads_follow_the_filter(app):
    at = app("screens/data.py", ds="council_env", res="7")
    button = next(b for b in at.get("download_button") if "Download hexes" in b.proto.label)
    assert "rows" in button.proto.label
    at.radio(key="dl_kind").set_value("wards").run()
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("Download wards" in label for label in labels)


def test_an_outdated_warehouse_says_how_to_rebuild_it(tmp_path, monkeypatch):
    import duckdb

    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("screens/map.py").run()
    assert not at.exception
    assert any("python -m app load" in e.value for e in at.error)


def test_an_empty_warehouse_says_what_to_do(tmp_path, monkeypatch):
    from app.warehouse import connect, ensure_schema

    db = tmp_path / "empty.duckdb"
    con = connect(db)
    ensure_schema(con)
    con.close()
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("screens/map.py").run()
    assert not at.exception
    assert any("python -m app load" in i.value for i in at.info)


def test_a_reload_while_the_app_is_open_shows_the_new_figures(
    small_demo, small_demo_db, tmp_path, monkeypatch
):
    """A load renames a new warehouse into place; the next rerun must read it, not serve the
    figures cached (or the connection opened) for the old one."""
    import shutil

    from app.ingest import load

    db = tmp_path / "warehouse.duckdb"
    shutil.copy(small_demo_db[0], db)
    monkeypatch.setenv("COMMON_GROUND_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("screens/data.py").run()
    before = {m.label: m.value for m in at.metric}["Rows read"]

    catalog = (small_demo / "catalog.toml").read_text().replace('"demo/', f'"{small_demo}/demo/')
    first, _, rest = catalog.partition("[[datasets]]")
    kept = "[[datasets]]".join(rest.split("[[datasets]]")[1:])  # every dataset but the first
    (tmp_path / "fewer.toml").write_text(first + "[[datasets]]" + kept)
    report = load(tmp_path / "fewer.toml", db)
    at.run()
    after = {m.label: m.value for m in at.metric}["Rows read"]
    assert after == f"{report['totals']['rows_read']:,}" != before
