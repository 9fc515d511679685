"""Query strategies: each one ranks exactly as modAL does on the same fitted learner and pool."""

from __future__ import annotations

import numpy as np
import pytest
from modAL.batch import ranked_batch
from modAL.models import ActiveLearner
from modAL.uncertainty import (
    classifier_entropy,
    classifier_margin,
    classifier_uncertainty,
    entropy_sampling,
    margin_sampling,
    uncertainty_sampling,
)
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from qa0_label.learning import learner as L
from qa0_label.learning import strategies as S

MODAL = {
    # name -> (modAL selection function, modAL utility, higher utility = asked sooner)
    "margin": (margin_sampling, classifier_margin, False),
    "entropy": (entropy_sampling, classifier_entropy, True),
    "least-confident": (uncertainty_sampling, classifier_uncertainty, True),
}


def _fitted(n_pool: int = 400, seed: int = 0) -> tuple[L.CompatActiveLearner, np.ndarray]:
    """A learner with graded, tie-free probabilities (logistic regression) and an unlabelled pool."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60 + n_pool, 4))
    y = np.where(X[:, 0] > 0.7, "Fail", np.where(X[:, 1] > 0, "SemiPass", "Pass"))
    learner = L.build_learner(X[:60], y[:60], estimator=LogisticRegression(max_iter=500))
    return learner, X[60:]


@pytest.mark.parametrize("name", sorted(MODAL))
@pytest.mark.parametrize("k", [1, 7, 50, 400])
def test_score_strategies_pick_what_modal_picks_in_modal_utility_order(name: str, k: int) -> None:
    learner, pool = _fitted()
    select, utility, higher = MODAL[name]
    order = S.rank(name, learner, pool, k, random_state=0)
    modal_picks = np.asarray(select(learner, pool, n_instances=k)[0]).ravel()
    assert len(order) == k and set(order.tolist()) == set(modal_picks.tolist())
    u = utility(learner, pool)[order]
    steps = np.diff(u)
    assert (steps <= 1e-12).all() if higher else (steps >= -1e-12).all()
    # The queue is one ranking: its head is modAL's top-k for every k.
    assert S.rank(name, learner, pool, 20, random_state=5).tolist() == order[:20].tolist() or k < 20


def test_ranked_batch_is_modals_ranked_batch_on_standardised_features() -> None:
    learner, pool = _fitted(n_pool=300)
    k = 25
    order = S.rank("ranked-batch", learner, pool, k, random_state=0, diverse_head=k)
    scale = S.standardizer(pool)
    expected, _ = ranked_batch(
        S._DistanceView(scale(learner.X_training)),
        unlabeled=scale(pool),
        uncertainty_scores=classifier_uncertainty(learner, pool),
        n_instances=k,
        metric="euclidean",
        n_jobs=None,
    )
    assert order.tolist() == np.asarray(expected).tolist()


def test_margin_diverse_starts_with_modals_margin_pick_and_is_a_ranking() -> None:
    learner, pool = _fitted()
    order = S.rank("margin-diverse", learner, pool, 120, random_state=0, diverse_head=20)
    assert order[0] == int(np.asarray(margin_sampling(learner, pool, n_instances=1)[0]).ravel()[0])
    assert len(set(order.tolist())) == 120
    tail_margins = classifier_margin(learner, pool)[order[20:]]
    assert (np.diff(tail_margins) >= -1e-12).all()  # past the diverse head: modAL's margin order


def test_every_strategy_is_asked_through_active_learner_query(monkeypatch: pytest.MonkeyPatch) -> None:
    learner, pool = _fitted(n_pool=100)
    asked: list[object] = []
    real = ActiveLearner.query

    def spy(self: ActiveLearner, X: np.ndarray, *args: object, **kwargs: object) -> object:
        asked.append(self.query_strategy)
        return real(self, X, *args, **kwargs)

    monkeypatch.setattr(ActiveLearner, "query", spy)
    for name, strategy in S.STRATEGIES.items():
        S.rank(name, learner, pool, 10, random_state=0)
        assert asked[-1] is strategy.query
    assert learner.query_strategy is S.STRATEGIES[S.DEFAULT_STRATEGY].query  # put back afterwards


def test_the_pool_is_predicted_once_for_all_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    learner, pool = _fitted(n_pool=200)
    calls = []
    real = learner.estimator.predict_proba
    monkeypatch.setattr(learner.estimator, "predict_proba", lambda X: calls.append(1) or real(X))
    for name in S.STRATEGIES:
        S.rank(name, learner, pool, 30, random_state=0)
    assert len(calls) == 1
    learner.teach(pool[:5], np.asarray(["Pass"] * 5))  # a refit forgets the cached probabilities
    S.rank("margin", learner, pool, 30, random_state=0)
    assert len(calls) == 2


def _clusters() -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters of 20 EBs."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = np.repeat([0, 1, 2], 20)
    return centres[labels] + rng.normal(0, 0.01, (60, 2)), labels


@pytest.mark.parametrize("name", ["margin", "entropy", "least-confident", "margin-diverse"])
def test_a_flat_model_still_gives_a_diverse_batch_not_table_order(name: str) -> None:
    X, labels = _clusters()
    # A model that says the same for every EB: every uncertainty ties.
    flat = L.build_learner(X[:6], np.asarray(["Pass", "Fail"] * 3), estimator=DummyClassifier(strategy="prior"))
    picks = S.rank(name, flat, X, 3, random_state=0)
    assert sorted(labels[picks].tolist()) == [0, 1, 2]
    firsts = {int(S.rank(name, flat, X, 1, random_state=seed)[0]) for seed in range(12)}
    assert len(firsts) > 3


def test_ranked_batch_of_a_flat_model_goes_where_nothing_is_labelled_yet() -> None:
    X, labels = _clusters()
    flat = L.build_learner(X[:6], np.asarray(["Pass", "Fail"] * 3), estimator=DummyClassifier(strategy="prior"))
    picks = S.rank("ranked-batch", flat, X, 2, random_state=0)
    assert sorted(labels[picks].tolist()) == [1, 2]  # the labelled rows are all in cluster 0


@pytest.mark.parametrize("name", ["margin-diverse", "ranked-batch"])
def test_batch_strategies_spread_a_batch_over_clusters(name: str) -> None:
    X, labels = _clusters()
    y = np.asarray(["Pass", "Fail"] * 3)
    learner = L.build_learner(X[::10], y, estimator=LogisticRegression())
    picks = S.rank(name, learner, X, 3, random_state=0)
    assert len(set(picks.tolist())) == 3 and sorted(labels[picks].tolist()) == [0, 1, 2]


def test_random_is_seeded_and_a_permutation() -> None:
    learner, pool = _fitted(n_pool=50)
    a = S.rank("random", learner, pool, 50, random_state=1)
    b = S.rank("random", learner, pool, 50, random_state=1)
    c = S.rank("random", learner, pool, 50, random_state=2)
    assert sorted(a.tolist()) == list(range(50))
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_standardize_is_robust_to_missing_and_constant_columns() -> None:
    X = np.array([[1.0, np.nan, 5.0], [2.0, np.nan, 5.0], [3.0, np.nan, 5.0], [1000.0, np.nan, 5.0]])
    Z = S.standardize(X)
    assert np.isfinite(Z).all()
    assert Z.shape == (4, 2)  # the all-missing column carries nothing
    assert Z[:, 1].tolist() == [0.0] * 4
    assert Z[3, 0] == 5.0  # clipped
    np.testing.assert_allclose(S.standardizer(X)(X[:2]), Z[:2])


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


def test_margin_diverse_spreads_only_over_the_most_uncertain_ebs() -> None:
    from modAL.uncertainty import classifier_margin

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 2))
    y = np.where(X[:40, 0] > 0, "Pass", "Fail")
    learner = L.build_learner(X[:40], y, estimator=LogisticRegression())
    unc = 1.0 - classifier_margin(learner, X)
    # 20 diverse places: candidates are the max(2 x 20, 100) = 100 most uncertain EBs, not the whole pool.
    top = set(np.argsort(-unc)[: max(S.CANDIDATE_FACTOR * 20, S.CANDIDATE_FLOOR)].tolist())
    picks = S.rank("margin-diverse", learner, X, 20, random_state=0, diverse_head=20)
    assert set(picks.tolist()) <= top and len(set(picks.tolist())) == 20
    # Ties at the cut (a young forest gives many) are kept at random: 50 clear doubts, then 2,950 tied EBs.
    scores = np.r_[np.ones(50), np.full(2950, 0.5)]
    slices = [set(S._candidates(scores, 20, rng=np.random.default_rng(seed)).tolist()) for seed in (1, 2)]
    assert all(len(c) == 100 and set(range(50)) <= c for c in slices) and slices[0] != slices[1]


def test_typical_order_picks_the_member_nearest_each_cluster_centre_biggest_cluster_first() -> None:
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    sizes = [10, 60, 30]
    Z = np.vstack([c + rng.normal(scale=0.5, size=(n, 2)) for c, n in zip(centres, sizes)])
    blob = np.repeat([0, 1, 2], sizes)
    picks = S.typical_order(Z, 3, np.random.default_rng(0))
    assert blob[picks].tolist() == [1, 2, 0]  # biggest cluster first
    for p in picks:
        members = np.flatnonzero(blob == blob[p])
        mean = Z[members].mean(axis=0)
        assert p == members[np.argmin(((Z[members] - mean) ** 2).sum(axis=1))]
    assert S.typical_order(Z, 0, np.random.default_rng(0)).size == 0


def _blobs_and_outliers(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = np.array([(0.0, 0.0), (3.0, 0.0), (0.0, 3.0), (3.0, 3.0), (1.5, 1.5)])
    blobs = np.vstack([c + rng.normal(scale=0.3, size=(40, 2)) for c in centres])
    angle = rng.uniform(0, 2 * np.pi, 30)
    outliers = 1.5 + 40.0 * np.c_[np.cos(angle), np.sin(angle)]
    X = np.vstack([blobs, outliers])
    return X, np.r_[np.repeat(np.arange(5), 40), np.full(30, -1)]


def test_cold_start_opens_a_lone_stratum_with_typical_ebs_not_outliers(monkeypatch: pytest.MonkeyPatch) -> None:
    X, blob = _blobs_and_outliers(np.random.default_rng(5))
    order = S.stratified_diverse_order(X, ["B3|J0000"] * len(X), 40, np.random.default_rng(1))
    # The biggest clusters first: the dense blobs, nearly one EB each (k-means gives the spread-out outliers
    # clusters of their own too, smaller ones, which come later).
    first = blob[order[:5]].tolist()
    assert -1 not in first and len(set(first)) >= 4
    assert len(set(order.tolist())) == 40 and -1 in blob[order[5:]].tolist()
    # k-means++ alone (the order before typical picks) spends early picks on the outliers.
    monkeypatch.setattr(S, "COLD_START_TYPICAL", 0)
    plain = S.stratified_diverse_order(X, ["B3|J0000"] * len(X), 40, np.random.default_rng(1))
    assert (blob[plain[:5]] == -1).sum() >= 2


def test_cold_start_with_many_strata_keeps_random_first_members(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    groups = [f"B{b}|S{s}" for b in range(3, 8) for s in range(5) for _ in range(6)]  # 25 strata
    X = rng.normal(size=(len(groups), 4))
    order = S.stratified_diverse_order(X, groups, 60, np.random.default_rng(4))
    monkeypatch.setattr(S, "COLD_START_TYPICAL", 0)
    assert order.tolist() == S.stratified_diverse_order(X, groups, 60, np.random.default_rng(4)).tolist()


def test_build_queues_ranks_on_the_probabilities_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from qa0_label.learning import fitting

    learner, pool = _fitted(n_pool=300)
    ids = np.arange(1000, 1300)
    expected = fitting.build_queues(learner, pool.copy(), ids, seed=3, length=50)
    proba = learner.estimator.predict_proba(pool)
    calls: list[int] = []
    real = learner.estimator.predict_proba
    monkeypatch.setattr(learner.estimator, "predict_proba", lambda X: calls.append(len(X)) or real(X))
    got = fitting.build_queues(learner, pool[np.arange(300)], ids, seed=3, length=50, proba=proba)
    assert calls == []  # the given probabilities serve every strategy
    assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in expected.items()}


def test_scaled_rows_are_the_rows_of_the_scaled_pool_and_rank_alike() -> None:
    _, X = _fitted(n_pool=460)
    X = X.copy()
    X[::7, 1] = np.nan
    X[::11, 2] = np.inf
    X[5, 3] = 1e9  # clipped
    # A forest (it takes NaN, and its vote shares tie: the tie-break reads the scaled rows too).
    y = np.where(np.nan_to_num(X[:60, 0]) > 0.5, "Fail", np.where(np.nan_to_num(X[:60, 1]) > 0, "SemiPass", "Pass"))
    learner = L.build_learner(np.where(np.isinf(X[:60]), np.nan, X[:60]), y, kind="extra-trees")
    pool = X[60:]  # with inf: the scaling treats it as missing
    scale = S.standardizer(pool, sample=100)
    full = scale(pool)
    rows = S.ScaledRows(pool, scale)
    idx = np.random.default_rng(0).permutation(400)[:150]
    assert np.array_equal(rows[idx], full[idx]) and np.array_equal(rows[5], full[5])
    assert np.array_equal(rows[np.arange(400) % 3 == 0], full[np.arange(400) % 3 == 0])
    pool = np.where(np.isinf(pool), np.nan, pool)  # the trees refuse inf
    full, rows = scale(pool), S.ScaledRows(pool, scale)
    for name in S.STRATEGIES:
        for seed in (0, 1):
            kw = {"random_state": seed, "scale": scale, "diverse_head": 40}
            assert (
                S.rank(name, learner, pool, 120, Z=rows, **kw).tolist()
                == S.rank(name, learner, pool, 120, Z=full, **kw).tolist()
            )


def test_cold_start_in_a_huge_stratum_draws_from_a_sample_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(500, 3))
    groups = ["B3|J0000"] * 400 + ["B6|J1924"] * 100
    monkeypatch.setattr(S, "COLD_START_SAMPLE", 150)
    order = S.stratified_diverse_order(X, groups, 60, np.random.default_rng(2))
    assert len(set(order.tolist())) == 60 and order.max() < 500
    # Both strata still take turns, and the small one is unaffected by the cap.
    first = [groups[i] for i in order[:10]]
    assert set(first) == {"B3|J0000", "B6|J1924"}
    monkeypatch.setattr(S, "COLD_START_SAMPLE", 1000)
    uncapped = S.stratified_diverse_order(X, groups, 60, np.random.default_rng(2))
    assert uncapped.tolist() != order.tolist()  # the cap changed what the big stratum offers


def test_cold_start_copes_with_tables_whose_features_carry_nothing() -> None:
    # All missing (every column dropped by the scaling), all equal, and fewer rows than the typical picks.
    for X in (np.full((30, 4), np.nan), np.ones((50, 3)), np.ones((3, 2))):
        order = S.stratified_diverse_order(X, ["B3|J0000"] * len(X), 20, np.random.default_rng(0))
        assert len(order) == min(20, len(X)) and len(set(order.tolist())) == len(order)
