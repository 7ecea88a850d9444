"""End to end: the real app in headless Chromium (Debian's chromium, driven by Playwright),
looked at as a person would: pixels on the map, a filter that changes them, a ward that opens
its profile when clicked, a CSV that downloads. Screenshots go to test-artifacts/."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from conftest import MAP_CANVAS, MAP_ELEMENT, REPO

from app.dashboard.serve import CHROMIUM, CHROMIUM_ARGS, AppDidNotStart, running_app

pytestmark = pytest.mark.e2e
ARTIFACTS = REPO / "test-artifacts"
ARGS = list(CHROMIUM_ARGS)
# How long a page may take to come: on a shared two-core machine a first map can take a minute.
# The tests check what is drawn, never how fast.
WAIT_MS = 180_000


def need_chromium() -> None:
    """Skip where Chromium is not installed, unless the run says the browser tests must run."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("E2E_REQUIRED"):
            pytest.fail(f"chromium not found at {CHROMIUM}")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")


def serving(env: dict[str, str], **kwargs):
    """The app's address while it serves ``env`` (a failed start fails the test in one line)."""
    need_chromium()
    try:
        with running_app(env, **kwargs) as url:
            yield url
    except AppDidNotStart as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def server(small_demo_db):
    yield from serving({"COMMON_GROUND_DB": str(small_demo_db[0])})


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()


def map_pixels(page, name: str) -> np.ndarray:
    """The map canvas as an RGB array, once deck.gl has drawn; also saved as an artefact."""
    from PIL import Image

    page.locator(MAP_CANVAS).first.wait_for(state="visible", timeout=WAIT_MS)
    page.wait_for_timeout(3000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    png = page.locator(MAP_ELEMENT).screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def colourful(pixels: np.ndarray) -> int:
    """Pixels clearly coloured (a hex fill), as opposed to white, grey or black."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(((np.abs(r - g) + np.abs(g - b) + np.abs(r - b)) > 80).sum())


def test_map_canvas_shows_the_hex_layer(server, page):
    page.goto(f"{server}/?layers=density,outlines")
    pixels = map_pixels(page, "map-density")
    assert colourful(pixels) > 5000, "no coloured hexagons were drawn"


def test_changing_a_filter_changes_the_map(server, page):
    page.goto(f"{server}/?layers=density,outlines")
    before = map_pixels(page, "map-before-filter")
    page.get_by_role("button", name="Interventions").click()
    page.wait_for_timeout(5000)
    after = map_pixels(page, "map-after-filter")
    assert "kinds=intervention" in page.url
    assert np.abs(before - after).sum(axis=2).astype(bool).mean() > 0.02


def _inside_a_ward(page) -> tuple[int, int]:
    """A whole-pixel point near the map's centre with the same ward all around it, as a person
    aims for a ward rather than for the pixel where two meet (there a hover and a click a
    fraction of a pixel apart may name different wards)."""
    box = page.locator(MAP_ELEMENT).bounding_box()
    tooltip = page.locator(".deck-tooltip")

    def ward_at(x: int, y: int) -> str | None:
        page.mouse.move(x, y)
        page.wait_for_timeout(150)
        return tooltip.inner_text(timeout=5_000).splitlines()[0] if tooltip.is_visible() else None

    for fx, fy in [(0.5, 0.45), (0.45, 0.5), (0.55, 0.4), (0.4, 0.4), (0.6, 0.55), (0.5, 0.6)]:
        x, y = round(box["x"] + box["width"] * fx), round(box["y"] + box["height"] * fy)
        names = {ward_at(x + dx, y + dy) for dx in (-6, 0, 6) for dy in (-6, 0, 6)}
        if len(names) == 1 and None not in names:
            return x, y
    raise AssertionError("no point near the map's centre lies well inside one ward")


def test_clicking_a_ward_opens_its_profile(server, page):
    """Hover a ward, read its name in the tooltip, click, and land on that ward's profile."""
    import re

    page.goto(f"{server}/?layers=wards")
    map_pixels(page, "map-wards")
    x, y = _inside_a_ward(page)
    page.mouse.move(x, y)
    tooltip = page.locator(".deck-tooltip")
    tooltip.wait_for(state="visible", timeout=20_000)
    found = re.search(r"^(.+) \((E05\d{6})\)", tooltip.inner_text())
    assert found, tooltip.inner_text()
    name, code = found.groups()
    page.mouse.click(x, y)
    page.get_by_text(f"Ward profile: {name}").wait_for(timeout=WAIT_MS)
    assert f"ward={code}" in page.url
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "ward-profile.png"), full_page=True)


def test_hex_csv_downloads_with_its_content(server, page):
    page.goto(f"{server}/data?ds=council_env&res=7")
    button = page.get_by_role("button", name="Download hexes")
    button.wait_for(timeout=WAIT_MS)
    with page.expect_download() as info:
        button.click()
    path = info.value.path()
    text = path.read_text(encoding="utf-8").splitlines()
    assert text[0].startswith("h3_cell,resolution,cell_lat,cell_lng,dataset,agency,kind,count")
    assert len(text) > 10
    assert all(",council_env," in line for line in text[1:])
    assert all(",7," in line for line in text[1:6])
    page.screenshot(path=str(ARTIFACTS / "data-page.png"))


def test_clicking_a_hex_shows_its_detail(server, page):
    """Hover a hex, read its cell id in the tooltip, click, and see its trend and categories."""
    import re

    page.goto(f"{server}/?layers=density")
    map_pixels(page, "map-density-only")
    box = page.locator(MAP_ELEMENT).bounding_box()
    x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    tooltip = page.locator(".deck-tooltip")
    tooltip.wait_for(state="visible", timeout=20_000)
    found = re.search(r"Cell ([0-9a-f]{15})", tooltip.inner_text())
    assert found, tooltip.inner_text()
    page.mouse.click(x, y)
    # The detail names the place in words; the cell id is the caption under it.
    page.get_by_text(f"Cell {found.group(1)} (H3 resolution").wait_for(timeout=WAIT_MS)
    heading = page.get_by_role("heading", name=re.compile(r"^Hexagon in \w"))
    heading.wait_for(timeout=WAIT_MS)
    assert found.group(1) not in heading.inner_text()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "hex-detail.png"), full_page=True)


def test_the_filter_stays_as_set_from_page_to_page(server, page):
    """A resolution chosen on the map is the one the ward profile and the exports use: each page
    draws the sidebar, and Streamlit would otherwise reset its widgets on a new page."""
    page.goto(f"{server}/?res=10")
    page.get_by_role("heading", name="Map").wait_for(timeout=WAIT_MS)
    for link, wait_for in (("Ward profile", "Ward profile:"), ("Data", "at resolution")):
        page.get_by_role("link", name=link).click()
        page.get_by_text(wait_for).first.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1500)
    page.get_by_text("Following the filter, at resolution 10.").wait_for(timeout=30_000)
    assert "res=10" in page.url
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Hexagon resolution")
    assert slider.locator('[data-testid="stSliderThumbValue"]').inner_text() == "10"  # as drawn
