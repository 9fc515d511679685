"""The model-run lifecycle: claim a run, keep it alive, retrain (read, fit and score through learning.fitting,
save), store its scores and queues, finish or fail it, and report the status.

Only one retrain runs at a time across threads and processes. The claim happens in one write transaction
that locks the `meta` row 'retrain_lock' (SELECT ... FOR UPDATE on PostgreSQL; SQLite's write transaction is
already exclusive), reaps stale runs, refuses when another run is alive and inserts the new `running` run.
A run is alive while its process heartbeats; a run whose process died (dead pid on this host, or no
heartbeat for STALE_AFTER_S) is marked failed by the next claim. Score and ScoreRank rows of a run are only
read once the run is `done`, so the previous model keeps serving until the new one is complete.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from qa0_label.automation import runs as automation_hook
from qa0_label.config import Settings
from qa0_label.learning import features as feats
from qa0_label.learning import fitting
from qa0_label.learning import learner as lrn
from qa0_label.learning import strategies as strat
from qa0_label.liveness import pid_alive
from qa0_label.store.db import bulk_insert, bulk_rows, refresh_statistics, session_scope
from qa0_label.store.labels import adjudications_select, consensus_from_frames, current_labels_select
from qa0_label.store.models import (
    LABEL_VALUES,
    Label,
    Meta,
    ModelRun,
    ReferenceOutcome,
    Score,
    ScoreRank,
    row_id,
    utcnow,
)
from qa0_label.store.runs import is_done, serving_run

log = logging.getLogger(__name__)


Progress = Callable[[float, str], None]

STALE_AFTER_S = 120.0
"""A running run whose heartbeat is older than this is considered dead."""
HEARTBEAT_S = 5.0
KEEP_DONE_RUNS = 2
"""Score rows are kept for this many newest done runs (older ones are deleted to bound the table)."""
LOCK_KEY = "retrain_lock"
HOST = socket.gethostname()[:255]

_active_lock = threading.Lock()
_active_runs: set[int] = set()


class RetrainRefused(Exception):
    """A retrain that cannot start (one is running, too few labels, a single class); nothing was replaced."""


class RetrainRunning(RetrainRefused):
    """Refused because another retrain is running (a state of the system, not bad input); names that run."""

    def __init__(self, message: str, *, version: int, started_at: datetime | None) -> None:
        super().__init__(message)
        self.version = version
        self.started_at = started_at


# --- liveness ----------------------------------------------------------------------------------


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def is_stale(run: ModelRun, *, now: datetime | None = None) -> bool:
    """True when a `running` run cannot still be making progress (its process is gone or silent)."""
    now = now or utcnow()
    if run.host == HOST and run.pid is not None:
        if run.pid == os.getpid():
            # Our own process: alive exactly when one of our threads is working on it.
            with _active_lock:
                return run.id not in _active_runs
        if not pid_alive(run.pid):
            return True
    beat = _aware(run.heartbeat_at) or _aware(run.started_at) or now
    return (now - beat).total_seconds() > STALE_AFTER_S


def _delete_run_rows(session: Session, run_id: int) -> None:
    session.exec(delete(ScoreRank).where(col(ScoreRank.run_id) == run_id))
    session.exec(delete(Score).where(col(Score.run_id) == run_id))


def reap_stale(*, session: Session) -> list[int]:
    """Mark every stale `running` run failed (and drop its partial scores); returns their versions."""
    reaped = []
    for run in session.exec(select(ModelRun).where(ModelRun.status == "running")).all():
        if is_stale(run):
            run.status = "failed"
            run.finished_at = utcnow()
            run.error = (run.error or "") + "abandoned: its process stopped before finishing"
            session.add(run)
            _delete_run_rows(session, int(run.id))  # type: ignore[arg-type]
            reaped.append(run.version)
    session.flush()
    return reaped


def _take_lock(session: Session) -> None:
    # The lock row serialises claims on PostgreSQL (row lock until commit); SQLite's BEGIN IMMEDIATE
    # already serialises every writer, and FOR UPDATE renders as nothing there.
    if session.get(Meta, LOCK_KEY) is None:
        try:
            with session.begin_nested():
                session.add(Meta(key=LOCK_KEY, value=""))
                session.flush()
        except IntegrityError:
            pass
    session.exec(select(Meta).where(Meta.key == LOCK_KEY).with_for_update()).one()


def _describe_running(run: ModelRun) -> str:
    started = _aware(run.started_at)
    when = started.strftime("%Y-%m-%d %H:%M:%S UTC") if started else "at an unknown time"
    return f"a retrain is already running (version {run.version}, started {when})"


def training_labels(*, session: Session) -> pd.DataFrame:
    """Consensus label per EB (eb_id, value) with labels.consensus's rules, from two narrow queries.

    An adjudication wins; else the majority of current labels; a tie goes to the more cautious value.
    """
    conn = session.connection()
    cur = pd.DataFrame(
        conn.execute(current_labels_select(Label.eb_id, Label.value)).fetchall(), columns=["eb_id", "value"]
    )
    adj = pd.DataFrame(
        conn.execute(adjudications_select(Label.eb_id, Label.value)).fetchall(), columns=["eb_id", "value"]
    )
    return consensus_from_frames(cur, adj)[["eb_id", "value"]]


def _check_labels(cons: pd.DataFrame, settings: Settings) -> None:
    n = len(cons)
    if n < settings.min_labels_to_train:
        raise RetrainRefused(
            f"only {n} labelled EBs; at least {settings.min_labels_to_train} are needed to train a model"
        )
    classes = sorted(set(cons["value"]))
    if len(classes) < 2:
        raise RetrainRefused(
            f"all {n} labelled EBs are {classes[0] if classes else 'unlabelled'}; "
            "a model needs at least two different QA0 values"
        )


def _claim(*, engine: Engine, settings: Settings, trigger: str) -> tuple[int, int]:
    """Insert the `running` run under the lock, or raise RetrainRefused; returns (run id, version)."""
    with session_scope(engine, write=True) as session:
        _take_lock(session)
        reaped = reap_stale(session=session)
        running = session.exec(select(ModelRun).where(ModelRun.status == "running")).first()
        if running is not None:
            raise RetrainRunning(
                _describe_running(running), version=running.version, started_at=_aware(running.started_at)
            )
        _check_labels(training_labels(session=session), settings)
        top = session.exec(select(func.max(ModelRun.version))).one()
        now = utcnow()
        run = ModelRun(
            version=int(top or 0) + 1,
            status="running",
            trigger=str(trigger)[:16],
            started_at=now,
            heartbeat_at=now,
            progress=0.0,
            progress_text="queued",
            strategy=strat.DEFAULT_STRATEGY,
            feature_version=feats.FEATURE_VERSION,
            pid=os.getpid(),
            host=HOST,
        )
        session.add(run)
        session.flush()
        run_id, version = int(run.id), int(run.version)  # type: ignore[arg-type]
        with _active_lock:
            _active_runs.add(run_id)
    _drop_abandoned_artifacts(Path(settings.model_dir), reaped)  # only once the reaping is committed
    return run_id, version


def _drop_abandoned_artifacts(model_dir: Path, versions: list[int]) -> None:
    """Delete what reaped runs left in the model directory: a half-written temp file, an unrecorded artifact."""
    for version in versions:
        for path in model_dir.glob(f"model_v{version:05d}.joblib*"):
            path.unlink(missing_ok=True)


# --- the run -----------------------------------------------------------------------------------


class _Heartbeat:
    """Background thread that keeps the run's heartbeat fresh while a long step runs."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        self.engine, self.run_id = engine, run_id
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"qa0-heartbeat-{run_id}", daemon=True)

    def _beat(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_S):
            try:
                with session_scope(self.engine, write=True) as s:
                    s.exec(
                        update(ModelRun)
                        .where(col(ModelRun.id) == self.run_id, col(ModelRun.status) == "running")
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:  # noqa: BLE001 - a missed beat is retried; the run itself reports errors
                log.debug("heartbeat failed", exc_info=True)

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=HEARTBEAT_S + 1)


def _reporter(engine: Engine, run_id: int, progress: Progress | None) -> Progress:
    def report(fraction: float, message: str) -> None:
        with session_scope(engine, write=True) as s:
            s.exec(
                update(ModelRun)
                .where(col(ModelRun.id) == run_id, col(ModelRun.status) == "running")
                .values(progress=float(fraction), progress_text=message[:200], heartbeat_at=utcnow())
            )
        if progress is not None:
            progress(float(fraction), message)

    return report


def _reference_agreement(session: Session, eb_index: pd.Index, predicted: np.ndarray) -> dict[str, Any] | None:
    # Plain DB-API rows and one reindex: ORM rows and label-based lookups took ~1 s of a 100k-EB retrain.
    query = select(ReferenceOutcome.eb_id, ReferenceOutcome.value)
    rows = [r for batch in bulk_rows(session.connection(), query) for r in batch]
    if not rows:
        return None
    ids, values = zip(*rows)
    ref = pd.Series(np.asarray(values, dtype=object), index=np.asarray(ids, dtype=np.int64))
    ref_at = ref.reindex(np.asarray(eb_index, dtype=np.int64)).to_numpy(dtype=object)
    have = pd.notna(ref_at)
    if not have.any():
        return None
    common = np.flatnonzero(have)
    agree = np.asarray(predicted, dtype=object)[common] == ref_at[common]
    fail_mask = ref_at[common] == "Fail"
    return {
        "reference_agreement": float(agree.mean()),
        "reference_fail_recall": float(agree[fail_mask].mean()) if fail_mask.any() else None,
        "reference_n": int(len(common)),
    }


def _write_scores(engine: Engine, run_id: int, eb_ids: np.ndarray, proba: np.ndarray, unc: np.ndarray) -> None:
    rows = [(run_id, int(e), float(p[0]), float(p[1]), float(p[2]), float(u)) for e, p, u in zip(eb_ids, proba, unc)]
    # Chunked transactions keep SQLite's write lock short so AoDs' labels slip in between.
    for start in range(0, len(rows), 20_000):
        with session_scope(engine, write=True) as s:
            bulk_insert(
                s.connection(),
                "score",
                ["run_id", "eb_id", "p_pass", "p_semipass", "p_fail", "uncertainty"],
                rows[start : start + 20_000],
            )


def _write_ranks(engine: Engine, run_id: int | None, queues: dict[str, np.ndarray]) -> None:
    rows = [(run_id, name, r, int(e)) for name, ids in queues.items() for r, e in enumerate(ids)]
    with session_scope(engine, write=True) as s:
        bulk_insert(s.connection(), "score_rank", ["run_id", "strategy", "rank", "eb_id"], rows)


def _finish(engine: Engine, run_id: int, values: dict[str, Any]) -> None:
    with session_scope(engine, write=True) as s:
        done = s.exec(
            update(ModelRun)
            .where(col(ModelRun.id) == run_id, col(ModelRun.status) == "running")
            .values(status="done", finished_at=utcnow(), progress=1.0, progress_text="done", **values)
        ).rowcount
        if not done:
            raise RuntimeError("the run was marked failed while it was finishing (stale heartbeat?)")
        keep = s.exec(
            select(ModelRun.id).where(is_done()).order_by(col(ModelRun.version).desc()).limit(KEEP_DONE_RUNS)
        ).all()
        old = s.exec(
            select(ModelRun).where(is_done(), col(ModelRun.id).notin_(keep), col(ModelRun.artifact_path).is_not(None))
        ).all()
        pruned = []
        for run in old:
            _delete_run_rows(s, row_id(run))
            pruned.append(str(run.artifact_path))
            run.artifact_path = None  # the run's metrics stay for the history; its model file goes
            s.add(run)
    # Only once the pruning is committed, so no row ever points at a deleted file (a crash before the commit
    # keeps the path in the row and the next finish deletes the file).
    for path in pruned:
        Path(path).unlink(missing_ok=True)
        automation_hook.drop_features(Path(path))  # auto-QA0's feature file beside the artifact goes with it


def _fail(engine: Engine, run_id: int, error: str) -> None:
    with session_scope(engine, write=True) as s:
        s.exec(
            update(ModelRun)
            .where(col(ModelRun.id) == run_id, col(ModelRun.status) == "running")
            .values(status="failed", finished_at=utcnow(), error=error[:2000], progress_text="failed")
        )
        _delete_run_rows(s, run_id)


@dataclass(frozen=True)
class _TrainingData:
    """The pool as a retrain sees it: features X (one row per EB of pool_ids), which rows are labelled and
    their consensus labels y, and the newest label the run read."""

    max_label_id: int
    columns: list[str]
    X: np.ndarray
    pool_ids: np.ndarray
    labelled: np.ndarray
    y: np.ndarray


def _training_data(engine: Engine, settings: Settings) -> _TrainingData:
    with session_scope(engine) as s:
        max_label_id = int(s.exec(select(func.max(Label.id))).one() or 0)
        cons = training_labels(session=s)
        _check_labels(cons, settings)
        X_all = feats.build_features(session=s)
    label_of = dict(zip(cons["eb_id"].astype(int), cons["value"]))
    pool_ids = X_all.index.to_numpy(dtype=np.int64)
    labelled = np.fromiter((int(e) in label_of for e in pool_ids), dtype=bool, count=len(pool_ids))
    # Drop columns that are empty over the whole pool: they carry nothing and only slow the trees.
    columns = [c for c in X_all.columns if X_all[c].notna().any()]
    X = X_all[columns].to_numpy(dtype=float)
    # The frame is a second copy of X: let it go before cross-validation (the app's retrain worker
    # process is part of the app's memory).
    del X_all
    y = np.asarray([label_of[int(e)] for e in pool_ids[labelled]], dtype=object)
    _check_labels(pd.DataFrame({"value": y}), settings)
    return _TrainingData(max_label_id, columns, X, pool_ids, labelled, y)


def _save_model(settings: Settings, learner: Any, data: _TrainingData, version: int) -> tuple[Path, str]:
    """Write the model artifact (and auto-QA0's features beside it); returns (path, sha256)."""
    model_dir = Path(settings.model_dir)
    path = (model_dir / f"model_v{version:05d}.joblib").resolve()
    artifact = {
        "learner": learner,
        "features": data.columns,
        "feature_version": feats.FEATURE_VERSION,
        "classes": list(LABEL_VALUES),
        "version": version,
    }
    digest = lrn.save_artifact(artifact, path)
    automation_hook.save_features(X=data.X, eb_ids=data.pool_ids, model_dir=model_dir, version=version)
    return path, digest


def _run(*, engine: Engine, settings: Settings, run_id: int, version: int, progress: Progress | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    report = _reporter(engine, run_id, progress)
    try:
        with _Heartbeat(engine, run_id):
            report(0.02, "updating the detail-feature cache")
            feats.ensure_detail_cache(
                engine=engine,
                progress=lambda done, total: report(
                    0.02 + 0.08 * done / max(total, 1), f"detail features {done}/{total} EBs"
                ),
            )
            report(0.1, "reading labels and features")
            data = _training_data(engine, settings)
            X, pool_ids, labelled = data.X, data.pool_ids, data.labelled
            n_labels = int(len(data.y))

            report(0.15, f"choosing a model by cross-validation on {n_labels} labels")
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1):
                learner, metrics = fitting.fit_served_model(
                    X[labelled], data.y, feature_names=data.columns, random_state=version
                )
            report(0.45, f"scoring {len(pool_ids)} EBs")
            scores = fitting.score_pool(learner, X)
            # Parallel lists (lead_report.oof_predictions reads them): per-AoD agreement with the model.
            metrics["oof_predictions"] = {
                "eb_id": [int(e) for e in pool_ids[labelled]],
                "predicted": metrics.pop("oof_predicted"),
            }
            report(0.6, "comparing with reference outcomes")
            with session_scope(engine) as s:
                ref = _reference_agreement(s, pd.Index(pool_ids, name="eb_id"), scores.predicted)
            if ref:
                metrics.update(ref)
            metrics["classes"] = sorted(set(data.y), key=LABEL_VALUES.index)
            importances = fitting.feature_importances(learner, data.columns)
            if importances is not None:
                metrics["feature_importances"] = importances
            metrics["max_label_id"] = data.max_label_id
            metrics["n_pool"] = int(len(pool_ids))

            oof_proba = metrics.pop("oof_proba")
            report(0.65, "calibrating auto-QA0")
            metrics["auto_qa0"] = automation_hook.after_scoring(
                engine=engine,
                run_id=run_id,
                seed=version,
                oof_proba=oof_proba,
                y=data.y,
                proba=scores.proba,
                labelled=labelled,
                eb_ids=pool_ids,
                model_dir=Path(settings.model_dir),
                version=version,
            )
            report(0.7, "ranking the review queues")
            un = ~labelled
            # The pool is scored already: the strategies reuse its probabilities.
            queues = fitting.build_queues(learner, X[un], pool_ids[un], seed=version, proba=scores.raw[un])

            report(0.75, "saving the model")
            path, digest = _save_model(settings, learner, data, version)

            report(0.8, "storing scores")
            _write_scores(engine, run_id, pool_ids, scores.proba, scores.uncertainty)
            _write_ranks(engine, run_id, queues)
            # Before the run serves: next's lookups of its scores and queues must be planned on its rows.
            refresh_statistics(engine, ["score", "score_rank", "auto_decision"])
            metrics["seconds"] = round(time.perf_counter() - t0, 3)
            _finish(
                engine,
                run_id,
                {
                    "n_labels": n_labels,
                    "estimator": fitting.describe_estimator(learner, metrics.get("model_choice")),
                    "features": data.columns,
                    "feature_version": feats.FEATURE_VERSION,
                    "metrics": _jsonable(metrics),
                    "artifact_path": str(path),
                    "artifact_sha256": digest,
                },
            )
            automation_hook.after_finish(engine=engine, run_id=run_id)
        if progress is not None:
            progress(1.0, f"model version {version} ready")
        return {
            "version": version,
            "run_id": run_id,
            "n_labels": n_labels,
            # The per-EB predictions stay in the stored run; a CLI answer would drown in them.
            "metrics": _jsonable({k: v for k, v in metrics.items() if k != "oof_predictions"}),
            "artifact_path": str(path),
            "artifact_sha256": digest,
            "seconds": metrics["seconds"],
        }
    except BaseException as exc:
        _fail(engine, run_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        with _active_lock:
            _active_runs.discard(run_id)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if np.isfinite(f) else None
    return value


# --- public API --------------------------------------------------------------------------------


def retrain(
    *, engine: Engine, settings: Settings, trigger: str = "manual", progress: Progress | None = None
) -> dict[str, Any]:
    """Train on the consensus labels, score the pool and store a ModelRun; RetrainRefused when it cannot."""
    run_id, version = _claim(engine=engine, settings=settings, trigger=trigger)
    return _run(engine=engine, settings=settings, run_id=run_id, version=version, progress=progress)


def labels_since_last_run(*, session: Session) -> int:
    """Label events (reviews and adjudications) recorded after the newest done run read its labels."""
    done = serving_run(session)
    since = int((done.metrics or {}).get("max_label_id", 0)) if done is not None else 0
    n = session.exec(
        select(func.count())
        .select_from(Label)
        .where(col(Label.id) > since, col(Label.kind).in_(("review", "adjudication")))
    ).one()
    return int(n)


def status(*, engine: Engine) -> dict[str, Any]:
    """What the sidebar shows: is a retrain running, its progress, the serving model, labels since it."""
    with session_scope(engine) as s:
        running = s.exec(
            select(ModelRun).where(ModelRun.status == "running").order_by(ModelRun.version.desc())  # type: ignore[attr-defined]
        ).first()
        alive = running is not None and not is_stale(running)
        done = serving_run(s)
        newest = s.exec(select(ModelRun).order_by(ModelRun.version.desc()).limit(1)).first()  # type: ignore[attr-defined]
        last_error = None
        if newest is not None and newest.status == "failed":
            last_error = newest.error
        latest = None
        if done is not None:
            latest = {
                "version": done.version,
                "finished_at": _aware(done.finished_at).isoformat() if done.finished_at else None,  # type: ignore[union-attr]
                "n_labels": done.n_labels,
                "metrics": dict(done.metrics or {}),
            }
        return {
            "running": bool(alive),
            "progress": float(running.progress) if alive and running is not None else 0.0,
            "progress_text": running.progress_text if alive and running is not None else None,
            "running_version": running.version if alive and running is not None else None,
            "latest": latest,
            "labels_since": labels_since_last_run(session=s),
            "last_error": last_error,
        }
