"""Read-only queries and reshaping behind the Model page (model runs, metrics, scores; no Streamlit here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import exists
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from qa0_label.store import runs as store_runs
from qa0_label.store.labels import consensus
from qa0_label.store.models import LABEL_VALUES, Label, ModelRun, Score

HISTORY_METRICS: tuple[str, ...] = ("macro_f1", "fail_recall", "balanced_accuracy")


def _metric(metrics: Mapping[str, Any] | None, key: str) -> float | None:
    if not metrics:
        return None
    value = metrics.get(key)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def run_history(*, session: Session) -> pd.DataFrame:
    """One row per model run (oldest first) with its status, label count and headline metrics."""
    runs = session.exec(select(ModelRun).order_by(col(ModelRun.version))).all()
    rows = [
        {
            "version": r.version,
            "status": r.status,
            "trigger": r.trigger,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "n_labels": r.n_labels,
            "estimator": r.estimator,
            **{m: _metric(r.metrics, m) for m in HISTORY_METRICS},
        }
        for r in runs
    ]
    cols = ["version", "status", "trigger", "started_at", "finished_at", "n_labels", "estimator", *HISTORY_METRICS]
    return pd.DataFrame(rows, columns=cols)


def metric_history_long(history: pd.DataFrame) -> pd.DataFrame:
    """Finished runs' metrics in long form (n_labels, version, metric, value) for a metric-vs-labels chart."""
    done = history[history["status"] == "done"] if not history.empty else history
    if done.empty:
        return pd.DataFrame(columns=["version", "n_labels", "metric", "value"])
    long = done.melt(id_vars=["version", "n_labels"], value_vars=list(HISTORY_METRICS), var_name="metric")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def latest_done_run(*, session: Session) -> dict[str, Any] | None:
    """The newest finished run as a plain dict (id, version, finished_at, n_labels, metrics, features), or None."""
    run = store_runs.serving_run(session)
    if run is None:
        return None
    return {
        "id": run.id,
        "version": run.version,
        "finished_at": run.finished_at,
        "n_labels": run.n_labels,
        "estimator": run.estimator,
        "strategy": run.strategy,
        "features": list(run.features or []),
        "metrics": dict(run.metrics or {}),
    }


def confusion_frame(metrics: Mapping[str, Any] | None) -> pd.DataFrame | None:
    """The cross-validated confusion matrix as long (actual, predicted, count), or None when not stored.

    Accepts a plain square list (rows = actual, columns = predicted, in Pass/SemiPass/Fail order unless the
    metrics carry `labels`/`classes`), or a dict {labels, matrix}.
    """
    if not metrics:
        return None
    raw = metrics.get("confusion_matrix")
    labels: Sequence[str] | None = metrics.get("labels") or metrics.get("classes")
    if isinstance(raw, Mapping):
        labels = raw.get("labels") or raw.get("classes") or labels
        raw = raw.get("matrix") or raw.get("values")
    if raw is None:
        return None
    matrix = np.asarray(raw, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
        return None
    names = (
        list(labels) if labels is not None and len(labels) == matrix.shape[0] else list(LABEL_VALUES[: matrix.shape[0]])
    )
    rows = [
        {"actual": names[i], "predicted": names[j], "count": float(matrix[i, j])}
        for i in range(matrix.shape[0])
        for j in range(matrix.shape[1])
    ]
    return pd.DataFrame(rows)


def feature_importance_frame(metrics: Mapping[str, Any] | None, features: Sequence[str] = ()) -> pd.DataFrame | None:
    """Feature importances (feature, importance) sorted high to low, or None when the run did not store them."""
    if not metrics:
        return None
    raw = metrics.get("feature_importances") or metrics.get("feature_importance")
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        pairs = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, Sequence) and raw and isinstance(raw[0], Mapping):
        pairs = [(str(d.get("feature")), d.get("importance")) for d in raw]
    elif isinstance(raw, Sequence) and len(raw) == len(features):
        pairs = list(zip(map(str, features), raw))
    else:
        return None
    frame = pd.DataFrame(pairs, columns=["feature", "importance"])
    frame["importance"] = pd.to_numeric(frame["importance"], errors="coerce")
    frame = frame.dropna().sort_values("importance", ascending=False, ignore_index=True)
    return frame if not frame.empty else None


def class_balance(*, session: Session) -> pd.DataFrame:
    """Consensus training labels per QA0 value (value, count, share), in Pass/SemiPass/Fail order."""
    cons = consensus(session)
    counts = cons["value"].value_counts() if not cons.empty else pd.Series(dtype=int)
    total = int(counts.sum())
    rows = [
        {"value": v, "count": int(counts.get(v, 0)), "share": (int(counts.get(v, 0)) / total) if total else 0.0}
        for v in LABEL_VALUES
    ]
    return pd.DataFrame(rows)


def pool_scores(*, session: Session, run_id: int, unlabelled_only: bool = True) -> pd.DataFrame:
    """Uncertainty and predicted class of each scored EB of a run (by default only EBs nobody labelled yet)."""
    stmt = sa_select(
        col(Score.eb_id), col(Score.uncertainty), col(Score.p_pass), col(Score.p_semipass), col(Score.p_fail)
    ).where(col(Score.run_id) == int(run_id))
    if unlabelled_only:
        stmt = stmt.where(~exists().where(col(Label.eb_id) == col(Score.eb_id), col(Label.value).is_not(None)))
    rows = session.connection().execute(stmt).fetchall()
    frame = pd.DataFrame(rows, columns=["eb_id", "uncertainty", "p_pass", "p_semipass", "p_fail"])
    if frame.empty:
        frame["predicted"] = pd.Series(dtype=str)
        return frame
    probs = frame[["p_pass", "p_semipass", "p_fail"]].to_numpy(dtype=float)
    frame["predicted"] = np.asarray(LABEL_VALUES)[probs.argmax(axis=1)]
    return frame


def uncertainty_histogram(scores: pd.DataFrame, *, bins: int = 25) -> pd.DataFrame:
    """Histogram of pool uncertainty (bin_start, bin_end, count, predicted) stacked by predicted class."""
    cols = ["bin_start", "bin_end", "predicted", "count"]
    if scores.empty:
        return pd.DataFrame(columns=cols)
    values = scores["uncertainty"].to_numpy(dtype=float)
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if not np.isfinite(lo) or not np.isfinite(hi):
        return pd.DataFrame(columns=cols)
    if hi <= lo:
        hi = lo + 1e-9
    edges = np.linspace(lo, hi, bins + 1)
    rows = []
    for value in LABEL_VALUES:
        part = values[scores["predicted"].to_numpy() == value]
        counts, _ = np.histogram(part, bins=edges)
        rows += [
            {"bin_start": edges[i], "bin_end": edges[i + 1], "predicted": value, "count": int(c)}
            for i, c in enumerate(counts)
        ]
    return pd.DataFrame(rows, columns=cols)
