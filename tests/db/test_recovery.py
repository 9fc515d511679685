"""Recovery without side effects: a killed retrain worker is replaced, import spools never outlive their owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select

from qa0_label.ingest import spool
from qa0_label.learning.retrain_process import RetrainRunner
from qa0_label.sim.simulate import simulate
from qa0_label.store.db import dispose_engines, get_engine, session_scope
from qa0_label.store.models import ModelRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def labelled_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    monkeypatch.delenv("QA0_MODEL_DIR", raising=False)
    simulate(engine=get_engine(url), n=150, seed=2, aods=3, labeled=90)
    dispose_engines()
    return url


def _wait_for_worker(runner: RetrainRunner, timeout: float = 60.0) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = runner.worker_pids()
        if pids:
            return pids[0]
        time.sleep(0.05)
    raise AssertionError("no retrain worker appeared")


@pytest.mark.sqlite_only
def test_killed_retrain_worker_is_replaced_on_the_next_retrain(labelled_url: str) -> None:
    runner = RetrainRunner()
    try:
        doomed = runner.submit(url=labelled_url, trigger="manual")
        os.kill(_wait_for_worker(runner), signal.SIGKILL)
        with pytest.raises(Exception):  # noqa: B017 - BrokenProcessPool, whatever its exact class path
            doomed.result(timeout=60)
        # "Retrain now" again, same server process: a fresh worker trains a model.
        outcome = runner.submit(url=labelled_url, trigger="manual").result(timeout=300)
        assert outcome["started"] is True, outcome
        time.sleep(0.1)  # the done-callback records the outcome right after the future resolves
        assert runner.last_outcome(labelled_url)["started"] is True  # type: ignore[index]
        with session_scope(get_engine(labelled_url)) as s:
            runs = {r.version: r.status for r in s.exec(select(ModelRun)).all()}
        assert "done" in runs.values() and "running" not in runs.values()
    finally:
        runner.close()


def test_spool_is_removed_on_error_and_owner_is_recorded(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with spool.spool_directory(tmp_path) as path:
            assert (path / spool.OWNER_FILE).read_text().split()[0] == str(os.getpid())
            (path / "block.pickle").write_bytes(b"x" * 1000)
            raise RuntimeError("validation blew up")
    assert not list(tmp_path.glob(spool.PREFIX + "*"))


def test_sweep_removes_dead_owners_and_old_orphans_only(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folders = {}
    for name, owner in (("dead", f"{dead.pid} {spool.HOST}"), ("live", f"{os.getpid()} {spool.HOST}"), ("new", None)):
        path = tmp_path / f"{spool.PREFIX}{name}"
        path.mkdir()
        if owner:
            (path / spool.OWNER_FILE).write_text(owner)
        folders[name] = path
    old = tmp_path / f"{spool.PREFIX}old"
    old.mkdir()
    os.utime(old, (time.time() - 2 * spool.STALE_AFTER_S,) * 2)
    removed = spool.sweep_stale_spools(tmp_path)
    assert sorted(p.name for p in removed) == [f"{spool.PREFIX}dead", f"{spool.PREFIX}old"]
    assert folders["live"].exists() and folders["new"].exists()


def _big_csv(path: Path, n: int = 400_000) -> None:
    with path.open("w") as f:
        f.write("uid,source,band,start_time,pwv_mm\n")
        for i in range(n):
            f.write(f"uid://A002/Xbig/X{i:x},J1924-2914,{3 + i % 5},2024-05-01T03:{i % 60:02d}:00Z,1.{i % 9}\n")


@pytest.mark.slow
def test_sigterm_during_import_leaves_no_spool_and_kill9_is_swept_at_next_start(tmp_path: Path) -> None:
    data = tmp_path / "big.csv"
    _big_csv(data)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "QA0_DATABASE_URL": f"sqlite:///{tmp_path / 'i.sqlite'}"}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen(
            [sys.executable, "-m", "qa0_label", "import", str(data), "--quiet"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while not list(tmp.glob(spool.PREFIX + "*")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        left = list(tmp.glob(spool.PREFIX + "*"))
        if sig == signal.SIGTERM:
            assert left == [], "SIGTERM unwinds through the spool's context manager"
        else:
            assert len(left) == 1  # kill -9 cannot clean up after itself ...
            subprocess.run(
                [sys.executable, "-m", "qa0_label", "import", str(tmp_path / "nothing.csv")],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=120,
            )
            assert list(tmp.glob(spool.PREFIX + "*")) == []  # ... the next start sweeps it
    with session_scope(get_engine(env["QA0_DATABASE_URL"])) as s:
        assert s.connection().exec_driver_sql("SELECT COUNT(*) FROM execution_block").scalar_one() == 0


def _job(url: str, trigger: str) -> dict[str, object]:
    if trigger == "slow":
        time.sleep(60)
    return {"started": True, "message": f"{trigger} on {url}"}


def test_a_dead_worker_whose_pool_is_broken_is_replaced_on_the_next_submit(monkeypatch: pytest.MonkeyPatch) -> None:
    # "Every later Retrain now fails with BrokenProcessPool": the executor marks itself broken when its worker
    # dies; the next submit (Retrain now, or auto-retrain) must get a new pool, not raise (fails on the old runner).
    from qa0_label.learning import retrain_process

    monkeypatch.setattr(retrain_process, "_retrain_job", _job)
    runner = RetrainRunner()
    try:
        doomed = runner.submit(url="sqlite:///x", trigger="slow")
        broken = runner._pool
        os.kill(_wait_for_worker(runner), signal.SIGKILL)
        deadline = time.time() + 60
        while not getattr(broken, "_broken", False) and time.time() < deadline:
            time.sleep(0.02)
        assert getattr(broken, "_broken", False)
        assert runner.submit(url="sqlite:///x", trigger="auto").result(timeout=120)["message"] == "auto on sqlite:///x"
        assert runner._pool is not broken
        with pytest.raises(Exception):  # noqa: B017 - the killed request reports BrokenProcessPool
            doomed.result(timeout=10)
    finally:
        runner.close()
