"""The active-learning benchmark's figures and its input checks (pure parts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
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


def test_an_arm_stops_only_once_every_figure_is_settled() -> None:
    rising = [(20, 0.5, None), (40, 0.9, None), (60, 0.95, None)]
    assert not B.settled(rising[:2], past=40, target=0.9)  # at the target once: not confirmed yet
    assert B.settled(rising, past=40, target=0.9)
    assert not B.settled(rising, past=80, target=0.9)  # the budget (or 10 % of the pool) is still ahead
    dip = [(20, 0.95, None), (40, 0.5, None), (60, 0.95, None)]
    assert not B.settled(dip, past=20, target=0.9)  # one lucky batch is not enough
    # Stopping early changes no figure: the same figures as the whole curve.
    whole = rising + [(80, 0.97, 0.5), (100, 0.99, 0.6)]
    cut = next(whole[: i + 1] for i in range(len(whole)) if B.settled(whole[: i + 1], past=40, target=0.9))
    a = B.figures(cut, budget=40, batch=20, target=0.9, ten_pct=40)
    assert a == B.figures(whole, budget=40, batch=20, target=0.9, ten_pct=40)


def test_unreached_random_order_gives_a_lower_bound_and_ceilings_bound_the_auc_ratio() -> None:
    def arm(auc: list[float], l98: list[int | None], horizon: int) -> dict:
        return {
            "auc": auc,
            "f1_at_budget": auc,
            "labels_to_98": l98,
            "fail_recall_at_10pct": [None] * len(auc),
            "curves": [[[horizon, 0.5, None]] for _ in auc],
        }

    arms = {a: arm([0.8, 0.8, 0.8], [200, 200, 200], 200) for a in B.ARMS}
    arms["app"] = arm([0.9, 0.9, 0.9], [100, 120, None], 400)
    arms["random"] = arm([0.8, 0.8, 0.8], [None, 300, None], 1000)
    out = B._summary(arms, [0.96, 0.92, 0.94])
    assert out["ratios"]["labels_to_98_random_over_app"] is None  # random's median is beyond the horizon
    # Per seed at least [1000, 300, 1000] labels for random order, median 1000, over the app's 120.
    assert out["ratios"]["labels_to_98_random_over_app_at_least"] == pytest.approx(1000 / 120, abs=1e-3)
    assert out["ceilings"] == {"auc_full_pool_over_random": 1.175, "auc_perfect_over_random": 1.25}


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


# --- which columns each arm learns from ---------------------------------------------------------------------


def test_checklist_rule_follows_its_documented_thresholds() -> None:
    from qa0_label.bench.datasets import checklist_rule

    good = {
        "array": "12m",
        "n_antennas": 43,
        "exec_fraction": 1.0,
        "flagged_fraction": 0.01,
        "flux_jy": 1.0,
        "expected_flux_jy": 1.0,
        "phase_rms_deg": 5.0,
        "elevation_deg": 60.0,
    }
    rows = [
        good,
        {**good, "elevation_deg": 20.0},  # one warning
        {**good, "elevation_deg": 20.0, "flagged_fraction": 0.1},  # two warnings: two strikes
        {**good, "exec_fraction": 0.4},  # one failure
        {**good, "array": "7m", "n_antennas": 8},  # 8 of 7 m's nominal 10 is fine ...
        {**good, "n_antennas": 30},  # ... 30 of 12 m's 43 is below 75 %
        {**good, "flux_jy": 1.35},  # |ln 1.35| = 0.30 > 0.25
        {**good, "phase_rms_deg": 70.0, "expected_flux_jy": None},  # a missing value passes its check
    ]
    values = checklist_rule(pd.DataFrame(rows)).tolist()
    assert values == ["Pass", "SemiPass", "Fail", "Fail", "Pass", "SemiPass", "SemiPass", "Fail"]


def test_qa0_sim_rule_labels_the_simulated_ebs_by_the_checklist_not_the_reference(tmp_path: Path) -> None:
    from qa0_label.bench.datasets import checklist_rule, own_columns, simulate_table
    from qa0_label.store import db
    from qa0_label.store.models import ExecutionBlock

    engine = db.get_engine(f"sqlite:///{tmp_path / 'sim.sqlite'}")
    ids, reference = simulate_table(engine, n=300, seed=7)
    ids_rule, rule = simulate_table(db.get_engine(f"sqlite:///{tmp_path / 'rule.sqlite'}"), n=300, seed=7, rule=True)
    assert ids.tolist() == ids_rule.tolist() and (rule != reference).any()
    ebs = pd.read_sql_table(ExecutionBlock.__tablename__, engine).set_index("id").reindex(ids)
    assert rule.tolist() == checklist_rule(ebs).tolist()
    # Plain modAL on the simulated EBs: the EB row's numeric fields only (no detail aggregates, derived or text).
    X, columns = own_columns(engine, ids)
    assert {"n_antennas", "pwv_mm", "tsys_median_k", "flux_jy", "exec_fraction"} <= set(columns)
    assert not {"dead_antennas", "tsys_over_expected", "source", "array", "uid"} & set(columns)
    assert X.shape == (300, len(columns))
    assert X[:, columns.index("n_antennas")].tolist() == ebs["n_antennas"].astype(float).tolist()


def test_modal_learns_from_the_tables_own_columns_and_modal_same_features_from_the_apps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    n = 100
    feats = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    y = np.where(feats["a"] > 0.5, "Fail", np.where(feats["b"] > 0, "SemiPass", "Pass")).astype(object)
    table = B.Table("csv:small.csv", feats, y)
    seen: dict[str, np.ndarray] = {}
    real = B._modal_arm

    def spy(r: object, X: np.ndarray, seed: int, horizon: int, batch: int, stop: B.Stop) -> list:
        seen["modal" if "modal" not in seen else "modal_same_features"] = X
        seen.setdefault("app", getattr(r, "X"))
        return real(r, X, seed, horizon, batch, stop)  # type: ignore[arg-type]

    monkeypatch.setattr(B, "_modal_arm", spy)
    out = B.run_benchmark(table=table, seeds=1, budget=20, horizon=40)
    assert set(out["arms"]) == {"app", "random", "modal", "modal_same_features"}
    # modal: exactly the table's numeric columns (imported as extra_x_ columns), values unchanged.
    assert out["modal_columns"] == ["extra_x_a", "extra_x_b", "extra_x_c"]
    assert np.allclose(seen["modal"], feats.to_numpy())
    # modal_same_features: the app's matrix (build_features: the fixed domain columns plus the extra ones).
    assert seen["modal_same_features"] is seen["app"] and seen["app"].shape[1] > 3
    ratios = out["ratios"]
    med = out["medians"]
    assert ratios["auc_app_over_modal_same_features"] == pytest.approx(
        med["app"]["auc"] / med["modal_same_features"]["auc"], abs=1e-3
    )
