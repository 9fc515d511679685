"""Read-only queries and reshaping behind the team-lead Agreement page (no Streamlit here).

The page caches what these functions return, keyed on cheap "state" reads (``newest_label_id``,
``gold_state``, ``latest_done_version``), so the agreement statistics with their 1000-resample bootstrap
are computed once per change of the labels, not on every rerun.

Model agreement uses the model's OUT-OF-FOLD (cross-validated) predictions only: in-sample predictions of a
model trained on these very labels would make it look better than it is. ``training.cv_metrics`` stores the
out-of-fold confusion matrix and per-class recall in ``ModelRun.metrics``; the model's kappa against the
consensus is derived from that matrix. Per-EB out-of-fold predictions, needed to compare each AoD with the
model, are read from ``metrics["oof_predictions"]`` when a run stored them (see ``oof_predictions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func
from sqlmodel import Session, select

from qa0_label.automation import accept
from qa0_label.lead import agreement
from qa0_label.store import runs as store_runs
from qa0_label.store.labels import LabelError, consensus, current_labels, normalize_value
from qa0_label.store.models import LABEL_VALUES, GoldEB, Label, ModelRun, table_of

LABEL_COLUMNS: list[str] = ["eb_id", "labeler", "value", "created_at", "seconds_on_eb", "event_id"]
"""Columns of ``agreement_labels``: what the agreement statistics need, nothing more (no comments)."""

SUMMARY_STATISTICS: tuple[tuple[str, str], ...] = (
    ("fleiss_kappa", "Fleiss kappa"),
    ("krippendorff_alpha_nominal", "Krippendorff alpha (nominal)"),
    ("krippendorff_alpha_ordinal", "Krippendorff alpha (ordinal)"),
    ("percent_agreement", "Percent agreement"),
)
"""(report key, display name) of the headline statistics, in display order."""

MODEL_HISTORY_COLUMNS: list[str] = [
    "version",
    "n_labels",
    "finished_at",
    "n",
    "kappa",
    "accuracy",
    "recall_pass",
    "recall_semipass",
    "recall_fail",
    "macro_f1",
]
_RECALL_COLUMNS = {"Pass": "recall_pass", "SemiPass": "recall_semipass", "Fail": "recall_fail"}


# --- cache keys ---------------------------------------------------------------------------------------


def newest_label_id(*, session: Session) -> int:
    """Id of the newest label event (review, undo or adjudication); 0 on an empty database."""
    return int(session.exec(select(func.max(Label.id))).one() or 0)


def gold_state(*, session: Session) -> tuple[int, str]:
    """(number of gold EBs, newest change time): changes whenever a gold EB is marked, changed or unmarked."""
    count, newest = session.exec(select(func.count(), func.max(GoldEB.created_at)).select_from(GoldEB)).one()
    return int(count or 0), str(newest or "")


def latest_done_version(*, session: Session) -> int:
    """Version of the newest finished model run; 0 when there is none."""
    version = session.connection().execute(store_runs.serving_select(table_of(ModelRun).c.version)).scalar()
    return int(version or 0)


# --- inter-AoD agreement ------------------------------------------------------------------------------


def own_calls(*, session: Session, include_accepted: bool = False) -> tuple[pd.DataFrame, int]:
    """(each labeler's current label per EB, how many accepted suggestions were left out of it).

    The 'archive' importer is excluded. An AoD who pressed ``A`` agreed with the model rather than made a call
    of their own: counting those labels would raise inter-AoD agreement by the model's consistency, so the
    statistics leave them out unless INCLUDE_ACCEPTED. One read of the current labels serves both figures.
    """
    frame = current_labels(session, include_archive=False)
    kept = frame if include_accepted else accept.without_accepted(session=session, labels=frame, id_column="event_id")
    return kept[LABEL_COLUMNS].reset_index(drop=True), len(frame) - len(kept)


def agreement_labels(*, session: Session, include_accepted: bool = False) -> pd.DataFrame:
    """The labels agreement statistics use (``own_calls`` without the count)."""
    return own_calls(session=session, include_accepted=include_accepted)[0]


def agreement_overview(
    *, session: Session, n_boot: int = 1000, seed: int = 0, level: float = 0.95, include_accepted: bool = False
) -> dict[str, Any]:
    """The agreement report, its weekly alpha trend and the labels it was computed from.

    Keys: report (``agreement.agreement_report``), trend (``agreement.weekly_trend``), labels
    (``agreement_labels``), labelers (sorted names), newest_label_id (the state it describes),
    accepted_left_out (accepted suggestions not counted; 0 when INCLUDE_ACCEPTED).
    """
    key = newest_label_id(session=session)
    labels, left_out = own_calls(session=session, include_accepted=include_accepted)
    report = agreement.agreement_report(labels, n_boot=n_boot, seed=seed, level=level)
    trend = (
        agreement.weekly_trend(labels, n_boot=n_boot, seed=seed, level=level)
        if report["n_items"]
        else pd.DataFrame(columns=["week", "n_items", "alpha_nominal", "alpha_ordinal", "low", "high"])
    )
    return {
        "report": report,
        "trend": trend,
        "labels": labels,
        "labelers": sorted(labels["labeler"].astype(str).unique()),
        "newest_label_id": key,
        "accepted_left_out": left_out,
    }


def summary_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """Headline statistics of a report as rows (statistic, value, low, high); NaN where undefined."""
    rows = []
    for key, name in SUMMARY_STATISTICS:
        value = report.get(key)
        ci = report.get(f"{key}_ci") or (None, None)
        rows.append(
            {
                "statistic": name,
                "value": np.nan if value is None else float(value),
                "low": np.nan if ci[0] is None else float(ci[0]),
                "high": np.nan if ci[1] is None else float(ci[1]),
            }
        )
    return pd.DataFrame(rows, columns=["statistic", "value", "low", "high"])


def kappa_pairs(report: Mapping[str, Any]) -> pd.DataFrame:
    """Every pair of labelers with shared EBs: a, b, n, kappa (NaN when 0/0), low, high, percent_agreement."""
    cols = ["a", "b", "n", "kappa", "low", "high", "percent_agreement"]
    rows = [{c: p.get(c) for c in cols} for p in report.get("cohen_kappa") or []]
    rows += [{**{c: p.get(c) for c in cols}, "kappa": None} for p in report.get("cohen_kappa_undefined") or []]
    frame = pd.DataFrame(rows, columns=cols)
    for col in ("kappa", "low", "high", "percent_agreement"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame["n"] = frame["n"].astype(int)
    return frame.sort_values(["a", "b"], ignore_index=True)


def alpha_trend_frame(trend: pd.DataFrame) -> pd.DataFrame:
    """``agreement.weekly_trend`` in the shape ``lead.charts.alpha_trend_chart`` draws (band = ordinal interval)."""
    cols = ["week", "alpha_nominal", "alpha_ordinal", "low", "high", "n"]
    if trend is None or trend.empty:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(
        {
            "week": trend["week"],
            "alpha_nominal": trend["alpha_nominal"],
            "alpha_ordinal": trend["alpha_ordinal"],
            # The chart's band belongs to the ordinal line (the headline statistic for an ordered scale).
            "low": trend.get("low_ordinal", trend.get("low")),
            "high": trend.get("high_ordinal", trend.get("high")),
            "n": trend["n_items"],
        }
    )
    return out[cols].reset_index(drop=True)


# --- the model against the AoDs ---------------------------------------------------------------------


def oof_predictions(metrics: Mapping[str, Any] | None) -> pd.Series | None:
    """Per-EB out-of-fold predictions stored in a run's metrics, as a Series of QA0 values indexed by eb_id.

    Reads ``metrics["oof_predictions"]`` in either shape: a mapping {eb_id: value} (JSON turns the ids into
    strings), or {"eb_id": [...], "predicted": [...]} (parallel lists). None when absent or unreadable;
    entries with an unknown value or a non-integer id are dropped.
    """
    if not metrics:
        return None
    raw = metrics.get("oof_predictions")
    if not isinstance(raw, Mapping) or not raw:
        return None
    if "eb_id" in raw and "predicted" in raw:
        ids, values = raw.get("eb_id"), raw.get("predicted")
        if not isinstance(ids, Sequence) or not isinstance(values, Sequence) or len(ids) != len(values):
            return None
        pairs = list(zip(ids, values))
    else:
        pairs = list(raw.items())
    out: dict[int, str] = {}
    for eb_id, value in pairs:
        try:
            out[int(eb_id)] = normalize_value(str(value))
        except (TypeError, ValueError, LabelError):
            continue
    return pd.Series(out, dtype=object) if out else None


def _confusion(metrics: Mapping[str, Any]) -> np.ndarray | None:
    """The stored out-of-fold confusion matrix reordered to LABEL_VALUES (rows = consensus), or None."""
    raw = metrics.get("confusion_matrix")
    names = metrics.get("labels") or metrics.get("classes")
    if isinstance(raw, Mapping):
        names = raw.get("labels") or raw.get("classes") or names
        raw = raw.get("matrix") or raw.get("values")
    if raw is None:
        return None
    try:
        matrix = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        return None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
        return None
    names = list(names) if names is not None and len(names) == matrix.shape[0] else list(LABEL_VALUES[: len(matrix)])
    out = np.zeros((len(LABEL_VALUES), len(LABEL_VALUES)))
    index = {v: i for i, v in enumerate(LABEL_VALUES)}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if a in index and b in index:
                out[index[a], index[b]] = matrix[i, j]
    return out


def kappa_from_confusion(matrix: Sequence[Sequence[float]] | np.ndarray) -> float | None:
    """Cohen's kappa of a square confusion matrix of counts; None when empty or chance agreement is 1."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {m.shape}")
    n = m.sum()
    if n <= 0:
        return None
    po = np.trace(m) / n
    pe = float((m.sum(axis=1) * m.sum(axis=0)).sum()) / n**2
    if 1 - pe <= 1e-12:
        return None
    return float((po - pe) / (1 - pe))


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(out) else out


def run_agreement(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's out-of-fold agreement with the consensus it was trained on, from its stored metrics.

    Returns {"kappa", "accuracy", "n", "per_class_recall": {Pass, SemiPass, Fail}, "macro_f1"}; None where
    the run did not store what is needed.
    """
    metrics = metrics or {}
    matrix = _confusion(metrics)
    recall: dict[str, float | None] = {v: None for v in LABEL_VALUES}
    stored = metrics.get("per_class_recall")
    if isinstance(stored, Mapping):
        for value in LABEL_VALUES:
            recall[value] = _float(stored.get(value))
    kappa = accuracy = None
    n = 0
    if matrix is not None:
        n = int(round(matrix.sum()))
        kappa = kappa_from_confusion(matrix)
        accuracy = float(np.trace(matrix) / matrix.sum()) if matrix.sum() > 0 else None
        for i, value in enumerate(LABEL_VALUES):
            if recall[value] is None and matrix[i].sum() > 0:
                recall[value] = float(matrix[i, i] / matrix[i].sum())
    else:
        kappa = _float(metrics.get("kappa", metrics.get("cohen_kappa")))
    return {
        "kappa": kappa,
        "accuracy": accuracy,
        "n": n,
        "per_class_recall": recall,
        "macro_f1": _float(metrics.get("macro_f1")),
    }


def _done_runs(session: Session) -> list[ModelRun]:
    return store_runs.done_runs(session)


def model_history(*, session: Session) -> pd.DataFrame:
    """One row per finished run (oldest first): out-of-fold kappa against consensus, accuracy, recalls."""
    rows = []
    for run in _done_runs(session):
        stats = run_agreement(run.metrics)
        rows.append(
            {
                "version": int(run.version),
                "n_labels": int(run.n_labels or 0),
                "finished_at": run.finished_at,
                "n": stats["n"],
                "kappa": stats["kappa"],
                "accuracy": stats["accuracy"],
                **{_RECALL_COLUMNS[v]: stats["per_class_recall"][v] for v in LABEL_VALUES},
                "macro_f1": stats["macro_f1"],
            }
        )
    frame = pd.DataFrame(rows, columns=MODEL_HISTORY_COLUMNS)
    for col in ("kappa", "accuracy", *_RECALL_COLUMNS.values(), "macro_f1"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def model_vs_aods(*, session: Session) -> dict[str, Any] | None:
    """The latest finished model against the AoDs' consensus, or None when no run finished.

    With stored per-EB out-of-fold predictions, they are compared with today's consensus
    (``agreement.model_vs_consensus``); otherwise the run's out-of-fold confusion matrix (consensus at
    training time) gives the numbers. Keys: version, n_labels, finished_at, source, kappa, accuracy, n,
    per_class_recall, macro_f1.
    """
    runs = _done_runs(session)
    if not runs:
        return None
    run = runs[-1]
    stats = run_agreement(run.metrics)
    preds = oof_predictions(run.metrics)
    source = "out-of-fold confusion matrix stored with the run (consensus at training time)"
    if preds is not None:
        cons = consensus(session)
        if not cons.empty:
            live = agreement.model_vs_consensus(cons[["eb_id", "value"]], preds)
            stats.update({k: live[k] for k in ("kappa", "accuracy", "n", "per_class_recall")})
            source = "out-of-fold predictions of the run against today's consensus"
    return {
        "version": int(run.version),
        "n_labels": int(run.n_labels or 0),
        "finished_at": run.finished_at,
        "source": source,
        **stats,
    }


# --- per AoD ------------------------------------------------------------------------------------------


def per_aod_table(*, session: Session, include_accepted: bool = False) -> dict[str, Any]:
    """``agreement.per_labeler_stats`` on the current labels, with gold EBs and the latest model.

    Returns {"table": DataFrame (columns of per_labeler_stats), "model_version": int | None (the run whose
    out-of-fold predictions fill agreement_with_model), "has_model_predictions": bool}. Without stored
    out-of-fold predictions agreement_with_model stays NaN: in-sample predictions are never used.
    """
    labels = agreement_labels(session=session, include_accepted=include_accepted)
    gold = session.exec(select(GoldEB.eb_id, GoldEB.value)).all()
    gold_frame = pd.DataFrame(gold, columns=["eb_id", "value"])
    runs = _done_runs(session)
    preds = oof_predictions(runs[-1].metrics) if runs else None
    table = agreement.per_labeler_stats(labels, model_predictions=preds, gold=gold_frame if len(gold_frame) else None)
    return {
        "table": table,
        "model_version": int(runs[-1].version) if runs and preds is not None else None,
        "has_model_predictions": preds is not None,
    }
