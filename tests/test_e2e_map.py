"""End to end, the map panel as people use it in headless Chromium: a layer's toggle, order and
opacity change the map's pixels; the map's view and layers survive a visit to another page;
a place search centres the map. Screenshots go to test-artifacts/."""

from __future__ import annotations

import numpy as np
import pytest
from test_e2e import ARTIFACTS, WAIT_MS, browser, map_pixels, page, server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
RUNNING = (
    '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"], '
    '[data-testid="stStatusWidget"]:has-text("Running")'
)


def settle(pg, quiet_ms: int = 800, timeout_ms: int = WAIT_MS) -> None:
    """Wait until the app has stopped running for ``quiet_ms``."""
    status = pg.locator(RUNNING)
    quiet = waited = 0
    while quiet < quiet_ms and waited < timeout_ms:
        pg.wait_for_timeout(100)
        waited += 100
        quiet = 0 if status.count() else quiet + 100


def pixels(pg, name: str) -> np.ndarray:
    settle(pg)
    return map_pixels(pg, name)


def differ(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the canvas whose colour changed visibly."""
    return float((np.abs(a - b).sum(axis=2) > 30).mean()) if a.shape == b.shape else 1.0


def test_layer_toggle_order_and_opacity_change_the_map(server, page):  # noqa: F811
    page.goto(f"{server}/?layers=wards,density")
    both = pixels(page, "panel-wards-density")
    page.locator(".st-key-lp_on_density label").click()
    wards_only = pixels(page, "panel-density-off")
    assert "density" not in page.url.split("layers=")[1].split("&")[0]
    assert differ(both, wards_only) > 0.02, "hiding the cells did not change the map"
    page.locator(".st-key-lp_on_density label").click()
    again = pixels(page, "panel-density-on")
    assert differ(both, again) < 0.01, "showing the cells again did not restore the map"
    page.locator(".st-key-lp_wards").get_by_role("button", name="↑").click()
    wards_on_top = pixels(page, "panel-wards-on-top")
    assert "order=" in page.url
    assert differ(both, wards_on_top) > 0.02, "drawing the wards above the cells did not change the map"
    page.locator('.st-key-lp_op_wards input[type="range"]').focus()
    page.keyboard.press("Home")  # opacity 0
    faded = pixels(page, "panel-wards-faded")
    assert "opacity=wards%3A0" in page.url or "opacity=wards:0" in page.url
    assert differ(wards_on_top, faded) > 0.02, "fading the wards did not change the map"


def test_view_and_layers_survive_another_page(server, page):  # noqa: F811
    page.goto(f"{server}/?layers=density,outlines&opacity=density:50&lat=52.36&lon=-0.9&zoom=12")
    before = pixels(page, "round-trip-before")
    page.get_by_role("link", name="Ward profile").click()
    page.get_by_text("Ward profile:").first.wait_for(timeout=WAIT_MS)
    settle(page)
    page.get_by_role("link", name="Map").click()
    page.get_by_role("heading", name="Map").wait_for(timeout=WAIT_MS)
    after = pixels(page, "round-trip-after")
    url = page.url
    for part in ("layers=outlines%2Cdensity", "opacity=density%3A50", "lat=52.36", "zoom=12"):
        assert part in url or part.replace("%2C", ",").replace("%3A", ":") in url, (part, url)
    assert differ(before, after) < 0.02, "the map came back with another view or other layers"


def a_postcode(small_demo_db) -> str:
    from app.warehouse import open_readonly

    with open_readonly(small_demo_db[0]) as con:
        return con.execute("SELECT postcode FROM postcodes ORDER BY postcode LIMIT 1").fetchall()[0][0]


@pytest.mark.parametrize("kind", ["ward", "gazetteer place", "postcode"])
def test_place_search_centres_the_map(server, page, small_demo_db, kind):  # noqa: F811
    """A ward by its code, a named place of the gazetteer, a postcode of the lookup: each is
    found, and choosing it centres the map on it with a link that keeps the view."""
    query = {
        "ward": "E05900002",
        "gazetteer place": "Northgate estate",
        "postcode": a_postcode(small_demo_db),
    }[kind]
    page.goto(f"{server}/?layers=wards,outlines")
    whole = pixels(page, f"search-before-{kind}")
    box = page.get_by_role("textbox", name="Find a place")
    box.fill(query)
    box.press("Enter")
    settle(page)
    page.get_by_role("combobox", name="Places found").click()
    option = page.get_by_role("option").first
    found = "Abbey Fields (ward)" if kind == "ward" else query  # a ward code finds the ward by name
    assert found.lower() in option.inner_text().lower(), option.inner_text()
    option.click()
    centred = pixels(page, f"search-after-{kind}")
    assert "lat=" in page.url and "zoom=" in page.url
    assert differ(whole, centred) > 0.05, "the map did not move to the place"
    if kind == "ward":
        page.get_by_role("button", name="Open ward profile").wait_for(timeout=30_000)
