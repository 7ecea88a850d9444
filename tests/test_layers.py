"""Map layer builders as pure functions: aggregate in, pydeck layers and legend out."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

import layers
from layers.builders import (
    CHANGE,
    CLASS_COLORS,
    NO_CHANGE_FIGURE,
    NO_PREVIOUS,
    NO_RATE,
    PATTERN_COLORS,
    PURPLES,
    VIRIDIS,
    sequential,
)


def _square(x: float) -> str:
    ring = [[x, 0.0], [x + 1, 0.0], [x + 1, 1.0], [x, 1.0], [x, 0.0]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


@pytest.fixture
def wards() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ward_code": ["E05000001", "E05000002", "E05000003"],
            "ward_name": ["Abbey", "Brook", "Castle"],
            "count": [120.0, 3.0, 40.0],
            "suppressed": [False, True, False],
            "rate_per_1000": [12.0, 0.3, 4.0],
            "change_pct": [30.0, -2.0, -40.0],
            "geojson": [_square(0), _square(1), _square(2)],
        }
    )


@pytest.fixture
def shapes(wards) -> pd.DataFrame:
    frame = wards[["ward_code", "ward_name", "geojson"]].copy()
    frame["label_lng"], frame["label_lat"] = [0.5, 1.5, 2.5], [0.5, 0.5, 0.5]
    frame["label_m"] = 5000.0
    return frame


def _tips(built: layers.Built, layer_id: str) -> dict[str, str]:
    layer = next(layer for layer in built.layers if layer.id == layer_id)
    return {f["properties"]["ward_code"]: f["properties"]["tip"] for f in layer.data["features"]}


def test_ward_boundaries_are_drawn_once_when_the_outlines_layer_is_on(wards, shapes):
    choropleth = layers.build("wards", wards)
    outlines = layers.build("outlines", shapes)
    assert [layer.id for layer in layers.stack([choropleth])] == ["wards", "ward-lines"]
    both = [layer.id for layer in layers.stack([choropleth, outlines])]
    assert both == ["wards", "outlines", "ward-names"]
    # The order the user chose is kept either way round.
    assert [layer.id for layer in layers.stack([outlines, choropleth])] == ["outlines", "ward-names", "wards"]


def test_a_suppressed_ward_shows_no_count_and_no_rate(wards):
    tips = _tips(layers.build("wards", wards, metric="rate_per_1000"), "wards")
    assert "Records: <5" in tips["E05000002"] and "Rate" not in tips["E05000002"]
    assert "Records: 120" in tips["E05000001"] and "Rate per 1,000: 12.0" in tips["E05000001"]


def test_change_bins_colour_wards_by_direction(wards):
    built = layers.build("wards", wards, metric="change_pct")
    layer = next(layer for layer in built.layers if layer.id == "wards")
    features = layer.data["features"]
    colors = {f["properties"]["ward_code"]: tuple(f["properties"]["color"][:3]) for f in features}
    assert colors["E05000001"] == CHANGE["up 25 % or more"]
    assert colors["E05000002"] == CHANGE["within 5 %"]
    assert colors["E05000003"] == CHANGE["down 25 % or more"]
    assert built.legend[0].label == "down 25 % or more"


def test_sequential_classes_rise_with_the_value():
    values = pd.Series(np.arange(1, 101, dtype=float))
    colors, legend = sequential(values)
    ranks = [VIRIDIS.index(c) for c in colors]
    assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] == len(VIRIDIS) - 1
    assert len(legend) == len(VIRIDIS)


def test_sequential_with_no_positive_value_has_one_class():
    colors, legend = sequential(pd.Series([0.0, np.nan, 0.0]))
    assert colors == [VIRIDIS[0]] * 3 and [item.label for item in legend] == ["0"]


def test_an_unknown_layer_name_is_refused():
    with pytest.raises(KeyError, match="no layer named"):
        layers.build("nonsense", pd.DataFrame())


def _colors(built: layers.Built, layer_id: str = "wards") -> dict[str, tuple]:
    layer = next(layer for layer in built.layers if layer.id == layer_id)
    return {f["properties"]["ward_code"]: tuple(f["properties"]["color"][:3]) for f in layer.data["features"]}


def test_change_without_a_previous_period_is_its_own_grey_class_not_the_top_one(wards):
    """Before, a missing change fell into the last class of np.select: every ward read "up 25 %
    or more" when there was nothing to compare with."""
    frame = wards.assign(
        change_pct=np.nan,
        previous_start=pd.NaT,
        previous_end=pd.NaT,
        comparison="no previous period: the period holds the first month of data",
    )
    built = layers.build("wards", frame, metric="change_pct")
    assert set(_colors(built).values()) == {NO_PREVIOUS.color}
    assert [item.label for item in built.legend] == ["No previous period"]
    assert all("Change: no previous period" in tip for tip in _tips(built, "wards").values())
    assert built.note == "No previous period: the period holds the first month of data."


def test_change_is_diverging_around_zero_and_states_the_comparison(wards):
    sentence = "Mar 2024 to Feb 2025 against Mar 2023 to Feb 2024"
    frame = wards.assign(
        change_pct=[30.0, np.nan, -40.0],
        previous_start=pd.Timestamp("2023-03-01"),
        comparison=sentence,
    )
    built = layers.build("wards", frame, metric="change_pct")
    colors = _colors(built)
    assert (
        colors["E05000001"] == CHANGE["up 25 % or more"]
        and colors["E05000003"] == CHANGE["down 25 % or more"]
    )
    # A ward whose previous count is zero or suppressed has no figure, not the top class.
    assert colors["E05000002"] == NO_CHANGE_FIGURE.color
    assert "Change: no figure" in _tips(built, "wards")["E05000002"]
    assert built.note == f"Change compares {sentence}."
    labels = [item.label for item in built.legend]
    assert labels[:5] == list(CHANGE) and labels[2] == "within 5 %"  # centred on 0
    assert "No previous period" not in labels


def test_a_ward_without_population_has_no_rate_and_is_not_drawn_as_zero(wards):
    frame = wards.assign(population=[10_000.0, 8_000.0, np.nan], suppressed=False)
    frame.loc[2, "rate_per_1000"] = np.nan
    built = layers.build("wards", frame, metric="rate_per_1000")
    colors = _colors(built)
    assert colors["E05000003"] == NO_RATE.color
    assert colors["E05000001"] in PURPLES and colors["E05000002"] in PURPLES
    assert "Rate per 1,000: n/a" in _tips(built, "wards")["E05000003"]
    assert built.legend[-1] == NO_RATE
    assert built.legend[0].label.startswith("0.3 –")  # the lowest real rate, not a zero


def _cells(n: int) -> list[str]:
    import h3

    return sorted(h3.grid_disk(h3.latlng_to_cell(52.35, -0.9, 9), 3))[:n]


def _every_legend(wards: pd.DataFrame, shapes: pd.DataFrame) -> dict[str, list[layers.Built]]:
    """Every layer built so that its legend shows every class it can have."""
    cells = _cells(len(PATTERN_COLORS))
    n = len(cells)
    counts = pd.DataFrame({"h3_cell": cells, "count": np.arange(1.0, n + 1), "suppressed": False})
    gaps = wards.assign(
        population=[1.0, 1.0, np.nan], change_pct=[30.0, np.nan, 1.0], previous_start=[1, 1, None]
    )
    classes = pd.DataFrame(
        {
            "h3_cell": cells[:5],
            "class": list(CLASS_COLORS),
            "hot_demand_agencies": "A",
            "intervention_agencies": "B",
            "interventions_considered": "Interventions considered: Patrols (B).",
        }
    )
    none_selected = classes.assign(
        **{
            "class": "no intervention data selected",
            "interventions_considered": "No intervention data selected.",
        }
    )
    return {
        "wards": [layers.build("wards", gaps, metric=m) for m in ("count", "rate_per_1000", "change_pct")],
        "density": [layers.build("density", counts)],
        "hotspots": [
            layers.build(
                "hotspots",
                counts.assign(bin=[3, 2, 1, -1, -2, -3, *[0] * (n - 6)], z=1.0, p_fdr=0.01),
            )
        ],
        "emerging": [
            layers.build(
                "emerging",
                counts.assign(pattern=list(PATTERN_COLORS), hot_steps=1, steps=12, trend_z=0.0),
            )
        ],
        "overlap": [layers.build("overlap", classes), layers.build("overlap", none_selected)],
        "interventions": [layers.build("interventions", counts)],
        "change": [
            layers.build(
                "change",
                pd.DataFrame(
                    {
                        "h3_cell": cells[:7],
                        "count": [100.0, 90.0, 100.0, 110.0, 200.0, 8.0, 9.0],
                        "suppressed": False,
                        "previous_count": [100.0, 100.0, 150.0, 100.0, 100.0, 0.0, np.nan],
                        "previous_suppressed": False,
                        "change_pct": [0.0, -10.0, -33.0, 10.0, 100.0, np.nan, np.nan],
                        "previous_start": [pd.Timestamp("2024-01-01")] * 6 + [pd.NaT],
                    }
                ),
            )
        ],
        "outlines": [layers.build("outlines", shapes)],
    }


def _lab(rgb: tuple[int, int, int]) -> np.ndarray:
    c = np.array(rgb) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    x, y, z = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x / 0.95047, y, z / 1.08883)]
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_no_two_layers_share_a_colour_for_different_meanings(wards, shapes):
    """Any layers can be drawn together: a colour in two legends must mean one thing, and two
    meanings must be told apart by eye (CIE76 colour difference of at least 8)."""
    legends = {
        name: {(item.label, tuple(item.color)) for built in builts for item in built.legend}
        for name, builts in _every_legend(wards, shapes).items()
    }
    assert all(legends.values())
    for a, b in itertools.combinations(legends, 2):
        for label_a, color_a in legends[a]:
            for label_b, color_b in legends[b]:
                if color_a == color_b and label_a.split(" (")[0] == label_b.split(" (")[0]:
                    continue  # one meaning in one colour (the change on wards and on cells; no figure)
                assert color_a != color_b, f"{a} '{label_a}' and {b} '{label_b}' share {color_a}"
                distance = np.linalg.norm(_lab(color_a) - _lab(color_b))
                assert distance >= 8, f"{a} '{label_a}' and {b} '{label_b}' look alike ({distance:.1f})"


def test_within_a_layer_every_class_has_its_own_colour(wards, shapes):
    for name, builts in _every_legend(wards, shapes).items():
        for built in builts:
            colors = [tuple(item.color) for item in built.legend]
            assert len(colors) == len(set(colors)), name


def test_the_overlap_legend_names_the_interventions_considered(wards, shapes):
    with_them, without = _every_legend(wards, shapes)["overlap"]
    assert with_them.note == "Interventions considered: Patrols (B)."
    assert "Unserved hotspot" in [item.label for item in with_them.legend]
    assert [item.label for item in without.legend] == ["No intervention data selected"]
    assert without.note.startswith("No intervention data selected")


def _window(cells: list[str], counts: list[float], sharing: str) -> pd.DataFrame:
    return pd.DataFrame({"h3_cell": cells, "count": counts, "sharing": sharing, "suppressed": False})


def _change_tips(built: layers.Built) -> dict[str, str]:
    layer = built.layers[0]
    return {r["h3_cell"]: r["tip"] for r in layer.data}


def test_hex_change_of_an_open_dataset_counts_a_missing_cell_as_zero():
    from layers.builders import hex_change_frame

    a, b, c = _cells(3)
    now = _window([a, b], [130.0, 50.0], "open")
    before = _window([a, c], [100.0, 40.0], "open")
    frame = hex_change_frame(now, before, "Jan 2025 to Dec 2025 against Jan 2024 to Dec 2024")
    change = dict(zip(frame["h3_cell"], frame["change_pct"], strict=True))
    assert change[a] == pytest.approx(30.0) and change[c] == pytest.approx(-100.0)
    assert np.isnan(change[b])  # nothing before: no figure, not "up"
    built = layers.build("change", frame)
    colors = {r["h3_cell"]: tuple(r["color"]) for r in built.layers[0].data}
    assert colors[a] == CHANGE["up 25 % or more"] and colors[c] == CHANGE["down 25 % or more"]
    assert colors[b] == NO_CHANGE_FIGURE.color
    tips = _change_tips(built)
    assert tips[a].startswith("Jan 2025 to Dec 2025: 130 records\nJan 2024 to Dec 2024: 100 records")
    assert "Change: +30 %" in tips[a] and "Jan 2025 to Dec 2025: 0 records" in tips[c]
    assert built.note == "Change compares Jan 2025 to Dec 2025 against Jan 2024 to Dec 2024."


def test_hex_change_of_a_protected_dataset_never_reads_a_missing_cell_as_zero():
    """A protected cell missing from one window's listing holds fewer than 5, zero included:
    it reads "<5" and its change has no figure, whichever window it is missing from."""
    from layers.builders import hex_change_frame

    a, b, c = _cells(3)
    frame = hex_change_frame(
        _window([a, b], [30.0, 10.0], "partners"), _window([a, c], [20.0, 15.0], "partners"), "x against y"
    )
    change = dict(zip(frame["h3_cell"], frame["change_pct"], strict=True))
    assert change[a] == pytest.approx(50.0) and np.isnan(change[b]) and np.isnan(change[c])
    tips = _change_tips(layers.build("change", frame))
    assert "x: <5 records" in tips[c] and "y: <5 records" in tips[b]
    assert all(" 0 records" not in t for t in tips.values())


def test_hex_change_without_a_previous_period_is_its_own_class():
    from layers.builders import hex_change_frame

    frame = hex_change_frame(_window(_cells(2), [30.0, 10.0], "open"), None, "no previous period: too short")
    built = layers.build("change", frame)
    colors = {tuple(r["color"]) for r in built.layers[0].data}
    assert colors == {NO_PREVIOUS.color}
    assert [item.label for item in built.legend] == ["No previous period"]
    assert all("Change: no previous period" in t for t in _change_tips(built).values())


def test_simplified_shapes_keep_every_ward_and_stay_within_the_tolerance(wards):
    import shapely

    from layers.view import detail_for_zoom, simplify_for_zoom

    detailed = wards.copy()
    # A ring with a vertex every metre or so, that a city-wide view cannot show.
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    ring = np.c_[-0.9 + 0.01 * np.cos(t), 52.3 + 0.01 * np.sin(t)]
    detailed.loc[0, "geojson"] = json.dumps(
        {"type": "Polygon", "coordinates": [[*ring.tolist(), ring[0].tolist()]]}
    )
    out = simplify_for_zoom(detailed, zoom=11, lat=52.3)
    assert list(out["ward_code"]) == list(wards["ward_code"])
    before, after = (
        shapely.from_geojson(detailed["geojson"].tolist()),
        shapely.from_geojson(out["geojson"].tolist()),
    )
    assert shapely.is_valid(after).all() and (shapely.area(after) > 0).all()
    assert len(out.loc[0, "geojson"]) < len(detailed.loc[0, "geojson"]) / 5
    tolerance, decimals = detail_for_zoom(11, 52.3)
    assert decimals <= 5
    assert shapely.hausdorff_distance(before[0], after[0]) * 111_320 < 2 * tolerance


@pytest.fixture(scope="module")
def demo_map(small_demo_db):
    from app import aggregate, quality
    from app.filters import Filter
    from app.warehouse import connect

    con = connect(small_demo_db[0], read_only=True)
    shapes = quality.ward_shapes(con)
    figures = aggregate.ward_aggregate(con, Filter(), by_dataset=False)
    bounds = quality.study_area(con)["bounds"]
    con.close()
    return shapes, figures, bounds


def test_the_demo_default_map_sends_under_300_kb_and_keeps_every_ward(demo_map):
    """The default view (ward choropleth and outlines) sent 1.34 MB on every rerun: pydeck's
    indented JSON and outlines in full detail."""
    import shapely

    from layers.view import CompactDeck, fit_view, simplify_for_zoom

    shapes, figures, bounds = demo_map
    view = fit_view(bounds)
    simple = simplify_for_zoom(shapes, view.zoom, view.latitude)
    assert set(simple["ward_code"]) == set(shapes["ward_code"])
    geoms = shapely.from_geojson(simple["geojson"].tolist())
    assert shapely.is_valid(geoms).all() and (shapely.area(geoms) > 0).all()
    original = shapely.from_geojson(shapes["geojson"].tolist())
    # Every ward keeps its area to within 2 % and its neighbours: no gap opens between them.
    assert np.allclose(shapely.area(geoms), shapely.area(original), rtol=0.02)
    assert shapely.area(shapely.union_all(geoms)) == pytest.approx(
        shapely.area(shapely.union_all(original)), rel=0.01
    )
    frame = figures.merge(simple[["ward_code", "geojson"]], on="ward_code")
    built = [layers.build("wards", frame), layers.build("outlines", simple)]
    deck = CompactDeck(layers=layers.stack(built), initial_view_state=view)
    sent = len(deck.to_json().encode())
    assert sent < 300_000, sent
    assert json.loads(deck.to_json())["layers"][0]["id"] == "wards"


def test_a_linked_view_is_kept_only_near_the_study_area():
    from layers.view import linked_view

    bounds = (-1.0, 52.0, -0.8, 52.5)
    assert linked_view({}, bounds) is None
    view = linked_view({"lat": "52.3", "lon": "-0.9", "zoom": "14"}, bounds)
    assert (view.latitude, view.longitude, view.zoom) == (52.3, -0.9, 14)
    ignored: list[str] = []
    assert linked_view({"lat": "10", "lon": "20", "zoom": "14"}, bounds, ignored) is None
    assert linked_view({"lat": "north", "lon": "-0.9"}, bounds, ignored) is None
    assert linked_view({"lat": "52.3", "lon": "-0.9", "zoom": "99"}, bounds, ignored).zoom < 20
    assert len(ignored) == 3
    # Not numbers (NaN and infinity included), or a centre given by half, each said as such.
    for half_or_not_numbers in ({"lat": "nan", "lon": "nan"}, {"lat": "inf", "lon": "-0.9"}, {"lat": "52.3"}):
        said: list[str] = []
        assert linked_view(half_or_not_numbers, bounds, said) is None
        assert said and "outside" not in said[0]
    assert "given together" in said[0]


def test_a_hotspot_tooltip_names_its_area_first():
    frame = pd.DataFrame(
        {
            "h3_cell": ["881f1d4811fffff", "881f1d4813fffff", "881f1d4815fffff"],
            "count": [40.0, 30.0, 20.0],
            "suppressed": False,
            "bin": [3, 2, -1],
            "z": [4.0, 2.5, -2.0],
            "p_fdr": [0.001, 0.01, 0.04],
            "area": ["Old Market & the Quay", "", None],
        }
    )
    data = layers.build("hotspots", frame).layers[0].data
    tips = list(data["tip"]) if isinstance(data, pd.DataFrame) else [row["tip"] for row in data]
    assert tips[0].startswith("Old Market & the Quay\nHot spot") and "z = 4.00" in tips[0]
    assert tips[1].startswith("Hot spot") and tips[2].startswith("Cold spot")
