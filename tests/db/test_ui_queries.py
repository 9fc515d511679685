"""Library queries behind the app pages: EB browser, read-only labels, model report, review bundles."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from qa0_label.access.authz import Requester
from qa0_label.access.identity import require_lead, roster, set_role_as_lead
from qa0_label.access.visibility import label_scope
from qa0_label.learning import report as mr
from qa0_label.review.browse import BrowseFilter, browse_ebs, eb_id_for_uid, eb_labels, filter_options
from qa0_label.store.db import session_scope
from qa0_label.store.labels import NotAllowed, get_or_create_labeler, record_label, set_role, undo_last
from qa0_label.store.models import ExecutionBlock, ModelRun, Score, ScoreRank

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


def _ebs(engine: Engine) -> dict[str, int]:
    """Five EBs: two sources, two bands, one per day from T0; returns uid -> id."""
    rows = [
        ("uid://A002/X1/X1", "J1256-0547", 3),
        ("uid://A002/X1/X2", "J1256-0547", 6),
        ("uid://A002/X1/X3", "J0319+4130", 3),
        ("uid://A002/X1/X4_%", "J0319+4130", 7),
        ("uid://A002/X1/X5", "J1256-0547", 3),
    ]
    with session_scope(engine, write=True) as s:
        for i, (uid, source, band) in enumerate(rows):
            s.add(ExecutionBlock(uid=uid, source=source, band=band, start_time=T0 + timedelta(days=i), array="12m"))
        s.flush()
        return {e.uid: int(e.id) for e in s.exec(select(ExecutionBlock)).all()}  # type: ignore[arg-type]


def _browse(engine: Engine, **kw: object) -> list[str]:
    with session_scope(engine) as s:
        frame, total = browse_ebs(session=s, flt=BrowseFilter(**kw))  # type: ignore[arg-type]
    assert total == len(frame)
    return sorted(frame["uid"])


def test_browse_filters_by_source_band_dates_and_uid(engine: Engine) -> None:
    ids = _ebs(engine)
    assert len(_browse(engine)) == 5
    assert _browse(engine, source="J0319+4130") == ["uid://A002/X1/X3", "uid://A002/X1/X4_%"]
    assert _browse(engine, band=3) == ["uid://A002/X1/X1", "uid://A002/X1/X3", "uid://A002/X1/X5"]
    assert _browse(engine, start=date(2024, 3, 2), end=date(2024, 3, 3)) == ["uid://A002/X1/X2", "uid://A002/X1/X3"]
    # LIKE wildcards typed by the user match literally
    assert _browse(engine, uid_contains="_%") == ["uid://A002/X1/X4_%"]
    assert _browse(engine, uid_contains="%") == ["uid://A002/X1/X4_%"]
    with session_scope(engine) as s:
        opts = filter_options(session=s)
        assert eb_id_for_uid(session=s, uid=" uid://A002/X1/X3 ") == ids["uid://A002/X1/X3"]
        assert eb_id_for_uid(session=s, uid="uid://nope") is None
    assert opts["sources"] == ["J0319+4130", "J1256-0547"] and opts["bands"] == [3, 6, 7]
    assert (opts["first"], opts["last"]) == (date(2024, 3, 1), date(2024, 3, 5))


def test_browse_filters_by_label_state(engine: Engine) -> None:
    ids = _ebs(engine)
    with session_scope(engine, write=True) as s:
        record_label(session=s, eb_id=ids["uid://A002/X1/X1"], labeler="a", value="Pass")
        record_label(session=s, eb_id=ids["uid://A002/X1/X2"], labeler="a", value="Pass")
        record_label(session=s, eb_id=ids["uid://A002/X1/X2"], labeler="b", value="Fail")
        record_label(session=s, eb_id=ids["uid://A002/X1/X3"], labeler="a", value="Fail")
        undo_last(session=s, labeler="a")  # X3 back to unlabelled
        set_role(session=s, name="lead", role="lead", create=True)
        record_label(
            session=s, eb_id=ids["uid://A002/X1/X2"], labeler="lead", value="Fail", kind="adjudication", reason="DV08"
        )
    assert _browse(engine, label_state="labelled") == ["uid://A002/X1/X1", "uid://A002/X1/X2"]
    assert _browse(engine, label_state="disputed") == ["uid://A002/X1/X2"]
    assert _browse(engine, label_state="adjudicated") == ["uid://A002/X1/X2"]
    assert _browse(engine, label_state="unlabelled") == ["uid://A002/X1/X3", "uid://A002/X1/X4_%", "uid://A002/X1/X5"]
    with session_scope(engine) as s:
        frame, _ = browse_ebs(session=s, flt=BrowseFilter(label_state="disputed"))
    assert frame.iloc[0]["labels"] == "1 Pass, 1 Fail" and bool(frame.iloc[0]["adjudicated"])
    with session_scope(engine) as s, pytest.raises(ValueError):
        browse_ebs(session=s, flt=BrowseFilter(label_state="bogus"))


def _scope(s, name: str, proof: str = "none"):
    return label_scope(session=s, requester=Requester(name=name, proof=proof))  # type: ignore[arg-type]


def test_read_only_labels_stay_blind_until_the_viewer_labelled(engine: Engine) -> None:
    ids = _ebs(engine)
    eb = ids["uid://A002/X1/X1"]
    with session_scope(engine, write=True) as s:
        record_label(session=s, eb_id=eb, labeler="first", value="Fail", comment="phase jump")
        set_role(session=s, name="boss", role="lead", create=True)
    with session_scope(engine) as s:
        seen, withheld = eb_labels(session=s, eb_id=eb, scope=_scope(s, "second"))
        assert seen.empty and withheld
        # A lead by name only (no unlock, no login) is an AoD for blind review.
        seen, withheld = eb_labels(session=s, eb_id=eb, scope=_scope(s, "boss"))
        assert seen.empty and withheld
        seen, withheld = eb_labels(session=s, eb_id=eb, scope=_scope(s, "boss", "oidc"))
        assert list(seen["labeler"]) == ["first"] and not withheld
    with session_scope(engine, write=True) as s:
        record_label(session=s, eb_id=eb, labeler="second", value="Pass")
    with session_scope(engine) as s:
        seen, withheld = eb_labels(session=s, eb_id=eb, scope=_scope(s, "SECOND"))
    assert sorted(seen["labeler"]) == ["first", "second"] and not withheld
    assert seen.loc[seen["labeler"] == "first", "comment"].item() == "phase jump"


def test_lead_only_actions_refuse_aods(engine: Engine) -> None:
    with session_scope(engine, write=True) as s:
        set_role(session=s, name="lead", role="lead", create=True)
        with pytest.raises(NotAllowed):
            require_lead(session=s, name="someone")
        with pytest.raises(NotAllowed):
            set_role_as_lead(session=s, lead="someone", name="someone", role="lead")
        get_or_create_labeler(session=s, name="newbie")  # roles go to people in the roster
        set_role_as_lead(session=s, lead="lead", name="newbie", role="lead")
        assert ("newbie", "lead") in roster(session=s)


def _run(engine: Engine, version: int, n_labels: int, metrics: dict[str, object], status: str = "done") -> int:
    with session_scope(engine, write=True) as s:
        run = ModelRun(version=version, status=status, n_labels=n_labels, metrics=metrics, features=["a", "b"])
        s.add(run)
        s.flush()
        return int(run.id)  # type: ignore[arg-type]


def test_model_report_history_confusion_importance_and_pool(engine: Engine) -> None:
    ids = _ebs(engine)
    with session_scope(engine) as s:
        assert mr.latest_done_run(session=s) is None
    _run(engine, 1, 20, {"macro_f1": 0.5, "fail_recall": 0.4})
    run2 = _run(
        engine,
        2,
        40,
        {
            "macro_f1": 0.7,
            "fail_recall": 0.8,
            "confusion_matrix": [[5, 1, 0], [1, 3, 1], [0, 0, 4]],
            "feature_importances": [0.2, 0.7],
        },
    )
    _run(engine, 3, 45, {}, status="failed")
    with session_scope(engine, write=True) as s:
        for i, eb in enumerate(sorted(ids.values())):
            s.add(
                Score(run_id=run2, eb_id=eb, p_pass=0.1 * i, p_semipass=0.05, p_fail=0.9 - 0.1 * i, uncertainty=0.1 * i)
            )
        record_label(session=s, eb_id=min(ids.values()), labeler="a", value="Fail")
    with session_scope(engine) as s:
        history = mr.run_history(session=s)
        latest = mr.latest_done_run(session=s)
        pool = mr.pool_scores(session=s, run_id=run2)
        balance = mr.class_balance(session=s)
    assert list(history["version"]) == [1, 2, 3]
    long = mr.metric_history_long(history)
    assert set(long["version"]) == {1, 2}, "failed runs have no metrics to plot"
    assert latest is not None and latest["version"] == 2
    cm = mr.confusion_frame(latest["metrics"])
    assert cm is not None and len(cm) == 9
    assert cm.loc[(cm.actual == "SemiPass") & (cm.predicted == "Fail"), "count"].item() == 1
    fi = mr.feature_importance_frame(latest["metrics"], latest["features"])
    assert fi is not None and list(fi["feature"]) == ["b", "a"]
    assert len(pool) == 4, "the labelled EB is not part of the pool"
    assert set(pool["predicted"]) <= {"Pass", "SemiPass", "Fail"}
    hist = mr.uncertainty_histogram(pool, bins=4)
    assert int(hist["count"].sum()) == 4
    assert dict(zip(balance["value"], balance["count"])) == {"Pass": 0, "SemiPass": 0, "Fail": 1}


def test_confusion_and_importance_tolerate_missing_or_odd_metrics() -> None:
    assert mr.confusion_frame(None) is None
    assert mr.confusion_frame({"confusion_matrix": [[1, 2]]}) is None
    named = mr.confusion_frame({"confusion_matrix": {"labels": ["Fail", "Pass"], "matrix": [[3, 1], [0, 2]]}})
    assert named is not None and set(named["actual"]) == {"Fail", "Pass"}
    assert mr.feature_importance_frame({"feature_importances": {"x": 0.1, "y": "bad"}}) is not None
    assert mr.feature_importance_frame({"feature_importances": [0.1]}, ["a", "b"]) is None


def test_likely_next_is_the_head_of_the_queue(engine: Engine) -> None:
    from qa0_label.learning.strategies import COLD_START
    from qa0_label.review.bundle import likely_next

    ids = sorted(_ebs(engine).values())
    with session_scope(engine, write=True) as s:
        for rank, eb in enumerate(reversed(ids)):
            s.add(ScoreRank(run_id=None, strategy=COLD_START, rank=rank, eb_id=eb))
        record_label(session=s, eb_id=ids[-1], labeler="x", value="Pass")  # head of the queue, already labelled
    assert likely_next(engine=engine, labeler="me", strategy=None, k=2) == [ids[-2], ids[-3]]


@pytest.mark.parametrize("processes", [False, True], ids=["thread", "process"])
def test_review_bundle_is_cached_prefetched_and_ready_to_send(engine: Engine, db_url: str, processes: bool) -> None:
    from qa0_label.review.bundle import BundleCache
    from qa0_label.sim.simulate import simulate

    simulate(engine=engine, n=4, seed=2, aods=1, labeled=2)
    url = db_url  # a worker process opens the database by its URL
    cache = BundleCache(lambda _url: engine, processes=processes)
    try:
        with session_scope(engine) as s:
            first, second = [
                int(r[0]) for r in s.connection().exec_driver_sql("SELECT id FROM execution_block ORDER BY id LIMIT 2")
            ]
        assert cache.prefetch(url, [first]) == 1
        assert cache.prefetch(url, [first]) == 0, "no second build while one is queued or done"
        cache.wait_idle()
        assert cache.peek(url, first) is not None
        bundle = cache.get(url, first)
        assert (cache.hits, cache.misses) == (1, 0)
        assert bundle.header["eb_id"] == first and bundle.header["uid"].startswith("uid://")
        for name in ("spectrum", "light_curve", "context"):
            spec = bundle.specs[name]
            if spec is not None:
                assert all(isinstance(v, bytes) for v in spec.get("datasets", {}).values()), name
        heat, n_ant = cache.heatmap(url, first, "phase_deg")
        assert heat is not None and n_ant > 0 and "phase_deg" in bundle.heatmaps
        cache.get(url, second)
        assert cache.misses == 1
    finally:
        cache.close()


def test_auto_retrain_is_due_after_enough_new_labels(engine: Engine) -> None:
    from dataclasses import replace

    from qa0_label.config import Settings
    from qa0_label.learning.retrain_process import should_auto_retrain

    ids = sorted(_ebs(engine).values())
    settings = replace(Settings(), auto_retrain_every=3)
    with session_scope(engine, write=True) as s:
        for eb in ids[:2]:
            record_label(session=s, eb_id=eb, labeler="a", value="Pass")
    assert not should_auto_retrain(engine=engine, settings=settings)
    with session_scope(engine, write=True) as s:
        record_label(session=s, eb_id=ids[2], labeler="a", value="Fail")
    assert should_auto_retrain(engine=engine, settings=settings)
    assert not should_auto_retrain(engine=engine, settings=replace(settings, auto_retrain_every=0))
    _run(engine, 1, 3, {}, status="running")
    assert not should_auto_retrain(engine=engine, settings=settings), "one retrain at a time"


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_retrain_runner_reports_a_refusal_from_its_worker_process(engine: Engine, db_url: str) -> None:
    from qa0_label.learning.retrain_process import RetrainRunner

    runner = RetrainRunner()
    try:
        outcome = runner.submit(url=db_url, trigger="manual").result(timeout=120)
        assert outcome["started"] is False and outcome["message"]  # an empty database has nothing to learn
        assert runner.last_outcome(db_url)["message"] == outcome["message"]  # type: ignore[index]
        assert not runner.starting(db_url)
    finally:
        runner.close()
