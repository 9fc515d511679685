"""Fitting and scoring: the cross-validated model choice, the served modAL learner, scores and queues of the pool.

Pure computation on arrays (no database): learning.model_runs reads the labels and features, calls these, and
stores what they return.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from modAL.uncertainty import classifier_margin

from qa0_label.learning import learner as lrn
from qa0_label.learning import strategies as strat
from qa0_label.store.models import LABEL_VALUES

QUEUE_LENGTH = 3000
"""ScoreRank rows stored per strategy and run (enough for many AoDs between two retrains)."""
DIVERSE_HEAD = 300
"""Batch strategies order this many with their diversity algorithm, the rest of the queue by score."""


# --- the model choice ------------------------------------------------------------------------------


def cv_splits(y: np.ndarray, *, random_state: int = 0) -> tuple[int, list[tuple[np.ndarray, np.ndarray]]]:
    """The stratified folds (k <= 5) a retrain cross-validates every candidate on."""
    from sklearn.model_selection import StratifiedKFold

    counts = pd.Series(y).value_counts()
    # Fewer folds as labels grow: with thousands of labels each fold still holds >1,000 EBs, the metric barely
    # moves, and the folds (run beside the final fit) stop being the retrain's longest step.
    most = 5 if len(y) < 1000 else 3 if len(y) < 3000 else 2
    n_splits = int(min(most, max(2, counts.min())))
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        # A class with fewer members than folds is legal here; sklearn warns about it.
        warnings.simplefilter("ignore", UserWarning)
        return n_splits, list(skf.split(np.zeros((len(y), 1)), y))


def cv_metrics(
    X: np.ndarray,
    y: np.ndarray,
    *,
    random_state: int = 0,
    max_iter: int = 100,
    kind: str = "ordinal",
    feature_names: list[str] | None = None,
    folds: tuple[int, list[tuple[np.ndarray, np.ndarray]]] | None = None,
) -> dict[str, Any]:
    """Stratified k-fold (k <= 5) out-of-fold metrics of one candidate estimator (kind) on the labelled EBs.

    The out-of-fold prediction of every labelled EB is returned too, under ``oof_predicted`` (same order as
    ``y``), so agreement with the model can be measured per AoD without in-sample predictions.
    """
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

    y = np.asarray(y)
    counts = pd.Series(y).value_counts()
    n_splits, splits = folds if folds is not None else cv_splits(y, random_state=random_state)
    pred = np.empty(len(y), dtype=object)
    oof_proba = np.zeros((len(y), len(LABEL_VALUES)))  # auto-QA0 calibrates on these (automation.calibrate)
    with lrn.fit_thread_limit(len(y)):
        for train, test in splits:
            if len(set(y[train])) < 2:
                # This fold saw one class only: predict it (a fair, if pessimistic, stand-in).
                pred[test] = y[train][0]
                oof_proba[test, list(LABEL_VALUES).index(str(y[train][0]))] = 1.0
                continue
            est = lrn.make_estimator(
                random_state=random_state,
                max_iter=max_iter,
                n_samples=len(train),
                feature_names=feature_names,
                kind=kind,
            )
            est.fit(X[train], y[train])
            oof_proba[test] = lrn.proba_full(est, X[test])
            pred[test] = np.asarray(LABEL_VALUES, dtype=object)[oof_proba[test].argmax(axis=1)]
    labels = list(LABEL_VALUES)
    present = [c for c in labels if c in set(y)]
    recalls = recall_score(y, pred, labels=present, average=None, zero_division=0)
    per_class = {c: float(r) for c, r in zip(present, recalls)}
    return {
        "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "per_class_recall": per_class,
        "fail_recall": per_class.get("Fail"),
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "labels": labels,
        "cv_folds": n_splits,
        "class_counts": {c: int(counts.get(c, 0)) for c in labels},
        "oof_predicted": [str(p) for p in pred],
        "oof_proba": oof_proba,
    }


def fit_served_model(
    X: np.ndarray, y: np.ndarray, *, feature_names: list[str] | None = None, random_state: int = 0
) -> tuple[lrn.CompatActiveLearner, dict[str, Any]]:
    """Cross-validate every candidate estimator on the same folds, fit the best on all labels as a modAL learner.

    Extremely randomised trees give graded probabilities from the first few dozen labels on any table; the
    monotone ordinal model (QA0 labels only) wins where the domain constraints pay. Which one serves is decided
    by this retrain's own out-of-fold macro-F1 (a tie keeps the first of CANDIDATE_KINDS) and recorded in the
    metrics (``model_choice``); the returned metrics are the chosen model's.
    """
    kinds = lrn.candidate_kinds(y)
    folds = cv_splits(np.asarray(y), random_state=random_state)

    def evaluate(kind: str) -> dict[str, Any]:
        return cv_metrics(X, y, random_state=random_state, kind=kind, feature_names=feature_names, folds=folds)

    # One candidate after the other, in this thread: scikit-learn's joblib wrapper swaps the process-wide warning
    # filters around every tree, and any catch_warnings in another thread at the same time (scikit-learn has
    # some) can leave them empty; it did, and stderr filled with warnings.
    results = {kind: evaluate(kind) for kind in kinds}
    chosen = max(kinds, key=lambda k: (results[k]["macro_f1"], -kinds.index(k)))
    with lrn.fit_thread_limit(len(y)):
        learner = lrn.build_learner(X, y, random_state=random_state, feature_names=feature_names, kind=chosen)
    metrics = dict(results[chosen])
    metrics["model_choice"] = {
        "chosen": chosen,
        "cv_macro_f1": {k: round(float(r["macro_f1"]), 4) for k, r in results.items()},
        "rule": "highest out-of-fold macro-F1 on the same folds; a tie keeps the first of " + ", ".join(kinds),
    }
    return learner, metrics


# --- scoring the pool ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolScores:
    """One learner's view of the pool: raw (predict_proba over the learner's own classes), proba (over
    LABEL_VALUES), uncertainty (1 - modAL's classifier margin) and predicted (the most probable QA0)."""

    raw: np.ndarray
    proba: np.ndarray
    uncertainty: np.ndarray
    predicted: np.ndarray


def score_pool(learner: Any, X: np.ndarray) -> PoolScores:
    """Score every EB of the pool X with the served learner."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        raw = learner.predict_proba(X)
    proba = lrn.proba_full(learner, X)
    uncertainty = 1.0 - np.asarray(classifier_margin(learner, X), dtype=float)
    predicted = np.asarray(LABEL_VALUES)[proba.argmax(axis=1)]
    return PoolScores(raw=raw, proba=proba, uncertainty=uncertainty, predicted=predicted)


def feature_importances(learner: Any, columns: list[str], top: int = 20) -> dict[str, float] | None:
    """The TOP largest impurity importances of the served trees by feature name (None for a model without)."""
    clf = learner.estimator.steps[-1][1]
    imp = getattr(clf, "feature_importances_", None)
    if imp is None or np.sum(imp) <= 0:
        return None
    order = np.argsort(-np.asarray(imp))[:top]
    return {columns[i]: round(float(imp[i]), 4) for i in order if imp[i] > 0}


def build_queues(
    learner: Any,
    X: np.ndarray,
    eb_ids: np.ndarray,
    *,
    seed: int,
    length: int = QUEUE_LENGTH,
    proba: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Each strategy's queue (EB ids, review-first first) over the unlabelled pool X, asked through modAL's query.

    proba: the learner's predict_proba of X when the caller has it (the retrain scored the pool already);
    every strategy then reuses it instead of predicting the pool again.
    """
    from threadpoolctl import threadpool_limits

    if proba is not None:
        # Here, on the very array the strategies get: the learner's cache is keyed on the array object, and a
        # second X[mask] at the call site is a new array (the retrain once predicted 100k EBs again that way).
        learner.remember_proba(X, proba)
    scale = strat.standardizer(X) if len(X) else None
    Z = strat.ScaledRows(X, scale) if scale is not None else None  # the strategies read a few thousand rows of it
    queues = {}
    # One BLAS thread, as for the fit and the scoring: the ranked batch's small distance products (600 x ~230)
    # spent more time waking a second thread than computing (0.85 -> 0.63 s CPU for all queues at 100k EBs).
    with threadpool_limits(limits=1):
        for name in strat.STRATEGIES:
            order = strat.rank(name, learner, X, length, random_state=seed, Z=Z, scale=scale, diverse_head=DIVERSE_HEAD)
            queues[name] = eb_ids[order]
    return queues


def describe_estimator(learner: Any, choice: dict[str, Any] | None = None) -> str:
    """The served model in one line: the estimator, its main parameters and how it was chosen."""
    est = learner.estimator
    clf = est.steps[-1][1] if hasattr(est, "steps") else est
    params = clf.get_params()
    keys = ("n_estimators", "max_iter", "learning_rate", "max_leaf_nodes", "min_samples_leaf", "class_weight")
    inner = ", ".join(f"{k}={params[k]}" for k in keys if k in params)
    text = f"modAL ActiveLearner({type(clf).__name__}({inner}))"
    if choice:
        scores = ", ".join(f"{k} {v:.3f}" for k, v in choice["cv_macro_f1"].items())
        text += f"; chosen by cross-validated macro-F1 ({scores})"
    return text
