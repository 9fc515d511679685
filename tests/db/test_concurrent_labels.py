"""Many AoDs at once: no label lost, no 'database is locked' reaching a user (threads and processes)."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timezone

from sqlalchemy import func
from sqlmodel import select

from qa0_label.store import labels
from qa0_label.store.db import bulk_insert, get_engine, session_scope
from qa0_label.store.models import Label

N_WRITERS = 8
PER_WRITER = 25


def _pool(engine, n: int) -> list[str]:
    uids = [f"uid://A002/Xc0ffee/X{i:x}" for i in range(n)]
    with engine.begin() as conn:
        bulk_insert(
            conn,
            "execution_block",
            ["uid", "source", "band", "start_time", "imported_at"],
            [(u, "J1924-2914", 6, datetime(2024, 5, 1, tzinfo=timezone.utc), datetime.now(timezone.utc)) for u in uids],
        )
    return uids


def test_eight_threads_label_at_once_and_nothing_is_lost(db_url: str) -> None:
    engine = get_engine(db_url)
    _pool(engine, PER_WRITER)
    errors: list[BaseException] = []
    start = threading.Barrier(N_WRITERS)

    def work(k: int) -> None:
        try:
            start.wait()
            for i in range(PER_WRITER):
                with session_scope(engine, write=True) as s:
                    labels.record_label(
                        session=s, eb_id=i + 1, labeler=f"aod{k}", value=("Pass", "SemiPass", "Fail")[(i + k) % 3]
                    )
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(N_WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(Label)).one() == N_WRITERS * PER_WRITER
        assert len(labels.current_labels(s)) == N_WRITERS * PER_WRITER


def test_eight_cli_processes_label_at_once(db_url: str) -> None:
    engine = get_engine(db_url)
    uids = _pool(engine, 10)
    script = (
        "import sys\n"
        "from qa0_label.cli import main\n"
        "db, who = sys.argv[1], sys.argv[2]\n"
        "for uid in sys.argv[3:]:\n"
        "    rc = main(['--db', db, 'label', uid, '--labeler', who, '--value', 'fail'])\n"
        "    if rc != 0: sys.exit(rc)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, db_url, f"cli{k}", *uids], stderr=subprocess.PIPE, text=True)
        for k in range(N_WRITERS)
    ]
    results = [(p.wait(timeout=180), p.stderr.read() if p.stderr else "") for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    assert not any("locked" in err for _, err in results)
    with session_scope(engine) as s:
        cur = labels.current_labels(s)
    assert len(cur) == N_WRITERS * len(uids)
    assert set(cur["value"]) == {"Fail"}


def test_a_writer_outwaiting_busy_timeout_still_gets_in(tmp_path, monkeypatch) -> None:
    """BEGIN IMMEDIATE is asked again when a lock outlives busy_timeout: no 'database is locked' for the AoD."""
    import sqlite3
    import time

    from qa0_label.store import db as dbmod

    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "busy.sqlite"
    engine = dbmod.make_engine(f"sqlite:///{path}")
    dbmod.init_db(engine)
    _pool(engine, 1)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock for 3 busy_timeouts
    release = threading.Timer(0.6, holder.rollback)
    release.start()
    t0 = time.perf_counter()
    with session_scope(engine, write=True) as s:
        labels.record_label(session=s, eb_id=1, labeler="patient", value="Pass")
    assert time.perf_counter() - t0 >= 0.5
    release.join()
    holder.close()
    with session_scope(engine) as s:
        assert len(labels.current_labels(s)) == 1
    engine.dispose()
