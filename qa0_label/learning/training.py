"""The retrain API in one import: the model-run lifecycle (learning.model_runs) and fitting and scoring
(learning.fitting). The CLI, the retrain worker, the pages and the benchmarks import these names from here.

To replace a step in a test, patch it where it lives (fitting.cv_metrics, model_runs._write_ranks): these are
the same objects, re-exported.
"""

from __future__ import annotations

from qa0_label.learning.fitting import (
    DIVERSE_HEAD,
    QUEUE_LENGTH,
    PoolScores,
    build_queues,
    cv_metrics,
    cv_splits,
    describe_estimator,
    feature_importances,
    fit_served_model,
    score_pool,
)
from qa0_label.learning.model_runs import (
    HEARTBEAT_S,
    HOST,
    KEEP_DONE_RUNS,
    LOCK_KEY,
    STALE_AFTER_S,
    Progress,
    RetrainRefused,
    RetrainRunning,
    is_stale,
    labels_since_last_run,
    reap_stale,
    retrain,
    status,
    training_labels,
)

__all__ = [
    "DIVERSE_HEAD",
    "HEARTBEAT_S",
    "HOST",
    "KEEP_DONE_RUNS",
    "LOCK_KEY",
    "QUEUE_LENGTH",
    "STALE_AFTER_S",
    "PoolScores",
    "Progress",
    "RetrainRefused",
    "RetrainRunning",
    "build_queues",
    "cv_metrics",
    "cv_splits",
    "describe_estimator",
    "feature_importances",
    "fit_served_model",
    "is_stale",
    "labels_since_last_run",
    "reap_stale",
    "retrain",
    "score_pool",
    "status",
    "training_labels",
]
