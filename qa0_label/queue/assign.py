"""The next EB for an AoD: precomputed queues + leases + random / overlap / gold routing.

``next_for`` never calls the model: it reads the newest `done` run's ScoreRank queue (one indexed query,
ordered by rank, skipping EBs someone labelled, someone else leases, or this AoD skipped) and takes a lease.
``Lease.eb_id`` is the primary key, so two AoDs asking at once cannot both get an EB: the second insert writes
nothing and the next candidate is tried.

Which route a pick takes is deterministic per AoD: the n-th pick (n = this AoD's label and skip events so
far) uses u = frac(offset(AoD) + n * golden ratio), a low-discrepancy sequence, so over any run of picks the
gold / overlap / random shares match the settings closely, and a Streamlit rerun (same n) asks the same
question.
"""

from __future__ import annotations

import logging
import random
import time
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import DateTime, Integer, String, and_, bindparam, delete, exists, func, literal, text, true
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from qa0_label.automation import queue as automation  # auto-QA0: model picks skip EBs the model decides alone
from qa0_label.config import Settings
from qa0_label.learning import strategies as strat
from qa0_label.queue import overlap
from qa0_label.store import runs as store_runs
from qa0_label.store.db import (
    bulk_insert,
    insert_unless_taken,
    inserted_key,
    refresh_statistics,
    retry_locked,
    session_scope,
)
from qa0_label.store.labels import CURRENT_KINDS, get_or_create_labeler, normalize_name, release_lease
from qa0_label.store.models import (
    LABEL_VALUES,
    ExecutionBlock,
    GoldEB,
    Label,
    Labeler,
    Lease,
    Meta,
    ModelRun,
    Score,
    ScoreRank,
    Skip,
    table_of,
    utcnow,
)

log = logging.getLogger(__name__)

COLD_START_LENGTH = 2000
"""How many EBs the cold-start diversity queue holds."""
COLD_START_META = "cold_start_max_eb"
CANDIDATES = 12
"""Candidates fetched per query; more than one so a lost insert race moves on without another query."""
GOLDEN = (5**0.5 - 1) / 2

REASONS = {
    "cold-start": "cold start: diversity pick across bands, sources and feature space",
    "overlap": "overlap for agreement: a second, independent opinion on this EB",
    "random": "random pick: keeps the model honest about EBs it is sure of",
    "uncertainty": "the model is unsure about this EB",
    "undo": "you undid your label on this EB: label it again",
}


class UnknownStrategy(ValueError):
    """A strategy name that is not in strategies.STRATEGIES."""


# --- helpers -----------------------------------------------------------------------------------


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def route_for(settings: Settings, labeler: str, n: int) -> str:
    """gold / overlap / random / strategy for this AoD's n-th pick (low-discrepancy shares)."""
    offset = (zlib.crc32(labeler.encode()) % 10_000) / 10_000.0
    u = (offset + n * GOLDEN) % 1.0
    gold, overlap, rnd = (
        max(0.0, float(x)) for x in (settings.gold_share, settings.overlap_share, settings.random_share)
    )
    if u < gold:
        return "gold"
    if u < gold + overlap:
        return "overlap"
    if u < gold + overlap + rnd:
        return "random"
    return "strategy"


# Statements are built once at import with bind parameters: building SQLAlchemy constructs per call cost
# more than running them (a pick is ~10 indexed lookups of well under a millisecond each).
_NOW = bindparam("now", type_=DateTime())
_ME = bindparam("me", type_=Integer())
_RUN = bindparam("run", type_=Integer())
_QUEUE = bindparam("queue", type_=String())
_START = bindparam("start", type_=Integer())


_UNDO = Label.__table__.alias("undo")  # type: ignore[attr-defined]
_LATER = Label.__table__.alias("later")  # type: ignore[attr-defined]


def _not_labelled(eb_col: Any, *, within: Callable[[Any], Any] | None = None) -> Any:
    """No label with a value on the EB. within: the id range the caller scans, repeated on the label side."""
    # A label someone undid no longer counts (ix_label_reverts makes the inner lookup one index probe).
    return ~exists().where(
        Label.eb_id == eb_col,
        Label.value.is_not(None),  # type: ignore[union-attr]
        ~exists().where(_UNDO.c.reverts_id == Label.id),
        true() if within is None else within(Label.eb_id),
    )


def _labelled_by(eb_col: Any, me_col: Any) -> Any:
    """ME's current label on the EB carries a value (labels' current-label rule: the newest review/undo event;
    an undo back to "no label" does not count)."""
    return exists().where(
        Label.eb_id == eb_col,
        Label.labeler_id == me_col,
        Label.kind.in_(CURRENT_KINDS),  # type: ignore[attr-defined]
        Label.value.is_not(None),  # type: ignore[union-attr]
        ~exists().where(
            _LATER.c.eb_id == Label.eb_id,
            _LATER.c.labeler_id == Label.labeler_id,
            _LATER.c.id > Label.id,
            _LATER.c.kind.in_(CURRENT_KINDS),
        ),
    )


def _not_leased(eb_col: Any) -> Any:
    return ~exists().where(Lease.eb_id == eb_col, Lease.expires_at > _NOW)


def _not_skipped(eb_col: Any) -> Any:
    return ~exists().where(Skip.eb_id == eb_col, col(Skip.labeler_id) == _ME)


def _not_mine(eb_col: Any) -> Any:
    return ~exists().where(Label.eb_id == eb_col, col(Label.labeler_id) == _ME)


_FROM = bindparam("from_rank", type_=Integer())


def _queue_stmt(cold: bool) -> Any:
    run_cond = col(ScoreRank.run_id).is_(None) if cold else col(ScoreRank.run_id) == _RUN
    if not cold:  # a model run's queue never changes: start past the ranks known to be labelled (_queue_head)
        run_cond = and_(run_cond, col(ScoreRank.rank) >= _FROM)
    return (
        sa_select(col(ScoreRank.eb_id))
        .where(run_cond, col(ScoreRank.strategy) == _QUEUE)
        .where(_not_labelled(ScoreRank.eb_id), _not_leased(ScoreRank.eb_id), _not_skipped(ScoreRank.eb_id))
        .where(true() if cold else automation.not_auto_decided(ScoreRank.eb_id, _RUN))
        .order_by(col(ScoreRank.rank))
        .limit(CANDIDATES)
    )


_Q_QUEUE = _queue_stmt(cold=False)
_Q_QUEUE_COLD = _queue_stmt(cold=True)

# Only when a strategy's stored queue ran dry before the next retrain: a scan of this run's scores.
_Q_SCORES = (
    sa_select(col(Score.eb_id))
    .where(col(Score.run_id) == _RUN)
    .where(_not_labelled(Score.eb_id), _not_leased(Score.eb_id), _not_skipped(Score.eb_id))
    .where(automation.not_auto_decided(Score.eb_id, _RUN))
    .order_by(Score.uncertainty.desc())  # type: ignore[attr-defined]
    .limit(CANDIDATES)
)

# Two scalar subqueries: SQLite answers a lone MIN or MAX of the key from the b-tree ends, but scans an index
# when both share one SELECT.
_Q_ID_RANGE = sa_select(
    sa_select(func.min(ExecutionBlock.id)).scalar_subquery(), sa_select(func.max(ExecutionBlock.id)).scalar_subquery()
)


def _random_stmt(after: bool) -> Any:
    def within(ids: Any) -> Any:
        return ids >= _START if after else ids < _START

    return (
        sa_select(col(ExecutionBlock.id))
        .where(within(ExecutionBlock.id))
        # The range again on the label side: PostgreSQL merges the ids with the labels along eb_id, and without
        # it the labels were read from the lowest labelled EB up to the seek point (7.5 ms at 14,500 labels,
        # growing with every label; 0.07 ms with it). SQLite probes per EB either way.
        .where(
            _not_labelled(ExecutionBlock.id, within=within),
            _not_leased(ExecutionBlock.id),
            _not_skipped(ExecutionBlock.id),
        )
        .order_by(col(ExecutionBlock.id))
        .limit(CANDIDATES)
    )


_Q_RANDOM = (_random_stmt(after=True), _random_stmt(after=False))

OVERLAP_WINDOW = 20_000
"""Overlap candidates come from the newest this-many label events (bounded work however old the table)."""
OVERLAP_SAMPLE = 8 * CANDIDATES
"""An overlap pick checks the first this-many eligible EBs of a random order (queue.overlap)."""
OVERLAP_DRAWS = (32, 128, 512)
"""Label ids drawn per round before an overlap pick falls back on grouping the whole window."""


def _overlap_free(eb_col: Any) -> Any:
    # An adjudicated EB is settled: a second opinion adds nothing there.
    settled = ~exists().where(col(Label.eb_id) == eb_col, col(Label.kind) == "adjudication")
    return and_(settled, _not_leased(eb_col), _not_skipped(eb_col), _not_mine(eb_col))


def _overlap_stmt() -> Any:
    return overlap.grouping_select(
        free=_overlap_free, me=_ME, window=OVERLAP_WINDOW, sample=OVERLAP_SAMPLE, limit=CANDIDATES
    )


_Q_OVERLAP = _overlap_stmt()
"""EBs reviewed by exactly one other AoD (the archive and leads do not count), not adjudicated, grouping the
window's reviews: what an overlap pick falls back on when its random draws do not settle it."""
_Q_OVERLAP_DRAWS = overlap.draws_select(free=_overlap_free, me=_ME)


def _overlap_draws(s: Session, me: int, now: datetime) -> list[int] | None:
    """_Q_OVERLAP's answer from label ids drawn at random (queue.overlap.draw); None when they did not settle it."""
    return overlap.draw(
        s.connection(),
        _Q_OVERLAP_DRAWS,
        {"me": me, "now": now},
        window=OVERLAP_WINDOW,
        sample=OVERLAP_SAMPLE,
        limit=CANDIDATES,
        rounds=OVERLAP_DRAWS,
    )


_Q_GOLD = (
    sa_select(col(GoldEB.eb_id))
    .where(_not_mine(GoldEB.eb_id), _not_leased(GoldEB.eb_id), _not_skipped(GoldEB.eb_id))
    .order_by(func.random())
    .limit(CANDIDATES)
)


def _ids(s: Session, stmt: Any, **params: Any) -> list[int]:
    return [int(r[0]) for r in s.connection().execute(stmt, params)]


_Q_HEAD = (
    sa_select(func.min(ScoreRank.rank))
    .where(col(ScoreRank.run_id) == _RUN, col(ScoreRank.strategy) == _QUEUE, col(ScoreRank.rank) >= _FROM)
    .where(_not_labelled(ScoreRank.eb_id))
)
HEAD_REFRESH_S = 5.0
"""How often (per process and queue) the first unlabelled rank is looked up again."""
_PAST_END = 2**31 - 1
_queue_heads: dict[tuple[str, int, str, str], tuple[int, float]] = {}


def _queue_head(s: Session, run: ServingRun, queue: str) -> int:
    """A rank below which every EB of this run's queue is labelled (it only grows: an undone EB is leased back to
    its undoer by labels.undo_last, so the queue does not need to find it again).

    Without it, every pick walks past all the EBs labelled since the last retrain (thousands after a long
    shift without one: 9 ms per pick on PostgreSQL at 2,500); with it, the walk covers a few seconds' labels.
    """
    conn = s.connection()
    key = (str(conn.engine.url), run.id, run.finished, queue)
    rank, at = _queue_heads.get(key, (0, 0.0))
    if time.monotonic() - at >= HEAD_REFRESH_S:
        head = conn.execute(_Q_HEAD, {"run": run.id, "queue": queue, "from_rank": rank}).scalar()
        rank = _PAST_END if head is None else int(head)  # None: every EB of the queue is labelled
        _queue_heads[key] = (rank, time.monotonic())
    return rank


def _queue_candidates(s: Session, run: ServingRun | None, queue: str, me: int, now: datetime) -> list[int]:
    """Candidates in queue order: the cold-start queue when RUN is None, else RUN's queue for strategy QUEUE."""
    if run is None:
        return _ids(s, _Q_QUEUE_COLD, queue=queue, me=me, now=now)
    start = _queue_head(s, run, queue)
    return _ids(s, _Q_QUEUE, run=run.id, queue=queue, me=me, now=now, from_rank=start)


def _score_candidates(s: Session, run_id: int, me: int, now: datetime) -> list[int]:
    return _ids(s, _Q_SCORES, run=run_id, me=me, now=now)


def _random_candidates(s: Session, me: int, now: datetime) -> list[int]:
    # Seek from a random id along the primary key: uniform enough, and an index range scan, not a sort.
    lo, hi = s.connection().execute(_Q_ID_RANGE).one()
    if lo is None:
        return []
    start = random.randint(int(lo), int(hi))
    for stmt in _Q_RANDOM:
        out = _ids(s, stmt, start=start, me=me, now=now)
        if out:
            return out
    return []


def _overlap_candidates(s: Session, me: int, now: datetime) -> list[int]:
    """EBs reviewed by exactly one other AoD (the archive and leads do not count), not adjudicated."""
    drawn = _overlap_draws(s, me, now)
    return drawn if drawn is not None else _ids(s, _Q_OVERLAP, me=me, now=now)


def _gold_candidates(s: Session, me: int, now: datetime) -> list[int]:
    return _ids(s, _Q_GOLD, me=me, now=now)


@dataclass(frozen=True)
class ServingRun:
    """The model run whose queues picks follow: its id, version, and whether it serves picks (serves_picks)."""

    id: int
    version: int
    usable: bool
    finished: str = ""
    """When it finished: with the database URL it names the run even if a database is recreated under one URL."""


_RUNS = table_of(ModelRun).c
_Q_RUN = store_runs.serving_select(_RUNS.id, _RUNS.version, _RUNS.finished_at)
_Q_RUN_METRICS = sa_select(col(ModelRun.metrics)).where(col(ModelRun.id) == _RUN)
_Q_DONE_COUNT = sa_select(
    sa_select(func.count()).select_from(Label).where(col(Label.labeler_id) == _ME).scalar_subquery()
    + sa_select(func.count()).select_from(Skip).where(col(Skip.labeler_id) == _ME).scalar_subquery()
)
_D_MY_LEASES = delete(Lease).where(col(Lease.labeler_id) == _ME)
_Q_RESULT = (
    sa_select(
        col(ExecutionBlock.uid), col(Score.p_pass), col(Score.p_semipass), col(Score.p_fail), col(Score.uncertainty)
    )
    .select_from(
        table_of(ExecutionBlock).outerjoin(
            table_of(Score),
            and_(col(Score.eb_id) == col(ExecutionBlock.id), col(Score.run_id) == _RUN),
        )
    )
    .where(col(ExecutionBlock.id) == bindparam("eb", type_=Integer()))
)
_Q_MAX_ID = sa_select(func.max(ExecutionBlock.id))
_Q_META = sa_select(col(Meta.value)).where(col(Meta.key) == COLD_START_META)


_run_classes: dict[tuple[str, int, str], bool] = {}
"""(database, run id, finished at) -> whether that run serves picks. A done run's metrics never change, and
they hold every labelled EB's out-of-fold prediction: parsing them on each pick cost more than the pick."""


def still_held(lease: Any, me: Any) -> Any:
    """The condition on LEASE (a lease table or alias) that labeler ME still holds it: unexpired (at :now), and
    the EB neither labelled nor skipped by them. Shared by the pick and lookahead's reservation."""
    return and_(
        lease.c.labeler_id == me,
        lease.c.expires_at > _NOW,
        ~_labelled_by(lease.c.eb_id, me),  # an undone label does not count: the undoer gets the EB back
        ~exists().where(Skip.eb_id == lease.c.eb_id, Skip.labeler_id == me),
    )


_HELD_LEASE = Lease.__table__.alias("held")  # type: ignore[attr-defined]
_NEWEST_RUN = _Q_RUN.subquery("run")
_Q_START = (
    # Everything a pick needs to know before it looks for candidates, in one statement instead of five: a pick
    # is CPU-bound (8 AoDs on 2 cores queue behind each other) and on PostgreSQL each statement is a round trip.
    sa_select(
        col(Labeler.id),
        # done_count: the n of this AoD's n-th pick.
        sa_select(func.count()).select_from(Label).where(col(Label.labeler_id) == col(Labeler.id)).scalar_subquery()
        + sa_select(func.count()).select_from(Skip).where(col(Skip.labeler_id) == col(Labeler.id)).scalar_subquery(),
        # Any lease at all (finished or expired too): only then is there something to let go of.
        exists().where(col(Lease.labeler_id) == col(Labeler.id)),
        _HELD_LEASE.c.eb_id,
        _HELD_LEASE.c.reason,
        _HELD_LEASE.c.expires_at,
        _NEWEST_RUN.c.id,
        _NEWEST_RUN.c.version,
        _NEWEST_RUN.c.finished_at,
    )
    .select_from(Labeler)
    .outerjoin(
        _HELD_LEASE,
        still_held(_HELD_LEASE, Labeler.id),
    )
    .outerjoin(_NEWEST_RUN, true())
    .where(col(Labeler.name) == bindparam("name", type_=String()))
    .order_by(_HELD_LEASE.c.created_at.desc())  # the newest held lease (lookahead stamps its reservation older)
    .limit(1)
)


def serves_picks(metrics: dict[str, Any] | None) -> bool:
    """Whether a done run's queues serve picks: its model saw at least two QA0 values (else cold start goes on).

    Two values are enough to be unsure between: many sites have few or no SemiPass labels early on, and a
    model that knows Pass from Fail already asks better questions than the diversity queue.
    """
    classes = set((metrics or {}).get("classes") or []) & set(LABEL_VALUES)
    return len(classes) >= 2


def done_count(s: Session, me: int) -> int:
    """Label and skip events of labeler ME so far: the n of their n-th pick (route_for)."""
    return int(s.connection().execute(_Q_DONE_COUNT, {"me": me}).scalar() or 0)


def serving_run(s: Session) -> ServingRun | None:
    """The newest done run (its Scores and queues are complete); usable when serves_picks says so."""
    conn = s.connection()
    row = conn.execute(_Q_RUN).first()
    return None if row is None else _serving_run(conn, row[0], row[1], row[2])


def _serving_run(conn: Any, run_id: int, version: int, finished: Any) -> ServingRun:
    # finished_at too: a database recreated under the same URL starts its run ids again.
    key = (str(conn.engine.url), int(run_id), str(finished))
    usable = _run_classes.get(key)
    if usable is None:
        metrics = conn.execute(_Q_RUN_METRICS, {"run": int(run_id)}).scalar()
        metrics = metrics if isinstance(metrics, dict) else {}
        usable = _run_classes[key] = serves_picks(metrics)
    return ServingRun(int(run_id), int(version), usable, str(finished))


SECOND_OPINIONS = ("overlap", "gold")
"""Picks that hand out EBs other labelers already labelled, by design."""
# Labelled by anyone, by the one rule of _not_labelled (an undone label does not count: CI caught the PostgreSQL
# re-check refusing an EB whose only label had been undone).
_Q_LABELLED = sa_select(literal(1)).where(~_not_labelled(bindparam("eb", type_=Integer())))


_PG_LOCK_AND_LEASE = text(
    """
    WITH claim AS (SELECT pg_try_advisory_xact_lock(2058, :eb_id) AS got),
    taken AS (
        INSERT INTO lease (eb_id, labeler_id, reason, created_at, expires_at)
        SELECT :eb_id, :labeler_id, :reason, :created_at, :expires_at FROM claim WHERE claim.got
        ON CONFLICT (eb_id) DO NOTHING
        RETURNING eb_id
    )
    SELECT (SELECT got FROM claim), (SELECT eb_id FROM taken)
    """
).bindparams(
    bindparam("eb_id", type_=Integer()),
    bindparam("labeler_id", type_=Integer()),
    bindparam("reason", type_=String()),
    bindparam("created_at", type_=DateTime()),
    bindparam("expires_at", type_=DateTime()),
)
"""PostgreSQL: a transaction-scoped claim on one EB (2058: this app's lock class) that never waits, and the lease
insert only when the claim was granted, in one round trip instead of two. The claim CTE is evaluated once
(it calls a volatile function, so PostgreSQL never inlines it), before the insert that reads it."""


# Not ON CONFLICT DO UPDATE ... WHERE expired: on PostgreSQL that row-locks the other AoD's live lease until our
# pick commits, so their label would wait for our pick, and two picks could deadlock over each other's leases.
_I_LEASE = insert_unless_taken(Lease, "eb_id", Lease.eb_id)


def _took(result: Any) -> bool:
    """Whether an _I_LEASE insert wrote its row."""
    return inserted_key(result) is not None


_D_EXPIRED = delete(Lease).where(col(Lease.eb_id) == bindparam("eb", type_=Integer()), col(Lease.expires_at) <= _NOW)


def try_lease(s: Session, eb_id: int, me: int, reason: str, now: datetime, minutes: float) -> datetime | None:
    """Lease EB_ID to labeler ME until NOW + MINUTES; None when someone else holds or is taking it."""
    expires = now + timedelta(minutes=float(minutes))
    conn = s.connection()
    postgres = conn.dialect.name == "postgresql"
    insert = _I_LEASE[conn.dialect.name]
    row = {"eb_id": int(eb_id), "labeler_id": me, "reason": reason[:32], "created_at": now, "expires_at": expires}
    if postgres:
        claimed, inserted = conn.execute(_PG_LOCK_AND_LEASE, row).one()
        if not claimed:
            # Another AoD is leasing this EB right now. Inserting anyway would wait for their transaction to end
            # (the key is taken but uncommitted) and then find it taken: with every AoD at the queue head they
            # queued up.
            return None
        taken = inserted is not None
    else:
        taken = _took(conn.execute(insert, row))
    if not taken and conn.execute(_D_EXPIRED, {"eb": int(eb_id), "now": now}).rowcount:
        # The key was held by a lease that has expired (whoever's): cleared, so take it now. Only on a
        # conflict: the usual pick is one statement instead of a delete before every insert.
        taken = _took(conn.execute(insert, row))
    if not taken:
        return None  # someone else's unexpired lease
    if postgres and reason not in SECOND_OPINIONS and conn.execute(_Q_LABELLED, {"eb": eb_id}).first() is not None:
        # PostgreSQL runs picks side by side: another AoD may have leased and labelled this EB after our
        # candidate query ran. Once our lease is in, their label (committed with their lease's release) is
        # visible here. SQLite needs no check: a pick holds the write lock from its first query.
        release_lease(session=s, eb_id=int(eb_id), labeler_id=me)
        return None
    return expires


def _display(truth: str, strategy: str, cold: bool) -> tuple[str, str]:
    """(strategy, reason) shown to the AoD; a gold check looks exactly like a random pick."""
    if truth == "gold":
        truth = "random"
    if truth in ("random", "overlap", "cold-start", "undo"):
        return truth, REASONS[truth]
    if truth == "scores":
        return strategy, REASONS["uncertainty"]
    s = strat.STRATEGIES.get(truth)
    return truth, (s.reason if s else REASONS["uncertainty"])


def _result(
    s: Session, eb_id: int, truth: str, strategy: str, cold: bool, run: ServingRun | None, expires: datetime
) -> dict[str, Any]:
    row = s.connection().execute(_Q_RESULT, {"eb": eb_id, "run": run.id if run is not None else -1}).one()
    proba = uncertainty = None
    if row[1] is not None:
        proba = {"Pass": float(row[1]), "SemiPass": float(row[2]), "Fail": float(row[3])}
        uncertainty = float(row[4])
    shown_strategy, reason = _display(truth, strategy, cold)
    return {
        "eb_id": int(eb_id),
        "uid": str(row[0]),
        "strategy": shown_strategy,
        "reason": reason,
        "uncertainty": uncertainty,
        "proba": proba,
        "model_version": run.version if run is not None else None,
        "lease_expires_at": _aware(expires).isoformat(),
    }


# --- cold start --------------------------------------------------------------------------------


_EBS = table_of(ExecutionBlock).c


def build_cold_start_queue(*, engine: Engine, length: int = COLD_START_LENGTH, seed: int = 0) -> int:
    """Precompute the cold-start queue: k-means++ diversity over unlabelled EBs, band x source strata taken in turn."""
    from qa0_label.learning.features import build_features

    with session_scope(engine) as s:
        max_id = s.exec(select(func.max(ExecutionBlock.id))).one()
        meta = s.connection().execute(sa_select(_EBS.id, _EBS.band, _EBS.source).order_by(_EBS.id)).all()
        labelled = {int(r) for r in s.exec(select(Label.eb_id).where(Label.value.is_not(None)).distinct()).all()}  # type: ignore[union-attr]
        X = build_features(session=s) if meta else None
    rows: list[tuple[Any, ...]] = []
    if meta and X is not None:
        ids = np.asarray([int(m[0]) for m in meta])
        keep = np.asarray([i not in labelled for i in ids])
        groups = [f"{m[1]}|{m[2]}" for m, k in zip(meta, keep) if k]
        Xk = X.reindex(ids[keep]).to_numpy(dtype=float)
        order = strat.stratified_diverse_order(Xk, groups, length, np.random.default_rng(seed))
        rows = [(None, strat.COLD_START, r, int(e)) for r, e in enumerate(ids[keep][order])]
    with session_scope(engine, write=True) as s:
        conn = s.connection()
        # Several AoDs' first requests can rebuild at once. SQLite serialises writers already; on PostgreSQL
        # the meta row is created if missing (a lost race is harmless) and locked, so builders take turns
        # instead of two inserting the same key (UniqueViolation reached an AoD) or interleaving queues.
        try:
            with conn.begin_nested():
                conn.execute(Meta.__table__.insert(), {"key": COLD_START_META, "value": "0"})  # type: ignore[attr-defined]
        except IntegrityError:
            pass
        conn.execute(sa_select(col(Meta.key)).where(col(Meta.key) == COLD_START_META).with_for_update()).all()
        s.exec(delete(ScoreRank).where(col(ScoreRank.run_id).is_(None), col(ScoreRank.strategy) == strat.COLD_START))
        bulk_insert(conn, "score_rank", ["run_id", "strategy", "rank", "eb_id"], rows)
        conn.execute(Meta.__table__.update().where(Meta.key == COLD_START_META), {"value": str(max_id or 0)})  # type: ignore[attr-defined]
    # The picks that follow read this queue at once: PostgreSQL planned them on the table before it (cold-start
    # next p95 5.3 -> 3.6 ms at 100k EBs, benchmarks/bench_next.py --cold-start).
    refresh_statistics(engine, ["score_rank"])
    return len(rows)


def _cold_start_stale(s: Session) -> bool:
    conn = s.connection()
    max_id = conn.execute(_Q_MAX_ID).scalar()
    built = conn.execute(_Q_META).scalar()
    return built is None or built != str(max_id or 0)


_REBUILD = object()


# --- public API --------------------------------------------------------------------------------


Fetch = Callable[[], list[int]]


def candidate_plan(
    s: Session,
    *,
    me: int,
    route: str,
    run: ServingRun | None,
    strategy: str,
    now: datetime,
    fallback: bool = False,
    overlap_share: float = 0.0,
) -> list[tuple[str, Fetch]]:
    """(what the pick is, candidate query) in the order a pick on ROUTE tries them; run None = cold start.

    Shared by next_for and lookahead.reserve_next, so a reserved EB is chosen by exactly the queue's rules.
    With fallback (nothing found on the first pass), random and overlap picks are tried last.
    """
    plan: list[tuple[str, Fetch]] = []
    if route == "gold":
        plan.append(("gold", lambda: _gold_candidates(s, me, now)))
    elif route == "overlap":
        plan.append(("overlap", lambda: _overlap_candidates(s, me, now)))
    elif route == "random":
        plan.append(("random", lambda: _random_candidates(s, me, now)))
    if run is None or not run.usable:
        plan.append((strat.COLD_START, lambda: _queue_candidates(s, None, strat.COLD_START, me, now)))
    else:
        plan.append((strategy, lambda: _queue_candidates(s, run, strategy, me, now)))
        plan.append(("scores", lambda: _score_candidates(s, run.id, me, now)))
    if fallback and route != "random":
        plan.append(("random", lambda: _random_candidates(s, me, now)))
    if fallback and route != "overlap" and overlap_share > 0:
        # Nothing unlabelled is left for this AoD: a second opinion is still useful work.
        plan.append(("overlap", lambda: _overlap_candidates(s, me, now)))
    return plan


def peek_next(*, engine: Engine, labeler: str, strategy: str | None = None, k: int = 1) -> list[int]:
    """Up to K EBs at the head of the queue this AoD's next pick follows (the strategy's or cold-start queue).

    Read-only, leases nothing: a hint for cache warming. next_for decides, and a pick routed to overlap /
    random / gold review is not predicted (those are drawn at random).
    """
    strategy = strategy or strat.DEFAULT_STRATEGY
    with session_scope(engine) as s:
        me_row = s.connection().execute(Q_LABELER_ID, {"name": normalize_name(labeler)}).first()
        me = int(me_row[0]) if me_row is not None else -1
        run = serving_run(s)
        plan = candidate_plan(s, me=me, route="queue", run=run, strategy=strategy, now=utcnow())
        return plan[0][1]()[: max(int(k), 0)]


Q_LABELER_ID = sa_select(table_of(Labeler).c.id).where(table_of(Labeler).c.name == bindparam("name", type_=String()))


_warm_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def warm_up(engine: Engine) -> None:
    """Compile the pick's and the label's queries into ENGINE's statement cache by running them on a read connection."""
    # SQLAlchemy compiles a statement the first time a process runs it (~20 ms of CPU for a pick, with the mapper
    # set-up), and a pick runs inside the write transaction: on SQLite every other AoD's pick and label queued
    # behind that compile, in every new process (each CLI command, each app server). The parameters match no row,
    # so the reads are index lookups. Not the overlap pick's fallback (it groups the newest labels whatever the
    # parameters), the inserts and deletes (compiled on first use: ~1 ms), nor the ORM path that creates a labeler.
    from sqlalchemy.orm import configure_mappers

    from qa0_label.store import labels

    configure_mappers()
    now = utcnow()
    nobody = {"me": -1, "now": now}
    with engine.connect() as conn:
        conn.execute(_Q_START, {"name": "", "now": now}).all()
        conn.execute(_Q_HEAD, {"run": -1, "queue": "", "from_rank": 0}).all()
        conn.execute(_Q_QUEUE, {"run": -1, "queue": "", "from_rank": 0, **nobody}).all()
        conn.execute(_Q_QUEUE_COLD, {"queue": "", **nobody}).all()
        conn.execute(_Q_SCORES, {"run": -1, **nobody}).all()
        conn.execute(_Q_RANDOM[0], {"start": _PAST_END, **nobody}).all()
        conn.execute(_Q_RANDOM[1], {"start": -1, **nobody}).all()
        conn.execute(_Q_GOLD, nobody).all()
        overlap.warm_up(conn, _Q_OVERLAP_DRAWS, nobody)
        conn.execute(_Q_RESULT, {"eb": -1, "run": -1}).all()
        conn.execute(_Q_LABELLED, {"eb": -1}).all()
        conn.execute(_Q_RUN_METRICS, {"run": -1}).all()
        conn.execute(_Q_RUN).all()
        conn.execute(_Q_MAX_ID).all()
        conn.execute(_Q_META).all()
        labels.warm_up(conn)
        conn.rollback()


def next_for(*, engine: Engine, labeler: str, strategy: str | None = None, settings: Settings) -> dict[str, Any] | None:
    """The EB this AoD should review next (leased to them), or None when nothing is left for them.

    Idempotent: while the AoD holds an unexpired lease on an EB they have not labelled or skipped, that EB
    comes back.
    """
    strategy = strategy or strat.DEFAULT_STRATEGY
    if strategy not in strat.STRATEGIES:
        raise UnknownStrategy(f"unknown strategy {strategy!r}; expected one of {', '.join(strat.strategy_names())}")
    if engine not in _warm_engines:
        _warm_engines.add(engine)  # first: a failed warm-up is not retried on every pick
        try:
            warm_up(engine)
        except Exception:  # noqa: BLE001 - an optimisation only: the pick compiles what it needs anyway
            log.debug("warming the statement cache failed", exc_info=True)
    result = retry_locked(lambda: _pick(engine, labeler, strategy, settings, fallback=False))
    if result is _REBUILD:
        # Cold start and the diversity queue is missing, used up, or older than the newest EBs: rebuild it
        # (outside the write transaction: it reads every EB's features) and pick again.
        build_cold_start_queue(engine=engine)
        result = retry_locked(lambda: _pick(engine, labeler, strategy, settings, fallback=True))
    assert result is not _REBUILD
    return result


def _pick(engine: Engine, labeler: str, strategy: str, settings: Settings, *, fallback: bool) -> Any:
    """One write transaction: the held lease, or a new pick; _REBUILD when the cold-start queue needs work."""
    now = utcnow()
    with session_scope(engine, write=True) as s:
        conn = s.connection()
        name = normalize_name(labeler)
        start = conn.execute(_Q_START, {"name": name, "now": now}).first()
        if start is None:  # a new AoD: created here, and holding nothing yet
            me = int(get_or_create_labeler(session=s, name=name).id)  # type: ignore[arg-type]
            run, n_done, has_leases, held = serving_run(s), 0, False, None
        else:
            me, n_done, has_leases = int(start[0]), int(start[1] or 0), bool(start[2])
            held = start[3:6] if start[3] is not None else None
            run = _serving_run(conn, start[6], start[7], start[8]) if start[6] is not None else None
        cold = run is None or not run.usable

        if held is not None:
            # Still theirs and not yet labelled or skipped: a rerun must not hop to another EB.
            return _result(s, int(held[0]), held[1], strategy, cold, run, held[2])
        if cold and not fallback and _cold_start_stale(s):
            return _REBUILD
        if has_leases:
            # Whatever this AoD still holds is finished or expired: let it go before taking a new one.
            conn.execute(_D_MY_LEASES, {"me": me})
        route = route_for(settings, name, n_done)

        plan = candidate_plan(
            s,
            me=me,
            route=route,
            run=run,
            strategy=strategy,
            now=now,
            fallback=fallback,
            overlap_share=settings.overlap_share,
        )

        for truth, fetch in plan:
            for _attempt in range(3):
                candidates = fetch()
                if not candidates:
                    break
                for eb_id in candidates:
                    expires = try_lease(
                        s, eb_id, me, truth if truth != "scores" else strategy, now, settings.lease_minutes
                    )
                    if expires is not None:
                        return _result(s, eb_id, truth, strategy, cold, run, expires)
        if cold and not fallback:
            return _REBUILD
        return None
