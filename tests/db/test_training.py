"""Retrain: refusals, metrics and artifacts, one run at a time, killed runs, background API, auto retrain."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, update
from sqlmodel import select

from qa0_label.config import Settings
from qa0_label.learning import model_runs, training
from qa0_label.learning import strategies as S
from qa0_label.learning.learner import load_artifact
from qa0_label.learning.retrain_process import should_auto_retrain
from qa0_label.queue import assign
from qa0_label.store.db import session_scope
from qa0_label.store.models import ModelRun, ReferenceOutcome, Score, ScoreRank, utcnow
from tests.db.al_pool import label, make_pool, planned_rows


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Small thresholds and a temporary model directory; no routing so queues are easy to check."""
    return Settings(
        model_dir=tmp_path / "models",
        min_labels_to_train=20,
        auto_retrain_every=10,
        overlap_share=0.0,
        random_share=0.0,
        gold_share=0.0,
    )


def _labelled_pool(engine, n: int = 150, n_labels: int = 60) -> dict[int, str]:
    truth = make_pool(engine, n)
    ids = sorted(truth)
    # Every class among the labels, however the pool fell.
    chosen = [next(e for e in ids if truth[e] == v) for v in ("Pass", "SemiPass", "Fail")]
    chosen += [e for e in ids if e not in chosen][: n_labels - 3]
    label(engine, chosen, "ana", truth)
    return truth


def _count(engine, model, **where) -> int:
    with session_scope(engine) as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return int(s.exec(q).one())


def test_retrain_stores_run_metrics_scores_queues_and_artifact(engine, settings) -> None:
    truth = _labelled_pool(engine)
    with session_scope(engine, write=True) as s:
        for eb, v in truth.items():
            s.add(ReferenceOutcome(eb_id=eb, value=v))
    steps: list[tuple[float, str]] = []
    result = training.retrain(engine=engine, settings=settings, progress=lambda f, m: steps.append((f, m)))
    assert result["version"] == 1 and result["n_labels"] == 60
    m = result["metrics"]
    for key in (
        "macro_f1",
        "balanced_accuracy",
        "per_class_recall",
        "fail_recall",
        "confusion_matrix",
        "reference_agreement",
    ):
        assert key in m
    assert 0.0 <= m["macro_f1"] <= 1.0 and 0.5 < m["reference_agreement"] <= 1.0
    assert set(m["per_class_recall"]) == {"Pass", "SemiPass", "Fail"}
    assert sum(map(sum, m["confusion_matrix"])) == 60
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and steps[-1][0] == 1.0
    with session_scope(engine) as s:
        run = s.exec(select(ModelRun)).one()
    assert run.status == "done" and run.finished_at is not None and run.progress == 1.0
    assert run.features and run.feature_version and run.estimator and run.artifact_sha256
    # The model that serves was chosen by this retrain's cross-validation, and the run says which and why.
    choice = run.metrics["model_choice"]
    assert choice["chosen"] in choice["cv_macro_f1"] and "chosen by cross-validated macro-F1" in run.estimator
    assert choice["cv_macro_f1"][choice["chosen"]] == pytest.approx(m["macro_f1"], abs=1e-4)
    assert m["feature_importances"] and set(m["feature_importances"]) <= set(run.features)
    # Out-of-fold predictions are stored per labelled EB (not returned) and are the ones the confusion counts.
    assert "oof_predictions" not in m
    oof = run.metrics["oof_predictions"]
    with session_scope(engine) as s:
        labelled = set(training.training_labels(session=s)["eb_id"].astype(int))
    assert len(oof["eb_id"]) == 60 and set(oof["eb_id"]) == labelled
    predicted_counts = [sum(1 for p in oof["predicted"] if p == v) for v in m["labels"]]
    assert predicted_counts == [sum(col) for col in zip(*m["confusion_matrix"])]
    from qa0_label.lead import report as lead_report

    with session_scope(engine) as s:
        table = lead_report.per_aod_table(session=s)["table"].set_index("labeler")
    assert 0.0 <= table.loc["ana", "agreement_with_model"] <= 1.0
    artifact = load_artifact(run.artifact_path, sha256=run.artifact_sha256)
    assert artifact["features"] == run.features and artifact["version"] == 1
    assert _count(engine, Score, run_id=run.id) == len(truth)
    for name in S.STRATEGIES:
        assert _count(engine, ScoreRank, run_id=run.id, strategy=name) == len(truth) - 60
    # The model's queue is what the next AoD gets.
    pick = assign.next_for(engine=engine, labeler="bo", strategy="margin", settings=settings)
    with session_scope(engine) as s:
        top = s.exec(
            select(ScoreRank.eb_id).where(
                ScoreRank.run_id == run.id, ScoreRank.strategy == "margin", ScoreRank.rank == 0
            )
        ).one()
    assert pick["eb_id"] == top and pick["model_version"] == 1 and pick["proba"] is not None


def test_too_few_labels_or_one_class_refuse_and_replace_nothing(engine, settings) -> None:
    truth = make_pool(engine, 60)
    ids = sorted(truth)
    label(engine, ids[:5], "ana", truth)
    with pytest.raises(training.RetrainRefused, match="at least 20"):
        training.retrain(engine=engine, settings=settings)
    label(engine, ids[5:40], "ana", {e: "Pass" for e in ids})  # overwrite: everything Pass
    label(engine, ids[:5], "ana", {e: "Pass" for e in ids})
    with pytest.raises(training.RetrainRefused, match="two different QA0 values"):
        training.retrain(engine=engine, settings=settings)
    assert _count(engine, ModelRun) == 0 and _count(engine, Score) == 0
    assert not settings.model_dir.exists() or not any(settings.model_dir.iterdir())
    status = training.status(engine=engine)
    assert status["running"] is False and status["latest"] is None


def test_second_retrain_while_one_runs_is_refused(engine, settings) -> None:
    _labelled_pool(engine)
    with session_scope(engine, write=True) as s:
        # Another live process on another host, heartbeat fresh.
        s.add(ModelRun(version=1, status="running", host="elsewhere", pid=1, heartbeat_at=utcnow()))
    with pytest.raises(training.RetrainRefused, match=r"already running \(version 1, started"):
        training.retrain(engine=engine, settings=settings)
    assert training.status(engine=engine)["running"] is True


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_killed_retrain_is_failed_on_next_start_and_old_model_keeps_serving(engine, settings) -> None:
    truth = _labelled_pool(engine)
    first = training.retrain(engine=engine, settings=settings)
    with session_scope(engine) as s:
        served = s.exec(select(ScoreRank.eb_id).where(ScoreRank.strategy == "margin").order_by(ScoreRank.rank)).first()
        # A retrain whose process was killed mid-way: running, partial scores with a different queue.
        dead = ModelRun(version=2, status="running", host=training.HOST, pid=_dead_pid(), heartbeat_at=utcnow())
        s.add(dead)
        s.flush()
        s.add(ScoreRank(run_id=dead.id, strategy="margin", rank=0, eb_id=max(e for e in truth if e != served)))
        s.commit()
        dead_id = dead.id
    pick = assign.next_for(engine=engine, labeler="bo", strategy="margin", settings=settings)
    assert pick["model_version"] == first["version"] and pick["eb_id"] == served
    assert training.status(engine=engine)["running"] is False  # a dead pid is not "running"
    again = training.retrain(engine=engine, settings=settings)
    assert again["version"] == 3
    with session_scope(engine) as s:
        old = s.get(ModelRun, dead_id)
        assert old.status == "failed" and "abandoned" in old.error
    assert _count(engine, ScoreRank, run_id=dead_id) == 0


def test_silent_run_on_another_host_goes_stale(engine, settings) -> None:
    _labelled_pool(engine)
    with session_scope(engine, write=True) as s:
        s.add(
            ModelRun(
                version=1,
                status="running",
                host="elsewhere",
                pid=1,
                heartbeat_at=utcnow() - timedelta(seconds=training.STALE_AFTER_S + 5),
            )
        )
    assert training.retrain(engine=engine, settings=settings)["version"] == 2


def test_failure_mid_run_marks_failed_and_keeps_previous(engine, settings, monkeypatch) -> None:
    _labelled_pool(engine)
    training.retrain(engine=engine, settings=settings)

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_runs, "_write_ranks", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        training.retrain(engine=engine, settings=settings)
    with session_scope(engine) as s:
        runs = {r.version: r for r in s.exec(select(ModelRun)).all()}
    assert runs[1].status == "done" and runs[2].status == "failed" and "disk full" in runs[2].error
    assert _count(engine, Score, run_id=runs[2].id) == 0
    status = training.status(engine=engine)
    assert status["latest"]["version"] == 1 and "disk full" in status["last_error"]
    pick = assign.next_for(engine=engine, labeler="cy", settings=settings)
    assert pick["model_version"] == 1


@pytest.mark.sqlite_only
def test_threads_racing_to_retrain_start_exactly_one(engine, settings) -> None:
    _labelled_pool(engine)
    outcomes: list[dict] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        try:
            training.retrain(engine=engine, settings=settings)
            outcomes.append({"started": True, "message": ""})
        except training.RetrainRefused as exc:
            outcomes.append({"started": False, "message": str(exc)})

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o["started"] for o in outcomes) == 1
    assert all("already running" in o["message"] for o in outcomes if not o["started"])
    _wait_idle(engine)
    with session_scope(engine) as s:
        assert [r.status for r in s.exec(select(ModelRun)).all()] == ["done"]


def _wait_idle(engine, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = training.status(engine=engine)
        if not st["running"]:
            return st
        time.sleep(0.1)
    raise AssertionError("retrain did not finish")


def test_status_and_auto_retrain_threshold(engine, settings) -> None:
    truth = _labelled_pool(engine)
    assert training.status(engine=engine)["labels_since"] == 60
    training.retrain(engine=engine, settings=settings)
    st = _wait_idle(engine)
    assert st["latest"]["version"] == 1 and st["latest"]["n_labels"] == 60 and st["labels_since"] == 0
    assert "macro_f1" in st["latest"]["metrics"] and st["last_error"] is None
    assert should_auto_retrain(engine=engine, settings=settings) is False
    unlabelled = [e for e in sorted(truth) if e not in set(sorted(truth)[:57])][:12]
    label(engine, unlabelled[:9], "bo", truth)
    assert training.status(engine=engine)["labels_since"] == 9
    assert should_auto_retrain(engine=engine, settings=settings) is False
    label(engine, unlabelled[9:10], "bo", truth)
    assert should_auto_retrain(engine=engine, settings=settings) is True
    training.retrain(engine=engine, settings=settings, trigger="auto")
    st = _wait_idle(engine)
    assert st["latest"]["version"] == 2
    with session_scope(engine) as s:
        assert s.exec(select(ModelRun.trigger).where(ModelRun.version == 2)).one() == "auto"


@pytest.mark.slow
def test_scores_of_old_runs_are_dropped(engine, settings) -> None:
    _labelled_pool(engine)
    for _ in range(3):
        training.retrain(engine=engine, settings=replace(settings))
    with session_scope(engine) as s:
        ids = {r.version: r.id for r in s.exec(select(ModelRun)).all()}
    # Beyond the two newest done runs the scores go, the run rows (history) stay.
    assert _count(engine, Score, run_id=ids[1]) == 0 and _count(engine, ScoreRank, run_id=ids[1]) == 0
    assert _count(engine, Score, run_id=ids[2]) > 0 and _count(engine, Score, run_id=ids[3]) > 0
    # ... and so does the pruned run's model file (issue 15: no orphan files); the kept runs keep theirs.
    with session_scope(engine) as s:
        paths = {r.version: r.artifact_path for r in s.exec(select(ModelRun)).all()}
    assert paths[1] is None and Path(str(paths[2])).exists() and Path(str(paths[3])).exists()
    assert sorted(p.name for p in settings.model_dir.glob("model_v*")) == [
        "model_v00002.joblib",
        "model_v00002.joblib.features.npz",  # auto-QA0's features for explanations go with their model
        "model_v00003.joblib",
        "model_v00003.joblib.features.npz",
    ]


def test_stale_flag_for_a_run_of_this_process_that_no_thread_owns(engine, settings) -> None:
    import os

    with session_scope(engine, write=True) as s:
        s.add(ModelRun(version=1, status="running", host=training.HOST, pid=os.getpid(), heartbeat_at=utcnow()))
    assert training.status(engine=engine)["running"] is False
    with session_scope(engine, write=True) as s:
        s.exec(update(ModelRun).values(status="failed"))


def test_training_labels_match_labels_consensus(engine) -> None:
    import numpy as np

    from qa0_label.store import labels

    truth = make_pool(engine, 40)
    ids = sorted(truth)
    rng = np.random.default_rng(4)
    values = ["Pass", "SemiPass", "Fail"]
    with session_scope(engine, write=True) as s:
        labels.get_or_create_labeler(session=s, name="lead", role="lead")
        for eb in ids[:35]:
            for who in rng.choice(["a", "b", "c", "d"], size=int(rng.integers(1, 5)), replace=False):
                labels.record_label(session=s, eb_id=eb, labeler=str(who), value=str(rng.choice(values)))
        labels.undo_last(session=s, labeler="a")
        labels.undo_last(session=s, labeler="b")
        for eb in ids[:3]:
            labels.record_label(session=s, eb_id=eb, labeler="lead", value="Fail", kind="adjudication", reason="r")
    with session_scope(engine) as s:
        fast = training.training_labels(session=s)
        slow = labels.consensus(s)
    assert fast["eb_id"].tolist() == slow["eb_id"].tolist()
    assert fast["value"].tolist() == slow["value"].tolist()
    assert set(fast.loc[fast["eb_id"].isin(ids[:3]), "value"]) == {"Fail"}


def test_run_of_a_live_process_blocks_until_that_process_dies(engine, settings) -> None:
    _labelled_pool(engine)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with session_scope(engine, write=True) as s:
            s.add(ModelRun(version=1, status="running", host=training.HOST, pid=proc.pid, heartbeat_at=utcnow()))
        with pytest.raises(training.RetrainRefused, match="already running"):
            training.retrain(engine=engine, settings=settings)
    finally:
        proc.kill()
        proc.wait()
    assert training.retrain(engine=engine, settings=settings)["version"] == 2
    with session_scope(engine) as s:
        assert s.exec(select(ModelRun.status).where(ModelRun.version == 1)).one() == "failed"


def test_the_retrain_gives_the_ordinal_model_the_domain_constraints(engine, settings, monkeypatch) -> None:
    from qa0_label.learning import learner as lrn

    _labelled_pool(engine)
    seen: list[tuple[str, object]] = []
    real = lrn.make_estimator

    def spy(**kwargs: object):
        seen.append((str(kwargs.get("kind")), kwargs.get("feature_names")))
        return real(**kwargs)

    monkeypatch.setattr(lrn, "make_estimator", spy)
    training.retrain(engine=engine, settings=settings)
    with session_scope(engine) as s:
        run = s.exec(select(ModelRun)).one()
    ordinal = [names for kind, names in seen if kind == "ordinal"]
    assert ordinal and all(list(names) == run.features for names in ordinal)  # CV folds and final fit alike
    assert lrn.monotonic_constraints(run.features).count(0) < len(run.features)  # some columns are constrained


def test_the_retrain_predicts_the_pool_once_and_ranks_on_those_probabilities(engine, settings, monkeypatch) -> None:
    # The ranking step reuses the pool's scores: at 100k EBs one more forest prediction costs the retrain ~1 s.
    from modAL.models.base import BaseLearner

    truth = _labelled_pool(engine)
    rows: list[int] = []
    real = BaseLearner.predict_proba

    def spy(self: BaseLearner, X, **kwargs):
        rows.append(len(X))
        return real(self, X, **kwargs)

    monkeypatch.setattr(BaseLearner, "predict_proba", spy)
    training.retrain(engine=engine, settings=settings)
    assert rows.count(len(truth)) == 1  # scoring the whole pool
    assert len(truth) - 60 not in rows  # the unlabelled part is never predicted again for the queues


def test_a_new_run_is_planned_on_its_own_rows(engine, settings, backend) -> None:
    """On PostgreSQL the planner knows a new run's scores as soon as it serves (not once autovacuum gets there):
    with stale statistics it took them for one row and scanned them to find one EB's score."""
    if backend != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's; SQLite keeps none unless asked")
    truth = _labelled_pool(engine, n=400, n_labels=60)
    with engine.begin() as conn:
        # Autovacuum off for the test's tables: only the retrain may refresh their statistics.
        for table in ("score", "score_rank"):
            conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    training.retrain(engine=engine, settings=settings)
    label(engine, sorted(truth)[60:80], "ana", truth)
    run = training.retrain(engine=engine, settings=settings)["run_id"]
    n = _count(engine, Score, run_id=run)
    estimate = planned_rows(engine, f"SELECT * FROM score WHERE run_id = {int(run)}")
    assert n >= 300 and estimate >= n / 2
