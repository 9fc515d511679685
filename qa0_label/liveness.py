"""Whether the process that owns something (a retrain run, an import spool) is still alive on this host."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True unless no process PID exists on this host (another user's process counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
