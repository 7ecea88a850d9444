"""End to end, the map panel as people use it in headless Chromium: a layer's toggle, order and
opacity change the map's pixels; the map's view and layers survive a visit to another page;
a view moved by hand is kept in the URL; a place search centres the map. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from conftest import MAP_ELEMENT
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


def to_another_page_and_back(pg) -> None:
    """To the ward profile by the sidebar's link, and back to the map the same way."""
    pg.get_by_role("link", name="Ward profile").click()
    pg.get_by_text("Ward profile:").first.wait_for(timeout=WAIT_MS)
    settle(pg)
    pg.get_by_role("link", name="Map").click()
    pg.get_by_role("heading", name="Map").wait_for(timeout=WAIT_MS)


def test_view_and_layers_survive_another_page(server, page):  # noqa: F811
    page.goto(f"{server}/?layers=density,outlines&opacity=density:50&lat=52.36&lon=-0.9&zoom=12")
    before = pixels(page, "round-trip-before")
    to_another_page_and_back(page)
    after = pixels(page, "round-trip-after")
    url = page.url
    for part in ("layers=outlines%2Cdensity", "opacity=density%3A50", "lat=52.36", "zoom=12"):
        assert part in url or part.replace("%2C", ",").replace("%3A", ":") in url, (part, url)
    assert differ(before, after) < 0.02, "the map came back with another view or other layers"


def view_in(url: str) -> tuple[float, float, float] | None:
    """The view (lat, lon, zoom) a map URL holds, or None."""
    query = parse_qs(urlsplit(url).query)
    if not all(k in query for k in ("lat", "lon", "zoom")):
        return None
    return float(query["lat"][0]), float(query["lon"][0]), float(query["zoom"][0])


def wait_for_view(pg, unlike: tuple[float, float, float] | None) -> tuple[float, float, float]:
    """The view the URL holds once it is another than ``unlike``: the map reports a move once
    it has been still for a moment, and the page writes it into the URL."""
    for _ in range(WAIT_MS // 250):
        view = view_in(pg.url)
        if view and view != unlike:
            settle(pg)
            return view
        pg.wait_for_timeout(250)
    raise AssertionError(f"the URL did not take the map's new view: {pg.url}")


def test_a_view_moved_by_hand_is_kept_in_the_url_and_across_pages(server, browser, page):  # noqa: F811
    """Drag and zoom the map by hand: the URL takes the view; another page and back, and the
    copied link opened in a new tab, show the same map; "Show the whole area" leaves it."""
    page.goto(f"{server}/?layers=wards,outlines")
    whole = pixels(page, "hand-view-whole")
    assert view_in(page.url) is None
    box = page.locator(MAP_ELEMENT).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 160, y + 80, steps=12)
    page.mouse.up()
    dragged = wait_for_view(page, None)
    page.get_by_role("button", name="Zoom in").click()
    lat, lon, zoom = wait_for_view(page, dragged)
    assert (lat, lon) == pytest.approx(dragged[:2], abs=1e-4)  # a zoom keeps the centre
    assert zoom == pytest.approx(dragged[2] + 1, abs=0.01)
    moved = pixels(page, "hand-view-moved")
    assert differ(whole, moved) > 0.05, "the map did not move"
    assert page.get_by_role("button", name="Show the whole area").is_visible()

    to_another_page_and_back(page)
    back = pixels(page, "hand-view-back")
    assert view_in(page.url) == (lat, lon, zoom)
    assert differ(moved, back) < 0.02, "the map came back to another view"

    copied = browser.new_page(viewport={"width": 1400, "height": 1000})
    copied.goto(page.url)
    opened = pixels(copied, "hand-view-copied-link")
    copied.close()
    assert differ(moved, opened) < 0.02, "the copied link opened another view"

    page.get_by_role("button", name="Show the whole area").click()
    settle(page)
    again = pixels(page, "hand-view-whole-again")
    assert view_in(page.url) is None
    assert differ(whole, again) < 0.02, "the whole area was not shown again"

    # One step back in the browser's history is the view left, whole, without a warning.
    page.go_back()
    settle(page)
    assert view_in(page.url) == (lat, lon, zoom)
    assert not page.locator('[data-testid="stAlert"]').count(), page.locator(
        '[data-testid="stAlert"]'
    ).all_inner_texts()


def resting_view(pg) -> tuple[float, float, float]:
    """The view the map rests at, as it says itself once still."""
    view = json.loads(pg.locator(MAP_ELEMENT).get_attribute("data-view"))
    return view["latitude"], view["longitude"], view["zoom"]


class SlowAnswers:
    """The page's answers held back on their way to the browser, in order, while ``slow`` is
    set: a server busy with heavy layers, made certain. The browser's messages go straight on."""

    def __init__(self, pg, delay_s: float = 1.5):
        self.pg, self.delay_s, self.slow, self.held = pg, delay_s, False, []
        pg.route_web_socket(re.compile(r".*/_stcore/stream"), self.route)

    def route(self, ws) -> None:
        app = ws.connect_to_server()
        ws.on_message(app.send)
        app.on_message(lambda message: self.answer(ws, message))

    def answer(self, ws, message) -> None:
        if self.slow or self.held:
            self.held.append((time.monotonic() + self.delay_s, ws, message))
        else:
            ws.send(message)

    def wait(self, ms: int) -> None:
        """Wait ``ms``, handing on each held answer when its time has come."""
        end = time.monotonic() + ms / 1000
        while time.monotonic() < end:
            while self.held and (self.held[0][0] <= time.monotonic() or not self.slow):
                _, ws, message = self.held.pop(0)
                ws.send(message)
            self.pg.wait_for_timeout(20)


def test_late_answers_never_pull_the_map_back(server, page):  # noqa: F811
    """Moves by hand, each paused just long enough to be reported, come faster than the page
    answers: the map stays where it is left, and the URL ends with the view it shows."""
    network = SlowAnswers(page)
    page.goto(f"{server}/?layers=wards,outlines,density")
    pixels(page, "late-answers-before")
    box = page.locator(MAP_ELEMENT).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    start = resting_view(page)
    network.slow = True
    for _ in range(4):
        page.mouse.wheel(0, 300)
        network.wait(700)  # reported after 0.4 s still; answered 1.5 s later
    network.wait(3000)  # the last answers arrive
    network.slow = False
    network.wait(500)
    settle(page, quiet_ms=1500)
    shown = resting_view(page)
    assert shown[2] < start[2] - 2, f"the zooms out were undone: {start} -> {shown}"
    assert view_in(page.url) == pytest.approx(shown, abs=1e-4), (page.url, shown)
    pixels(page, "late-answers-after")


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
