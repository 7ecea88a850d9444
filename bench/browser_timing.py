"""Browser timing on the demo city: what people feel, measured in headless Chromium (Debian's
chromium driven by Playwright, as tests/test_e2e.py does), side by side with the figures
measured before the map was reworked (issue 12, section 6).

    python bench/browser_timing.py [--db PATH] [--repeat 3]

Each action is timed from the click (or the navigation) until the map canvas shows the result
(its pixels change, or the first layer is drawn) and the app has stopped running: first map
paint on a first visit (server and browser cold) and warm (reloaded), a category change,
adding the overlap layer, and a ward click to the complete ward profile. The last line printed
is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from app.dashboard.serve import CHROMIUM, CHROMIUM_ARGS, AppDidNotStart, running_app

REPO = Path(__file__).resolve().parent.parent
# Measured on the demo city in headless Chromium before this rework (issue 12, section 6), s.
BEFORE = {
    "first_paint_cold_s": [13.0, 15.0],
    "first_paint_warm_s": [4.0, 5.0],
    "category_change_s": [1.7, 2.7],
    "add_overlap_s": [4.0, 4.0],
    "ward_click_to_profile_s": [2.6, 4.5],
}
TIMEOUT_S = 120
MAP = ".deck-map"  # the Map page's map element (app/dashboard/deck_map.js)
# Streamlit's status widget while a script runs (its icon, or its "Running..." label).
RUNNING = (
    '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"], '
    '[data-testid="stStatusWidget"]:has-text("Running")'
)


def canvas(page) -> np.ndarray | None:
    from PIL import Image

    frame = page.locator(MAP).first
    if not frame.count() or not frame.is_visible():
        return None
    return np.asarray(Image.open(io.BytesIO(frame.screenshot())).convert("RGB")).astype(int)


def drawn(pixels: np.ndarray | None) -> bool:
    """Layers are on the canvas: over 5 % of it darker than the page's near-white."""
    return pixels is not None and float((pixels.min(axis=2) < 235).mean()) > 0.05


def running(page) -> bool:
    return page.locator(RUNNING).count() > 0


def until(page, start: float, done, settle_s: float = 0.4) -> float:
    """Seconds from ``start`` until ``done()`` holds and the app has stopped running (for
    ``settle_s``, so a run that is about to start again is waited for)."""
    seen = None
    while time.perf_counter() - start < TIMEOUT_S:
        if not running(page) and done():
            seen = seen or time.perf_counter()
            if time.perf_counter() - seen >= settle_s:
                return seen - start
        else:
            seen = None
        page.wait_for_timeout(50)
    raise SystemExit(f"An action did not finish within {TIMEOUT_S} s.")


def changed(page, before: np.ndarray):
    def check() -> bool:
        now = canvas(page)
        return (
            now is not None
            and now.shape == before.shape
            and bool((np.abs(now - before).sum(axis=2) > 30).mean() > 0.002)
        )

    return check


def first_paint(page, url: str) -> float:
    start = time.perf_counter()
    page.goto(url)
    return until(page, start, lambda: drawn(canvas(page)))


def category_change(page) -> float:
    before = canvas(page)
    box = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Categories")
    box.click()
    option = page.get_by_role("option").nth(1)  # the first category (the list opens with "Select all")
    option.wait_for(timeout=30_000)
    start = time.perf_counter()
    option.click()
    page.keyboard.press("Escape")
    return until(page, start, changed(page, before))


def add_overlap(page) -> float:
    before = canvas(page)
    start = time.perf_counter()
    page.locator(".st-key-lp_on_overlap label").click()
    return until(page, start, changed(page, before))


def inside_a_ward(page) -> tuple[int, int]:
    """A point near the map's centre with one ward's tooltip all around it."""
    box = page.locator(MAP).first.bounding_box()
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
    raise SystemExit("No point near the map's centre lies well inside one ward.")


def ward_click(page, url: str) -> float:
    page.goto(f"{url}/?layers=wards")
    until(page, time.perf_counter(), lambda: drawn(canvas(page)))
    x, y = inside_a_ward(page)
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    start = time.perf_counter()
    page.mouse.click(x, y)
    heading = page.get_by_text("Ward profile:")
    return until(page, start, lambda: heading.count() > 0 and "ward=" in page.url)


def main() -> None:
    try:
        measure()
    except AppDidNotStart as exc:
        raise SystemExit(str(exc)) from None


def measure() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(REPO / "data" / "warehouse.duckdb"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium).")
    subprocess.run([sys.executable, "-m", "app", "load", "--db", args.db], cwd=REPO, check=True)
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {k: [] for k in BEFORE}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        for _ in range(args.repeat):
            with running_app({"COMMON_GROUND_DB": args.db}) as url:  # a new server: cold caches
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                for key, action, extra in (
                    ("first_paint_cold_s", first_paint, (url,)),
                    ("first_paint_warm_s", first_paint, (url,)),
                    ("category_change_s", category_change, ()),
                    ("add_overlap_s", add_overlap, ()),
                    ("ward_click_to_profile_s", ward_click, (url,)),
                ):
                    times[key].append(action(page, *extra))
                    print(f"{key}: {times[key][-1]:.2f}", file=sys.stderr, flush=True)
                context.close()
        browser.close()
    out = {"bench": "browser_timing", "repeat": args.repeat}
    for key, before in BEFORE.items():
        out[key] = {
            "median": round(statistics.median(times[key]), 2),
            "max": round(max(times[key]), 2),
            "before": before,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
