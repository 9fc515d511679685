"""Agreement statistics against reference implementations (scikit-learn, statsmodels, krippendorff) and edges."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections import Counter

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix, recall_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from qa0_label.lead import agreement as ag
from qa0_label.store.labels import LabelError, majority_value
from qa0_label.store.models import LABEL_VALUES, ORDINAL

TOL = 1e-9
VALUES = np.array(LABEL_VALUES, dtype=object)
SEEDS = range(12)


def random_labels(
    seed: int,
    *,
    n_items: int = 60,
    n_raters: int = 5,
    min_per_item: int = 1,
    max_per_item: int | None = None,
    noise: float | None = None,
) -> pd.DataFrame:
    """Labels from noisy raters around a hidden truth; each item rated by a random subset of raters."""
    rng = np.random.default_rng(seed)
    max_per_item = n_raters if max_per_item is None else max_per_item
    noise = rng.uniform(0.1, 0.9) if noise is None else noise
    truth = rng.choice(3, size=n_items, p=rng.dirichlet([2, 2, 2]))
    rows = []
    for item in range(n_items):
        k = int(rng.integers(min_per_item, max_per_item + 1))
        for rater in rng.choice(n_raters, size=k, replace=False):
            value = truth[item] if rng.random() > noise else rng.integers(3)
            rows.append((int(item) + 1000, f"aod{rater}", VALUES[value]))
    return pd.DataFrame(rows, columns=["eb_id", "labeler", "value"])


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Labels DataFrame from (eb_id, labeler, value) tuples."""
    return pd.DataFrame(rows, columns=["eb_id", "labeler", "value"])


def wide_multi(labels: pd.DataFrame) -> pd.DataFrame:
    """Item x rater values, items with at least two raters only (the reference's view of the data)."""
    wide = labels.pivot(index="eb_id", columns="labeler", values="value")
    return wide[wide.notna().sum(axis=1) >= 2]


def sk_kappa(a, b) -> float:
    """scikit-learn's kappa, silencing its 'single label' warnings (we compare the NaN ourselves)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(list(a), list(b)))


def same(ours: float | None, ref: float) -> bool:
    """Ours is None exactly where the reference is NaN, else equal to 1e-9."""
    if ours is None:
        return math.isnan(ref)
    return abs(ours - ref) < TOL


# --- Cohen ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_pairwise_cohen_matches_sklearn(seed: int) -> None:
    labels = random_labels(seed, n_raters=int(2 + seed % 5), min_per_item=1 + seed % 2)
    wide = labels.pivot(index="eb_id", columns="labeler", values="value")
    expected_pairs = {
        (a, b) for a, b in itertools.combinations(sorted(wide.columns), 2) if (wide[a].notna() & wide[b].notna()).any()
    }
    pairs = ag.pairwise_cohen(labels)
    assert {(p["a"], p["b"]) for p in pairs} == expected_pairs
    for p in pairs:
        both = wide[[p["a"], p["b"]]].dropna()
        assert p["n"] == len(both)
        assert same(p["kappa"], sk_kappa(both[p["a"]], both[p["b"]]))
        assert p["percent_agreement"] == pytest.approx((both[p["a"]] == both[p["b"]]).mean(), abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_cohen_kappa_matches_sklearn_including_degenerate(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    n_values = 1 + seed % 3  # 1 gives single-value sequences, where kappa is undefined or 0
    a = rng.choice(VALUES[:n_values], size=n)
    b = rng.choice(VALUES[-n_values:], size=n)
    assert same(ag.cohen_kappa(a, b), sk_kappa(a, b))


def test_cohen_kappa_input_handling() -> None:
    assert ag.cohen_kappa([], []) is None
    assert ag.cohen_kappa(["pass", "FAIL"], ["Pass", "Fail"]) == pytest.approx(1.0)
    # A pair with a missing side is dropped, not counted as a disagreement.
    assert ag.cohen_kappa(["Pass", "Fail", None], ["Pass", "Fail", "Pass"]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ag.cohen_kappa(["Pass"], ["Pass", "Fail"])
    with pytest.raises(LabelError):
        ag.cohen_kappa(["Pass"], ["Maybe"])


# --- Fleiss ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_matches_statsmodels_with_equal_raters(seed: int) -> None:
    k = 2 + seed % 5
    labels = random_labels(seed, n_raters=k + 2, min_per_item=k, max_per_item=k)
    # Items rated once are not agreement data: add some, the statistic must ignore them.
    labels = pd.concat([labels, frame([(1, "aod0", "Fail"), (2, "aod1", "Pass")])], ignore_index=True)
    codes = wide_multi(labels).apply(lambda col: col.map(ORDINAL))
    table, _ = aggregate_raters(np.array([row[~np.isnan(row)] for row in codes.to_numpy(float)]).astype(int), n_cat=3)
    ref = float(sm_fleiss_kappa(table, method="fleiss"))
    assert same(ag.fleiss_kappa(labels), ref)


def gwet_fleiss_by_loops(labels: pd.DataFrame) -> float:
    """Fleiss' generalised kappa for missing ratings, written out from Gwet's formulas with plain loops."""
    items = [Counter(group["value"]) for _, group in labels.groupby("eb_id") if len(group) >= 2]
    pa = sum(
        sum(c * (c - 1) for c in counts.values()) / (sum(counts.values()) * (sum(counts.values()) - 1))
        for counts in items
    ) / len(items)
    pi = {v: sum(counts[v] / sum(counts.values()) for counts in items) / len(items) for v in LABEL_VALUES}
    pe = sum(p * p for p in pi.values())
    return (pa - pe) / (1 - pe)


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_unequal_raters_is_gwets_generalisation(seed: int) -> None:
    labels = random_labels(seed, n_raters=2 + seed % 6, min_per_item=1)
    assert ag.fleiss_kappa(labels) == pytest.approx(gwet_fleiss_by_loops(labels), abs=TOL)


# --- Krippendorff ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("level", ["nominal", "ordinal"])
def test_alpha_matches_krippendorff_package(seed: int, level: str) -> None:
    labels = random_labels(seed, n_raters=2 + seed % 7, min_per_item=1)
    reliability = wide_multi(labels).apply(lambda col: col.map(ORDINAL)).to_numpy(float).T  # raters x items
    ref = krippendorff.alpha(reliability_data=reliability, level_of_measurement=level, value_domain=[0, 1, 2])
    assert same(ag.krippendorff_alpha(labels, level), ref)


def test_ordinal_alpha_uses_fail_semipass_pass_order() -> None:
    # Near misses (SemiPass vs Pass) must cost less than far misses (Fail vs Pass) on the ordinal scale.
    near = frame(
        [(i, "a", "Pass") for i in range(6)]
        + [(i, "b", "Pass") for i in range(5)]
        + [(5, "b", "SemiPass")]
        + [(i, "a", "Fail") for i in range(6, 9)]
        + [(i, "b", "Fail") for i in range(6, 9)]
    )
    far = near.copy()
    far.loc[(far["eb_id"] == 5) & (far["labeler"] == "b"), "value"] = "Fail"
    assert ag.krippendorff_alpha(near, "ordinal") > ag.krippendorff_alpha(far, "ordinal")
    with pytest.raises(ValueError):
        ag.krippendorff_alpha(near, "interval")  # type: ignore[arg-type]


# --- percent agreement -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_percent_agreement_is_mean_share_of_agreeing_pairs(seed: int) -> None:
    labels = random_labels(seed, n_raters=2 + seed % 5)
    shares = []
    for _, group in labels.groupby("eb_id"):
        pairs = list(itertools.combinations(group["value"], 2))
        if pairs:
            shares.append(sum(x == y for x, y in pairs) / len(pairs))
    assert ag.percent_agreement(labels) == pytest.approx(np.mean(shares), abs=TOL)


# --- input handling and revisions -------------------------------------------------------------------------


def test_newest_label_of_a_labeler_counts_once() -> None:
    labels = pd.DataFrame(
        {
            "eb_id": [1, 1, 1, 2, 2],
            "labeler": ["a", "b", "a", "a", "b"],
            "value": ["Pass", "Fail", "fail", "Pass", "Pass"],
            "event_id": [1, 2, 3, 4, 5],
        }
    )
    prep = ag.prepare(labels)
    assert len(prep) == 4
    assert prep.set_index(["eb_id", "labeler"]).loc[(1, "a"), "value"] == "Fail"
    assert ag.percent_agreement(labels) == 1.0
    # Same rows in another order: event_id, not row order, decides which is newest.
    assert ag.percent_agreement(labels.iloc[::-1]) == 1.0


def test_bad_input_is_refused_or_ignored_explicitly() -> None:
    with pytest.raises(LabelError):
        ag.fleiss_kappa(frame([(1, "a", "Pass"), (1, "b", "Unsure")]))
    with pytest.raises(ValueError):
        ag.fleiss_kappa(pd.DataFrame({"eb_id": [1], "value": ["Pass"]}))
    # An undo back to "no label" (value None) is no label at all.
    labels = frame([(1, "a", "Pass"), (1, "b", None), (2, "a", "Fail"), (2, "b", "FAIL")])
    assert ag.agreement_report(labels, n_boot=10)["n_items"] == 1


# --- edge cases -------------------------------------------------------------------------------------------


EMPTY_CASES = {
    "no labels": frame([]),
    "one labeler": frame([(1, "a", "Pass"), (2, "a", "Fail")]),
    "no overlap": frame([(1, "a", "Pass"), (2, "b", "Fail"), (3, "c", "SemiPass")]),
}


@pytest.mark.parametrize("case", list(EMPTY_CASES))
def test_no_agreement_data_gives_none_with_a_note(case: str) -> None:
    labels = EMPTY_CASES[case]
    assert ag.pairwise_cohen(labels) == []
    assert ag.fleiss_kappa(labels) is None
    assert ag.krippendorff_alpha(labels, "nominal") is None
    assert ag.krippendorff_alpha(labels, "ordinal") is None
    assert ag.percent_agreement(labels) is None
    assert ag.bootstrap_ci(labels, "alpha_nominal", n_boot=20) is None
    report = ag.agreement_report(labels, n_boot=20)
    assert report["n_items"] == 0 and report["cohen_kappa"] == []
    assert report["notes"], "a null statistic must come with a note"
    json.dumps(report, allow_nan=False)
    assert ag.weekly_trend(labels.assign(created_at=pd.Timestamp("2024-01-01", tz="UTC"))).empty
    assert ag.per_labeler_stats(labels)["agreement_with_consensus"].isna().all()


def test_everyone_same_value_means_undefined_kappa_but_full_agreement() -> None:
    labels = frame([(i, r, "Pass") for i in range(5) for r in "abc"])
    report = ag.agreement_report(labels, n_boot=20)
    for key in ("fleiss_kappa", "krippendorff_alpha_nominal", "krippendorff_alpha_ordinal"):
        assert report[key] is None
    assert report["percent_agreement"] == 1.0
    assert report["cohen_kappa"] == [] and len(report["cohen_kappa_undefined"]) == 3
    assert any("chance agreement is 1" in note for note in report["notes"])
    # The references agree that there is nothing to compute.
    assert math.isnan(sk_kappa(["Pass"] * 5, ["Pass"] * 5))
    with pytest.raises(ValueError):
        krippendorff.alpha(reliability_data=[[2.0] * 5] * 3, level_of_measurement="nominal")
    json.dumps(report, allow_nan=False)


def test_pair_with_one_shared_eb() -> None:
    disagree = frame([(1, "a", "Pass"), (1, "b", "Fail"), (2, "a", "Pass")])
    (pair,) = ag.pairwise_cohen(disagree)
    assert pair["n"] == 1 and pair["kappa"] == sk_kappa(["Pass"], ["Fail"]) == 0.0
    agree = frame([(1, "a", "Pass"), (1, "b", "Pass")])
    assert ag.pairwise_cohen(agree)[0]["kappa"] is None
    report = ag.agreement_report(disagree, n_boot=20)
    assert report["cohen_kappa"][0]["low"] is None  # one EB cannot be resampled into an interval
    assert any("fewer than" in note for note in report["notes"])


# --- bootstrap --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,fn",
    [
        ("fleiss_kappa", ag.fleiss_kappa),
        ("alpha_nominal", lambda d: ag.krippendorff_alpha(d, "nominal")),
        ("alpha_ordinal", lambda d: ag.krippendorff_alpha(d, "ordinal")),
        ("percent_agreement", ag.percent_agreement),
    ],
)
def test_fast_bootstrap_equals_resampling_dataframes(name: str, fn) -> None:
    labels = random_labels(3, n_items=40, n_raters=4)
    fast = ag.bootstrap_ci(labels, name, n_boot=30, seed=7)
    slow = ag.bootstrap_ci(labels, lambda d: fn(d), n_boot=30, seed=7)
    assert fast is not None and slow is not None
    assert fast == pytest.approx(slow, abs=TOL)


def test_bootstrap_is_reproducible_and_sensible() -> None:
    labels = random_labels(11, n_items=150, n_raters=4, min_per_item=2, noise=0.4)
    point = ag.krippendorff_alpha(labels, "nominal")
    ci = ag.bootstrap_ci(labels, "alpha_nominal", n_boot=300, seed=1)
    assert ci == ag.bootstrap_ci(labels, "alpha_nominal", n_boot=300, seed=1)
    assert ci != ag.bootstrap_ci(labels, "alpha_nominal", n_boot=300, seed=2)
    low, high = ci
    assert low < point < high and high - low < 0.5
    narrow = ag.bootstrap_ci(labels, "alpha_nominal", n_boot=300, seed=1, level=0.5)
    assert low < narrow[0] < narrow[1] < high
    with pytest.raises(ValueError):
        ag.bootstrap_ci(labels, "alpha_nominal", level=1.5)
    with pytest.raises(ValueError):
        ag.bootstrap_ci(labels, "median")


def test_pair_bootstrap_matches_resampled_sklearn() -> None:
    labels = random_labels(5, n_items=50, n_raters=2, min_per_item=2)
    pair = ag.pairwise_cohen(labels, n_boot=100, seed=3)[0]
    wide = labels.pivot(index="eb_id", columns="labeler", values="value")
    a, b = wide[pair["a"]].to_numpy(), wide[pair["b"]].to_numpy()
    reps = []
    for block in ag.resample_indices(len(a), n_boot=100, seed=3):
        reps.extend(sk_kappa(a[idx], b[idx]) for idx in block)
    reps = np.array(reps)
    expected = np.quantile(reps[~np.isnan(reps)], [0.025, 0.975])
    assert (pair["low"], pair["high"]) == pytest.approx(tuple(expected), abs=TOL)


# --- confusion matrices and consensus ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_pair_confusion_matches_sklearn(seed: int) -> None:
    labels = random_labels(seed, n_raters=3)
    wide = labels.pivot(index="eb_id", columns="labeler", values="value")
    both = wide[["aod0", "aod1"]].dropna()
    matrix = ag.pair_confusion(labels, "aod0", "aod1")
    assert list(matrix.index) == list(matrix.columns) == ["Pass", "SemiPass", "Fail"]
    ref = confusion_matrix(both["aod0"], both["aod1"], labels=list(LABEL_VALUES))
    assert (matrix.to_numpy() == ref).all()
    assert (ag.pair_confusion(labels, "aod1", "aod0").to_numpy() == ref.T).all()
    assert ag.pair_confusion(labels, "aod0", "nobody").to_numpy().sum() == 0
    with pytest.raises(ValueError):
        ag.pair_confusion(labels, "aod0", "aod0")


def others_majority_by_loops(labels: pd.DataFrame) -> dict[tuple[int, str], tuple[str, str]]:
    """(eb, labeler) -> (own value, majority of the others) via labels.majority_value."""
    by_item: dict[int, dict[str, str]] = {}
    for eb, labeler, value in labels[["eb_id", "labeler", "value"]].itertuples(index=False):
        by_item.setdefault(eb, {})[labeler] = value
    out = {}
    for eb, given in by_item.items():
        for labeler, value in given.items():
            others = [v for other, v in given.items() if other != labeler]
            if others:
                out[(eb, labeler)] = (value, majority_value(others))
    return out


@pytest.mark.parametrize("seed", range(10))
def test_consensus_of_others_excludes_self_and_breaks_ties_cautiously(seed: int) -> None:
    labels = random_labels(seed, n_raters=5, min_per_item=2)
    expected = others_majority_by_loops(labels)
    cons = ag.others_consensus(labels)
    got = {(r.eb_id, r.labeler): (r.value, r.consensus) for r in cons.itertuples()}
    assert got == expected
    for name in ("aod0", "aod3"):
        matrix = ag.confusion_vs_consensus(labels, name)
        ref = Counter((v, c) for (eb, lab), (v, c) in expected.items() if lab == name)
        for v in LABEL_VALUES:
            for c in LABEL_VALUES:
                assert matrix.loc[v, c] == ref[(v, c)]


def test_confusion_vs_consensus_with_two_raters_is_the_pair_matrix() -> None:
    labels = random_labels(2, n_raters=2, min_per_item=2)
    assert (
        ag.confusion_vs_consensus(labels, "aod0").to_numpy() == ag.pair_confusion(labels, "aod0", "aod1").to_numpy()
    ).all()


# --- per labeler, model, gold -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_per_labeler_stats_against_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = random_labels(seed, n_raters=4).assign(seconds_on_eb=lambda d: rng.uniform(5, 90, len(d)))
    items = sorted(labels["eb_id"].unique())
    predictions = pd.Series(rng.choice(VALUES, size=len(items) // 2), index=items[::2][: len(items) // 2])
    gold = pd.DataFrame({"eb_id": items[1::5], "value": rng.choice(VALUES, size=len(items[1::5]))})
    stats = ag.per_labeler_stats(labels, model_predictions=predictions, gold=gold).set_index("labeler")
    others = others_majority_by_loops(labels)
    for name, mine in labels.groupby("labeler"):
        row = stats.loc[name]
        assert row["n_labels"] == len(mine)
        assert row["share_semipass"] == pytest.approx((mine["value"] == "SemiPass").mean())
        assert row["median_seconds"] == pytest.approx(mine["seconds_on_eb"].median())
        pairs = [vc for (eb, lab), vc in others.items() if lab == name]
        own, cons = zip(*pairs)
        assert row["agreement_with_consensus"] == pytest.approx(np.mean(np.array(own) == np.array(cons)))
        ref = sk_kappa(own, cons)
        assert (math.isnan(row["kappa_with_consensus"]) and math.isnan(ref)) or row[
            "kappa_with_consensus"
        ] == pytest.approx(ref, abs=TOL)
        seen = mine[mine["eb_id"].isin(predictions.index)]
        assert row["n_vs_model"] == len(seen)
        assert row["agreement_with_model"] == pytest.approx(
            (seen["value"].to_numpy() == predictions.loc[seen["eb_id"]].to_numpy()).mean()
        )
        on_gold = mine.merge(gold, on="eb_id", suffixes=("", "_gold"))
        assert row["gold_n"] == len(on_gold)
        if len(on_gold):
            assert row["gold_accuracy"] == pytest.approx((on_gold["value"] == on_gold["value_gold"]).mean())
        else:
            assert math.isnan(row["gold_accuracy"])
    assert ag.per_labeler_stats(labels)["agreement_with_model"].isna().all()


@pytest.mark.parametrize("seed", range(8))
def test_model_vs_consensus_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    truth = rng.choice(VALUES, size=n, p=[0.6, 0.4, 0.0] if seed % 2 else [0.5, 0.3, 0.2])
    pred = np.where(rng.random(n) < 0.7, truth, rng.choice(VALUES, size=n))
    consensus = pd.DataFrame({"eb_id": range(n), "value": truth})
    predictions = pd.Series(pred, index=range(5, n + 5))  # 5 predictions without consensus, 5 without prediction
    out = ag.model_vs_consensus(consensus, predictions)
    shared_t, shared_p = truth[5:], pred[: n - 5]
    assert out["n"] == n - 5
    assert same(out["kappa"], sk_kappa(shared_t, shared_p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recalls = recall_score(shared_t, shared_p, labels=list(LABEL_VALUES), average=None, zero_division=np.nan)
    for value, ref in zip(LABEL_VALUES, recalls):
        assert same(out["per_class_recall"][value], ref)
    json.dumps(out, allow_nan=False)


def test_gold_accuracy() -> None:
    labels = frame([(1, "a", "Pass"), (2, "a", "Fail"), (1, "b", "Fail"), (3, "b", "Pass"), (3, "c", "Pass")])
    gold = pd.DataFrame({"eb_id": [1, 2], "value": ["pass", "Fail"]})
    out = ag.gold_accuracy(labels, gold).set_index("labeler")
    assert out.loc["a"].tolist() == [2, 2, 1.0]
    assert out.loc["b"].tolist() == [1, 0, 0.0]
    assert "c" not in out.index


# --- weekly trend and the report ---------------------------------------------------------------------------


def test_weekly_trend_buckets_items_by_their_newest_label() -> None:
    labels = random_labels(4, n_items=90, n_raters=4, min_per_item=2)
    rng = np.random.default_rng(4)
    start = pd.Timestamp("2024-03-04", tz="UTC")  # a Monday
    labels["created_at"] = [str(start + pd.Timedelta(hours=float(h))) for h in rng.uniform(0, 24 * 7 * 3, len(labels))]
    trend = ag.weekly_trend(labels, n_boot=50)
    newest = pd.to_datetime(labels["created_at"], utc=True).groupby(labels["eb_id"]).max()
    week_of_item = (newest - start).dt.days // 7
    assert trend["n_items"].tolist() == week_of_item.value_counts().sort_index().tolist()
    for i, row in trend.iterrows():
        assert row["week"] == start + pd.Timedelta(weeks=int(week_of_item.sort_values().unique()[i]))
        items = week_of_item[week_of_item == (row["week"] - start).days // 7].index
        subset = labels[labels["eb_id"].isin(items)]
        assert row["alpha_nominal"] == pytest.approx(ag.krippendorff_alpha(subset, "nominal"), abs=TOL)
        assert row["alpha_ordinal"] == pytest.approx(ag.krippendorff_alpha(subset, "ordinal"), abs=TOL)
        assert row["low"] <= row["alpha_nominal"] <= row["high"]
    with pytest.raises(ValueError):
        ag.weekly_trend(labels.drop(columns="created_at"))


def test_report_contract_and_consistency() -> None:
    labels = random_labels(9, n_items=80, n_raters=4)
    report = ag.agreement_report(labels, n_boot=100)
    json.dumps(report, allow_nan=False)
    assert isinstance(report["n_items"], int)
    assert report["n_items"] == len(wide_multi(labels))
    assert report["fleiss_kappa"] == pytest.approx(ag.fleiss_kappa(labels), abs=TOL)
    assert report["krippendorff_alpha_nominal"] == pytest.approx(ag.krippendorff_alpha(labels, "nominal"), abs=TOL)
    assert report["krippendorff_alpha_ordinal"] == pytest.approx(ag.krippendorff_alpha(labels, "ordinal"), abs=TOL)
    assert report["percent_agreement"] == pytest.approx(ag.percent_agreement(labels), abs=TOL)
    assert report["krippendorff_alpha_ordinal_ci"] == pytest.approx(
        list(ag.bootstrap_ci(labels, "alpha_ordinal", n_boot=100)), abs=TOL
    )
    for pair in report["cohen_kappa"]:
        assert {"a", "b", "n", "kappa"} <= set(pair)
        assert isinstance(pair["a"], str) and isinstance(pair["n"], int) and isinstance(pair["kappa"], float)
    assert [(p["a"], p["b"]) for p in report["cohen_kappa"]] == [(p["a"], p["b"]) for p in ag.pairwise_cohen(labels)]


def test_report_without_bootstrap_has_null_intervals_and_says_so() -> None:
    labels = random_labels(10, n_items=30, n_raters=3, min_per_item=2)
    report = ag.agreement_report(labels, n_boot=0)
    assert report["krippendorff_alpha_nominal"] is not None
    assert report["krippendorff_alpha_nominal_ci"] is None and report["fleiss_kappa_ci"] is None
    assert all(p["low"] is None and p["high"] is None for p in report["cohen_kappa"])
    assert any("n_boot=0" in note for note in report["notes"])
    with pytest.raises(ValueError):
        ag.agreement_report(labels, n_boot=1)
