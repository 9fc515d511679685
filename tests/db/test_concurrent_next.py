"""Eight AoD processes asking `next` at once (through the CLI): never the same EB, no error reaches them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from qa0_label.queue import assign
from qa0_label.store.db import get_engine
from tests.db.al_pool import make_pool

N_PROCS = 8
ROUNDS = 4

_SCRIPT = """
import contextlib, io, json, sys
from qa0_label.cli import main
db, who, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])

def run(*argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(['--db', db, *argv])
    if rc != 0:
        sys.exit(rc)
    return buf.getvalue()

picks = []
for i in range(rounds + 1):
    pick = json.loads(run('next', '--labeler', who, '--json'))
    picks.append(pick['uid'])
    if i < rounds:  # the last pick stays leased (held) while the others keep asking
        run('label', pick['uid'], '--labeler', who, '--value', 'pass')
print('PICKS ' + json.dumps(picks))
"""


def test_eight_processes_asking_next_never_share_an_eb(db_url: str) -> None:
    engine = get_engine(db_url)
    make_pool(engine, 120)
    assign.build_cold_start_queue(engine=engine)
    # No overlap routing: with it, a second AoD may get an EB after the first one labelled it (by design).
    env = {**os.environ, "QA0_OVERLAP_SHARE": "0", "QA0_RANDOM_SHARE": "0.3", "QA0_GOLD_SHARE": "0", "QA0_DEBUG": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, db_url, f"proc-aod-{k}", str(ROUNDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for k in range(N_PROCS)
    ]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert all(rc == 0 for rc, _, _ in outs), "\n".join(err[-3000:] for _, _, err in outs)
    assert not any("locked" in err.lower() or "Traceback" in err for _, _, err in outs)
    picks = [json.loads(out.split("PICKS ", 1)[1]) for _, out, _ in outs]
    every = [u for p in picks for u in p]
    assert len(every) == N_PROCS * (ROUNDS + 1)
    assert len(set(every)) == len(every)  # no EB went to two AoDs
    with engine.connect() as conn:
        leases = conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT labeler_id) FROM lease")).one()
        n_labels = conn.execute(text("SELECT COUNT(*) FROM label")).scalar_one()
    assert tuple(leases) == (N_PROCS, N_PROCS)  # each still holds exactly its last pick
    assert n_labels == N_PROCS * ROUNDS


def test_postgres_next_passes_over_an_eb_another_aod_is_leasing_instead_of_waiting(backend: str, db_url: str) -> None:
    import threading
    from datetime import datetime, timezone

    from qa0_label.config import Settings
    from qa0_label.store.db import session_scope
    from qa0_label.store.labels import get_or_create_labeler

    if backend != "postgresql":
        pytest.skip("SQLite has one writer: the second AoD queues at the write gate by design")
    engine = get_engine(db_url)
    make_pool(engine, 40)
    assign.build_cold_start_queue(engine=engine)
    settings = Settings(overlap_share=0.0, random_share=0.0, gold_share=0.0)
    with session_scope(engine) as s:
        head = int(
            s.connection()
            .execute(text("SELECT eb_id FROM score_rank WHERE run_id IS NULL ORDER BY rank LIMIT 1"))
            .scalar()
        )
    with session_scope(engine, write=True) as racing:
        # Another AoD is in the middle of leasing the queue head: inserted, not committed yet.
        me = get_or_create_labeler(session=racing, name="racing-aod").id
        assert assign.try_lease(racing, head, me, "test", datetime.now(timezone.utc), 30) is not None
        picked: list[dict] = []
        worker = threading.Thread(
            target=lambda: picked.append(assign.next_for(engine=engine, labeler="second-aod", settings=settings))
        )
        worker.start()
        worker.join(timeout=20)
        waited = worker.is_alive()
        racing.rollback()  # let a blocked worker finish either way
    worker.join(timeout=20)
    assert not waited, "next_for waited for the other AoD's transaction instead of moving on"
    assert picked and picked[0] is not None and picked[0]["eb_id"] != head


def test_postgres_lease_refuses_an_eb_labelled_after_the_candidate_query(backend: str, db_url: str) -> None:
    from datetime import datetime, timezone

    from qa0_label.store import labels
    from qa0_label.store.db import session_scope

    if backend != "postgresql":
        pytest.skip(
            "SQLite: a pick holds the write lock from its candidate query on, nothing can be labelled meanwhile"
        )
    engine = get_engine(db_url)
    make_pool(engine, 5)
    with session_scope(engine) as s:
        eb = int(s.connection().execute(text("SELECT MIN(id) FROM execution_block")).scalar())
    # Another AoD leased and labelled the EB after this AoD's candidate list was read.
    with session_scope(engine, write=True) as s:
        labels.record_label(session=s, eb_id=eb, labeler="fast-aod", value="Pass")
    now = datetime.now(timezone.utc)
    with session_scope(engine, write=True) as s:
        me = labels.get_or_create_labeler(session=s, name="slow-aod").id
        assert assign.try_lease(s, eb, me, "random", now, 30) is None, "a labelled EB is not handed out again"
        assert assign.try_lease(s, eb, me, "overlap", now, 30) is not None, "a second opinion is asked on purpose"
