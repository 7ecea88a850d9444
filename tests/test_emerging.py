"""Emerging-hotspot patterns agree with each place's own records: a z-score that falls only
because another place grew is no fall in demand. Small synthetic grids check the rule; the
full-size demo city checks the planted places."""

from __future__ import annotations

import h3
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from app.disclosure import CELL_KEY_SQL, DEFAULT_RULE
from app.emerging import classify, emerging_hotspots, step_starts, trend_patterns
from app.filters import Filter, validate, where, with_period
from app.grid import kring_weights
from app.h3cells import parent_sql
from app.hotspots import hex_hotspots, ranked_hotspots
from app.overlap import cell_classes
from app.profile import hotspots_in_ward
from app.quality import ward_shapes
from app.stats import mann_kendall

# A synthetic city: the res-8 cells within 8 steps of a centre, 36 monthly steps.
CENTRE = h3.latlng_to_cell(52.36, -0.92, 8)
CELLS = np.array(sorted(h3.str_to_int(c) for c in h3.grid_disk(CENTRE, 8)), dtype=np.uint64)
INDEX = {h3.int_to_str(int(c)): i for i, c in enumerate(CELLS)}
FAR = h3.grid_ring(CENTRE, 6)[0]  # another place, well away from the centre's neighbours
STEPS = 36


def city(place: np.ndarray, elsewhere: np.ndarray | None = None) -> dict:
    """Patterns of a city whose centre (and its ring) adds ``place`` to a steady background of
    10 to 14 records a step, and whose far place adds ``elsewhere``. The background wiggles by a
    few records, as real ones do."""
    wiggle = (np.arange(len(CELLS))[:, None] * 7 + np.arange(STEPS)[None, :] * 3) % 5
    counts = 10.0 + wiggle
    for c in h3.grid_disk(CENTRE, 1):
        counts[INDEX[c]] += place
    if elsewhere is not None:
        for c in h3.grid_disk(FAR, 1):
            counts[INDEX[c]] += elsewhere
    return trend_patterns(counts, kring_weights(CELLS, 1))


def at(found: dict, cell: str) -> dict:
    return {name: values[INDEX[cell]] for name, values in found.items()}


def test_flat_place_whose_z_falls_because_another_grows_is_persistent():
    found = city(np.full(STEPS, 40.0), elsewhere=np.linspace(0, 60, STEPS))
    centre = at(found, CENTRE)
    assert (centre["bins"] > 0).all()  # hot in every month
    assert centre["trend_z"] < 0 and centre["trend_p"] < 0.05  # its z falls ...
    assert centre["count_trend_p"] > 0.05  # ... but its own records do not
    assert centre["pattern"] == "persistent hot spot"
    # ArcGIS's rule, on the z-scores alone, would tell a councillor that demand is falling.
    bins = centre["bins"][None, :]
    z_only = classify(bins > 0, bins < 0, np.array([centre["trend_z"]]), np.array([centre["trend_p"]]))
    assert z_only[0] == "diminishing hot spot"
    assert at(found, FAR)["pattern"] in {"new hot spot", "consecutive hot spot"}


def test_z_that_rises_because_another_place_fades_is_persistent():
    found = city(np.full(STEPS, 40.0), elsewhere=np.linspace(60, 0, STEPS))
    centre = at(found, CENTRE)
    assert centre["trend_z"] > 0 and centre["trend_p"] < 0.05
    assert centre["count_trend_p"] > 0.05
    assert centre["pattern"] == "persistent hot spot"


def test_rising_records_and_rising_z_read_intensifying():
    centre = at(city(np.linspace(40, 90, STEPS)), CENTRE)
    assert centre["count_trend_z"] > 0 and centre["count_trend_p"] < 0.05
    assert centre["pattern"] == "intensifying hot spot"


def test_falling_records_and_falling_z_read_diminishing():
    centre = at(city(np.linspace(90, 40, STEPS)), CENTRE)
    assert centre["count_trend_z"] < 0 and centre["count_trend_p"] < 0.05
    assert centre["pattern"] == "diminishing hot spot"


def test_a_place_that_grows_from_nothing_is_new_or_consecutive():
    rise = np.where(np.arange(STEPS) < 24, 0.0, np.linspace(-40, 60, STEPS))
    centre = at(city(rise), CENTRE)
    assert centre["pattern"] == "consecutive hot spot"
    assert centre["count_trend_z"] > 0 and centre["count_trend_p"] < 0.05


def test_empty_places_have_no_count_trend():
    counts = np.zeros((len(CELLS), STEPS))
    counts[INDEX[CENTRE]] = 40.0
    found = trend_patterns(counts, kring_weights(CELLS, 1))
    empty = np.ones(len(CELLS), dtype=bool)
    empty[INDEX[CENTRE]] = False
    assert (found["count_trend_z"][empty] == 0).all() and (found["count_trend_p"][empty] == 1).all()
    assert at(found, CENTRE)["pattern"] == "persistent hot spot"


def series(text: str) -> tuple[np.ndarray, np.ndarray]:
    """'H' hot, 'C' cold, '.' neither, one letter per step, as one row."""
    return np.array([[c == "H" for c in text]]), np.array([[c == "C" for c in text]])


SIGNIFICANT, FLAT = 0.001, 0.8


@pytest.mark.parametrize(
    "steps, z_trend, count_trend, pattern",
    [
        ("H" * 20, -3, 0, "persistent hot spot"),
        ("H" * 20, 3, 0, "persistent hot spot"),
        ("H" * 20, 3, 3, "intensifying hot spot"),
        ("H" * 20, -3, -3, "diminishing hot spot"),
        ("H" * 20, 0, 3, "persistent hot spot"),  # records rise but the place is no hotter
        ("H" * 20, 3, -3, "persistent hot spot"),  # the two disagree: no direction is claimed
        ("C" * 20, -3, 0, "persistent cold spot"),
        ("C" * 20, -3, -3, "intensifying cold spot"),
        ("C" * 20, 3, 3, "diminishing cold spot"),
        ("C" * 20, 3, 0, "persistent cold spot"),
        ("." * 19 + "H", 0, 0, "new hot spot"),
        ("." * 19 + "H", 0, 3, "new hot spot"),
        ("." * 19 + "H", 0, -3, "no pattern"),  # hot only because the rest of the city fell
        ("." * 14 + "H" * 6, 3, 0, "consecutive hot spot"),
        ("." * 14 + "H" * 6, 3, -3, "no pattern"),
        ("." * 14 + "C" * 6, -3, 3, "no pattern"),
        ("." * 14 + "C" * 6, -3, -3, "consecutive cold spot"),
        ("H" * 19 + ".", -3, 0, "historical hot spot"),
        (".H..H...H.H....H...H", 0, -3, "sporadic hot spot"),
        ("C...H..C..H...C....H", 0, -3, "oscillating hot spot"),
    ],
)
def test_patterns_agree_with_the_records(steps, z_trend, count_trend, pattern):
    hot, cold = series(steps)
    got = classify(
        hot,
        cold,
        np.array([float(z_trend)]),
        np.array([SIGNIFICANT if z_trend else FLAT]),
        np.array([float(count_trend)]),
        np.array([SIGNIFICANT if count_trend else FLAT]),
    )
    assert got[0] == pattern


def test_without_a_count_trend_the_rules_are_arcgis():
    hot, cold = series("H" * 20)
    assert classify(hot, cold, np.array([-3.0]), np.array([SIGNIFICANT]))[0] == "diminishing hot spot"
    hot, cold = series("." * 19 + "H")
    assert classify(hot, cold, np.array([0.0]), np.array([FLAT]))[0] == "new hot spot"


def _reference_ties(row: np.ndarray) -> float:
    _, counts = np.unique(row, return_counts=True)
    t = counts[counts > 1]
    return float((t * (t - 1) * (2 * t + 5)).sum() / 18.0)


@settings(deadline=None, max_examples=60)
@given(arrays(np.int64, st.tuples(st.integers(1, 12), st.integers(3, 30)), elements=st.integers(0, 4)))
def test_mann_kendall_on_tied_counts_matches_the_row_by_row_formula(counts):
    """Counts tie a lot (an empty place is all zeros); the tie correction is taken for all rows
    at once and must equal the textbook one, row by row."""
    y = counts.astype(float)
    n = y.shape[1]
    z, p = mann_kendall(y)
    for row, zi, pi in zip(y, z, p, strict=True):
        s = sum(np.sign(row[j] - row[i]) for i in range(n) for j in range(i + 1, n))
        var = n * (n - 1) * (2 * n + 5) / 18.0 - _reference_ties(row)
        expected = 0.0 if s == 0 or var <= 0 else (s - np.sign(s)) / np.sqrt(var)
        assert zi == pytest.approx(expected, abs=1e-9)
        assert 0 <= pi <= 1


# The full-size demo city: every figure below is computed once for the module.

ALL = Filter()
FLY_TIPPING = Filter(datasets=("council_env",), categories=("Fly-tipping",))
BURGLARY = Filter(datasets=("police_crime",), categories=("Burglary",))
PERSISTENT = ("town_centre", "northgate_estate", "station_quarter")


def planted_cell(planted: dict, spot: str, res: int) -> str:
    s = planted["spots"][spot]
    return h3.latlng_to_cell(s["lat"], s["lon"], res)


@pytest.fixture(scope="module")
def demo_patterns(full_con) -> dict:
    """The emerging-hotspot frames of the demo city, by (filter name, resolution)."""
    filters = {"all": ALL, "fly-tipping": FLY_TIPPING, "burglary": BURGLARY}
    return {
        (name, res): emerging_hotspots(full_con, f, res, "month").set_index("h3_cell")
        for name, f in filters.items()
        for res in (8, 9)
    }


@pytest.mark.slow
@pytest.mark.parametrize("res", [8, 9])
@pytest.mark.parametrize("spot", PERSISTENT)
def test_flat_planted_hotspots_read_persistent(demo_patterns, full_demo, spot, res):
    """Old Market, Northgate and Queens Wharf keep their demand flat while Harbour Mill grows:
    their z-scores may fall, their records do not, so they are persistent, not diminishing."""
    row = demo_patterns[("all", res)].loc[planted_cell(full_demo[2], spot, res)]
    assert row["pattern"] == "persistent hot spot"
    assert row["count_trend_p"] >= 0.05


@pytest.mark.slow
@pytest.mark.parametrize("res", [8, 9])
@pytest.mark.parametrize("name", ["all", "fly-tipping"])
def test_harbour_mill_reads_as_an_emerging_hotspot(demo_patterns, full_demo, name, res):
    row = demo_patterns[(name, res)].loc[planted_cell(full_demo[2], "industrial_estate", res)]
    assert row["pattern"] in {"new hot spot", "consecutive hot spot", "intensifying hot spot"}
    assert row["count_trend_z"] > 0 and row["count_trend_p"] < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("res", [8, 9])
def test_eastgate_burglary_reads_as_fading(demo_patterns, full_demo, res):
    row = demo_patterns[("burglary", res)].loc[planted_cell(full_demo[2], "eastgate_burglary", res)]
    assert row["pattern"] in {"diminishing hot spot", "historical hot spot"}
    assert row["count_trend_z"] < 0 and row["count_trend_p"] < 0.05


@pytest.mark.slow
def test_the_frame_shows_both_trends(demo_patterns):
    frame = demo_patterns[("all", 8)]
    for column in ("trend_z", "trend_p", "count_trend_z", "count_trend_p"):
        assert np.isfinite(frame[column]).all(), column
    assert frame["count_trend_p"].between(0, 1).all()
    # No place may read as intensifying or diminishing against the trend of its own records.
    rising = frame["pattern"].isin(["intensifying hot spot", "diminishing cold spot"])
    falling = frame["pattern"].isin(["diminishing hot spot", "intensifying cold spot"])
    assert (frame.loc[rising, "count_trend_z"] > 0).all() and (frame.loc[falling, "count_trend_z"] < 0).all()
    assert (frame.loc[rising | falling, "count_trend_p"] < 0.05).all()


@pytest.mark.slow
def test_hotspots_page_and_ward_profile_say_persistent(full_con, full_demo, demo_patterns):
    """The hotspot table and the ward profiles read their pattern from the same frame."""
    planted = full_demo[2]
    spots, _ = hex_hotspots(full_con, ALL, 8)
    classes, trend = cell_classes(full_con, ALL, 8), demo_patterns[("all", 8)].reset_index()
    ranked = ranked_hotspots(spots, classes, trend).set_index("h3_cell")
    shapes = ward_shapes(full_con)
    for spot in PERSISTENT:
        cell = planted_cell(planted, spot, 8)
        assert ranked.loc[cell, "pattern"] == "persistent hot spot"
        lat, lng = h3.cell_to_latlng(cell)
        ward = next(
            s.geojson
            for s in shapes.itertuples()
            if shapely.from_geojson(s.geojson).contains(shapely.Point(lng, lat))
        )
        table, _ = hotspots_in_ward(spots, classes, trend, ward)
        assert table.set_index("h3_cell").loc[cell, "pattern"] == "persistent hot spot"


@pytest.mark.slow
def test_count_trend_of_protected_data_uses_released_counts(full_con, full_demo):
    """Early-help referrals are restricted: their count trend is taken on the released monthly
    figures (rounded, perturbed, "<5" as the stand-in), never on the exact ones."""
    f = Filter(datasets=("early_help",))
    cell = planted_cell(full_demo[2], "northgate_estate", 9)
    row = emerging_hotspots(full_con, f, 9, "month").set_index("h3_cell").loc[cell]
    scoped = with_period(full_con, validate(full_con, f))
    sql, params = where(scoped)
    monthly = full_con.execute(
        f"""SELECT date_trunc('month', e.ts)::DATE, count(*), {CELL_KEY_SQL} FROM events e
            WHERE {sql} AND {parent_sql("e.h3", 9)} = $cell GROUP BY 1""",
        {**params, "cell": h3.str_to_int(cell)},
    ).fetchall()
    periods = step_starts(scoped.start, scoped.end, "month")
    exact, keys = np.zeros(len(periods)), np.zeros(len(periods), dtype=np.uint64)
    for month, count, key in monthly:
        i = np.searchsorted(periods, np.datetime64(month, "D"))
        exact[i], keys[i] = count, key
    values, suppressed = DEFAULT_RULE.release(exact, True, keys)
    released_z = mann_kendall(DEFAULT_RULE.stand_in(values, suppressed))[0][0]
    assert row["count_trend_z"] == pytest.approx(released_z)
    assert released_z != pytest.approx(mann_kendall(exact)[0][0])  # the exact figures would differ
