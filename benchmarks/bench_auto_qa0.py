"""Auto-QA0 on qa0-sim with the simulator's hidden reference as truth: guarantee, coverage, predict speed.

Usage: python benchmarks/bench_auto_qa0.py [--pool 5000] [--labels 250,500,1000] [--splits 20] [--big 100000]

Everything runs on the path users run, through the CLI in subprocesses: `simulate` (labels from 4 simulated
AoDs with their biases and slips), the shipped `retrain` (which calibrates auto-QA0), `predict --json`.
1. Coverage: per label budget, the share of the unlabelled pool auto-decided for alpha 0.005-0.10 (the curve
   the shipped retrain stores) and the held-out check of each alpha.
2. Guarantee: 20 random calibration/check splits of the same held-out (out-of-fold) scores through the shipped
   calibration (automation.calibrate.calibrate): the error of auto-decisions on the check consensus labels and
   against the hidden reference, at alpha 0.02 and at the alphas where something is auto-decided.
3. `predict --json` over a --big pool (EB rows, 2,000 with detail rows), wall time of the whole command.
4. Off the simulator (--digits): scikit-learn's digits (0-3 Pass, 4-6 SemiPass, 7-9 Fail), 500 labelled, the
   rest the pool; per seed the shipped cross-validation (training.cv_metrics, out-of-fold scores), the shipped
   estimator fitted on the 500, the shipped calibration; the error of auto-decisions against the true labels of
   the pool. Labels here are exact, so this checks the guarantee without label noise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa0_label.automation import calibrate as cal  # noqa: E402
from qa0_label.store.db import get_engine, session_scope  # noqa: E402


def cli(url: str, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m qa0_label --db URL ARGS` from the repository root."""
    cmd = [sys.executable, "-m", "qa0_label", "--db", url, *args]
    return subprocess.run(cmd, cwd=ROOT, check=True, text=True, capture_output=True)


def _state(url: str) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The serving run's auto-QA0 summary, pool probabilities, unlabelled mask, reference per pool EB, ids."""
    from sqlalchemy import text

    engine = get_engine(url)
    with session_scope(engine) as s:
        conn = s.connection()
        run_id = conn.execute(
            text("SELECT id FROM model_run WHERE status='done' ORDER BY version DESC LIMIT 1")
        ).scalar()
        summary = json.loads(conn.execute(text("SELECT summary FROM auto_run WHERE run_id=:r"), {"r": run_id}).scalar())
        rows = conn.execute(
            text(
                "SELECT s.eb_id, s.p_pass, s.p_semipass, s.p_fail, r.value, "
                "EXISTS(SELECT 1 FROM label l WHERE l.eb_id = s.eb_id AND l.value IS NOT NULL) "
                "FROM score s LEFT JOIN reference_outcome r ON r.eb_id = s.eb_id WHERE s.run_id=:r ORDER BY s.eb_id"
            ),
            {"r": run_id},
        ).all()
        oof_ids = conn.execute(text("SELECT metrics FROM model_run WHERE id=:r"), {"r": run_id}).scalar()
    metrics = json.loads(oof_ids) if isinstance(oof_ids, str) else oof_ids
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    proba = np.asarray([r[1:4] for r in rows], dtype=float)
    ref = np.asarray([r[4] for r in rows], dtype=object)
    labelled = np.asarray([bool(r[5]) for r in rows])
    # The rows calibration used (EBs with an accepted suggestion are left out; none in a simulated pool).
    summary["oof_eb_id"] = summary.get("eb_id") or metrics["oof_predictions"]["eb_id"]
    return summary, proba, ~labelled, ref, ids


def guarantee(summary: dict, proba: np.ndarray, un: np.ndarray, ref: np.ndarray, ids: np.ndarray, alphas, splits: int):
    """Per alpha: over SPLITS random calibration/check splits, the check error vs consensus and vs reference."""
    oof = np.asarray(summary["oof_proba"], dtype=float)
    y = np.asarray(summary["y"], dtype=object)
    ref_of = dict(zip(ids.tolist(), ref.tolist()))
    y_ref = np.asarray([ref_of.get(int(e)) for e in summary["oof_eb_id"]], dtype=object)
    out = {}
    for a in alphas:
        per = []
        for seed in range(1, splits + 1):
            c = cal.calibrate(oof, y, alpha=a, seed=seed, alphas=())
            d = cal.decide(oof[c.check_index], c.threshold)
            auto = d != None  # noqa: E711
            n_auto = int(auto.sum())
            err_cons = float((d[auto] != y[c.check_index][auto]).mean()) if n_auto else None
            err_ref = float((d[auto] != y_ref[c.check_index][auto]).mean()) if n_auto else None
            dp = cal.decide(proba[un], c.threshold)
            ap = dp != None  # noqa: E711
            pool_err_ref = float((dp[ap] != ref[un][ap]).mean()) if ap.any() else None
            per.append(
                {
                    "seed": seed,
                    "threshold": c.threshold,
                    "check_auto": n_auto,
                    "check_error_consensus": err_cons,
                    "check_error_reference": err_ref,
                    "pool_coverage": float(ap.mean()),
                    "pool_error_reference": pool_err_ref,
                }
            )

        def held(key: str) -> int:
            return sum(1 for p in per if p[key] is None or p[key] <= a)

        out[a] = {
            "splits": per,
            "n_with_auto": sum(1 for p in per if p["check_auto"] > 0 or p["pool_coverage"] > 0),
            "held_consensus": held("check_error_consensus"),
            "held_reference": held("check_error_reference"),
            "held_pool_reference": held("pool_error_reference"),
            "median_pool_coverage": float(np.median([p["pool_coverage"] for p in per])),
        }
    return out


def noise_floor(summary: dict, ref: np.ndarray, ids: np.ndarray, alphas) -> dict:
    """What a model that knew the hidden reference would get: its error against the consensus labels, certified?

    The consensus labels are what calibration must trust. If even the reference disagrees with them more often
    than alpha, no honest method can auto-decide anything at that alpha, whatever the model.
    """
    y = np.asarray(summary["y"], dtype=object)
    ref_of = dict(zip(ids.tolist(), ref.tolist()))
    y_ref = np.asarray([ref_of.get(int(e)) for e in summary["oof_eb_id"]], dtype=object)
    onehot = np.asarray([[float(v == c) for c in cal.CLASSES] for v in y_ref])
    out: dict = {
        "n": int(len(y)),
        "reference_vs_consensus_error": float((y_ref != y).mean()),
        "per_reference_value": {c: float((y[y_ref == c] != c).mean()) for c in cal.CLASSES if (y_ref == c).any()},
    }
    for a in alphas:
        c = cal.calibrate(onehot, y, alpha=a, seed=1, alphas=())
        out[f"oracle_certified_at_{a}"] = c.threshold is not None
    return out


def digits_check(seeds: int, n_labelled: int = 500, alphas=(0.02, 0.05)) -> dict:
    """Part 4: the guarantee and coverage on scikit-learn's digits with exact labels."""
    from sklearn.datasets import load_digits

    from qa0_label.learning import learner as lrn
    from qa0_label.learning.training import cv_metrics

    X, digit = load_digits(return_X_y=True)
    y_all = np.where(digit <= 3, "Pass", np.where(digit <= 6, "SemiPass", "Fail")).astype(object)
    out: dict = {str(a): [] for a in alphas}
    for seed in range(1, seeds + 1):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(y_all))
        lab, pool = order[:n_labelled], order[n_labelled:]
        m = cv_metrics(X[lab], y_all[lab], random_state=seed)
        model = lrn.build_learner(X[lab], y_all[lab], random_state=seed)
        proba = lrn.proba_full(model, X[pool])
        for a in alphas:
            c = cal.calibrate(m["oof_proba"], y_all[lab], alpha=a, seed=seed, alphas=())
            d = cal.decide(proba, c.threshold)
            auto = d != None  # noqa: E711
            err = float((d[auto] != y_all[pool][auto]).mean()) if auto.any() else None
            out[str(a)].append({"seed": seed, "coverage": float(auto.mean()), "error": err})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the three parts and print the figures (JSON to --out)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", type=int, default=5000)
    p.add_argument("--labels", default="250,500,1000")
    p.add_argument("--splits", type=int, default=20)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--big", type=int, default=100_000, help="EBs for the predict timing (0: skip)")
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    p.add_argument("--digits", action="store_true", help="only part 4 (scikit-learn digits, exact labels)")
    args = p.parse_args(argv)
    if args.digits:
        res = digits_check(args.splits)
        print(f"# digits check {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; load {os.getloadavg()}")
        for a, rows in res.items():
            errs = [r["error"] for r in rows]
            held = sum(1 for e in errs if e is None or e <= float(a))
            cov = [r["coverage"] for r in rows]
            print(
                f"alpha {a}: error <= alpha on the pool (true labels) in {held}/{len(rows)} seeds; coverage median "
                f"{np.median(cov):.3f} (min {min(cov):.3f}, max {max(cov):.3f}); errors "
                + ", ".join("-" if e is None else f"{e:.3f}" for e in errs)
            )
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=1))
        return 0
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# bench_auto_qa0 {started}; load {os.getloadavg()}; {' '.join(sys.argv)}")
    report: dict = {"date": started, "pool": args.pool, "budgets": {}}
    with tempfile.TemporaryDirectory(prefix="qa0-bench-auto-") as tmp:
        for n_labels in [int(x) for x in args.labels.split(",") if x]:
            url = f"sqlite:///{Path(tmp) / f'pool_{n_labels}.sqlite'}"
            cli(
                url,
                "simulate",
                "--n",
                str(args.pool),
                "--seed",
                str(args.seed),
                "--aods",
                "4",
                "--labeled",
                str(n_labels),
                "--quiet",
            )
            t = time.perf_counter()
            cli(url, "retrain", "--quiet")
            secs = time.perf_counter() - t
            summary, proba, un, ref, ids = _state(url)
            curve = [
                {
                    "alpha": r["alpha"],
                    "coverage": round(r["coverage"], 4),
                    "check_error": r["check_error"],
                    "check_auto": r["check_auto"],
                }
                for r in summary["curve"]
            ]
            alphas = [0.02] + [a for a in (0.05, 0.10) if a != 0.02]
            g = guarantee(summary, proba, un, ref, ids, alphas, args.splits)
            floor = noise_floor(summary, ref, ids, alphas)
            report["budgets"][n_labels] = {
                "noise_floor": floor,
                "labelled_ebs": summary["n_labelled"],
                "retrain_s": round(secs, 2),
                "curve": curve,
                "guarantee": {str(a): {k: v for k, v in g[a].items() if k != "splits"} for a in alphas},
                "splits": {str(a): g[a]["splits"] for a in alphas},
            }
            print(
                f"\n## {n_labels} AoD labels ({summary['n_labelled']} labelled EBs), pool {args.pool}; retrain {secs:.1f} s"
            )
            print("alpha  coverage  check_error (n auto on check)")
            for r in curve:
                ce = "-" if r["check_error"] is None else f"{r['check_error']:.3f}"
                print(f"{r['alpha']:.3f}  {r['coverage']:.3f}     {ce} ({r['check_auto']})")
            print(
                f"noise floor: the hidden reference itself disagrees with the consensus on "
                f"{floor['reference_vs_consensus_error']:.3f} of the {floor['n']} labelled EBs ("
                + ", ".join(f"reference {c}: {e:.3f}" for c, e in floor["per_reference_value"].items())
                + "); a model that knew it is certified at "
                + ", ".join(f"alpha {a}: {'yes' if floor[f'oracle_certified_at_{a}'] else 'no'}" for a in alphas)
            )
            for a in alphas:
                gg = g[a]
                print(
                    f"alpha {a}: splits with any auto-decision {gg['n_with_auto']}/{args.splits}; error <= alpha on "
                    f"held-out consensus {gg['held_consensus']}/{args.splits}, vs reference {gg['held_reference']}/"
                    f"{args.splits}, pool vs reference {gg['held_pool_reference']}/{args.splits}; median pool "
                    f"coverage {gg['median_pool_coverage']:.3f}"
                )
        if args.big:
            url = f"sqlite:///{Path(tmp) / 'big.sqlite'}"
            cli(
                url,
                "simulate",
                "--n",
                str(args.big),
                "--seed",
                "3",
                "--aods",
                "4",
                "--labeled",
                "2000",
                "--details-for",
                "2000",
                "--quiet",
            )
            cli(url, "retrain", "--quiet")
            times = []
            for _ in range(2):
                t = time.perf_counter()
                res = cli(url, "predict", "--json")
                times.append(time.perf_counter() - t)
            n = len(json.loads(res.stdout))
            report["predict"] = {"n": n, "seconds": [round(x, 2) for x in times], "load": os.getloadavg()}
            print(
                f"\n## predict --json over {n} EBs: {', '.join(f'{x:.2f}' for x in times)} s (load {os.getloadavg()})"
            )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
