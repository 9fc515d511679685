"""The demo database: seed an empty database once with simulated EBs, AoD labels and a team lead."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from qa0_label.sim.aods import LEAD_NAME
from qa0_label.sim.database import ProgressFn, simulate
from qa0_label.store import db

DEMO_EBS = 3000
DEMO_LABELS = 400
DEMO_AODS = 4
DEMO_SEED = 20240601
_DEMO_KEY = "demo_seeded"


def seed_demo_if_empty(*, engine: Engine, progress: ProgressFn | None = None) -> bool:
    """Seed an empty database with ~3,000 demo EBs, ~400 labels by 4 AoDs and a team lead; True if seeded."""
    from qa0_label.store.labels import get_or_create_labeler

    now = datetime.now(timezone.utc)
    try:
        with db.writer(engine).begin() as conn:
            if conn.execute(text("SELECT COUNT(*) FROM execution_block")).scalar_one():
                return False
            claim = conn.execute(text("SELECT value FROM meta WHERE key = :k"), {"k": _DEMO_KEY}).first()
            if claim is not None:
                # Another process is seeding right now; a claim older than 15 minutes is from a crash.
                try:
                    started = datetime.fromisoformat(claim[0])
                except ValueError:
                    started = now - timedelta(hours=1)
                if now - started < timedelta(minutes=15):
                    return False
                conn.execute(text("UPDATE meta SET value = :v WHERE key = :k"), {"k": _DEMO_KEY, "v": now.isoformat()})
            else:
                conn.execute(
                    text("INSERT INTO meta (key, value) VALUES (:k, :v)"), {"k": _DEMO_KEY, "v": now.isoformat()}
                )
    except IntegrityError:
        return False  # the other process claimed it first
    try:
        simulate(engine=engine, n=DEMO_EBS, seed=DEMO_SEED, aods=DEMO_AODS, labeled=DEMO_LABELS, progress=progress)
        with db.session_scope(engine, write=True) as session:
            get_or_create_labeler(session=session, name=LEAD_NAME, role="lead")
    except BaseException:
        # Let the next start try again instead of leaving a half-claimed, empty database.
        with db.writer(engine).begin() as conn:
            if not conn.execute(text("SELECT COUNT(*) FROM execution_block")).scalar_one():
                conn.execute(text("DELETE FROM meta WHERE key = :k"), {"k": _DEMO_KEY})
        raise
    return True
