"""Auto-QA0 state of a model run: calibrated at retrain, re-derived when a lead changes alpha, read by queue and pages.

Per run, ``auto_run`` keeps the held-out (out-of-fold) probabilities and consensus values that calibration uses,
the coverage-vs-error curve and the figures at the alpha in force; ``auto_decision`` lists the EBs the model may
decide alone at that alpha (the queue skips them with one indexed NOT EXISTS). The pool's feature matrix is
saved beside the model artifact so that an EB's explanation never rebuilds features.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from qa0_label.access.authz import Requester
from qa0_label.automation import accept, policy
from qa0_label.automation import calibrate as cal
from qa0_label.store import runs as store_runs
from qa0_label.store.db import bulk_insert, session_scope
from qa0_label.store.models import AutoDecision, AutoRun, ModelRun, Score, utcnow

log = logging.getLogger(__name__)

KEEP_RUNS = 3
"""auto_decision rows are kept for this many newest runs (the serving one, the previous one, a running one)."""


def features_path(model_dir: Path, version: int) -> Path:
    """Where a run's pool feature matrix is saved (beside model_vNNNNN.joblib, pruned with it)."""
    return Path(model_dir).resolve() / f"model_v{version:05d}.joblib.features.npz"


def _summary(c: cal.Calibration, *, oof_proba: np.ndarray, y: np.ndarray, seed: int, pool: dict[str, Any]) -> dict:
    return {
        "alpha": c.alpha,
        "delta": c.delta,
        "seed": seed,
        "share": cal.CALIBRATION_SHARE,
        "n_labelled": c.n_labelled,
        "n_calibration": int(len(c.cal_index)),
        "n_check": int(len(c.check_index)),
        "min_calibration": cal.min_calibration_labels(c.alpha, c.delta),
        "threshold": c.threshold,
        "why_none": c.why_none,
        "check": c.check,
        "curve": c.curve,
        "pool": pool,
        "oof_proba": np.round(np.asarray(oof_proba, dtype=float), 5).tolist(),
        "y": [str(v) for v in y],
    }


def _write_decisions(engine: Engine, run_id: int, eb_ids: np.ndarray, decisions: np.ndarray) -> None:
    rows = [(run_id, int(e), str(d)) for e, d in zip(eb_ids, decisions) if d is not None]
    with session_scope(engine, write=True) as s:
        s.exec(delete(AutoDecision).where(col(AutoDecision.run_id) == run_id))
        keep_ids = [
            int(k or 0)  # ids of stored runs: never NULL
            for k in s.connection()
            .execute(select(col(ModelRun.id)).order_by(col(ModelRun.version).desc()).limit(KEEP_RUNS))
            .scalars()
        ]
        s.exec(delete(AutoDecision).where(col(AutoDecision.run_id).notin_(keep_ids + [run_id])))
    for start in range(0, len(rows), 20_000):  # short write transactions: AoDs' labels slip in between
        with session_scope(engine, write=True) as s:
            bulk_insert(s.connection(), "auto_decision", ["run_id", "eb_id", "value"], rows[start : start + 20_000])


def after_scoring(
    *,
    engine: Engine,
    run_id: int,
    seed: int,
    oof_proba: np.ndarray,
    y: np.ndarray,
    proba: np.ndarray,
    labelled: np.ndarray,
    eb_ids: np.ndarray,
    model_dir: Path,
    version: int,
) -> dict[str, Any]:
    """Retrain hook: calibrate on the held-out labels, store the run's auto-QA0 state; returns the run's figures.

    OOF_PROBA and Y are the labelled EBs' rows in pool order (EB_IDS[LABELLED]). EBs whose labels include an
    accepted suggestion are left out of calibration and of the held-out check: such a label is the model's own
    call, and counting it would make the model look more often right than AoDs judging alone find it.
    """
    with session_scope(engine) as s:
        alpha = policy.current_alpha(session=s)
        echoed = accept.ebs_with_accepted(session=s)
    un = ~np.asarray(labelled, dtype=bool)
    oof_ids = np.asarray(eb_ids, dtype=np.int64)[~un]
    own = ~np.isin(oof_ids, np.fromiter(echoed, dtype=np.int64, count=len(echoed)))
    oof_proba, y = np.asarray(oof_proba, dtype=float)[own], np.asarray(y, dtype=object)[own]
    c = cal.calibrate(oof_proba, y, alpha=alpha, seed=seed, pool_proba=proba[un])
    decisions = cal.decide(proba, c.threshold)
    pool = cal.pool_counts(decisions[un])
    summary = _summary(c, oof_proba=oof_proba, y=y, seed=seed, pool=pool)
    summary["eb_id"] = [int(e) for e in oof_ids[own]]
    summary["accepted_left_out"] = int((~own).sum())
    # Written by save_features once the model artifact is in place (a killed retrain leaves only .partial files).
    summary["features_path"] = str(features_path(model_dir, version))
    with session_scope(engine, write=True) as s:
        s.merge(AutoRun(run_id=run_id, alpha=alpha, threshold=c.threshold, summary=summary, updated_at=utcnow()))
    _write_decisions(engine, run_id, eb_ids, decisions)
    return {k: summary[k] for k in ("alpha", "threshold", "why_none", "check", "pool", "n_calibration", "n_check")}


def save_features(*, X: np.ndarray, eb_ids: np.ndarray, model_dir: Path, version: int) -> Path:
    """Retrain hook after the artifact is saved: the pool's features beside it, for explanations."""
    path = features_path(model_dir, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        np.savez(fh, X=np.asarray(X, dtype=np.float32), eb_ids=np.asarray(eb_ids, dtype=np.int64))
    tmp.replace(path)
    return path


def drop_features(artifact_path: Path) -> None:
    """Delete the feature file saved beside a pruned run's model artifact."""
    Path(str(artifact_path) + ".features.npz").unlink(missing_ok=True)


def after_finish(*, engine: Engine, run_id: int) -> None:
    """Retrain hook once the run serves: if a lead changed alpha while it ran, re-derive its decisions."""
    with session_scope(engine) as s:
        alpha = policy.current_alpha(session=s)
        row = s.get(AutoRun, run_id)
        stale = row is not None and abs(float(row.alpha) - alpha) > 1e-12
    if stale:
        rederive(engine=engine, run_id=run_id, alpha=alpha)


def _scores(s: Session, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    rows = (
        s.connection()
        .execute(
            select(col(Score.eb_id), col(Score.p_pass), col(Score.p_semipass), col(Score.p_fail)).where(
                col(Score.run_id) == run_id
            )
        )
        .all()
    )
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    arr = np.asarray(rows, dtype=float)
    return arr[:, 0].astype(np.int64), arr[:, 1:4]


def _labelled_ids(s: Session) -> set[int]:
    from qa0_label.store.models import Label

    return {
        int(r[0])
        for r in s.connection().execute(select(col(Label.eb_id)).where(col(Label.value).is_not(None)).distinct())
    }


def rederive(*, engine: Engine, run_id: int, alpha: float) -> None:
    """Calibrate RUN_ID's stored held-out scores at ALPHA and rewrite its auto-decisions (no retrain needed)."""
    with session_scope(engine) as s:
        row = s.get(AutoRun, run_id)
        if row is None or not row.summary:
            return
        summary = dict(row.summary)
        eb_ids, proba = _scores(s, run_id)
        labelled = _labelled_ids(s)
    oof = np.asarray(summary.get("oof_proba") or np.zeros((0, 3)), dtype=float).reshape(-1, 3)
    y = np.asarray(summary.get("y") or [], dtype=object)
    un = np.fromiter((int(e) not in labelled for e in eb_ids), dtype=bool, count=len(eb_ids))
    known = {float(r["alpha"]) for r in summary.get("curve", [])}
    c = cal.calibrate(
        oof,
        y,
        alpha=alpha,
        seed=int(summary.get("seed", 0)),
        share=float(summary.get("share", cal.CALIBRATION_SHARE)),
        alphas=() if alpha in known else (alpha,),
        pool_proba=proba[un],
    )
    decisions = cal.decide(proba, c.threshold)
    curve = [r for r in summary.get("curve", []) if float(r["alpha"]) != alpha] + [
        r for r in c.curve if float(r["alpha"]) == alpha
    ]
    summary.update(
        alpha=alpha,
        threshold=c.threshold,
        why_none=c.why_none,
        check=c.check,
        min_calibration=cal.min_calibration_labels(alpha, c.delta),
        curve=sorted(curve, key=lambda r: float(r["alpha"])),
        pool=cal.pool_counts(decisions[un]),
    )
    with session_scope(engine, write=True) as s:
        s.merge(AutoRun(run_id=run_id, alpha=alpha, threshold=c.threshold, summary=summary, updated_at=utcnow()))
    _write_decisions(engine, run_id, eb_ids, decisions)


def change_alpha(*, engine: Engine, lead: str | Requester, alpha: float) -> dict[str, Any]:
    """A lead sets alpha (audited), then the serving run's auto-decisions follow at once; returns old and new."""
    with session_scope(engine, write=True) as s:
        row = policy.set_alpha(session=s, lead=lead, alpha=alpha)
        old, new = row.old_alpha, row.alpha
    run = serving_run_id(engine)
    if run is not None:
        rederive(engine=engine, run_id=run, alpha=new)
    return {"old_alpha": old, "alpha": new, "run_id": run}


def serving_run_id(engine: Engine) -> int | None:
    """The newest done model run's id (the one the queue and the pages serve), or None."""
    with session_scope(engine) as s:
        rid = s.connection().execute(store_runs.serving_select(col(ModelRun.id))).scalar()
    return None if rid is None else int(rid)


def state(*, engine: Engine) -> dict[str, Any]:
    """What the Model page's Automation section and the CLI say: alpha, the serving run's figures, and why none."""
    with session_scope(engine) as s:
        alpha = policy.current_alpha(session=s)
        run: Any = s.connection().execute(store_runs.serving_select(col(ModelRun.id), col(ModelRun.version))).first()
        auto = s.get(AutoRun, int(run[0])) if run is not None else None
        summary = dict(auto.summary or {}) if auto is not None else None
    if summary is not None:
        for bulky in ("oof_proba", "y", "eb_id"):
            summary.pop(bulky, None)
    return {
        "alpha": alpha,
        "run_id": int(run[0]) if run is not None else None,
        "version": int(run[1]) if run is not None else None,
        "summary": summary,
    }


def current_pool_counts(*, engine: Engine, run_id: int) -> dict[str, int]:
    """Auto-decided EBs of the run that still have no human label, per value (the Model page's counts)."""
    from sqlalchemy import func

    from qa0_label.store.models import Label

    unlabelled = ~exists().where(col(Label.eb_id) == col(AutoDecision.eb_id), col(Label.value).is_not(None))
    with session_scope(engine) as s:
        rows = (
            s.connection()
            .execute(
                select(col(AutoDecision.value), func.count())
                .where(col(AutoDecision.run_id) == run_id, unlabelled)
                .group_by(col(AutoDecision.value))
            )
            .all()
        )
    return {str(v): int(n) for v, n in rows}
