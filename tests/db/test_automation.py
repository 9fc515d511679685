"""Auto-QA0 through the database: calibration stored by the shipped retrain, alpha audit, queue, explanations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from qa0_label.automation import accept, explain, policy, predict, runs
from qa0_label.automation.calibrate import AlphaError
from qa0_label.config import Settings
from qa0_label.queue.assign import next_for
from qa0_label.store.db import dispose_engines, get_engine, session_scope
from qa0_label.store.labels import NotAllowed, get_or_create_labeler, record_label
from tests.db import auto_pool


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return auto_pool.build(tmp_path_factory.mktemp("auto") / "auto.sqlite")


@pytest.fixture
def url(template: Path, tmp_path: Path):
    u = auto_pool.copy(template, tmp_path)
    yield u
    dispose_engines()


def _auto_ids(url: str) -> dict[int, str]:
    engine = get_engine(url)
    run = runs.serving_run_id(engine)
    with session_scope(engine) as s:
        rows = s.connection().execute(text("SELECT eb_id, value FROM auto_decision WHERE run_id=:r"), {"r": run}).all()
    return {int(e): str(v) for e, v in rows}


def test_retrain_stores_calibration_and_decisions(url: str) -> None:
    state = runs.state(engine=get_engine(url))
    s = state["summary"]
    assert state["alpha"] == pytest.approx(auto_pool.ALPHA)
    assert s["threshold"] is not None and s["why_none"] is None
    assert s["n_calibration"] + s["n_check"] == s["n_labelled"] == 420
    assert [r["alpha"] for r in s["curve"]][0] == 0.005 and len(s["curve"]) >= 20
    assert set(s["check"]["per_class"]) == {"Pass", "SemiPass", "Fail"}
    auto = _auto_ids(url)
    assert auto and set(auto.values()) <= {"Pass", "SemiPass", "Fail"}
    counts = runs.current_pool_counts(engine=get_engine(url), run_id=state["run_id"])
    assert sum(counts.values()) == s["pool"]["auto_Pass"] + s["pool"]["auto_SemiPass"] + s["pool"]["auto_Fail"]


def test_alpha_changes_are_for_leads_audited_and_rederive_decisions(url: str) -> None:
    engine = get_engine(url)
    with session_scope(engine, write=True) as s:
        get_or_create_labeler(session=s, name="t_aod")
    with pytest.raises(NotAllowed):
        runs.change_alpha(engine=engine, lead="t_aod", alpha=0.05)
    with pytest.raises(AlphaError):
        runs.change_alpha(engine=engine, lead=auto_pool.LEAD, alpha=0.5)
    before = len(_auto_ids(url))
    out = runs.change_alpha(engine=engine, lead=auto_pool.LEAD, alpha=0.005)
    assert out["old_alpha"] == pytest.approx(auto_pool.ALPHA) and out["alpha"] == 0.005
    with session_scope(engine) as s:
        assert policy.current_alpha(session=s) == 0.005
        hist = policy.alpha_history(session=s)
    assert hist[0]["changed_by"] == auto_pool.LEAD and hist[0]["old_alpha"] == pytest.approx(auto_pool.ALPHA)
    assert len(_auto_ids(url)) < before  # a stricter alpha decides fewer EBs alone
    assert runs.state(engine=engine)["summary"]["alpha"] == 0.005


def test_model_picks_never_go_to_auto_decided_ebs(url: str) -> None:
    # Only strategy picks (no random, overlap or gold share): none of them may be an EB the model decides alone.
    engine = get_engine(url)
    settings = Settings(database_url=url, random_share=0.0, overlap_share=0.0, gold_share=0.0)
    auto = _auto_ids(url)
    with session_scope(engine) as s:
        pool = {
            int(r[0])
            for r in s.connection().execute(
                text("SELECT id FROM execution_block e WHERE NOT EXISTS (SELECT 1 FROM label l WHERE l.eb_id = e.id)")
            )
        }
    assert pool - set(auto) and pool & set(auto)  # some of the pool needs an AoD, some does not
    picked = []
    for _ in range(25):
        got = next_for(engine=engine, labeler="t_picker", settings=settings)
        if got is None:
            break
        picked.append(int(got["eb_id"]))
        with session_scope(engine, write=True) as s:
            record_label(session=s, eb_id=int(got["eb_id"]), labeler="t_picker", value="Pass")
    assert picked and not set(picked) & set(auto)


def test_random_picks_may_still_show_auto_decided_ebs(url: str) -> None:
    engine = get_engine(url)
    settings = Settings(database_url=url, random_share=1.0, overlap_share=0.0, gold_share=0.0)
    auto = set(_auto_ids(url))
    seen = set()
    for _ in range(30):
        got = next_for(engine=engine, labeler="t_rand", settings=settings)
        seen.add(int(got["eb_id"]))
        with session_scope(engine, write=True) as s:
            record_label(session=s, eb_id=int(got["eb_id"]), labeler="t_rand", value="Pass")
    assert seen & auto  # AoDs keep checking a random sample of what the model decides alone


def test_predictions_match_stored_decisions_and_explain_in_words(url: str) -> None:
    engine = get_engine(url)
    res = predict.predictions(engine=engine)
    auto = _auto_ids(url)
    with session_scope(engine) as s:
        uid_of = dict(s.connection().execute(text("SELECT id, uid FROM execution_block")).all())
    by_uid = {i["uid"]: i for i in res["items"]}
    for eb_id, value in list(auto.items())[:50]:
        item = by_uid[uid_of[eb_id]]
        assert item["decision"] == value and item["set"] == [value]
    needs = [i for i in res["items"] if i["decision"] == "needs_aod"]
    assert needs and all(len(i["set"]) >= 2 for i in needs)
    reasons = [r for i in res["items"] for r in i["top_reasons"]]
    assert reasons and all(r["text"] and r["towards"] in ("Fail", "SemiPass or Fail") for r in reasons)
    fails = [i for i in res["items"] if i["decision"] == "Fail"]
    assert all(i["top_reasons"] for i in fails)


def test_contributions_add_up_to_the_model_output(url: str) -> None:
    engine = get_engine(url)
    run, auto, _ = predict._serving(engine)
    art = predict._model(run)
    X, _ = explain.stored_features(auto.summary["features_path"])
    X = np.asarray(X[:200], dtype=float)
    contrib = explain.contributions(art["learner"], X)
    clf, transform = explain._inner(art["learner"])
    if hasattr(clf, "present_order_"):  # the ordinal model: log-odds of "worse than Pass"
        est = clf.estimators_[-1]
        out = est._raw_predict(transform(X))[:, 0]
        base = np.ravel(explain._explainer(est).expected_value)[0]
    else:  # a forest (the learner's choice with few labels): probability of not-Pass
        classes = [str(c) for c in clf.classes_]
        out = 1.0 - clf.predict_proba(transform(X))[:, classes.index("Pass")]
        base = 1.0 - np.ravel(explain._explainer(clf).expected_value)[classes.index("Pass")]
    assert np.allclose(contrib["not_pass"].sum(axis=1) + base, out, atol=1e-6)


def test_global_relevance_has_directions(url: str) -> None:
    rows = predict.relevance(engine=get_engine(url))
    assert rows and rows[0]["importance"] >= rows[-1]["importance"]
    assert {r["direction"] for r in rows} <= {"higher is worse", "higher is better", "mixed"}


def test_accepted_suggestions_are_marked_apart(url: str) -> None:
    engine = get_engine(url)
    eb_id, value = next(iter(_auto_ids(url).items()))
    with session_scope(engine, write=True) as s:
        ev = record_label(session=s, eb_id=eb_id, labeler="t_acc", value=value, client_event_id="acc-1")
        accept.mark_accepted(session=s, label_id=int(ev.id), run_id=runs.serving_run_id(engine), suggested=value)
        accept.mark_accepted(session=s, label_id=int(ev.id), run_id=runs.serving_run_id(engine), suggested=value)
        own = record_label(session=s, eb_id=eb_id, labeler="t_own", value=value)
    with session_scope(engine) as s:
        ids = accept.accepted_label_ids(session=s)
        import pandas as pd

        kept = accept.without_accepted(session=s, labels=pd.DataFrame({"id": [ev.id, own.id]}))
        share = accept.accepted_share(session=s)
    assert ids == {int(ev.id)} and kept["id"].tolist() == [own.id]
    assert share["accepted_suggestions"] == 1


def test_catalogue_lists_pass_ebs_with_their_basis(url: str, tmp_path: Path) -> None:
    engine = get_engine(url)
    frame = predict.catalogue_frame(engine=engine)
    assert list(frame.columns) == predict.CATALOGUE_COLUMNS
    assert set(frame["qa0"]) == {"Pass"} and {"consensus", "auto"} <= set(frame["qa0_basis"])
    with session_scope(engine) as s:
        cons = dict(
            s.connection()
            .execute(text("SELECT e.uid, l.value FROM label l JOIN execution_block e ON e.id = l.eb_id"))
            .all()
        )
    for uid, basis in zip(frame["uid"], frame["qa0_basis"]):
        if basis == "consensus":
            assert cons[uid] == "Pass"
        else:
            assert uid not in cons  # a human label always wins over the model


def test_too_few_labels_decide_nothing_and_say_why(tmp_path: Path) -> None:
    path = auto_pool.build(tmp_path / "few.sqlite", n=200, labelled=60, alpha=None)
    engine = get_engine(f"sqlite:///{path}")
    s = runs.state(engine=engine)["summary"]
    assert s["threshold"] is None and "too few held-out labels" in s["why_none"] and "114" in s["why_none"]
    res = predict.predictions(engine=engine)
    assert {i["decision"] for i in res["items"]} == {"needs_aod"} and "114" in res["why_none"]
    assert not _auto_ids(f"sqlite:///{path}")


def test_calibration_leaves_out_ebs_whose_label_accepted_a_suggestion(url: str, tmp_path: Path) -> None:
    from qa0_label.learning.training import retrain

    engine = get_engine(url)
    before = runs.state(engine=engine)["summary"]
    with session_scope(engine, write=True) as s:
        labelled = [
            int(r[0])
            for r in s.connection().execute(text("SELECT id, eb_id FROM label WHERE value IS NOT NULL ORDER BY id"))
        ][:25]
        for label_id in labelled:
            accept.mark_accepted(session=s, label_id=label_id, run_id=None, suggested="Pass")
        echoed = accept.ebs_with_accepted(session=s)
    assert len(echoed) == 25
    retrain(engine=engine, settings=Settings(database_url=url, model_dir=tmp_path / "models"), trigger="test")
    with session_scope(engine) as s:
        run = runs.serving_run_id(engine)
        stored = s.connection().execute(text("SELECT summary FROM auto_run WHERE run_id = :r"), {"r": run}).scalar()
    import json

    summary = json.loads(stored) if isinstance(stored, str) else stored
    assert summary["accepted_left_out"] == 25 and not echoed & set(summary["eb_id"])
    assert summary["n_labelled"] == before["n_labelled"] - 25 == len(summary["y"]) == len(summary["eb_id"])
    assert runs.state(engine=engine)["summary"]["n_labelled"] == summary["n_labelled"]


def test_a_uids_file_may_use_the_on_disk_spelling(url: str, tmp_path: Path) -> None:
    engine = get_engine(url)
    with session_scope(engine) as s:
        rows = s.connection().execute(text("SELECT id, uid FROM execution_block ORDER BY id LIMIT 2")).all()
    on_disk = rows[0][1].replace("uid://", "uid___").replace("/", "_")  # uid___A002_X1_X2, as in file names
    f = tmp_path / "uids.txt"
    f.write_text(f"{on_disk}\n{rows[1][1]}\n")
    assert predict.check_uids(engine, f) == [rows[0][0], rows[1][0]]
