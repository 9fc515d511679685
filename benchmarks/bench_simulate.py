"""Time `simulate` into a fresh temporary SQLite file and print the figures the README quotes.

Usage: python benchmarks/bench_simulate.py [--n 10000] [--seed 0]
Prints: seconds (and CPU seconds), database size (MB), detail rows per EB (mean/min/max), reference
Pass/SemiPass/Fail shares, and the load average around the run.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa0_label.sim.simulate import simulate  # noqa: E402
from qa0_label.store.db import init_db, make_engine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of EBs to simulate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n <= 0:
        parser.error("--n must be positive")
    with tempfile.TemporaryDirectory(prefix="qa0-bench-") as tmp:
        path = Path(tmp) / "bench.sqlite"
        engine = make_engine(f"sqlite:///{path}")
        init_db(engine)
        load_before = os.getloadavg()[0]
        cpu0 = time.process_time()
        summary = simulate(engine=engine, n=args.n, seed=args.seed)
        cpu = time.process_time() - cpu0
        load_after = os.getloadavg()[0]
        engine.dispose()
        # Fold the write-ahead log into the file so the size is the database's real size.
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        size_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
    rows = summary["detail_rows_per_eb"]
    shares = summary["reference_shares"]
    print(f"simulate --n {args.n} --seed {args.seed} into a fresh SQLite file")
    print(f"seconds: {summary['seconds']:.1f} (CPU seconds of this process: {cpu:.1f})")
    print(f"database size: {size_mb:.0f} MB")
    print(
        f"detail rows: {summary['n_detail_rows']} total, per EB mean {rows['mean']:.0f} / min {rows['min']} / max {rows['max']}"
    )
    print(
        f"reference shares: Pass {shares['Pass']:.1%} / SemiPass {shares['SemiPass']:.1%} / Fail {shares['Fail']:.1%}"
    )
    # The machine may be shared: wall time depends on what else runs, CPU seconds much less so.
    print(
        f"(1-minute load average before / after the run: {load_before:.2f} / {load_after:.2f} on {os.cpu_count()} CPUs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
