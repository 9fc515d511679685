"""Crash safety: kill -9 a real process in the middle of a retrain, an import, right after a label, and
during a backup; the database (a fresh engine, as after a restart) must hold exactly what was committed.

The killed processes are small `python -c` drivers over the same library the CLI uses; where a step is too
quick to hit reliably, the driver pauses inside it (a slow disk, a slow fit) so the kill lands there every
time. Runs on SQLite and, with QA0_TEST_POSTGRES_URL, on PostgreSQL (integrity_check and backup: SQLite).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from qa0_label.config import Settings
from qa0_label.learning import training
from qa0_label.learning.learner import load_artifact
from qa0_label.queue import assign
from qa0_label.store.db import dispose_engines, init_db, make_engine, session_scope
from qa0_label.store.models import ModelRun, Score, ScoreRank
from tests.db.al_pool import label, make_pool

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QA0_MIN_LABELS": "20"}


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _wait_for(what: str, ready: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the driver ended (exit {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _fresh(db_url: str) -> Engine:
    """An engine as a restarted app would open it (nothing cached from before the crash)."""
    dispose_engines()
    engine = make_engine(db_url)
    init_db(engine)
    return engine


def _integrity_ok(db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        return
    conn = sqlite3.connect(db_url[len("sqlite:///") :])
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def _digest(engine: Engine, table: str, columns: str) -> tuple[int, str]:
    """Row count and a hash of the rows' contents (ids included) of one table."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {columns} FROM {table} ORDER BY id")).fetchall()
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(tuple(row)).encode())
    return len(rows), h.hexdigest()


# --- retrain ---------------------------------------------------------------------------------

RETRAIN_DRIVER = """
import sys, time
from qa0_label import cli
from qa0_label.learning import fitting, learner

pause = sys.argv[2]
if pause == "fit":
    real = fitting.cv_metrics
    def slow_cv(*a, **k):
        out = real(*a, **k)
        time.sleep(600)  # the kill lands here, while the run is cross-validating
        return out
    fitting.cv_metrics = slow_cv
else:
    def slow_dump(obj, f, **k):
        f.write(b"half a model")  # a slow disk: the temp file holds part of the artifact
        f.flush()
        time.sleep(600)
    learner.joblib.dump = slow_dump
sys.exit(cli.main(["--db", sys.argv[1], "retrain", "--quiet"]))
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A model directory the drivers share with this test (QA0_MODEL_DIR), no routing."""
    ENV["QA0_MODEL_DIR"] = str(tmp_path / "models")
    return Settings(
        model_dir=tmp_path / "models", min_labels_to_train=20, overlap_share=0.0, random_share=0.0, gold_share=0.0
    )


def _served(engine: Engine, run_id: int) -> tuple[int, list[int]]:
    with session_scope(engine) as s:
        n = len(s.exec(select(Score.id).where(Score.run_id == run_id)).all())
        queue = s.exec(
            select(ScoreRank.eb_id)
            .where(ScoreRank.run_id == run_id, ScoreRank.strategy == "margin")
            .order_by(ScoreRank.rank)  # type: ignore[arg-type]
        ).all()
    return n, list(queue)


@pytest.mark.parametrize("pause", ["fit", "save"])
def test_killed_retrain_leaves_the_previous_model_serving(
    db_url: str, engine: Engine, settings: Settings, pause: str
) -> None:
    truth = make_pool(engine, 200)
    ids = sorted(truth)
    chosen = [next(e for e in ids if truth[e] == v) for v in ("Pass", "SemiPass", "Fail")] + ids[3:60]
    label(engine, chosen, "ana", truth)
    first = training.retrain(engine=engine, settings=settings)
    before = _served(engine, first["run_id"])
    artifacts_before = sorted(p.name for p in settings.model_dir.iterdir())

    proc = _spawn(RETRAIN_DRIVER, db_url, pause)
    model_dir = settings.model_dir

    def in_the_middle() -> bool:
        with session_scope(engine) as s:
            run = s.exec(select(ModelRun).where(ModelRun.version == 2)).first()
        if run is None or run.status != "running" or run.progress < 0.15:
            return False
        return pause == "fit" or any(p.name.endswith(".partial") for p in model_dir.iterdir())

    _wait_for("the retrain is past its start", in_the_middle, proc)
    _kill(proc)

    engine = _fresh(db_url)
    _integrity_ok(db_url)
    with session_scope(engine) as s:
        dead = s.exec(select(ModelRun).where(ModelRun.version == 2)).one()
        assert dead.status == "running" and dead.artifact_path is None  # nobody has noticed yet
    assert _served(engine, first["run_id"]) == before  # the previous run's scores and queue are intact
    assert training.status(engine=engine)["running"] is False  # its process is gone
    assert training.status(engine=engine)["latest"]["version"] == 1
    pick = assign.next_for(engine=engine, labeler="bo", strategy="margin", settings=settings)
    assert pick is not None and pick["model_version"] == 1 and pick["eb_id"] == before[1][0]
    # No artifact for the killed version: at most the temp file it was writing (never the final name).
    names = sorted(p.name for p in model_dir.iterdir())
    assert not any(n.startswith("model_v00002.joblib") and not n.endswith(".partial") for n in names), names
    assert [n for n in names if not n.endswith(".partial")] == artifacts_before

    again = training.retrain(engine=engine, settings=settings)  # reaps the dead run, then succeeds
    assert again["version"] == 3
    with session_scope(engine) as s:
        dead = s.exec(select(ModelRun).where(ModelRun.version == 2)).one()
        assert dead.status == "failed" and "abandoned" in (dead.error or "")
        assert not s.exec(select(Score.id).where(Score.run_id == dead.id)).first()
    names = sorted(p.name for p in model_dir.iterdir())
    assert not [n for n in names if n.endswith(".partial")], names  # the reaper removed the half-written file
    assert load_artifact(Path(again["artifact_path"]), sha256=again["artifact_sha256"])["version"] == 3


# --- import ----------------------------------------------------------------------------------


def _import_files(tmp_path: Path, n_ebs: int, per_eb: int, start: int = 0) -> tuple[Path, Path]:
    """An EB CSV and a details CSV (PER_EB rows per EB), big enough that writing takes seconds."""
    i = np.arange(start, start + n_ebs)
    uids = [f"uid://A002/X{0x200000 + k // 4096:x}/X{k % 4096:x}" for k in i]
    ebs = pd.DataFrame(
        {
            "uid": uids,
            "source": "J1256-0547",
            "band": "B3",
            "start_time": pd.Timestamp("2024-05-01", tz="UTC") + pd.to_timedelta(i, unit="min"),
            "pwv_mm": 0.5 + (i % 20) / 10,
            "n_antennas": 43,
            "qa0_status": np.array(["Pass", "Fail", ""])[i % 3],
        }
    )
    reps = np.repeat(np.arange(n_ebs), per_eb)
    details = pd.DataFrame(
        {
            "uid": np.asarray(uids)[reps],
            "antenna": [f"DA{41 + k % 50}" for k in range(len(reps))],
            "spw": np.arange(len(reps)) // 50 % 4,
            "scan": 1,
            "tsys_k": 80.0 + reps % 7,
        }
    )
    ebs_path, det_path = tmp_path / f"ebs{start}.csv", tmp_path / f"det{start}.csv"
    ebs.to_csv(ebs_path, index=False)
    details.drop_duplicates(subset=["uid", "antenna", "spw", "scan"]).to_csv(det_path, index=False)
    return ebs_path, det_path


def _state(engine: Engine) -> dict[str, tuple[int, str]]:
    return {
        "execution_block": _digest(engine, "execution_block", "id, uid, source, band, start_time, pwv_mm, extra"),
        "label": _digest(engine, "label", "id, eb_id, labeler_id, value, kind, client_event_id"),
        "eb_detail": _digest(engine, "eb_detail", "id, eb_id, antenna, spw, scan, tsys_k"),
    }


@pytest.mark.slow
def test_killed_import_leaves_the_database_as_it_was(db_url: str, engine: Engine, tmp_path: Path) -> None:
    from qa0_label.ingest import import_file

    small = _import_files(tmp_path, 50, 4)
    import_file(engine=engine, path=small[0], details_path=small[1])
    before = _state(engine)
    ebs, details = _import_files(tmp_path, 20_000, 12, start=1_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa0_label", "--db", db_url, "import", str(ebs), "--details", str(details)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = bytearray()

    def read_progress() -> None:
        while block := proc.stderr.read1(4096):  # type: ignore[union-attr]
            seen.extend(block)

    threading.Thread(target=read_progress, daemon=True).start()
    started = time.monotonic()
    # The progress line says when the EB rows are written and the detail rows are being written: the
    # transaction is open and holds most of the file.
    _wait_for("the import writes detail rows", lambda: b"] detail rows" in seen, proc)
    _kill(proc)
    assert time.monotonic() - started > 1.0  # the import was well under way, not starting
    engine = _fresh(db_url)
    _integrity_ok(db_url)
    assert _state(engine) == before
    # The database takes writes again (no lock or half transaction left behind).
    summary = import_file(engine=engine, path=small[0])
    assert summary["updated"] == 50


# --- labels ----------------------------------------------------------------------------------

LABEL_DRIVER = """
import sys, time
from qa0_label.store.db import get_engine, session_scope
from qa0_label.store.labels import record_label

engine = get_engine(sys.argv[1])
eb_ids = [int(x) for x in sys.argv[2].split(",")]
for n, eb_id in enumerate(eb_ids):
    with session_scope(engine, write=True) as s:
        event = record_label(session=s, eb_id=eb_id, labeler="lab%d" % (n % 3), value=("Pass", "Fail")[n % 2])
        event_id = event.id
    print(event_id, flush=True)  # acknowledged only after the commit returned
    if n == len(eb_ids) - 1:
        time.sleep(600)  # stay alive: the kill comes right after the last acknowledgement
"""


def _acks(proc: subprocess.Popen[str], until: Callable[[list[int]], bool]) -> list[int]:
    acked: list[int] = []
    while not until(acked):
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the driver ended early: {proc.stderr.read()}")
        acked.append(int(line))
    return acked


def test_acknowledged_labels_survive_a_kill(db_url: str, engine: Engine) -> None:
    truth = make_pool(engine, 40)
    ids = sorted(truth)
    proc = _spawn(LABEL_DRIVER, db_url, ",".join(map(str, ids)))
    acked = _acks(proc, lambda a: len(a) == len(ids))
    _kill(proc)  # right after the last acknowledgement, while the process still holds its connection
    engine = _fresh(db_url)
    _integrity_ok(db_url)
    with engine.connect() as conn:
        stored = {int(r[0]) for r in conn.execute(text("SELECT id FROM label"))}
    assert set(acked) <= stored and len(acked) == len(ids)


def test_cli_label_that_exited_0_is_there_after_a_kill_of_a_writer(db_url: str, engine: Engine) -> None:
    truth = make_pool(engine, 5)
    uid = "uid://A002/X0/X0"
    done = subprocess.run(
        [sys.executable, "-m", "qa0_label", "--db", db_url, "label", uid, "--labeler", "ana", "--value", "fail"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # Another process that writes and is killed mid-stream does not take the acknowledged label with it.
    proc = _spawn(LABEL_DRIVER, db_url, ",".join(str(e) for e in sorted(truth)[1:] * 3))
    _acks(proc, lambda a: len(a) >= 3)
    _kill(proc)
    engine = _fresh(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT l.value FROM label l JOIN execution_block e ON e.id = l.eb_id WHERE e.uid = :u"), {"u": uid}
        ).fetchall()
    assert [r[0] for r in rows] == ["Fail"]


# --- backup ----------------------------------------------------------------------------------

WRITER_DRIVER = """
import sys, time
from qa0_label.store.db import get_engine, session_scope
from qa0_label.store.labels import record_label

engine = get_engine(sys.argv[1])
eb_ids = [int(x) for x in sys.argv[2].split(",")]
n = 0
while True:
    with session_scope(engine, write=True) as s:
        event = record_label(session=s, eb_id=eb_ids[n % len(eb_ids)], labeler="w%d" % (n % 4),
                             value=("Pass", "SemiPass", "Fail")[n % 3], comment="x" * (n % 50))
        event_id = event.id
    print(event_id, flush=True)
    n += 1
"""


@pytest.mark.sqlite_only
def test_backup_of_a_live_database_is_consistent(db_url: str, engine: Engine, tmp_path: Path) -> None:
    truth = make_pool(engine, 300)
    proc = _spawn(WRITER_DRIVER, db_url, ",".join(map(str, sorted(truth))))
    try:
        acked = _acks(proc, lambda a: len(a) >= 200)
        committed_before_backup = set(acked)
        out = tmp_path / "backup" / "copy.sqlite"
        done = subprocess.run(
            [sys.executable, "-m", "qa0_label", "--db", db_url, "backup", "--out", str(out)],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        more = _acks(proc, lambda a: len(a) >= 20)  # the writer kept writing during and after the backup
    finally:
        proc.kill()
        proc.wait()
    assert more
    conn = sqlite3.connect(out)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        in_copy = {int(r[0]) for r in conn.execute("SELECT id FROM label")}
    finally:
        conn.close()
    assert committed_before_backup <= in_copy
    assert not list(out.parent.glob("*.partial"))
    copy = make_engine(f"sqlite:///{out}")
    try:
        init_db(copy)  # opens and is at the current schema version
        with copy.connect() as c:
            assert c.execute(text("SELECT COUNT(*) FROM execution_block")).scalar_one() == 300
    finally:
        copy.dispose()
