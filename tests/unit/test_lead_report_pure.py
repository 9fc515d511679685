"""The pure helpers of lead_report: kappa from a confusion matrix, stored-metric parsing, report reshaping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from qa0_label.lead import agreement
from qa0_label.lead import report as lead_report


def _expand(matrix: list[list[int]]) -> tuple[list[int], list[int]]:
    truth, pred = [], []
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            truth += [i] * count
            pred += [j] * count
    return truth, pred


@pytest.mark.parametrize(
    "matrix", [[[8, 1, 1], [2, 3, 1], [1, 0, 3]], [[5, 0, 0], [0, 2, 0], [0, 0, 1]], [[0, 4, 0], [3, 0, 0], [0, 0, 0]]]
)
def test_kappa_from_confusion_matches_sklearn(matrix: list[list[int]]) -> None:
    truth, pred = _expand(matrix)
    assert lead_report.kappa_from_confusion(matrix) == pytest.approx(cohen_kappa_score(truth, pred))


def test_kappa_from_confusion_undefined_cases() -> None:
    assert lead_report.kappa_from_confusion(np.zeros((3, 3))) is None
    assert lead_report.kappa_from_confusion([[7, 0, 0], [0, 0, 0], [0, 0, 0]]) is None  # one class only: 0/0
    with pytest.raises(ValueError, match="square"):
        lead_report.kappa_from_confusion([[1, 2, 3]])


def test_oof_predictions_shapes() -> None:
    as_map = lead_report.oof_predictions({"oof_predictions": {"12": "pass", "7": "FAIL", "x": "Pass", "9": "maybe"}})
    assert as_map is not None and as_map.to_dict() == {12: "Pass", 7: "Fail"}
    as_lists = lead_report.oof_predictions({"oof_predictions": {"eb_id": [3, 4], "predicted": ["SemiPass", "Pass"]}})
    assert as_lists is not None and as_lists.to_dict() == {3: "SemiPass", 4: "Pass"}
    assert lead_report.oof_predictions({"oof_predictions": {"eb_id": [3], "predicted": []}}) is None
    assert lead_report.oof_predictions({"macro_f1": 0.5}) is None
    assert lead_report.oof_predictions(None) is None


def test_run_agreement_reorders_a_confusion_matrix_stored_in_another_class_order() -> None:
    ordered = [[8, 1, 1], [2, 3, 1], [1, 0, 3]]  # Pass, SemiPass, Fail
    names = ["Fail", "Pass", "SemiPass"]
    perm = [2, 0, 1]
    shuffled = [[ordered[perm[i]][perm[j]] for j in range(3)] for i in range(3)]
    a = lead_report.run_agreement({"confusion_matrix": ordered})
    b = lead_report.run_agreement({"confusion_matrix": {"labels": names, "matrix": shuffled}})
    assert a["kappa"] == pytest.approx(b["kappa"])
    assert a["per_class_recall"] == pytest.approx(b["per_class_recall"])
    assert a["per_class_recall"]["Pass"] == pytest.approx(0.8)
    empty = lead_report.run_agreement({})
    assert empty["kappa"] is None and empty["n"] == 0 and set(empty["per_class_recall"].values()) == {None}


def test_summary_and_pairs_keep_undefined_as_nan() -> None:
    labels = pd.DataFrame(
        {
            "eb_id": [1, 1, 2, 2, 3, 3, 4, 4],
            "labeler": ["a", "b", "a", "b", "a", "c", "a", "c"],
            "value": ["Pass", "Fail", "Pass", "Pass", "Fail", "Fail", "Fail", "Fail"],
        }
    )
    report = agreement.agreement_report(labels, n_boot=50)
    pairs = lead_report.kappa_pairs(report)
    assert pairs[["a", "b"]].values.tolist() == [["a", "b"], ["a", "c"]]
    assert not np.isnan(pairs.loc[0, "kappa"]) and np.isnan(pairs.loc[1, "kappa"]), "a/c agree on one value: 0/0"
    assert pairs.loc[1, "percent_agreement"] == pytest.approx(1.0)
    table = lead_report.summary_table(report).set_index("statistic")
    assert table.loc["Fleiss kappa", "value"] == pytest.approx(report["fleiss_kappa"])
    ci = report["percent_agreement_ci"]
    if ci is None:
        assert np.isnan(table.loc["Percent agreement", "low"])
    else:
        assert table.loc["Percent agreement", "low"] == pytest.approx(ci[0])


def test_alpha_trend_frame_puts_the_ordinal_interval_in_the_band() -> None:
    trend = pd.DataFrame(
        {
            "week": pd.to_datetime(["2024-05-06", "2024-05-13"], utc=True),
            "n_items": [4, 6],
            "alpha_nominal": [0.5, 0.6],
            "alpha_ordinal": [0.7, 0.8],
            "low": [0.1, 0.2],
            "high": [0.9, 0.95],
            "low_ordinal": [0.3, 0.4],
            "high_ordinal": [0.97, 0.99],
        }
    )
    out = lead_report.alpha_trend_frame(trend)
    assert out["low"].tolist() == [0.3, 0.4] and out["high"].tolist() == [0.97, 0.99]
    assert out["n"].tolist() == [4, 6]
    assert lead_report.alpha_trend_frame(pd.DataFrame()).empty
