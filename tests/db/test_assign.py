"""next_for: cold start, leases, idempotency, concurrency, overlap / random / gold routing, model queues."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from qa0_label.config import Settings
from qa0_label.learning import strategies as S
from qa0_label.queue import assign
from qa0_label.store import labels
from qa0_label.store.db import make_engine, session_scope
from qa0_label.store.models import ExecutionBlock, GoldEB, Labeler, Lease, ModelRun, Score, ScoreRank, utcnow
from tests.db.al_pool import label, make_pool, planned_rows

# Routing off unless a test turns it on: plain queue behaviour first.
PLAIN = Settings(overlap_share=0.0, random_share=0.0, gold_share=0.0, lease_minutes=15)


def _take(engine, who: str, settings: Settings = PLAIN, **kw):
    return assign.next_for(engine=engine, labeler=who, settings=settings, **kw)


def _label_current(engine, who: str, truth: dict[int, str], settings: Settings = PLAIN, **kw) -> dict:
    pick = _take(engine, who, settings, **kw)
    assert pick is not None
    label(engine, [pick["eb_id"]], who, truth)
    return pick


def test_cold_start_is_diverse_and_not_the_first_rows(engine) -> None:
    truth = make_pool(engine, 160, blocked_head=60)
    with session_scope(engine) as s:
        meta = {e.id: (e.band, e.source) for e in s.exec(select(ExecutionBlock)).all()}
    picks = []
    for i in range(8):
        pick = _label_current(engine, f"aod{i}", truth)
        assert pick["strategy"] == "cold-start" and pick["model_version"] is None and pick["proba"] is None
        picks.append(pick["eb_id"])
    first_ids = sorted(truth)[:8]
    assert picks != first_ids
    # The first 60 rows are all one band and source; diversity must reach beyond them.
    assert len({meta[e] for e in picks}) >= 6
    assert len({meta[e][0] for e in picks}) >= 3


def test_same_labeler_gets_the_same_eb_until_labelled_or_skipped(engine) -> None:
    truth = make_pool(engine, 30)
    first = _take(engine, "ana")
    again = _take(engine, "ana")
    assert again["eb_id"] == first["eb_id"] and again["lease_expires_at"] == first["lease_expires_at"]
    label(engine, [first["eb_id"]], "ana", truth)
    second = _take(engine, "ana")
    assert second["eb_id"] != first["eb_id"]
    with session_scope(engine, write=True) as s:
        labels.record_skip(session=s, eb_id=second["eb_id"], labeler="ana")
    seen = {first["eb_id"], second["eb_id"]}
    for _ in range(10):
        pick = _label_current(engine, "ana", truth)
        assert pick["eb_id"] not in seen
        seen.add(pick["eb_id"])


def test_lease_blocks_others_until_it_expires(engine) -> None:
    truth = make_pool(engine, 2)
    a = _take(engine, "ana")
    b = _take(engine, "bo")
    assert {a["eb_id"], b["eb_id"]} == set(truth)
    assert _take(engine, "cy") is None  # both EBs are leased
    with session_scope(engine, write=True) as s:
        s.exec(update(Lease).where(Lease.eb_id == a["eb_id"]).values(expires_at=utcnow() - timedelta(seconds=1)))
    c = _take(engine, "cy")
    assert c is not None and c["eb_id"] == a["eb_id"]
    # Ana's expired lease does not come back to her as "hers": cy holds it now.
    assert _take(engine, "ana") is None


def test_an_aod_never_gets_an_eb_they_labelled(engine) -> None:
    truth = make_pool(engine, 40)
    settings = replace(PLAIN, overlap_share=0.5, random_share=0.3)
    mine = set(list(truth)[:15])
    label(engine, sorted(mine), "ana", truth)
    label(engine, sorted(truth)[15:30], "bo", truth)
    got = []
    while (pick := _take(engine, "ana", settings)) is not None:
        assert pick["eb_id"] not in mine
        got.append(pick["eb_id"])
        label(engine, [pick["eb_id"]], "ana", truth)
        mine.add(pick["eb_id"])
    assert set(got) | set(sorted(truth)[:15]) == set(truth)


@pytest.mark.sqlite_only
def test_two_aods_asking_at_once_never_share_an_eb(db_url: str) -> None:
    setup_engine = make_engine(db_url)
    from qa0_label.store.db import init_db

    init_db(setup_engine)
    make_pool(setup_engine, 60)
    assign.build_cold_start_queue(engine=setup_engine)
    setup_engine.dispose()
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(name: str) -> None:
        eng = make_engine(db_url)  # each thread its own engine and sessions
        try:
            barrier.wait()
            got = []
            for _ in range(8):
                pick = assign.next_for(engine=eng, labeler=name, settings=PLAIN)
                assert pick is not None
                got.append(pick["eb_id"])
                with session_scope(eng, write=True) as s:
                    labels.record_label(session=s, eb_id=pick["eb_id"], labeler=name, value="Pass")
            results[name] = got
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=worker, args=(f"aod{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    everything = [e for got in results.values() for e in got]
    # Had two AoDs been handed one EB at once, both would have labelled it and it would show up twice.
    assert len(everything) == 48 and len(set(everything)) == 48


def test_overlap_share_is_respected_and_blind(engine) -> None:
    truth = make_pool(engine, 260)
    first = sorted(truth)[:80]
    label(engine, first, "ana", truth, comment="SECRET-ANA-NOTE")
    settings = replace(PLAIN, overlap_share=0.2)
    overlap = 0
    for _ in range(100):
        pick = _label_current(engine, "bo", truth, settings)
        text = json.dumps(pick)
        assert "SECRET-ANA-NOTE" not in text and "ana" not in text
        assert set(pick) >= {
            "eb_id",
            "uid",
            "strategy",
            "reason",
            "uncertainty",
            "proba",
            "model_version",
            "lease_expires_at",
        }
        if pick["eb_id"] in first:
            overlap += 1
            assert pick["strategy"] == "overlap"
    assert 15 <= overlap <= 25


def test_random_share_in_cold_start(engine) -> None:
    truth = make_pool(engine, 200)
    settings = replace(PLAIN, random_share=0.3)
    kinds = [_label_current(engine, "ana", truth, settings)["strategy"] for _ in range(60)]
    assert 14 <= kinds.count("random") <= 22
    assert set(kinds) == {"random", "cold-start"}


def test_gold_picks_look_normal_and_are_recorded_as_gold(engine) -> None:
    truth = make_pool(engine, 100)
    gold = sorted(truth)[50:70]
    with session_scope(engine, write=True) as s:
        lead = labels.get_or_create_labeler(session=s, name="lead", role="lead")
        for eb in gold:
            s.add(GoldEB(eb_id=eb, value=truth[eb], set_by_id=lead.id))
    settings = replace(PLAIN, gold_share=0.25)
    served = 0
    for _ in range(40):
        pick = _take(engine, "ana", settings)
        with session_scope(engine) as s:
            lease = s.get(Lease, pick["eb_id"])
        if lease.reason == "gold":
            served += 1
            assert pick["eb_id"] in gold
        assert pick["strategy"] in {"cold-start", "random"}  # never "gold"
        assert "gold" not in pick["reason"].lower()
        label(engine, [pick["eb_id"]], "ana", truth)
    assert 8 <= served <= 12


def _fake_run(
    engine,
    truth: dict[int, str],
    order: list[int],
    *,
    status: str = "done",
    version: int = 1,
    classes: tuple[str, ...] = ("Pass", "SemiPass", "Fail"),
) -> int:
    with session_scope(engine, write=True) as s:
        run = ModelRun(version=version, status=status, metrics={"classes": list(classes)})
        s.add(run)
        s.flush()
        for eb in truth:
            s.add(Score(run_id=run.id, eb_id=eb, p_pass=0.6, p_semipass=0.3, p_fail=0.1, uncertainty=0.7))
        for name in S.STRATEGIES:
            for rank, eb in enumerate(order):
                s.add(ScoreRank(run_id=run.id, strategy=name, rank=rank, eb_id=eb))
        return int(run.id)


def test_model_queue_is_followed_in_rank_order(engine) -> None:
    truth = make_pool(engine, 50)
    order = sorted(truth)[::-1][:10]
    _fake_run(engine, truth, order)
    picks = [_label_current(engine, "ana", truth, strategy="margin") for _ in range(3)]
    assert [p["eb_id"] for p in picks] == order[:3]
    assert picks[0]["strategy"] == "margin" and picks[0]["model_version"] == 1
    assert picks[0]["proba"] == {"Pass": 0.6, "SemiPass": 0.3, "Fail": 0.1}
    assert picks[0]["uncertainty"] == pytest.approx(0.7)
    other = _take(engine, "bo", strategy="entropy")
    assert other["eb_id"] == order[3] and other["strategy"] == "entropy"


def test_a_model_that_saw_two_values_serves_picks(engine) -> None:
    truth = make_pool(engine, 50)
    order = sorted(truth)[::-1][:10]
    _fake_run(engine, truth, order, classes=("Pass", "Fail"))
    pick = _label_current(engine, "ana", truth, strategy="margin")
    assert pick["eb_id"] == order[0] and pick["strategy"] == "margin" and pick["model_version"] == 1


def test_only_a_one_value_model_stays_in_cold_start() -> None:
    assert assign.serves_picks({"classes": ["Pass", "SemiPass"]})
    assert not assign.serves_picks({"classes": ["Pass"]})
    assert not assign.serves_picks({}) and not assign.serves_picks(None)


def test_running_runs_queue_is_not_used(engine) -> None:
    truth = make_pool(engine, 50)
    ids = sorted(truth)
    _fake_run(engine, truth, ids[:10], version=1)
    _fake_run(engine, truth, ids[-10:], status="running", version=2)
    pick = _take(engine, "ana", strategy="margin")
    assert pick["eb_id"] == ids[0] and pick["model_version"] == 1


def test_queue_exhausted_falls_back_to_scores_then_random(engine) -> None:
    truth = make_pool(engine, 12)
    _fake_run(engine, truth, sorted(truth)[:2])
    got = {_label_current(engine, "ana", truth)["eb_id"] for _ in range(12)}
    assert got == set(truth)
    assert _take(engine, "ana") is None


def test_unknown_strategy_is_refused(engine) -> None:
    make_pool(engine, 3)
    with pytest.raises(ValueError, match="unknown strategy"):
        _take(engine, "ana", strategy="psychic")


def test_new_ebs_refresh_the_cold_start_queue(engine) -> None:
    truth = make_pool(engine, 20)
    _take(engine, "ana")
    with session_scope(engine) as s:
        n_before = len(s.exec(select(ScoreRank).where(ScoreRank.run_id.is_(None))).all())
    more = make_pool(engine, 20, seed=1)
    _take(engine, "bo")
    with session_scope(engine) as s:
        queued = {r.eb_id for r in s.exec(select(ScoreRank).where(ScoreRank.run_id.is_(None))).all()}
        assert s.exec(select(Labeler).where(Labeler.name == "bo")).first() is not None
    assert n_before == 20 and set(more) <= queued and len(truth) + len(more) >= len(queued)


def test_queue_head_passes_over_labelled_ranks_only(engine, monkeypatch) -> None:
    monkeypatch.setattr(assign, "HEAD_REFRESH_S", 0.0)  # look the head up on every pick
    truth = make_pool(engine, 30)
    order = sorted(truth)[:10]
    run_id = _fake_run(engine, truth, order)

    def head() -> int:
        with session_scope(engine) as s:
            run = assign.serving_run(s)
            assert run is not None and run.id == run_id
            return assign._queue_head(s, run, "margin")

    label(engine, [*order[:4], order[5]], "bo", truth)
    assert head() == 4, "the first unlabelled rank; rank 5 is labelled but rank 4 is not"
    leased = _take(engine, "ana", strategy="margin")
    assert leased["eb_id"] == order[4]
    assert head() == 4, "a lease can expire or be released: a leased EB is never passed over for good"
    assert _take(engine, "cy", strategy="margin")["eb_id"] == order[6]
    label(engine, [order[4], order[6]], "ana", truth)
    assert head() == 7
    label(engine, order[7:], "bo", truth)
    assert head() == assign._PAST_END
    fallback = _take(engine, "dee", strategy="margin")
    assert fallback is not None and fallback["eb_id"] not in order, "an exhausted queue falls back to the scores"


def test_try_lease_refuses_a_live_lease_and_takes_over_an_expired_one(engine) -> None:
    truth = make_pool(engine, 2)
    a, b = sorted(truth)
    now = utcnow()
    with session_scope(engine, write=True) as s:
        ana = labels.get_or_create_labeler(session=s, name="ana")
        bo = labels.get_or_create_labeler(session=s, name="bo")
        s.add(Lease(eb_id=a, labeler_id=ana.id, reason="margin", created_at=now, expires_at=now + timedelta(minutes=5)))
        s.add(Lease(eb_id=b, labeler_id=ana.id, reason="margin", created_at=now, expires_at=now - timedelta(seconds=1)))
    with session_scope(engine, write=True) as s:
        assert assign.try_lease(s, a, bo.id, "random", now, 15) is None
        expires = assign.try_lease(s, b, bo.id, "random", now, 15)
        assert expires == now + timedelta(minutes=15)
    with session_scope(engine) as s:
        leases = {x.eb_id: (x.labeler_id, x.reason) for x in s.exec(select(Lease)).all()}
    assert leases == {a: (ana.id, "margin"), b: (bo.id, "random")}


@pytest.mark.parametrize("model", [False, True], ids=["cold-start", "model-queue"])
def test_a_new_process_compiles_its_pick_before_the_write_transaction(db_url: str, model: bool) -> None:
    # A fresh engine stands for a new process (each CLI command, each app server): empty statement cache.
    from sqlalchemy import event
    from sqlalchemy.engine.default import CACHE_HIT

    setup = make_engine(db_url)
    from qa0_label.store.db import init_db

    init_db(setup)
    truth = make_pool(setup, 30)
    if model:
        _fake_run(setup, truth, sorted(truth)[:10])
    assign.build_cold_start_queue(engine=setup)
    with session_scope(setup, write=True) as s:  # an AoD who has worked before (a new one is created once, via the ORM)
        labels.get_or_create_labeler(session=s, name="ana")
    setup.dispose()
    fresh = make_engine(db_url)
    in_write: list[tuple[str, object]] = []

    @event.listens_for(fresh, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        # Reads only: inserts and deletes compile in about a millisecond and cannot be run ahead.
        if conn.get_execution_options().get("qa0_write") and statement.lstrip().upper().startswith("SELECT"):
            in_write.append((statement.split()[0:4], context.cache_hit))

    pick = assign.next_for(engine=fresh, labeler="ana", settings=PLAIN)
    fresh.dispose()
    assert pick is not None
    assert in_write, "the pick ran its queries in a write transaction"
    assert [s for s, hit in in_write if hit != CACHE_HIT] == [], "compiled while holding the write lock"


@pytest.mark.sqlite_only
def test_picks_and_labels_work_on_a_sqlite_without_returning(db_url: str) -> None:
    # SQLite has RETURNING only from 3.35 on (Ubuntu 20.04 ships 3.31), where it is a syntax error.
    from sqlalchemy import event

    from qa0_label.store.db import init_db

    engine = make_engine(db_url)
    init_db(engine)
    truth = make_pool(engine, 3)

    @event.listens_for(engine, "before_cursor_execute")
    def _old_sqlite(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if "RETURNING" in statement.upper():
            raise AssertionError(f"an old SQLite cannot run: {statement}")

    first = _take(engine, "ana")
    with session_scope(engine, write=True) as s:
        event = labels.record_label(session=s, eb_id=first["eb_id"], labeler="ana", value="Pass", client_event_id="k")
        again = labels.record_label(session=s, eb_id=first["eb_id"], labeler="ana", value="Pass", client_event_id="k")
        assert event.id is not None and again.id == event.id
    second = _take(engine, "ana")
    assert second is not None and second["eb_id"] != first["eb_id"]
    with session_scope(engine, write=True) as s:  # the expired-lease path inserts a second time
        s.exec(update(Lease).values(expires_at=utcnow() - timedelta(seconds=1)))
    third = _take(engine, "bo")
    assert third is not None and third["eb_id"] in set(truth) - {first["eb_id"]}
    engine.dispose()


def _overlap_scene(engine) -> tuple[int, set[int], int]:
    """A label table with every case the overlap rule tells apart; returns (bo's id, EBs eligible for bo)."""
    from qa0_label.store.models import Label, Skip

    truth = make_pool(engine, 60)
    e = sorted(truth)
    with session_scope(engine, write=True) as s:
        ids = {}
        for name, role in (("ana", "aod"), ("bo", "aod"), ("cy", "aod"), ("lea", "lead"), ("archive", "aod")):
            who = labels.get_or_create_labeler(session=s, name=name, role=role, system=name == "archive")
            ids[name] = int(who.id)  # type: ignore[arg-type]

        def add(eb: int, who: str, value: str | None = "Pass", kind: str = "review") -> None:
            s.add(Label(eb_id=eb, labeler_id=ids[who], value=value, kind=kind))
            s.flush()

        add(e[0], "ana")  # outside the window (OVERLAP_WINDOW patched to the events after it)
        add(e[1], "cy")  # outside the window; cy's later review of e[1] alone counts
        for eb in e[2:8]:
            add(eb, "ana")  # eligible
        for _ in range(5):
            add(e[8], "cy")  # eligible: one AoD, relabelled
        add(e[9], "ana")
        add(e[9], "cy")  # two AoDs: not eligible
        add(e[10], "bo")  # bo's own: not eligible
        add(e[11], "ana")
        add(e[11], "bo")  # bo labelled it too
        add(e[12], "ana")
        add(e[12], "lea", kind="adjudication")  # settled
        add(e[13], "lea")  # a lead's review does not count
        add(e[14], "archive")  # nor the archive's
        add(e[15], "ana", value=None, kind="undo")  # no value
        add(e[16], "ana")
        s.add(Skip(eb_id=e[16], labeler_id=ids["bo"]))  # bo skipped it
        add(e[17], "ana")
        s.add(Lease(eb_id=e[17], labeler_id=ids["cy"], expires_at=utcnow() + timedelta(minutes=5)))  # leased
        add(e[18], "ana")
        s.add(Lease(eb_id=e[18], labeler_id=ids["cy"], expires_at=utcnow() - timedelta(minutes=5)))  # expired
        add(e[1], "cy")
        n_events = int(s.exec(select(Label.id).order_by(Label.id.desc())).first()) - 2  # type: ignore[arg-type]
    return ids["bo"], set(e[2:9]) | {e[1], e[18]}, n_events


def test_overlap_draws_find_exactly_the_eligible_ebs(engine, monkeypatch) -> None:
    bo, eligible, window = _overlap_scene(engine)
    monkeypatch.setattr(assign, "OVERLAP_WINDOW", window)
    monkeypatch.setattr(assign, "_Q_OVERLAP", assign._overlap_stmt())  # built with the window
    now = utcnow()
    with session_scope(engine) as s:
        # The grouping statement (the rule as it was written first) agrees on this table...
        assert set(assign._ids(s, assign._Q_OVERLAP, me=bo, now=now)) == eligible
        # ...and so do the draws: every id of this short window is drawn, so each answer is the whole set.
        for _ in range(5):
            got = assign._overlap_draws(s, bo, now)
            assert got is not None and len(got) == len(set(got)) and set(got) == eligible


def test_overlap_draws_give_every_eligible_eb_the_same_chance(engine) -> None:
    from collections import Counter

    from qa0_label.queue import overlap

    truth = make_pool(engine, 200)
    e = sorted(truth)
    label(engine, e[:30], "ana", truth)
    for _ in range(6):  # relabelled six times: still one EB, as likely as any other
        label(engine, e[:3], "ana", truth)
    with session_scope(engine) as s:
        bo = int(labels.get_or_create_labeler(session=s, name="bo").id)
    overlap.RNG.seed(7)
    firsts: Counter[int] = Counter()
    with session_scope(engine) as s:
        for _ in range(900):
            got = assign._overlap_draws(s, bo, utcnow())
            assert got is not None and set(got) <= set(e[:30]) and len(got) == assign.CANDIDATES
            firsts[got[0]] += 1
    assert set(firsts) == set(e[:30])
    assert all(12 <= firsts[eb] <= 52 for eb in e[:30])  # 30 each on average
    assert sum(firsts[eb] for eb in e[:3]) < 3 * 52


def test_overlap_falls_back_on_the_grouping_rule_when_draws_do_not_settle(engine, monkeypatch) -> None:
    bo, eligible, window = _overlap_scene(engine)
    monkeypatch.setattr(assign, "OVERLAP_WINDOW", window)
    monkeypatch.setattr(assign, "_Q_OVERLAP", assign._overlap_stmt())  # built with the window
    monkeypatch.setattr(assign, "OVERLAP_DRAWS", (1,))  # one id drawn: never the whole window
    with session_scope(engine) as s:
        assert assign._overlap_draws(s, bo, utcnow()) is None
        assert set(assign._overlap_candidates(s, bo, utcnow())) == eligible


def test_random_candidates_skip_what_is_taken_on_both_sides_of_the_seek_point(engine, monkeypatch) -> None:
    """Every seek point: the first free EBs from it on (else before it); labelled, leased and skipped ones never,
    an undone label no longer counts. The id range is repeated on the label side of the query (for PostgreSQL's
    plan), so a wrong bound there would hand out labelled EBs or hide free ones."""
    truth = make_pool(engine, 40)
    ids = sorted(truth)
    labelled = ids[3:30:2] + [ids[-1]]
    label(engine, labelled, "bo", truth)
    with session_scope(engine, write=True) as s:
        labels.undo_last(session=s, labeler="bo")  # bo's newest label (the last EB) no longer counts
        # The undo leases the EB back to bo: let that lease run out, so only the label rule decides.
        s.exec(update(Lease).where(Lease.eb_id == ids[-1]).values(expires_at=utcnow() - timedelta(seconds=1)))
        labels.record_skip(session=s, eb_id=ids[31], labeler="ana")
        labels.record_skip(session=s, eb_id=ids[32], labeler="cy")  # someone else's skip does not hide it
        cy = labels.get_or_create_labeler(session=s, name="cy")
        now = utcnow()
        s.add(
            Lease(eb_id=ids[0], labeler_id=cy.id, reason="queue", created_at=now, expires_at=now + timedelta(hours=1))
        )
    taken = set(ids[3:30:2]) | {ids[0], ids[31]}
    with session_scope(engine) as s:
        me = s.exec(select(Labeler.id).where(Labeler.name == "ana")).one()
    for start in range(ids[0], ids[-1] + 2):
        monkeypatch.setattr(assign.random, "randint", lambda _lo, _hi, _s=start: _s)
        free_after = [e for e in ids if e >= start and e not in taken]
        want = free_after[: assign.CANDIDATES] or [e for e in ids if e < start and e not in taken][: assign.CANDIDATES]
        with session_scope(engine) as s:
            assert assign._random_candidates(s, me, utcnow()) == want, start


def test_a_new_cold_start_queue_is_planned_on_its_own_rows(engine, backend) -> None:
    """On PostgreSQL the first picks after the cold-start queue is built are planned on its rows, not on the
    empty table autovacuum last saw."""
    if backend != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's; SQLite keeps none unless asked")
    make_pool(engine, 300)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE score_rank SET (autovacuum_enabled = false)")
        # Statistics of the empty table: what a new site's database holds before its first pick.
        conn.exec_driver_sql("ANALYZE score_rank")
    n = assign.build_cold_start_queue(engine=engine)
    estimate = planned_rows(engine, "SELECT * FROM score_rank WHERE run_id IS NULL AND strategy = 'cold-start'")
    assert n >= 200 and estimate >= n / 2
