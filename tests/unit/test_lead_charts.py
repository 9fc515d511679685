"""lead_charts builders through chart.to_dict(): data, colours, axis domain, empty input, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from qa0_label.lead import charts as lead_charts
from qa0_label.review import chart_style, charts


def _units(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("layer", [spec])


def _rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    datasets = spec.get("datasets", {})
    return [row for rows in datasets.values() for row in rows]


def _history(**extra: Any) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "version": [1, 2, 3],
            "n_labels": [40, 80, 160],
            "kappa": [0.31, 0.45, 0.58],
            "recall_pass": [0.9, 0.92, 0.95],
            "recall_semipass": [0.2, np.nan, 0.41],
            "recall_fail": [0.5, 0.6, 0.7],
        }
    )
    return frame.assign(**extra)


def test_one_line_per_statistic_in_its_colour() -> None:
    spec = lead_charts.model_agreement_chart(_history()).to_dict()
    marks = [u["mark"]["type"] if isinstance(u["mark"], dict) else u["mark"] for u in _units(spec)]
    assert marks == ["line", "point"]
    color = _units(spec)[0]["encoding"]["color"]["scale"]
    assert color["domain"] == ["kappa vs consensus", "Pass recall", "SemiPass recall", "Fail recall"]
    assert color["range"][1:] == [charts.QA0_COLORS["Pass"], charts.QA0_COLORS["SemiPass"], charts.QA0_COLORS["Fail"]]
    rows = _rows(spec)
    assert len(rows) == 11, "12 values minus the one NaN"
    assert {r["series"] for r in rows if r["version"] == 2} == {"kappa vs consensus", "Pass recall", "Fail recall"}
    tips = {t["field"] for t in _units(spec)[1]["encoding"]["tooltip"]}
    assert tips == {"version", "n_labels", "series", "value"}
    assert _units(spec)[0]["encoding"]["y"]["scale"]["domain"] == [0.0, 1.0]


def test_negative_kappa_extends_the_axis() -> None:
    spec = lead_charts.model_agreement_chart(_history(kappa=[-0.2, 0.1, 0.3])).to_dict()
    assert _units(spec)[0]["encoding"]["y"]["scale"]["domain"] == [pytest.approx(-0.2), 1.0]


def test_subset_of_columns_and_empty_input() -> None:
    spec = lead_charts.model_agreement_chart(_history()[["version", "n_labels", "kappa"]]).to_dict()
    assert {r["series"] for r in _rows(spec)} == {"kappa vs consensus"}
    for empty in (pd.DataFrame(), None, _history(kappa=np.nan)[["version", "n_labels", "kappa"]]):
        spec = lead_charts.model_agreement_chart(empty).to_dict()  # type: ignore[arg-type]
        assert [r.get("message") for r in _rows(spec)] == [chart_style.NO_DATA_TEXT]


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="n_labels"):
        lead_charts.model_agreement_chart(pd.DataFrame({"version": [1], "kappa": [0.5]}))
    with pytest.raises(ValueError, match="one of kappa"):
        lead_charts.model_agreement_chart(pd.DataFrame({"version": [1], "n_labels": [3]}))
