"""Import a large EB CSV through the CLI in a subprocess; print wall time, CPU time and peak memory.

Usage: python benchmarks/bench_import.py [--rows 1000000] [--db URL] [--twice]
The CSV has the columns the simulator produces (uid, sb_name, project, source, band, array, start_time,
the numeric EB fields) plus qa0_status and one extra numeric column (wind_ms), built from a small
simulated batch repeated with fresh uids and jittered values. It is written under a temporary directory;
the database is a fresh SQLite file there unless --db names another (e.g. an empty PostgreSQL database).
Prints: rows, file size, wall seconds, CPU seconds (user + system of the import process), peak RSS of
the import process (ru_maxrss of the child), and the load average around the run (the box may be shared).
--twice imports the same file again (every row is then an update).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa0_label.sim.simulate import generate  # noqa: E402
from qa0_label.store.models import EB_FIELDS  # noqa: E402

BASE = 2_000  # distinct simulated EBs the file repeats (with new uids)
BLOCK = 100_000  # rows written per to_csv call, so generating the file needs little memory
COLUMNS = [f for f in EB_FIELDS if f != "extra"]  # every EB field an import file carries


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """A ROWS-row EB CSV with realistic columns: a simulated batch repeated with fresh uids and jitter."""
    base = generate(n=BASE, seed=seed).ebs[COLUMNS].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    statuses = np.array(["Pass", "Pass", "Pass", "SemiPass", "Fail", ""])
    first = True
    for start in range(0, rows, BLOCK):
        n = min(BLOCK, rows - start)
        block = base.iloc[np.arange(start, start + n) % BASE].reset_index(drop=True).copy()
        index = np.arange(start, start + n)
        block["uid"] = [f"uid://A002/X{0x100000 + i // 4096:x}/X{i % 4096:x}" for i in index]
        block["start_time"] = (block["start_time"] + pd.to_timedelta(index // BASE, unit="D")).dt.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        block["pwv_mm"] = (block["pwv_mm"] * rng.uniform(0.9, 1.1, n)).round(3)
        block["qa0_status"] = statuses[rng.integers(0, len(statuses), n)]
        block["wind_ms"] = rng.gamma(2.0, 3.0, n).round(2)
        block.to_csv(path, mode="w" if first else "a", header=first, index=False)
        first = False


def run_import(path: Path, db: str) -> dict[str, Any]:
    """The CLI import in a child process; wall, CPU and peak RSS of that child."""
    cmd = [sys.executable, "-m", "qa0_label", "--db", db, "import", str(path), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"import exited {done.returncode}")
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        # ru_maxrss of RUSAGE_CHILDREN is the largest child so far (KiB on Linux): one child per run here.
        "rss_mb": after.ru_maxrss / 1024,
        "summary": done.stdout.strip().replace("\n", ", "),
    }


def main(argv: list[str] | None = None) -> int:
    """Generate the file, import it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file in the temp dir)")
    parser.add_argument("--twice", action="store_true", help="import the same file a second time (updates)")
    args = parser.parse_args(argv)
    if args.rows <= 0:
        parser.error("--rows must be positive")
    with tempfile.TemporaryDirectory(prefix="qa0-bench-import-") as tmp:
        path = Path(tmp) / "ebs.csv"
        t0 = time.perf_counter()
        write_csv(path, args.rows)
        print(
            f"wrote {args.rows:,} EB rows ({path.stat().st_size / 1e6:.0f} MB CSV) in {time.perf_counter() - t0:.0f} s"
        )
        db = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        runs = ["first import (inserts)"] + (["second import (updates)"] if args.twice else [])
        for label in runs:
            load_before = os.getloadavg()[0]
            fig = run_import(path, db)
            load_after = os.getloadavg()[0]
            print(f"{label}: {fig['summary']}")
            print(
                f"  wall {fig['wall']:.1f} s, CPU {fig['cpu']:.1f} s, peak RSS {fig['rss_mb']:.0f} MB, "
                f"{args.rows / fig['wall']:,.0f} rows/s"
            )
            print(
                f"  (1-minute load average before / after: {load_before:.2f} / {load_after:.2f} on {os.cpu_count()} CPUs)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
