"""End to end: an analyst adds a council's file on the Data page in headless Chromium. The file
has British National Grid coordinates and day-first dates; the page suggests the mapping (the
grid, the day-first format), the analyst checks it, sees the rows read on the preview map and
the row that would be quarantined, confirms, and the rows are loaded."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from test_app_data_page import DAY_FIRST, grid_csv
from test_e2e import ARTIFACTS, WAIT_MS, browser, need_chromium, page, serving  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def writable_server(small_demo, small_demo_db, tmp_path):
    """The app on its own copy of the small demo (a load writes to it), on 127.0.0.1."""
    need_chromium()
    shutil.copytree(small_demo, tmp_path / "data")
    db = tmp_path / "data" / "warehouse.duckdb"
    shutil.copy(small_demo_db[0], db)
    env = {"COMMON_GROUND_DB": str(db), "COMMON_GROUND_CATALOG": str(tmp_path / "data" / "catalog.toml")}
    for url in serving(env):
        yield url, db


def deck_pixels(tab) -> np.ndarray:
    """The preview map's canvas as RGB, once deck.gl has drawn (the tables are canvases too)."""
    canvas = tab.locator('[data-testid="stDeckGlJsonChart"] canvas').first
    canvas.wait_for(state="visible", timeout=WAIT_MS)
    canvas.scroll_into_view_if_needed()
    tab.wait_for_timeout(3000)
    ARTIFACTS.mkdir(exist_ok=True)
    png = canvas.screenshot(path=str(ARTIFACTS / "upload-preview-map.png"))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def loaded_metric(tab) -> int:
    metric = tab.locator('[data-testid="stMetric"]').filter(has_text="Loaded")
    return int(metric.locator('[data-testid="stMetricValue"]').inner_text().replace(",", ""))


def test_upload_suggested_checked_previewed_and_loaded(writable_server, page, tmp_path):  # noqa: F811
    from app.warehouse import connect

    url, db = writable_server
    con = connect(db, read_only=True)
    csv = tmp_path / "council requests.csv"
    csv.write_bytes(grid_csv(con, DAY_FIRST))
    con.close()

    page.goto(f"{url}/data")
    page.get_by_text("Add a dataset").wait_for(timeout=WAIT_MS)
    before = loaded_metric(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(csv))
    suggestion = page.get_by_text("Suggested mapping")
    suggestion.wait_for(timeout=WAIT_MS)
    text = page.locator('[data-testid="stMarkdown"]').filter(has_text="Suggested mapping").inner_text()
    assert "EPSG:27700" in text and "British National Grid" in text and "day first" in text
    crs = page.get_by_label("CRS (an EPSG code; suggested from the values' ranges)")
    expect(crs).to_have_value("EPSG:27700", timeout=30_000)  # prefilled from the suggestion

    page.get_by_role("textbox", name="Agency", exact=True).fill("Council")
    page.get_by_role("button", name="Check").click()
    page.get_by_text("The mapping reads:").wait_for(timeout=120_000)
    assert "ok: 5" in page.get_by_text("The mapping reads:").inner_text()
    page.get_by_text("Rows that would be quarantined").wait_for(timeout=30_000)
    pixels = deck_pixels(page)
    magenta = (abs(pixels[..., 0] - 200) < 40) & (pixels[..., 1] < 90) & (abs(pixels[..., 2] - 90) < 50)
    assert magenta.sum() > 20, "the preview map drew no points"
    page.screenshot(path=str(ARTIFACTS / "upload-checked.png"), full_page=True)

    page.get_by_role("button", name="Load this dataset").click()
    page.get_by_text("Loaded 5 rows; quarantined 1.").wait_for(timeout=180_000)
    page.goto(f"{url}/data")
    page.get_by_text("Add a dataset").wait_for(timeout=WAIT_MS)
    assert loaded_metric(page) == before + 5
    page.screenshot(path=str(ARTIFACTS / "upload-loaded.png"), full_page=True)
