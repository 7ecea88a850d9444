"""The printable ward profile: one self-contained page that prints on A4 without a script or
a network, carrying the summary, a map of the ward with its hotspot areas, the trend with the
compared years marked and the ranking of every ward, under plain headers; and the command
line that writes it (and a PDF through the machine's Chromium)."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_briefing import areas_frame, tiny_city

from app import cli, profile
from app.briefing import period_words
from app.filters import Filter
from app.warehouse import connect

ANALYST_HEADERS = ("h3_cell", "p_fdr", "hot_demand_agencies", "intervention_agencies")


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    return tiny_city(tmp_path_factory.mktemp("print"))


@pytest.fixture(scope="module")
def west(city) -> profile.WardProfile:
    with connect(city, read_only=True) as con:
        return profile.build(con, Filter(), "W1", res=8)


@pytest.fixture(scope="module")
def page(west) -> str:
    return profile.to_html(west)


def headers(page: str) -> list[str]:
    return re.findall(r"<th[^>]*>(.*?)</th>", page)


def test_the_page_has_every_section_and_no_script(page):
    for section in ("summary", "headline", "map", "trend", "ranking"):
        assert f"id='{section}'" in page or f'id="{section}"' in page, section
    assert "<script" not in page.lower()
    assert "@page{size:A4" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    assert "https://" not in page


def test_headers_are_plain(page):
    found = headers(page)
    assert found, "no table headers"
    for header in found:
        assert header not in ANALYST_HEADERS, header
        assert "_" not in header, header


def test_summary_is_the_briefing_word_for_word(west, page):
    import html

    for sentence in west.briefing.sentences:
        assert f"<li>{html.escape(sentence.text)}</li>" in page
    assert west.briefing.method.split(":")[0] in page


def test_the_map_draws_the_ward_and_its_areas_named(west):
    areas = pd.DataFrame(
        {
            "name": ["Old Market"],
            "cells": [[int(c) for c in _cells_in_west(3)]],
        }
    )
    svg = profile.ward_map_svg(west.ward_geojson, areas)
    assert svg.startswith("<svg id='ward-map'")
    assert svg.count("<path") == 2  # the ward and one area
    assert ">Old Market</text>" in svg
    coords = [float(v) for v in re.findall(r"[ML](-?[\d.]+),", svg)]
    assert coords and min(coords) >= 0 and max(coords) <= 640  # inside the drawing


def _cells_in_west(n: int) -> list[int]:
    import h3

    centre = h3.latlng_to_cell(51.5, -0.15, 8)
    return [h3.str_to_int(c) for c in list(h3.grid_disk(centre, 1))[:n]]


def test_the_area_table_speaks_plainly_and_protects_its_figures():
    frame = areas_frame().assign(
        wards=["West", "West, East", "West", "East"],
        records=[120.0, float("nan"), 10.0, 40.0],
        records_suppressed=[False, True, False, False],
        trend=["rising", "steady", "steady", "steady"],
    )
    table = profile.area_table(frame)
    assert list(table.columns) == ["Area", "Wards", "Cells", "Records in the area", "Trend", "Interventions"]
    assert table["Records in the area"].tolist() == ["120", "fewer than 5", "10", "40"]


def test_the_trend_marks_both_compared_years(west):
    windows = profile.common_windows(west.briefing.windows)
    assert windows is None  # the tiny city's datasets end at different dates
    calls = west.briefing.windows.set_index("id").loc["calls"]
    svg = profile.trend_svg(west.trend, (calls["current"], calls["previous"]))
    assert svg.count("fill='#fdd0a2'") == 1 and svg.count("fill='#fee6ce'") == 1
    assert "<polyline" in svg and "stroke-dasharray" in svg  # demand solid, patrols dashed


def test_datasets_ending_at_different_dates_each_have_their_years_shaded_and_named(west, page):
    """The tiny city's files end at different dates: each compares its own last year, and the
    chart shades each pair, the note saying whose years they are."""
    windows = west.briefing.windows
    used = windows[windows["reason"] == ""]
    groups = profile.window_groups(windows)
    assert len(groups) == len({(r.current, r.previous) for r in used.itertuples()}) > 1
    assert sorted(t for _, _, titles in groups for t in titles) == sorted(used["title"])
    assert page.count("fill='#fdd0a2'") == page.count("fill='#fee6ce'") == len(groups)
    note = profile.windows_note(groups)
    for current, previous, titles in groups:
        said = f"{', '.join(titles)}: {period_words(*current)} against {period_words(*previous)}"
        assert said in note and html.escape(said) in page


def test_the_ranking_lists_every_ward_and_marks_this_one(west, page):
    table = profile.ranking_table(west.briefing.ranking)
    assert set(table["ward_code"]) == {"W1", "E1"}
    assert re.search(r"<tr class='here'><td>\d</td><td>West</td>", page)


def test_the_json_carries_the_summary_and_the_ranking(west):
    data = json.loads(profile.to_json(west))
    assert [s["text"] for s in data["summary"]] == [s.text for s in west.briefing.sentences]
    assert {r["Ward"] for r in data["ranking"]} == {"West", "East"}


def test_the_command_line_writes_the_page(city, tmp_path, capsys):
    out = tmp_path / "west.html"
    assert cli.main(["profile", "--ward", "W1", "--db", str(city), "--out", str(out)]) == 0
    text = out.read_text()
    assert "<h1>West" in text and "<script" not in text
    assert cli.main(["profile", "--ward", "NOPE", "--db", str(city), "--out", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no ward has the code 'NOPE'"]
    assert cli.main(["profile", "--ward", "W1", "--db", str(city)]) == 2


@pytest.mark.slow
@pytest.mark.e2e
def test_the_command_line_prints_an_a4_pdf(city, tmp_path):
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed")
    out = tmp_path / "west.pdf"
    assert cli.main(["profile", "--ward", "W1", "--db", str(city), "--pdf", str(out)]) == 0
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert box and abs(float(box.group(1)) - 595) < 2 and abs(float(box.group(2)) - 842) < 2  # A4
