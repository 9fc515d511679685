"""Import spool folders (``qa0-import-*`` in the system temp directory): made with an owner file, removed on
every exit path of the import, and swept at start-up when their owner is gone.

An import validates a file block by block and spools the clean blocks to a temporary folder (tens of MB for
a large file) before writing anything. A normal end, a refusal, an exception, Ctrl-C and SIGTERM (the CLI turns
it into KeyboardInterrupt) all leave through the ``spool_directory`` context manager, which deletes the
folder. Only kill -9 (or a power cut) cannot be caught: ``sweep_stale_spools`` runs when the CLI or the app
starts and removes folders whose owner process is dead, or which are older than a day without an owner file.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qa0_label.liveness import pid_alive

log = logging.getLogger(__name__)

PREFIX = "qa0-import-"
OWNER_FILE = "owner"
STALE_AFTER_S = 86_400.0
"""A spool without a readable owner is removed once it is older than this (a day)."""
HOST = socket.gethostname()


@contextmanager
def spool_directory(base: str | Path | None = None) -> Iterator[Path]:
    """A fresh spool folder owned by this process, deleted however the block ends."""
    path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    try:
        (path / OWNER_FILE).write_text(f"{os.getpid()} {HOST}\n", encoding="ascii")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _owner_alive(path: Path) -> bool | None:
    """True / False when the owner file names a process on this host; None when it cannot tell."""
    try:
        pid_text, host = (path / OWNER_FILE).read_text(encoding="ascii").split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if host != HOST:
        return None
    return pid == os.getpid() or pid_alive(pid)


def sweep_stale_spools(base: str | Path | None = None, *, now: float | None = None) -> list[Path]:
    """Remove spool folders left by a killed import: owner dead, or no owner and older than a day."""
    root = Path(base or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        candidates = list(root.glob(PREFIX + "*"))
    except OSError:
        return removed
    for path in candidates:
        if not path.is_dir() or path.is_symlink():
            continue
        alive = _owner_alive(path)
        try:
            old = now - path.stat().st_mtime > STALE_AFTER_S
        except OSError:
            continue
        if alive is False or (alive is None and old):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    if removed:
        log.info("removed %d import spool folder(s) left by killed imports", len(removed))
    return removed
