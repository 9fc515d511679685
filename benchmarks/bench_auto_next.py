"""`next` latency with auto-QA0's queue filter: N picks (each followed by a label) on an existing database.

Usage: python benchmarks/bench_auto_next.py DB_URL LABELER N
Run it once with this checkout and once with the code before auto-QA0 (PYTHONPATH=that checkout) on copies of the
same database to compare; set a loose alpha first (Model page, or runs.change_alpha) so many EBs are auto-decided.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.environ.get("PYTHONPATH") or str(Path(__file__).resolve().parent.parent))

from qa0_label.config import Settings  # noqa: E402
from qa0_label.queue.assign import next_for  # noqa: E402
from qa0_label.store.db import get_engine, session_scope  # noqa: E402
from qa0_label.store.labels import record_label  # noqa: E402


def main(argv: list[str]) -> int:
    """Time N next_for calls (the first 5 are warm-up) and print p50 / p95."""
    url, who, n = argv[0], argv[1], int(argv[2])
    engine = get_engine(url)
    settings = Settings(database_url=url)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        got = next_for(engine=engine, labeler=who, settings=settings)
        ts.append(time.perf_counter() - t)
        if got is None:
            break
        with session_scope(engine, write=True) as s:
            record_label(session=s, eb_id=int(got["eb_id"]), labeler=who, value="Pass")
    ms = np.asarray(ts[5:]) * 1000
    print(f"next p50 {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms (n={len(ms)}, load {os.getloadavg()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
