"""Entry point for `python -m qa0_label`."""

import signal
import sys

from qa0_label.cli import main


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (a service stop, `kill`) unwinds like Ctrl-C: context managers run, so an import's spool folder
    # and open transactions are cleaned up instead of left behind.
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
