"""Pure parts of auto-QA0: the Altair builders (via to_dict) and the sentences explanations use."""

from __future__ import annotations

import pandas as pd

from qa0_label.automation import charts, explain


def test_curve_chart_marks_alpha_and_has_both_measures() -> None:
    curve = [
        {"alpha": 0.01, "coverage": 0.0, "check_error": None},
        {"alpha": 0.05, "coverage": 0.4, "check_error": 0.03},
        {"alpha": 0.1, "coverage": 0.7, "check_error": 0.08},
    ]
    frame = charts.curve_frame(curve)
    assert set(frame["measure"]) == {"share of pool auto-decided", "held-out error of auto-decisions"}
    assert len(frame) == 5  # no error point where nothing was decided
    spec = charts.coverage_curve_chart(frame, 0.05).to_dict()
    layers = spec["layer"]
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers]
    assert "rule" in marks and "line" in marks
    rule_data = [d for k, d in spec["datasets"].items() if any("label" in row for row in d)]
    assert rule_data and rule_data[0][0]["alpha"] == 0.05 and "0.05" in rule_data[0][0]["label"]


def test_relevance_chart_colours_by_direction() -> None:
    frame = pd.DataFrame(
        [
            {
                "feature": "pwv_over_limit",
                "label": "PWV vs the band's limit",
                "importance": 0.9,
                "direction": "higher is worse",
            },
            {"feature": "elevation_deg", "label": "elevation", "importance": 0.4, "direction": "higher is better"},
        ]
    )
    spec = charts.relevance_chart(frame).to_dict()
    assert spec["encoding"]["color"]["field"] == "direction"
    assert spec["encoding"]["y"]["sort"] == "-x"


def test_sentences_speak_the_aod_language() -> None:
    assert explain.describe("pwv_over_limit", 1.93, {"band": 7}) == "PWV 1.9x the Band 7 limit"
    assert explain.describe("tsys_outlier_antennas", 3.0) == "3 antennas with Tsys > 1.5x median"
    assert explain.describe("elevation_deg", 23.4) == "elevation 23°"
    assert explain.describe("dead_antennas", float("nan")) == "dead antennas: not measured"
    assert explain.describe("extra_wind_speed", 12.5) == "extra_wind_speed = 12.5"


def test_explained_output_follows_the_most_probable_value() -> None:
    import numpy as np

    p = np.array([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.3, 0.6, 0.1]])
    assert explain.target_for(p).tolist() == ["not_pass", "fail", "not_pass"]
