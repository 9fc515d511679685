"""The active-learning table: `python -m qa0_label benchmark al` on every dataset, one line per dataset.

Usage: python benchmarks/bench_al.py [--datasets qa0-sim,qa0-sim-rule,breast_cancer,wine,digits] [--seeds 8]
[--json OUT]
Runs exactly the CLI's benchmark (qa0_label.bench.al.run_benchmark: the app's loop through next_for and the
shipped retrain, random order and plain modAL on the table's own columns and on the app's features, same data
and seeds) and prints medians with their range over seeds, the date and the load average, ready for the
README's table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa0_label.bench.al import DATASETS, merge_results, run_benchmark  # noqa: E402


def _spread(values: list[float | None], fmt: str = "{:.3f}", missing: str = "not reached") -> str:
    """median [min-max] over seeds; an unreached target counts as beyond the horizon (shown as '>')."""
    got = [v for v in values if v is not None]
    if not got:
        return missing
    med = sorted(values, key=lambda v: float("inf") if v is None else v)[(len(values) - 1) // 2 : len(values) // 2 + 1]
    if any(v is None for v in med):
        shown = "> horizon"
    else:
        shown = fmt.format(sum(med) / len(med))
    top = fmt.format(max(got)) + ("+" if len(got) < len(values) else "")
    return f"{shown} [{fmt.format(min(got))}-{top}]"


HEADER = (
    "| dataset (budget) | AUC app | AUC plain modAL | AUC plain modAL, app's features | AUC random "
    "| F1 at budget app / modAL / random | labels to 98 % app / modAL / random "
    "| Fail recall, 10 % labelled, app / modAL / random "
    "| AUC app / modAL | AUC app / modAL, app's features | AUC app / random "
    "| AUC ceiling / random, full-pool model / perfect | labels to 98 %, random / app |"
    "\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _med(values: list[float | None], fmt: str) -> str:
    vals = sorted(float("inf") if v is None else float(v) for v in values)
    if not vals:
        return "–"
    mid = vals[(len(vals) - 1) // 2 : len(vals) // 2 + 1]
    m = sum(mid) / len(mid)
    if m == float("inf"):
        return "> horizon" if any(v is not None for v in values) or values else "–"
    return fmt.format(m)


def row(result: dict) -> str:
    """One markdown table row of a benchmark result: medians, AUC with [min-max] over seeds, ratios of medians."""
    arms, order = result["arms"], ("app", "modal", "random")
    cells = [f"{result['dataset']} ({result['budget']})"]
    cells += [_spread(arms[a]["auc"]) for a in ("app", "modal", "modal_same_features", "random")]
    cells.append(" / ".join(_med(arms[a]["f1_at_budget"], "{:.3f}") for a in order))
    cells.append(" / ".join(_med(arms[a]["labels_to_98"], "{:.0f}") for a in order))
    fail = [arms[a]["fail_recall_at_10pct"] for a in order]
    full_fail = result.get("full_pool_fail_recall") or []
    if all(v is None for f in fail for v in f):
        cells.append("–")
    else:
        # The full-pool model's own Fail recall: what a model trained on every label reaches on this test set.
        tail = f" (full pool {_med(full_fail, '{:.3f}')})" if any(v is not None for v in full_fail) else ""
        cells.append(" / ".join(_med(f, "{:.3f}") for f in fail) + tail)
    ratios = result["ratios"]
    for key in ("auc_app_over_modal", "auc_app_over_modal_same_features", "auc_app_over_random"):
        cells.append("–" if ratios[key] is None else f"{ratios[key]:.2f}")
    ceil = result.get("ceilings") or {}
    cells.append(" / ".join("–" if ceil.get(k) is None else f"{ceil[k]:.3f}" for k in _CEILINGS))
    exact, at_least = ratios["labels_to_98_random_over_app"], ratios.get("labels_to_98_random_over_app_at_least")
    # Random order beyond the horizon in most seeds: the ratio is at least the horizon over the app's figure.
    cells.append(f"{exact:.2f}" if exact is not None else f"≥ {at_least:.2f}" if at_least is not None else "–")
    return "| " + " | ".join(cells) + " |"


_CEILINGS = ("auc_full_pool_over_random", "auc_perfect_over_random")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on each dataset and print the table rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write every result (with curves) to this file")
    parser.add_argument("--from-json", nargs="*", default=None, help="print rows from saved --json results")
    args = parser.parse_args(argv)
    if args.from_json:
        # Runs of one dataset on disjoint seeds (--first-seed) are merged into one row.
        by_dataset: dict[str, list[dict]] = {}
        for p in args.from_json:
            loaded = json.loads(Path(p).read_text())
            for one in loaded if isinstance(loaded, list) else [loaded]:
                by_dataset.setdefault(one["dataset"], []).append(one)
        results = [merge_results(parts) if len(parts) > 1 else parts[0] for parts in by_dataset.values()]
    else:
        results = []
        for dataset in args.datasets.split(","):

            def show(fraction: float, message: str) -> None:
                print(f"\r[{fraction * 100:5.1f}%] {message:<70}", end="", file=sys.stderr, flush=True)

            results.append(run_benchmark(dataset=dataset, seeds=args.seeds, progress=show))
            print(file=sys.stderr)
    print(HEADER)
    for result in results:
        print(row(result) + f" <!-- {result.get('seconds')} s, load {result.get('load')} -->")
    print(f"date {datetime.date.today().isoformat()}, load now {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
