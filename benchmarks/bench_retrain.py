"""Retrain + rescoring of a large pool: time of `training.retrain` on N EBs from M consensus labels.

Usage: python benchmarks/bench_retrain.py [--n 100000] [--labels 5000] [--db URL] [--repeat 1]
Builds the pool in a temporary SQLite file (EB rows only, see bench.pool.synthetic_pool), then runs
retrain and prints the total and each step (features, CV, fit, scoring, queues, writes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa0_label.bench.pool import synthetic_pool  # noqa: E402
from qa0_label.config import Settings  # noqa: E402
from qa0_label.learning import training  # noqa: E402
from qa0_label.store.db import init_db, make_engine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Build the pool, retrain, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=5_000)
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--repeat", type=int, default=1, help="retrain this many times (each is timed)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qa0-bench-retrain-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        engine = make_engine(url)
        init_db(engine)
        t = time.perf_counter()
        pool = synthetic_pool(engine, n=args.n, n_labels=args.labels, seed=1)
        print(
            f"pool: {pool['n_ebs']} EBs, {pool['n_labels']} labels, shares {pool['shares']} "
            f"(built in {time.perf_counter() - t:.1f} s)"
        )
        settings = Settings(database_url=url, model_dir=Path(tmp) / "models")
        for i in range(args.repeat):
            marks: list[tuple[float, str]] = []
            t0 = time.perf_counter()
            load0 = os.getloadavg()[0]
            result = training.retrain(
                engine=engine,
                settings=settings,
                trigger="bench",
                progress=lambda f, m: marks.append((time.perf_counter() - t0, m)),
            )
            total = time.perf_counter() - t0
            print(
                f"retrain {i + 1}: version {result['version']}, {result['n_labels']} labels, "
                f"{args.n} EBs scored: {total:.2f} s (load average {load0:.1f} -> {os.getloadavg()[0]:.1f})"
            )
            prev = 0.0
            for at, msg in marks:
                print(f"  {at:6.2f} s  (+{at - prev:5.2f})  {msg}")
                prev = at
            m = result["metrics"]
            print(
                f"  CV macro-F1 {m['macro_f1']:.3f}, balanced accuracy {m['balanced_accuracy']:.3f}, "
                f"Fail recall {m['fail_recall']}"
            )
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
