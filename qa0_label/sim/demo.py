"""The demo database: seed an empty database once with simulated EBs, AoD labels and a team lead."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from qa0_label.sim.aods import LEAD_NAME
from qa0_label.sim.database import ProgressFn, simulate
from qa0_label.store import db
from qa0_label.store.models import ExecutionBlock, Meta, table_of

DEMO_EBS = 3000
DEMO_LABELS = 400
DEMO_AODS = 4
DEMO_SEED = 20240601
_DEMO_KEY = "demo_seeded"

_META = table_of(Meta)
_Q_EB_COUNT = select(func.count()).select_from(table_of(ExecutionBlock))
_Q_CLAIM = select(_META.c.value).where(_META.c.key == _DEMO_KEY)


def seed_demo_if_empty(*, engine: Engine, progress: ProgressFn | None = None) -> bool:
    """Seed an empty database with ~3,000 demo EBs, ~400 labels by 4 AoDs and a team lead; True if seeded."""
    from qa0_label.store.labels import get_or_create_labeler

    now = datetime.now(timezone.utc)
    try:
        with db.writer(engine).begin() as conn:
            if conn.execute(_Q_EB_COUNT).scalar_one():
                return False
            claim = conn.execute(_Q_CLAIM).first()
            if claim is not None:
                # Another process is seeding right now; a claim older than 15 minutes is from a crash.
                try:
                    started = datetime.fromisoformat(claim[0])
                except ValueError:
                    started = now - timedelta(hours=1)
                if now - started < timedelta(minutes=15):
                    return False
                conn.execute(update(_META).where(_META.c.key == _DEMO_KEY).values(value=now.isoformat()))
            else:
                conn.execute(insert(_META).values(key=_DEMO_KEY, value=now.isoformat()))
    except IntegrityError:
        return False  # the other process claimed it first
    try:
        simulate(engine=engine, n=DEMO_EBS, seed=DEMO_SEED, aods=DEMO_AODS, labeled=DEMO_LABELS, progress=progress)
        with db.session_scope(engine, write=True) as session:
            get_or_create_labeler(session=session, name=LEAD_NAME, role="lead")
    except BaseException:
        # Let the next start try again instead of leaving a half-claimed, empty database.
        with db.writer(engine).begin() as conn:
            if not conn.execute(_Q_EB_COUNT).scalar_one():
                conn.execute(delete(_META).where(_META.c.key == _DEMO_KEY))
        raise
    return True
