"""End to end, "show on map" as a service manager uses it in headless Chromium (local mode has
every right): on the hotspots page the first area's link opens the map centred on that area,
zoomed so all of it is in view, with the hotspot layer on and its legend shown, and its hot
cells drawn around the map's centre; picking the area's row instead offers a link named for the
area that opens the same map in the same tab. The area's cells come from the page's own
"hotspot cells" download, so the centre is checked against what a person can fetch, not against
the link's own figures. Screenshots go to test-artifacts/."""

from __future__ import annotations

import io
import math
import re
from urllib.parse import parse_qs, urlsplit

import h3
import numpy as np
import pandas as pd
import pytest
from conftest import MAP_ELEMENT
from PIL import Image
from test_e2e import ARTIFACTS, WAIT_MS, browser, server  # noqa: F401 (fixtures)
from test_e2e_ward import rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHART = MAP_ELEMENT


def red(pixels: np.ndarray) -> np.ndarray:
    """Where a hot-spot fill is drawn (the layer's reds, at its opacity over the white map)."""
    return (pixels[..., 0] > 150) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)


def screenshot(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(int)


def mercator(lat: float, lon: float, zoom: float) -> tuple[float, float]:
    """Web Mercator pixels at ``zoom`` (256-pixel tiles), the projection deck.gl draws in."""
    scale = 256 * 2**zoom
    phi = math.radians(lat)
    return scale * (lon + 180) / 360, scale * (1 - math.log(math.tan(phi) + 1 / math.cos(phi)) / math.pi) / 2


@pytest.fixture(scope="module")
def context(browser):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def first_area(server, context):  # noqa: F811
    """The hotspots page's first area as shown (its name and link) and its cells as the page's
    download of hotspot cells lists them."""
    page = context.new_page()
    page.goto(f"{server}/hotspots")
    page.get_by_text(re.compile(r"^Hotspot areas \(")).wait_for(timeout=WAIT_MS)  # the heading
    shown = rows(page, "Show on map")
    assert shown, "the hotspots page lists no area"
    with page.expect_download(timeout=WAIT_MS) as download:
        page.get_by_role("button", name="Download hotspot cells (CSV)").click()
    cells = pd.read_csv(download.value.path(), dtype={"h3_cell": str, "area_name": str})
    page.close()
    mine = cells[cells["area_name"] == shown[0]["Area"]]
    assert len(mine), f"no cell of {shown[0]['Area']} in the download"
    return {"name": shown[0]["Area"], "link": shown[0]["Show on map"], "cells": list(mine["h3_cell"])}


def open_hotspots(url: str, context):
    page = context.new_page()
    page.goto(f"{url}/hotspots")
    page.get_by_text(re.compile(r"^Hotspot areas \(")).wait_for(timeout=WAIT_MS)  # the heading
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1500)  # the grid is a canvas: let it draw its rows
    return page, grid


def first_link(page, grid) -> tuple[float, float]:
    """Where the first row's "show on map" is drawn: the grid is a canvas, so the link is found
    as a person finds it, by its blue text (the topmost line of it)."""
    box = grid.bounding_box()
    pixels = screenshot(grid)
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 100) & (pixels[..., 1] < 150)
    ys, xs = np.nonzero(blue)
    assert len(ys), "no link is drawn in the areas table"
    top = ys < ys.min() + 12
    return box["x"] + float(xs[top].mean()), box["y"] + float(ys[top].mean())


def drawn_map(page) -> np.ndarray:
    """The map once its hot cells are drawn (deck.gl draws after the page's run)."""
    chart = page.locator(CHART)
    chart.wait_for(timeout=WAIT_MS)
    for _ in range(60):
        pixels = screenshot(chart)
        if red(pixels).sum() > 500:
            page.wait_for_timeout(1000)  # one more frame: the outlines may still be coming
            return screenshot(chart)
        page.wait_for_timeout(2000)
    raise AssertionError("no hot cell was drawn on the map")


def view_of(url: str) -> tuple[float, float, float, list[str]]:
    query = parse_qs(urlsplit(url).query)
    return (
        float(query["lat"][0]),
        float(query["lon"][0]),
        float(query["zoom"][0]),
        query["layers"][0].split(","),
    )


def test_show_on_map_opens_the_area_centred_with_the_hotspot_layer(server, context, first_area):  # noqa: F811
    page, grid = open_hotspots(server, context)
    x, y = first_link(page, grid)
    page.mouse.move(x, y)  # the grid opens a link under the pointer
    page.wait_for_timeout(300)
    with context.expect_page(timeout=60_000) as opened:
        page.mouse.click(x, y)
    tab = opened.value
    tab.get_by_role("heading", name="Map").wait_for(timeout=WAIT_MS)
    tab.get_by_text(f"Centred on {first_area['name']}.").wait_for(timeout=WAIT_MS)  # said in words
    pixels = drawn_map(tab)
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "hotspot-on-map.png"))

    # The map is the one the area's link names, and the hotspot layer is on, legend and all.
    lat, lon, zoom, drawn = view_of(tab.url)
    assert "hotspots" in drawn, tab.url
    assert (lat, lon, zoom) == view_of(f"http://x/{first_area['link'].lstrip('./')}")[:3]
    assert tab.locator(".st-key-lp_on_hotspots input").is_checked()
    legend = tab.locator(".st-key-lp_hotspots .cg-legend").inner_text()
    assert "Hot spot, 99 % confidence" in legend

    # Centred on the area: the view's centre lies among the area's cells, and the zoom shows
    # all of the area, not a speck of it.
    corners = [v for c in first_area["cells"] for v in h3.cell_to_boundary(c)]
    lats, lons = [v[0] for v in corners], [v[1] for v in corners]
    assert min(lats) <= lat <= max(lats) and min(lons) <= lon <= max(lons), (lat, lon)
    box = tab.locator(CHART).bounding_box()
    west, north = mercator(max(lats), min(lons), zoom)
    east, south = mercator(min(lats), max(lons), zoom)
    assert east - west <= box["width"] and south - north <= box["height"], "the area is cut off"
    assert max((east - west) / box["width"], (south - north) / box["height"]) > 0.2, "zoomed too far out"

    # What is drawn: hot cells around the middle of the map, and a hot cell's tooltip.
    ys, xs = np.nonzero(red(pixels))
    assert abs(xs.mean() / pixels.shape[1] - 0.5) < 0.2 and abs(ys.mean() / pixels.shape[0] - 0.5) < 0.2
    nearest = np.argmin((xs - pixels.shape[1] / 2) ** 2 + (ys - pixels.shape[0] / 2) ** 2)
    tab.mouse.move(box["x"] + float(xs[nearest]), box["y"] + float(ys[nearest]))
    tooltip = tab.locator(".deck-tooltip")
    tooltip.wait_for(state="visible", timeout=20_000)
    assert "Hot spot" in tooltip.inner_text()
    tab.close()
    page.close()


def test_picking_an_area_offers_the_map_under_its_name_in_this_tab(server, context, first_area):  # noqa: F811
    page, grid = open_hotspots(server, context)
    _, y = first_link(page, grid)
    page.mouse.click(grid.bounding_box()["x"] + 15, y)  # the row's selection box, left of the name
    link = page.get_by_role("link", name=f"Show {first_area['name']} on the map")
    link.wait_for(timeout=WAIT_MS)
    link.click()
    page.get_by_role("heading", name="Map").wait_for(timeout=WAIT_MS)
    page.get_by_text(f"Centred on {first_area['name']}.").wait_for(timeout=WAIT_MS)
    drawn_map(page)
    page.screenshot(path=str(ARTIFACTS / "hotspot-picked-on-map.png"))
    lat, lon, zoom, drawn = view_of(page.url)
    assert "hotspots" in drawn
    assert (lat, lon, zoom) == view_of(f"http://x/{first_area['link'].lstrip('./')}")[:3]
    assert page.locator(".st-key-lp_on_hotspots input").is_checked()
    page.close()
