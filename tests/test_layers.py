"""Map layer builders as pure functions: aggregate in, pydeck layers and legend out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import layers
from layers.builders import VIRIDIS, sequential


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
    assert colors["E05000001"] == (178, 24, 43)  # up 25 % or more
    assert colors["E05000002"] == (240, 240, 240)  # within 5 %
    assert colors["E05000003"] == (33, 102, 172)  # down 25 % or more
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
