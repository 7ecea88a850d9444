"""Concurrent sessions while the warehouse reloads: does any page mix two warehouse versions?

    python bench/concurrency.py [--sessions 20] [--visits 2] [--events 60000]

Builds a small demo city in a temporary folder, loads it, and serves the app on 127.0.0.1 (a
free port, ``app.dashboard.serve``). One headless Chromium (Debian's, /usr/bin/chromium) opens
``--sessions`` contexts that each go through a scripted visit ``--visits`` times: the map, a
filter change (records: interventions), the ward profile, the hotspots page. Sessions start
``--stagger`` seconds apart, at most ``--ramp`` of them load their first page at once, and with
``--at-once N`` at most N are in the middle of a step at once (all stay open; the time a step
waits for its turn is reported apart, as ``queued_p95_s``).
Meanwhile the warehouse is reloaded twice with ``python -m app load``: first with two open
datasets' files grown by 30 % (one of demand, one of interventions; the added rows a month
later, so the data's period grows too), then with them as they were.

Each page's version is read twice. The provenance line (drawn from the page's connection) says
how many rows are loaded; the figures drawn from the cached calls (the map's legend breaks, the
ward profile's period and headline figures, the hotspot page's headings and captions) are
compared with what one quiet session saw on each version before the run. A page whose figures
are one version's and whose provenance is the other's is a mix. A step whose figures do not
differ between the versions cannot show a mix and is left out of ``steps_checkable``.

Two times are kept apart. "Answered" (rerun_*): from an action until the rerun has finished on
the page (no stale element left, the provenance line drawn), in every session. "Painted"
(painted_*): from an action until the map's last WebGL draw call, in the first ``--painting``
sessions only. The others skip the WebGL draw calls themselves (an init script makes them
no-ops; the page's HTML, legends, figures and provenance are drawn and read as usual): with no
GPU, Chromium rasterises WebGL on the CPU, and twenty tabs doing so on two cores measure the
browser, not the app.

The last line printed is one JSON object: errors (error boxes or exceptions on a page, plus
steps that failed or timed out: a timeout is an error, and where it happened is named), mixed
pages, pages whose figures matched neither version, p50/p95 of the answered and painted times,
and the server's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from app.dashboard.serve import CHROMIUM, CHROMIUM_ARGS, AppDidNotStart, start_app, stop_app

REPO = Path(__file__).resolve().parent.parent

GROWN = ("council_env.parquet", "fire_safety_visits.parquet")  # open datasets: exact figures
STEP_TIMEOUT_MS = 240_000
STEPS = ("map", "filter change", "ward profile", "hotspots")
_ROWS = re.compile(r"rows loaded ([\d,]+)")


# --------------------------------------------------------------------------------------------
# The city, its two versions, and the server


def build_city(root: Path, events: int) -> tuple[Path, Path]:
    """A demo city loaded into a warehouse; the grown copies of two files kept aside."""
    import pandas as pd

    from app.demo_city import generate
    from app.ingest import load

    generate(root / "demo", events=events, seed=7)
    shutil.copy(REPO / "data" / "catalog.toml", root / "catalog.toml")
    db = root / "warehouse.duckdb"
    load(root / "catalog.toml", db)
    (root / "original").mkdir()
    (root / "grown").mkdir()
    for name in GROWN:
        shutil.copy(root / "demo" / name, root / "original" / name)
        frame = pd.read_parquet(root / "demo" / name)
        extra = frame.sample(frac=0.3, random_state=1).assign(record_id=lambda f: f["record_id"] + "-b")
        # A month later: the data's period grows too, which the ward profile and coverage notes say.
        extra["occurred"] = extra["occurred"] + pd.DateOffset(months=1)
        pd.concat([frame, extra], ignore_index=True).to_parquet(root / "grown" / name, index=False)
    return root / "catalog.toml", db


def reload(root: Path, catalog: Path, db: Path, version: str) -> float:
    """Put the files of ``version`` ("grown" or "original") in place and load, as an analyst
    would with ``python -m app load``; returns the load's seconds."""
    for name in GROWN:
        shutil.copy(root / version / name, root / "demo" / name)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "app", "load", "--catalog", str(catalog), "--db", str(db)],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def start_server(catalog: Path, db: Path) -> tuple[subprocess.Popen, str]:
    env = {"COMMON_GROUND_DB": str(db), "COMMON_GROUND_CATALOG": str(catalog)}
    try:
        return start_app(env, wait_s=90)
    except AppDidNotStart as exc:
        raise SystemExit(str(exc)) from None


class PeakRss(threading.Thread):
    """The server's resident memory, sampled every half second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.last_kb, self.running = pid, 0, 0, True

    def run(self) -> None:
        while self.running:
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            found = re.search(r"VmRSS:\s+(\d+) kB", status)
            if found:
                self.last_kb = int(found.group(1))
                self.peak_kb = max(self.peak_kb, self.last_kb)
            time.sleep(0.5)


# --------------------------------------------------------------------------------------------
# A visit


async def settle(page, started: float) -> float:
    """Wait for the rerun an action started to finish, once the caller has seen it begin (the
    new page's heading, or the URL the filter writes): the status widget ("Running...") is
    gone, no element of the previous run is left (Streamlit marks them stale until the run
    ends) and the page's provenance line is drawn. Returns seconds since ``started``."""
    await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=STEP_TIMEOUT_MS)
    await page.wait_for_function(
        "() => !document.querySelector('[data-stale=\"true\"]')", timeout=STEP_TIMEOUT_MS
    )
    await provenance_line(page).wait_for(timeout=STEP_TIMEOUT_MS)
    return time.perf_counter() - started


def provenance_line(page):
    return page.locator('[data-testid="stCaptionContainer"]').filter(has_text="Datasets:").last


async def figures_text(page, step: str) -> str:
    """The text of the page's figures that come from the cached calls: the map's legends (class
    breaks of the ward counts), the ward profile's period and headline figures, the hotspot
    page's headings and captions. Charts and tables draw in canvases or after the run, so they
    are left out: their text depends on when it is read."""
    if step in ("map", "filter change"):
        legends = page.locator(".cg-legend")
        await legends.first.wait_for(timeout=STEP_TIMEOUT_MS)
        return "\n".join(await legends.all_inner_texts())
    if step == "ward profile":
        values = page.locator('[data-testid="stMetricValue"]')
        await values.first.wait_for(timeout=STEP_TIMEOUT_MS)
        period = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="Period ")
        return "\n".join([*await period.all_inner_texts(), *await values.all_inner_texts()])
    headings = await page.locator("h1, h2, h3").all_inner_texts()
    captions = await page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
    return "\n".join([*headings, *(c for c in captions if "Datasets:" not in c)])


async def observe(page, step: str, seconds: float) -> dict:
    """The version markers and errors of the page as drawn."""
    provenance = await provenance_line(page).inner_text()
    rows = _ROWS.search(provenance)
    figures = await figures_text(page, step)
    errors = await page.locator('[data-testid="stException"]').count()
    errors += await page.locator('[data-testid="stAlertContentError"]').count()
    return {
        "step": step,
        "seconds": round(seconds, 3),
        "rows_loaded": int(rows.group(1).replace(",", "")) if rows else None,
        "figures": hashlib.sha256(figures.encode()).hexdigest()[:16],
        "errors": errors,
        "text": figures,
    }


# Counts the WebGL draw calls of the page (and when the last one was made) and, in a session
# that does not measure painting, skips them: the legends, figures and provenance line are HTML
# and still drawn and read; only the rasterising of the map in software (no GPU here: Chromium
# draws WebGL on the CPU) is left out, which twenty tabs could not do on two cores.
DRAWS = """
(() => {
  const skip = __SKIP__;
  window.__cgDraws = 0;
  window.__cgLastDraw = 0;
  const names = ["drawArrays", "drawElements", "drawArraysInstanced", "drawElementsInstanced",
                 "drawRangeElements", "clear"];
  for (const kind of [self.WebGLRenderingContext, self.WebGL2RenderingContext]) {
    if (!kind) continue;
    for (const name of names) {
      const real = kind.prototype[name];
      if (!real) continue;
      kind.prototype[name] = function (...args) {
        window.__cgDraws += 1;
        window.__cgLastDraw = performance.timeOrigin + performance.now();
        if (!skip) return real.apply(this, args);
      };
    }
  }
})();
"""
QUIET_MS = 1000  # a map that has not drawn for this long has finished painting
PAINT_CAP_S = 60  # after the rerun: a map still drawing then is taken as painted at its last draw


async def now_ms(page) -> float:
    return await page.evaluate("performance.timeOrigin + performance.now()")


async def painted(page, since_ms: float) -> float:
    """Seconds from ``since_ms`` (epoch milliseconds, the browser's clock) to the map's last
    draw call, once it has not drawn for ``QUIET_MS`` (or ``PAINT_CAP_S`` after it first drew).
    A map that never draws after the action raises: a timeout, counted as a failed step."""
    waited = time.perf_counter()
    while True:
        last, now = await page.evaluate(
            "[window.__cgLastDraw || 0, performance.timeOrigin + performance.now()]"
        )
        if last > since_ms and (now - last >= QUIET_MS or time.perf_counter() - waited > PAINT_CAP_S):
            return (last - since_ms) / 1000
        if last <= since_ms and time.perf_counter() - waited > STEP_TIMEOUT_MS / 1000:
            raise TimeoutError("the map was not painted after the page's rerun")
        await asyncio.sleep(0.2)


async def visit(page, url: str, paints: bool, first: asyncio.Semaphore | None, busy: Gate) -> list[dict]:
    """Map, a filter change, the ward profile, the hotspots page: what each drew. ``first``
    bounds how many sessions load their first page at once (a staggered start); ``busy``, how
    many sessions are in the middle of a step at once (the others hold their open page and
    wait their turn; the wait is kept apart, not counted in the step's time); ``paints`` says
    whether this session times the painting of the map (the two map steps; the other pages
    have no WebGL map)."""
    seen: list[dict] = []
    step = "map"
    try:
        async with first or contextlib.nullcontext(), busy.turn() as queued:
            started, since = time.perf_counter(), time.time() * 1000
            await page.goto(f"{url}/", timeout=STEP_TIMEOUT_MS)
            await arrived(page, page.get_by_role("heading", name="Map"))
            seen.append(await observe(page, step, await settle(page, started)) | queued)
            if paints:
                seen[-1]["painted_s"] = await painted(page, since)
        step = "filter change"
        async with busy.turn() as queued:
            started, since = time.perf_counter(), await now_ms(page)
            await page.get_by_role("button", name="Interventions").click()
            await page.wait_for_function(
                "() => location.search.includes('kinds=intervention')"
                f" || !!document.querySelector('{ERROR}')",
                timeout=STEP_TIMEOUT_MS,
            )
            await arrived(page, page.get_by_role("button", name="Interventions"))
            seen.append(await observe(page, step, await settle(page, started)) | queued)
            if paints:
                seen[-1]["painted_s"] = await painted(page, since)
        for step, link, heading in (
            ("ward profile", "Ward profile", "Ward profile:"),
            ("hotspots", "Hotspots and overlap", "Hotspots and overlap"),
        ):
            async with busy.turn() as queued:
                started = time.perf_counter()
                await page.get_by_role("link", name=link).click()
                await arrived(page, page.get_by_text(heading).first)
                seen.append(await observe(page, step, await settle(page, started)) | queued)
    except Exception as exc:  # a step that timed out or failed: an error of the run, named
        seen.append({"step": "failed", "at": step, "error": str(exc).splitlines()[0][:200]})
        await keep_failure(page, step, str(exc))
    return seen


FAILURES: Path | None = None  # where a failed step's screenshot and page text go (``--texts``)


async def keep_failure(page, step: str, error: str) -> None:
    """What a failed step left on the page: a screenshot, the URL, the error and the page's
    text, so a timeout can be told apart from a hang (still running) or a lost click."""
    if FAILURES is None:
        return
    FAILURES.mkdir(parents=True, exist_ok=True)
    name = f"failed-{time.strftime('%H%M%S')}-{id(page) % 10_000}-{step.replace(' ', '_')}"
    with contextlib.suppress(Exception):
        await page.screenshot(path=str(FAILURES / f"{name}.png"), timeout=30_000)
    with contextlib.suppress(Exception):
        text = await page.locator("body").inner_text(timeout=30_000)
        (FAILURES / f"{name}.txt").write_text(f"{page.url}\n{error}\n\n{text}")


ERROR = '[data-testid="stException"]'  # the box a script's error leaves (details are not shown)


async def arrived(page, expected) -> None:
    """Wait for ``expected`` (a locator) or an error box, whichever the page shows first; an
    error box fails the step at once, with its text, rather than after the step's timeout."""
    await expected.or_(page.locator(ERROR)).first.wait_for(timeout=STEP_TIMEOUT_MS)
    if await page.locator(ERROR).count():
        text = await page.locator(ERROR).first.inner_text()
        raise RuntimeError(f"an error box: {' '.join(text.split())[:150]}")


class Gate:
    """At most ``limit`` sessions in the middle of a step (0: no limit); ``turn()`` yields the
    seconds this step waited for its turn, as ``{"queued_s": ...}``."""

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit) if limit else None

    @contextlib.asynccontextmanager
    async def turn(self):
        asked = time.perf_counter()
        if self.semaphore is None:
            yield {"queued_s": 0.0}
            return
        async with self.semaphore:
            yield {"queued_s": round(time.perf_counter() - asked, 3)}


async def session(
    browser,
    url: str,
    visits: int,
    delay: float,
    paints: bool = True,
    first: asyncio.Semaphore | None = None,
    busy: Gate | None = None,
) -> list[dict]:
    """One person (a browser context) visiting ``visits`` times, each in a new tab: a new
    Streamlit session that starts from the link, not from the last visit's filter."""
    await asyncio.sleep(delay)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await context.add_init_script(DRAWS.replace("__SKIP__", "false" if paints else "true"))
    out: list[dict] = []
    try:
        for i in range(visits):
            page = await context.new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS)  # twenty sessions share two cores
            try:
                out.extend(await visit(page, url, paints, first if i == 0 else None, busy or Gate(0)))
            finally:
                await page.close()
    finally:
        await context.close()
    return out


# --------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict:
    from playwright.async_api import async_playwright

    root = Path(tempfile.mkdtemp(prefix="cg-concurrency-"))
    try:
        catalog, db = build_city(root, args.events)
        proc, url = start_server(catalog, db)
        rss = PeakRss(proc.pid)
        rss.start()
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
                # What each version looks like, seen by one quiet session (twice: the second
                # visit shows whether the page's text is the same from one visit to the next).
                calibration = {"original": await session(browser, url, 2, 0)}
                reload(root, catalog, db, "grown")
                calibration["grown"] = await session(browser, url, 2, 0)
                reload(root, catalog, db, "original")
                versions = versions_by_step(calibration)
                if args.texts:
                    keep_texts(Path(args.texts), calibration)

                loads: list[float] = []

                async def reloads() -> None:
                    await asyncio.sleep(args.reload_after)
                    loads.append(await asyncio.to_thread(reload, root, catalog, db, "grown"))
                    await asyncio.sleep(args.reload_after)
                    loads.append(await asyncio.to_thread(reload, root, catalog, db, "original"))

                first, busy = asyncio.Semaphore(args.ramp), Gate(args.at_once)
                rss.peak_kb = rss.last_kb  # the run's own peak, from here
                started = time.perf_counter()
                results = await asyncio.gather(
                    reloads(),
                    *(
                        session(browser, url, args.visits, i * args.stagger, i < args.painting, first, busy)
                        for i in range(args.sessions)
                    ),
                )
                wall = time.perf_counter() - started
                await browser.close()
        finally:
            rss.running = False
            stop_app(proc)
        seen = [s for r in results[1:] for s in r]
        return summary(seen, versions, loads, wall, rss.peak_kb, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def keep_texts(folder: Path, calibration: dict[str, list[dict]]) -> None:
    """The page texts the quiet session saw, one file per version, visit and step: a step that
    is not checkable shows why in their differences."""
    folder.mkdir(parents=True, exist_ok=True)
    for version, seen in calibration.items():
        for i, s in enumerate(seen):
            name = f"{version}-{i // 4}-{s.get('step', 'failed').replace(' ', '_')}.txt"
            (folder / name).write_text(f"rows loaded {s.get('rows_loaded')}\n\n{s.get('text', '')}")


def versions_by_step(calibration: dict[str, list[dict]]) -> dict:
    """Per step: the rows loaded and the figures' fingerprint of each version, and whether the
    step can show a mix (its figures differ between the versions and stay the same from one
    visit to the next)."""
    out = {}
    for step in STEPS:
        per = {v: [s for s in seen if s.get("step") == step] for v, seen in calibration.items()}
        figures = {v: {s["figures"] for s in obs} for v, obs in per.items()}
        rows = {v: {s["rows_loaded"] for s in obs} for v, obs in per.items()}
        stable = all(len(f) == 1 for f in figures.values()) and all(len(r) == 1 for r in rows.values())
        distinct = stable and figures["original"] != figures["grown"] and rows["original"] != rows["grown"]
        out[step] = {
            "figures": {v: next(iter(f)) for v, f in figures.items() if len(f) == 1},
            "rows": {v: next(iter(r)) for v, r in rows.items() if len(r) == 1},
            "checkable": distinct,
        }
    return out


def summary(seen: list[dict], versions: dict, loads: list[float], wall: float, peak_kb: int, args) -> dict:
    mixed = unmatched = checked = 0
    examples: list[dict] = []
    for s in seen:
        known = versions.get(s.get("step"))
        if not known or not known["checkable"]:
            continue
        by_rows = {r: v for v, r in known["rows"].items()}.get(s["rows_loaded"])
        by_figures = {f: v for v, f in known["figures"].items()}.get(s["figures"])
        if by_rows is None or by_figures is None:
            unmatched += 1
            if len(examples) < 5:
                examples.append({k: s.get(k) for k in ("step", "rows_loaded", "text")})
            continue
        checked += 1
        mixed += by_rows != by_figures
    answered = sorted(s["seconds"] for s in seen if "seconds" in s)
    paints = sorted(s["painted_s"] for s in seen if s.get("painted_s") is not None)
    failed = [s for s in seen if s.get("step") == "failed"]
    boxes = sum(s.get("errors", 0) for s in seen)

    def pct(values: list[float], q: float) -> float | None:
        return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else None

    return {
        "sessions": args.sessions,
        "visits_per_session": args.visits,
        "painting_sessions": min(args.painting, args.sessions),
        "first_page_at_once": args.ramp,
        "steps_at_once": args.at_once or args.sessions,
        "queued_p95_s": pct(sorted(s.get("queued_s", 0.0) for s in seen if "seconds" in s), 0.95),
        "pages_seen": sum(1 for s in seen if "seconds" in s),
        # A step that failed or timed out is an error of the run, as an error box on a page is.
        "errors": boxes + len(failed),
        "error_boxes": boxes,
        "steps_failed": len(failed),
        "steps_failed_at": {at: sum(1 for s in failed if s["at"] == at) for at in {s["at"] for s in failed}},
        "steps_failed_examples": [f"{s['at']}: {s['error']}" for s in failed][:5],
        "mixed_pages": mixed,
        "pages_checked_for_mix": checked,
        "pages_matching_neither_version": unmatched,
        "matching_neither_examples": examples,
        "steps_checkable": [k for k, v in versions.items() if v["checkable"]],
        "reloads_s": [round(x, 1) for x in loads],
        # Server answered: from the action until the rerun has finished on the page (no stale
        # element, the provenance line drawn), read in every session.
        "rerun_p50_s": pct(answered, 0.5),
        "rerun_p95_s": pct(answered, 0.95),
        "rerun_median_by_step_s": {
            step: round(statistics.median(x), 2)
            for step in STEPS
            if (x := [s["seconds"] for s in seen if s.get("step") == step])
        },
        # Browser painted: from the action until the map's last WebGL draw, in the sessions
        # that draw (the others skip the drawing itself and only read the page).
        "painted_pages": len(paints),
        "painted_p50_s": pct(paints, 0.5),
        "painted_p95_s": pct(paints, 0.95),
        "painted_median_by_step_s": {
            step: round(statistics.median(x), 2)
            for step in STEPS
            if (
                x := [
                    s["painted_s"] for s in seen if s.get("step") == step and s.get("painted_s") is not None
                ]
            )
        },
        "wall_s": round(wall, 1),
        "server_peak_rss_mb": round(peak_kb / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--visits", type=int, default=2, help="scripted visits per session")
    parser.add_argument("--events", type=int, default=60_000, help="records of the demo city")
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between session starts")
    parser.add_argument("--reload-after", type=float, default=15.0, help="seconds before each reload")
    parser.add_argument("--step-timeout", type=float, default=240.0, help="seconds a step may take")
    parser.add_argument(
        "--ramp", type=int, default=4, help="sessions that may load their first page at the same time"
    )
    parser.add_argument(
        "--at-once",
        type=int,
        default=0,
        help="sessions that may be in the middle of a step at once (0: all); the others wait their turn",
    )
    parser.add_argument(
        "--painting",
        type=int,
        default=2,
        help="sessions that draw the map and time its painting; "
        "the others skip WebGL drawing and read the page only",
    )
    parser.add_argument(
        "--texts", help="folder to keep the page texts each version showed, and what failed steps left"
    )
    args = parser.parse_args()
    global STEP_TIMEOUT_MS, FAILURES
    STEP_TIMEOUT_MS = int(args.step_timeout * 1000)
    FAILURES = Path(args.texts) if args.texts else None
    if args.ramp < 1 or args.painting < 0 or args.at_once < 0:
        raise SystemExit("--ramp: at least 1; --painting and --at-once: 0 or more")
    if not 1 <= args.sessions <= 40:
        raise SystemExit("--sessions: between 1 and 40 (one machine draws every session's map)")
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
