"""Latency of `assign.next_for` (the next EB for an AoD) on a large pool.

Usage: python benchmarks/bench_next.py [--n 100000] [--labels 5000] [--calls 400] [--db URL] [--cold-start]
Builds the pool (EB rows only, see bench.pool.synthetic_pool), trains once so the queues exist (with
--cold-start it does not: the AoDs get cold-start picks, and the first call, which builds the cold-start
queue, is reported on its own), then
several AoDs ask for their next EB in turn with the default routing (10 % overlap, 10 % random, 2 % gold);
every second call the AoD labels the EB (so the next call moves on), otherwise it asks again (a Streamlit
rerun). Prints p50 / p95 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa0_label.bench.pool import synthetic_pool  # noqa: E402
from qa0_label.config import Settings  # noqa: E402
from qa0_label.learning import training
from qa0_label.queue import assign  # noqa: E402
from qa0_label.store import labels
from qa0_label.store.db import init_db, make_engine, session_scope  # noqa: E402
from qa0_label.store.models import GoldEB  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Build the pool, time next_for, print the percentiles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=5_000)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--aods", type=int, default=6)
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--cold-start", action="store_true", help="no model: time the cold-start picks")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qa0-bench-next-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        engine = make_engine(url)
        init_db(engine)
        t = time.perf_counter()
        pool = synthetic_pool(engine, n=args.n, n_labels=args.labels, seed=2)
        settings = Settings(database_url=url, model_dir=Path(tmp) / "models")
        with session_scope(engine, write=True) as s:
            lead = labels.get_or_create_labeler(session=s, name="bench-lead", role="lead")
            for eb in range(1, 51):
                s.add(GoldEB(eb_id=eb, value="Pass", set_by_id=lead.id))
        model = "no model (cold start)"
        if not args.cold_start:
            model = f"model version {training.retrain(engine=engine, settings=settings, trigger='bench')['version']}"
        print(
            f"pool: {pool['n_ebs']} EBs, {pool['n_labels']} labels, {model} (ready in {time.perf_counter() - t:.1f} s)"
        )
        names = [f"bench-reviewer-{i}" for i in range(args.aods)]
        timings: list[float] = []
        routes: dict[str, int] = {}
        for call in range(args.calls):
            who = names[call % len(names)]
            t0 = time.perf_counter()
            pick = assign.next_for(engine=engine, labeler=who, settings=settings)
            timings.append((time.perf_counter() - t0) * 1000)
            if pick is None:
                break
            routes[pick["strategy"]] = routes.get(pick["strategy"], 0) + 1
            if (call // len(names)) % 2 == 1:
                with session_scope(engine, write=True) as s:
                    labels.record_label(session=s, eb_id=pick["eb_id"], labeler=who, value="Pass")
        if args.cold_start and timings:
            print(f"first call, building the cold-start queue: {timings.pop(0):.0f} ms")
        ms = np.asarray(timings)
        print(
            f"next_for over {len(ms)} calls by {args.aods} AoDs on {args.n} EBs: p50 {np.percentile(ms, 50):.1f} ms, "
            f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms"
        )
        print(f"picks shown as: {routes}")
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
