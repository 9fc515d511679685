"""The active-learning benchmark's figures and its input checks (pure parts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa0_label.bench import al as B
from qa0_label.bench.datasets import BenchInputError, csv_table, parse_map, sklearn_table


def test_figures_follow_one_rule_for_every_arm() -> None:
    curve = [(20, 0.5, 0.2), (40, 0.9, 0.6), (60, 0.8, 0.7), (80, 0.95, 0.9), (100, 0.96, 1.0)]
    out = B.figures(curve, budget=80, batch=20, target=0.9, ten_pct=50)
    # Trapezoid area of F1 over 20..80 labels, divided by the 60-label span.
    assert out["auc"] == pytest.approx(((0.5 + 0.9) / 2 + (0.9 + 0.8) / 2 + (0.8 + 0.95) / 2) / 3, abs=1e-4)
    assert out["f1_at_budget"] == 0.95
    # 40 reaches the target but drops out one batch later: 80 is the first that stays.
    assert out["labels_to_98"] == 80
    assert out["fail_recall_at_10pct"] == 0.6  # the last point with at most 50 labels
    never = B.figures(curve, budget=80, batch=20, target=0.99, ten_pct=10)
    assert never["labels_to_98"] is None and never["fail_recall_at_10pct"] is None


def test_medians_count_an_unreached_target_as_beyond_the_horizon() -> None:
    assert B._median([100, None, 60]) == 100
    assert B._median([None, None, 60]) is None
    assert B._ratio(None, 3.0) is None and B._ratio(3.0, 2.0) == 1.5


def test_sklearn_tables_map_their_classes_to_qa0_values() -> None:
    digits = sklearn_table("digits")
    assert set(digits.y) == {"Pass", "SemiPass", "Fail"} and digits.features.shape[1] == 64
    from sklearn.datasets import load_digits

    target = load_digits().target
    assert (digits.y[target <= 3] == "Pass").all() and (digits.y[target >= 7] == "Fail").all()
    assert set(sklearn_table("breast_cancer").y) == {"Pass", "Fail"}
    with pytest.raises(BenchInputError, match="unknown dataset"):
        sklearn_table("iris")


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "archive.csv"
    path.write_text(text)
    return path


def test_csv_table_reads_numeric_columns_and_mapped_labels(tmp_path: Path) -> None:
    path = _csv(tmp_path, "qa0,a,b,note\npass,1,2,x\nFAIL,3,4,y\nsemipass,5,,z\n,7,8,w\n")
    table = csv_table(path, "qa0")
    assert table.y.tolist() == ["Pass", "Fail", "SemiPass"]  # the unlabelled row is left out
    assert list(table.features.columns) == ["a", "b"] and np.isnan(table.features.loc[2, "b"])
    mapped = _csv(tmp_path, "grade,a\ngood,1\nbad,2\n")
    assert csv_table(mapped, "grade", parse_map("good=Pass,bad=fail")).y.tolist() == ["Pass", "Fail"]


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("x,a\nPass,1\nFail,2\n", "qa0", "label column 'qa0' is missing"),
        ("qa0,a\nPass,1\npass,2\n", "qa0", "column 'qa0' holds one value only"),
        ("qa0,a\ngood,1\nFail,2\n", "qa0", "column 'qa0' has values other than Pass/SemiPass/Fail"),
        ("qa0,a\nPass,x\nFail,y\n", "qa0", "no numeric column besides 'qa0'"),
    ],
)
def test_csv_problems_name_the_file_and_the_column(tmp_path: Path, text: str, column: str, message: str) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(BenchInputError) as err:
        csv_table(path, column)
    assert str(path) in str(err.value) and message in str(err.value)


def test_bad_map_and_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchInputError, match="not LABEL=Pass"):
        parse_map("good=Great")
    with pytest.raises(BenchInputError, match="no such file"):
        csv_table(tmp_path / "missing.csv", "qa0")
    with pytest.raises(BenchInputError, match="seeds"):
        B.run_benchmark(dataset="wine", seeds=0)
    with pytest.raises(BenchInputError, match="unknown dataset"):
        B.run_benchmark(dataset="iris", seeds=1)
    with pytest.raises(BenchInputError, match="unknown strategy"):
        B.run_benchmark(dataset="wine", seeds=1, strategy="psychic")


def _part(seeds: list[int], auc_app: list[float]) -> dict:
    arm = {"auc": [], "f1_at_budget": [], "labels_to_98": [], "fail_recall_at_10pct": [], "curves": []}
    arms = {a: {k: list(v) for k, v in arm.items()} for a in B.ARMS}
    for a in B.ARMS:
        arms[a]["auc"] = [0.5] * len(seeds)
        arms[a]["labels_to_98"] = [100] * len(seeds)
    arms["app"]["auc"] = auc_app
    arms["app"]["labels_to_98"] = [20] * len(seeds)
    return {
        "dataset": "wine",
        "budget": 60,
        "seeds": len(seeds),
        "seed_values": seeds,
        "arms": arms,
        "full_pool_f1": [1.0] * len(seeds),
        "app_picks": [{}] * len(seeds),
        "seconds": 1.0,
    }


def test_runs_on_disjoint_seeds_merge_into_one_result() -> None:
    merged = B.merge_results([_part([1, 2], [0.6, 0.7]), _part([3, 4], [0.8, 0.9])])
    assert merged["seeds"] == 4 and merged["seed_values"] == [1, 2, 3, 4]
    assert merged["arms"]["app"]["auc"] == [0.6, 0.7, 0.8, 0.9]
    assert merged["ratios"]["auc_app_over_random"] == pytest.approx(0.75 / 0.5, abs=1e-3)
    assert merged["ratios"]["labels_to_98_random_over_app"] == 5.0
    with pytest.raises(ValueError, match="share seeds"):
        B.merge_results([_part([1, 2], [0.6, 0.7]), _part([2, 3], [0.8, 0.9])])
