"""Label efficiency of the query strategies against random order on qa0-sim and three scikit-learn datasets.

Usage: python benchmarks/bench_al.py [--strategies margin,margin-diverse] [--seeds 10]
                                     [--datasets qa0-sim,breast_cancer,wine,digits] [--json OUT]
For each dataset and strategy prints label_efficiency (median over seeds of random order's labels / the
strategy's labels to reach 98 % of the full-pool macro-F1 on a held-out split), the labels each needs, and
for qa0-sim the held-out Fail recall and the share of the pool's Fails caught (labelled, or flagged by the
model) with 5 % and 10 % of the pool labelled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa0_label.bench.al import DATASETS, run_benchmark  # noqa: E402
from qa0_label.learning.strategies import DEFAULT_STRATEGY  # noqa: E402


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    """Run the replays and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default=DEFAULT_STRATEGY, help="comma-separated strategy names")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--json", default=None, help="also write every result (with curves) to this file")
    args = parser.parse_args(argv)
    results = []
    for dataset in args.datasets.split(","):
        for strategy in args.strategies.split(","):
            t0 = time.perf_counter()

            def show(fraction: float, message: str, _d: str = dataset, _s: str = strategy) -> None:
                print(f"\r  [{fraction * 100:5.1f}%] {_d} / {_s}: {message:<50}", end="", file=sys.stderr, flush=True)

            result = run_benchmark(dataset=dataset, strategy=strategy, seeds=args.seeds, progress=show)
            print(file=sys.stderr)
            results.append(result)
            print(
                f"{dataset:14s} {strategy:16s} label_efficiency {result['label_efficiency']:.2f}  "
                f"(labels to 98% of full-pool macro-F1: strategy {result['strategy_labels_needed_median']:.0f}, "
                f"random {result['random_labels_needed_median']:.0f}; pool {result['pool']}, "
                f"full-pool macro-F1 {result['full_pool_macro_f1_median']:.3f}; per seed {result['efficiency_per_seed']}; "
                f"{time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.1f})"
            )
            if dataset == "qa0-sim":
                keys = (
                    "fail_recall_at_5pct",
                    "fail_recall_at_10pct",
                    "random_fail_recall_at_10pct",
                    "pool_fail_caught_at_5pct",
                    "pool_fail_caught_at_10pct",
                    "random_pool_fail_caught_at_10pct",
                    "full_pool_fail_recall",
                )
                print("   " + ", ".join(f"{k} {_fmt(result[k])}" for k in keys))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
