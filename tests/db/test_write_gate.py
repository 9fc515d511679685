"""The SQLite write gate: writers of different processes take turns through an flock, and nesting is safe."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa0_label.store.db import get_engine, session_scope, write_lock_path

HOLD_S = 0.3
WRITER = """
import sys, time
from qa0_label.store.db import get_engine, session_scope
engine = get_engine(sys.argv[1])
with session_scope(engine, write=True) as s:
    start = time.time()
    time.sleep(float(sys.argv[2]))
    print(start, time.time())
"""


def _lock_is_free(path: str) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)  # a new open file: excluded like another process would be
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_lock_file_sits_next_to_a_file_database_only(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite"
    assert write_lock_path(get_engine(f"sqlite:///{db}")) == str(db.resolve()) + "-qa0-write.lock"
    assert write_lock_path(get_engine("sqlite:///:memory:")) is None


def test_the_gate_is_held_for_the_whole_outer_write_even_when_writes_nest(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'q.sqlite'}")
    path = write_lock_path(engine)
    assert path is not None
    with session_scope(engine, write=True):
        assert not _lock_is_free(path), "another process must wait while this one writes"
        with session_scope(engine, write=True):  # same thread again: no deadlock
            pass
        assert not _lock_is_free(path), "leaving the inner write must not hand the lock over"
    assert _lock_is_free(path)
    with session_scope(engine):  # readers never take it
        assert _lock_is_free(path)


def test_the_lock_is_released_when_the_write_fails(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'q.sqlite'}")
    with pytest.raises(RuntimeError), session_scope(engine, write=True):
        raise RuntimeError("boom")
    assert _lock_is_free(write_lock_path(engine))  # type: ignore[arg-type]


def test_a_writing_process_holds_the_lock_and_a_kill_releases_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    path = write_lock_path(get_engine(url))
    assert path is not None
    child = subprocess.Popen([sys.executable, "-c", WRITER, url, "60"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while _lock_is_free(path):  # the child is starting up; it takes the lock when its write begins
            assert child.poll() is None and time.time() < deadline, "the writer never took the lock"
            time.sleep(0.05)
        time.sleep(HOLD_S)
        assert not _lock_is_free(path), "held for the whole write"
        child.kill()  # kill -9 in the middle of the write
        child.wait(timeout=30)
        assert _lock_is_free(path), "a killed writer must not leave the gate closed"
        with session_scope(get_engine(url), write=True):
            pass
    finally:
        if child.poll() is None:
            child.kill()
