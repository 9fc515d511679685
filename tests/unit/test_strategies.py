"""Query strategies on hand-made probability arrays and feature matrices."""

from __future__ import annotations

import numpy as np
import pytest

from qa0_label.learning import strategies as S

P = np.array(
    [
        [0.50, 0.50, 0.00],  # two values tie: most uncertain by margin
        [0.90, 0.05, 0.05],  # confident
        [0.40, 0.35, 0.25],  # spread out: most uncertain by entropy / least-confident
        [1.00, 0.00, 0.00],  # certain
    ]
)


def test_margin_scores_gap_between_two_likeliest() -> None:
    np.testing.assert_allclose(S.margin_score(P), [1.0, 0.15, 0.95, 0.0])


def test_entropy_is_normalised_and_highest_for_spread_rows() -> None:
    scores = S.entropy_score(P)
    assert scores[3] == pytest.approx(0.0)
    assert scores.argmax() == 2
    assert S.entropy_score(np.full((1, 3), 1 / 3))[0] == pytest.approx(1.0)
    assert (scores >= 0).all() and (scores <= 1 + 1e-12).all()


def test_least_confident_is_one_minus_top_probability() -> None:
    np.testing.assert_allclose(S.least_confident_score(P), [0.5, 0.1, 0.6, 0.0])


def test_score_strategies_rank_most_uncertain_first() -> None:
    rng = np.random.default_rng(0)
    assert S.rank("margin", P, None, 4, rng).tolist() == [0, 2, 1, 3]
    assert S.rank("entropy", P, None, 2, rng).tolist()[0] == 2
    assert S.rank("least-confident", P, None, 4, rng).tolist() == [2, 0, 1, 3]


def test_missing_predictions_count_as_unknown_not_as_confident() -> None:
    p = np.array([[np.nan, np.nan, np.nan], [0.9, 0.1, 0.0]])
    assert S.margin_score(p)[0] == pytest.approx(1.0)
    assert S.least_confident_score(p)[0] > S.least_confident_score(p)[1]


def test_ties_are_not_broken_by_table_order() -> None:
    flat = np.full((200, 3), 1 / 3)
    firsts = {int(S.rank("margin", flat, None, 1, np.random.default_rng(seed))[0]) for seed in range(20)}
    assert len(firsts) > 5


def test_random_is_seeded_and_a_permutation() -> None:
    p = np.full((50, 3), 1 / 3)
    a = S.random_batch(p, None, 50, np.random.default_rng(1))
    b = S.random_batch(p, None, 50, np.random.default_rng(1))
    c = S.random_batch(p, None, 50, np.random.default_rng(2))
    assert sorted(a.tolist()) == list(range(50))
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def _clusters() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three tight clusters of 20 EBs; cluster 0 is a shade more uncertain than the others."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = np.repeat([0, 1, 2], 20)
    X = centres[labels] + rng.normal(0, 0.01, (60, 2))
    top = np.where(labels == 0, 0.52, 0.55)
    proba = np.column_stack([top, 1 - top, np.zeros(60)])
    return X, proba, labels


@pytest.mark.parametrize("name", ["margin-diverse", "ranked-batch"])
def test_batch_strategies_spread_a_batch_over_clusters(name: str) -> None:
    X, proba, labels = _clusters()
    picks = S.rank(name, proba, X, 3, np.random.default_rng(0))
    assert len(set(picks.tolist())) == 3
    assert sorted(labels[picks].tolist()) == [0, 1, 2]
    # Plain margin piles the whole batch into the most uncertain cluster: the reason batch strategies exist.
    assert set(labels[S.rank("margin", proba, X, 3, np.random.default_rng(0))].tolist()) == {0}


def test_batch_strategy_starts_with_the_most_uncertain() -> None:
    X, proba, labels = _clusters()
    proba[7] = [0.5, 0.5, 0.0]
    assert S.rank("margin-diverse", proba, X, 3, np.random.default_rng(3))[0] == 7


def test_diverse_head_then_score_order_without_duplicates() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], size=500)
    X = rng.normal(size=(500, 4))
    order = S.rank("margin-diverse", proba, X, 120, np.random.default_rng(0), diverse_head=20)
    assert len(order) == 120 and len(set(order.tolist())) == 120
    tail = order[20:]
    margins = S.margin_score(proba)[tail]
    assert (np.diff(margins) <= 1e-12).all()


def test_standardize_is_robust_to_missing_and_constant_columns() -> None:
    X = np.array([[1.0, np.nan, 5.0], [2.0, np.nan, 5.0], [3.0, np.nan, 5.0], [1000.0, np.nan, 5.0]])
    Z = S.standardize(X)
    assert np.isfinite(Z).all()
    assert Z.shape == (4, 2)  # the all-missing column carries nothing
    assert Z[:, 1].tolist() == [0.0] * 4
    assert Z[3, 0] == 5.0  # clipped


def test_cold_start_order_covers_every_group_before_repeating() -> None:
    rng = np.random.default_rng(0)
    groups = [f"B{b}|S{s}" for b in (3, 6, 7) for s in range(4) for _ in range(25)]
    X = rng.normal(size=(len(groups), 5))
    order = S.stratified_diverse_order(X, groups, 30, np.random.default_rng(1))
    assert len(set(order.tolist())) == 30
    first = {groups[i] for i in order[:12]}
    assert len(first) == 12
    assert order[:12].tolist() != list(range(12))


def test_registry_and_sidebar_names() -> None:
    names = S.strategy_names()
    assert names[0] == S.DEFAULT_STRATEGY
    assert set(names) == set(S.STRATEGIES)
    for required in ("margin", "entropy", "least-confident", "random"):
        assert required in names
    assert any(s.kind == "batch" and n != "random" for n, s in S.STRATEGIES.items())
    for s in S.STRATEGIES.values():
        assert s.reason.strip()
