"""End to end, the ward profile as a councillor reads it in Chromium: every summary sentence
agrees with the figures shown beside it (the headline, the ranking of all wards, the changes,
the categories, the hotspot areas), and the printable profile renders offline with its map
drawn. Screenshots go to test-artifacts/."""

from __future__ import annotations

import html
import io
import re

import numpy as np
import pytest
from test_e2e import ARTIFACTS, WAIT_MS, browser, page, server  # noqa: F401  (fixtures, reused)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
WARD = "E05900002"


def rows(pg, header: str) -> list[dict[str, str]]:
    """The rows shown by the dataframe that has a column named ``header`` (read from the
    grid's accessible table), as column -> cell text."""
    pg.locator("[data-testid='stDataFrame'] table").first.wait_for(state="attached", timeout=WAIT_MS)
    for table in pg.locator("[data-testid='stDataFrame'] table").all():
        head = [h.strip() for h in table.locator("thead th").all_inner_texts()]
        if header not in head:
            continue
        out = []
        for row in table.locator("tbody tr").all():
            cells = [c.strip() for c in row.locator("th, td").all_inner_texts()]
            out.append(dict(zip(head[-len(cells) :], cells, strict=True)) if cells else {})
        return [r for r in out if r]
    return []


@pytest.fixture(scope="module")
def ward_page(server, browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.goto(f"{server}/ward?ward={WARD}")
    pg.get_by_role("button", name="Download printable profile").wait_for(timeout=120_000)
    pg.wait_for_timeout(1500)
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "ward-summary.png"), full_page=True)
    yield pg
    context.close()


def summary(pg) -> list[str]:
    return [t.strip() for t in pg.locator(".stMarkdown li").all_inner_texts()]


def test_the_rank_sentence_matches_the_headline_and_the_ranking(ward_page):
    said = summary(ward_page)
    rank = next(s for s in said if s.startswith("It ranks"))
    found = re.match(
        r"It ranks (\d+)\w\w of (\d+) wards .* with ([\d,.]+) per 1,000 \(([\d,]+) records", rank
    )
    assert found, rank
    position, wards, rate, records = found.groups()
    metrics = ward_page.locator("[data-testid='stMetricValue']").all_inner_texts()
    assert metrics[0] == records and metrics[1] == rate  # the headline's figures
    ranking = rows(ward_page, "Demand per 1,000 residents")
    mine = [r for r in ranking if r.get("Rank") == position]
    assert mine and any(r["Demand records"] == records for r in mine)
    assert any(
        float(r["Demand per 1,000 residents"].replace(",", "")) == float(rate.replace(",", "")) for r in mine
    )
    assert int(wards) >= len(ranking) > 0


def test_the_change_sentences_match_the_table_of_changes(ward_page):
    said = summary(ward_page)
    changes = rows(ward_page, "Verdict")
    assert changes, "no table of changes"
    called = [s for s in said if " rose: " in s or " fell: " in s]
    if not called:
        assert any(s.startswith("Nothing rose or fell") for s in said)
        assert changes[0]["Verdict"] not in ("rising", "falling")  # calls come first
        return
    for sentence in called:
        what, rest = re.split(r" (?:rose|fell): ", sentence, maxsplit=1)
        now, before = re.findall(r"([\d,]+|fewer than 5) (?:records )?in ", rest)[:2]
        match = [r for r in changes if r["What"] == what]
        assert match and match[0]["Records"] == now and match[0]["Year before"] == before, sentence
        assert match[0]["Verdict"] in ("rising", "falling")


def test_the_category_and_area_sentences_match_their_tables(ward_page):
    said = summary(ward_page)
    for sentence in (s for s in said if " is more common here than across the city" in s):
        category = sentence.split(" is more common here")[0]
        here, city, times = re.search(
            r": (\d+ %|under 1 %) of .* against (\d+ %|under 1 %) across the city \(([\d.]+) times", sentence
        ).groups()
        table = [r for r in rows(ward_page, "Times as common") if r["Category"] == category]
        assert table and table[0]["Share here"] == here and table[0]["Share across the city"] == city
        assert float(table[0]["Times as common"]) == float(times)
    areas = next(s for s in said if "area of concentrated demand" in s or "areas of concentrated demand" in s)
    if areas.startswith("It has no area"):
        return
    count = int(re.match(r"It has (\d+) area", areas).group(1))
    shown = rows(ward_page, "Records in the area")
    assert len(shown) == count
    assert all(r["Area"] in areas for r in shown[:4])


def test_the_printable_profile_renders_offline_with_its_map(ward_page, browser):  # noqa: F811
    from PIL import Image

    with ward_page.expect_download() as download:
        ward_page.get_by_role("button", name="Download printable profile").click()
    saved = ARTIFACTS / f"ward-profile-{WARD}.html"
    download.value.save_as(str(saved))
    text = saved.read_text()
    assert "<script" not in text.lower()
    for sentence in summary(ward_page):  # the page's summary, word for word
        assert html.escape(sentence) in text

    context = browser.new_context(viewport={"width": 794, "height": 1123}, offline=True)  # A4 at 96 dpi
    printed = context.new_page()
    printed.goto(saved.as_uri())
    printed.emulate_media(media="print")
    printed.screenshot(path=str(ARTIFACTS / "ward-profile-print-page1.png"))  # the first A4 page
    printed.pdf(path=str(ARTIFACTS / f"ward-profile-{WARD}.pdf"), format="A4")
    drawn = printed.locator("#ward-map")
    drawn.scroll_into_view_if_needed()
    pixels = np.asarray(Image.open(io.BytesIO(drawn.screenshot())).convert("RGB")).astype(int)
    background = np.array([0xF4, 0xF4, 0xF0])
    ink = (np.abs(pixels - background).sum(axis=2) > 30) & (pixels.sum(axis=2) < 740)  # not paper, not white
    assert ink.mean() > 0.05, f"the map is empty ({ink.mean():.1%} drawn)"
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 160) & (pixels[..., 2] < 160)
    assert red.sum() > 200, "no hotspot area is drawn"
    assert printed.locator("#trend-chart polyline").count() > 0
    context.close()
