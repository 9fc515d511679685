"""Fault injection: kill -9 at every stage, then check the data is intact and nothing is left behind.

Usage: python benchmarks/bench_faults.py [--pool 3000] [--import-rows 600000] [--import-times 1-16]

Three families, each on a fresh copy of one simulated database, with TMPDIR pointed at a private folder:

* the app's retrain worker (``RetrainRunner``, what "Retrain now" uses) killed mid-retrain; then a second
  retrain in the same process must finish (no stale pool);
* the CLI ``retrain`` killed when its run reports each step; then ``retrain`` again must succeed;
* the CLI ``import`` of a large CSV killed after 1, 2, ... 16 s; then the next CLI start must sweep its spool.

After each fault: labels and EBs are unchanged (a killed import writes nothing or everything), no run is left
``running``, no model file exists that no run points at, no ``qa0-import-*`` folder remains (after the next
start). Prints one line per fault and a summary; exit 1 if any check failed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa0_label.learning.retrain_process import RetrainRunner  # noqa: E402
from qa0_label.sim.simulate import simulate  # noqa: E402
from qa0_label.store.db import dispose_engines, get_engine  # noqa: E402

RETRAIN_STEPS = (
    "queued",
    "updating the detail-feature cache",
    "reading labels and features",
    "cross-validating",
    "scoring",
    "comparing with reference outcomes",
    "ranking the review queues",
    "saving the model",
    "storing scores",
)


def _digest(db: Path) -> tuple[str, int, int]:
    """A fingerprint of what must never change by a fault: EBs and label events."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        ebs = conn.execute("SELECT COUNT(*) FROM execution_block").fetchone()[0]
        labels = conn.execute("SELECT id, eb_id, labeler_id, value, kind FROM label ORDER BY id").fetchall()
    return hashlib.sha256(repr(labels).encode()).hexdigest()[:16], int(ebs), len(labels)


def _side_effects(db: Path, models: Path, tmp: Path) -> list[str]:
    import sqlite3

    found = []
    with sqlite3.connect(db) as conn:
        running = conn.execute("SELECT version FROM model_run WHERE status = 'running'").fetchall()
        paths = {Path(p).resolve() for (p,) in conn.execute("SELECT artifact_path FROM model_run") if p}
    if running:
        found.append(f"runs left running: {running}")
    orphans = [p.name for p in models.glob("model_v*") if p.resolve() not in paths]
    if orphans:
        found.append(f"orphan model files: {orphans}")
    spools = [p.name for p in tmp.glob("qa0-import-*")]
    if spools:
        found.append(f"spools: {spools}")
    return found


def _env(db: Path, models: Path, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "QA0_DATABASE_URL": f"sqlite:///{db}",
        "QA0_MODEL_DIR": str(models),
        "TMPDIR": str(tmp),
        "PYTHONPATH": str(ROOT),
    }


def _cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qa0_label", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _progress_text(db: Path) -> str | None:
    import sqlite3

    try:
        with sqlite3.connect(db, timeout=1) as conn:
            row = conn.execute(
                "SELECT progress_text FROM model_run WHERE status = 'running' ORDER BY id DESC"
            ).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _fresh(template: Path, work: Path, name: str) -> tuple[Path, Path, Path]:
    case = work / name
    case.mkdir()
    db = case / "qa0.sqlite"
    shutil.copyfile(template, db)
    (case / "models").mkdir()
    (case / "tmp").mkdir()
    return db, case / "models", case / "tmp"


def fault_retrain_worker(template: Path, work: Path) -> dict[str, Any]:
    """kill -9 the app's retrain worker mid-run; the same runner must then finish a retrain."""
    db, models, tmp = _fresh(template, work, "worker")
    before = _digest(db)
    old = os.environ.get("QA0_MODEL_DIR")
    os.environ["QA0_MODEL_DIR"] = str(models)  # the worker reads its settings from the environment
    runner = RetrainRunner()
    try:
        url = f"sqlite:///{db}"
        doomed = runner.submit(url=url, trigger="manual")
        deadline = time.time() + 120
        while not _progress_text(db) and time.time() < deadline:
            time.sleep(0.05)
        pids = runner.worker_pids()
        os.kill(pids[0], signal.SIGKILL)
        try:
            doomed.result(timeout=60)
            killed = "finished before the kill"
        except Exception as exc:  # noqa: BLE001
            killed = type(exc).__name__
        t0 = time.perf_counter()
        outcome = runner.submit(url=url, trigger="manual").result(timeout=600)
        seconds = time.perf_counter() - t0
    finally:
        runner.close()
        if old is None:
            os.environ.pop("QA0_MODEL_DIR", None)
        else:
            os.environ["QA0_MODEL_DIR"] = old
        dispose_engines()
    problems = _side_effects(db, models, tmp)
    intact = _digest(db) == before
    ok = intact and not problems and bool(outcome.get("started"))
    return {
        "fault": "retrain worker (app) kill -9",
        "ok": ok,
        "detail": f"first run: {killed}; next retrain: {outcome.get('message')} in {seconds:.1f} s",
        "intact": intact,
        "side_effects": problems,
    }


def fault_retrain_cli(template: Path, work: Path, step: str) -> dict[str, Any]:
    """kill -9 `retrain` when its run reports STEP; `retrain` again must succeed and leave nothing behind."""
    db, models, tmp = _fresh(template, work, "retrain-" + step.split()[0])
    env = _env(db, models, tmp)
    before = _digest(db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa0_label", "retrain", "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen = None
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        text = _progress_text(db)
        # 'queued' lasts a few ms: any sign of the claimed run counts as reaching it.
        if text is not None and (text.startswith(step) or step == "queued"):
            seen = text
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = _cli(env, "retrain", "--quiet")
    problems = _side_effects(db, models, tmp)
    intact = _digest(db) == before
    ok = intact and not problems and again.returncode == 0
    return {
        "fault": f"retrain CLI kill -9 at '{step}'",
        "ok": ok and seen is not None,
        "detail": ("killed at " + seen[:40] if seen else "step not reached before the end")
        + f"; retrain again: exit {again.returncode}",
        "intact": intact,
        "side_effects": problems,
    }


def _big_csv(path: Path, rows: int) -> None:
    with path.open("w") as f:
        f.write("uid,source,band,start_time,pwv_mm,n_antennas,qa0_status\n")
        for i in range(rows):
            f.write(
                f"uid://A099/Xfa/X{i:x},J1924-2914,{3 + i % 5},2024-0{1 + i % 9}-1{i % 9}T0{i % 9}:{i % 60:02d}:00Z,"
                f"{0.5 + (i % 30) / 10},{40 + i % 10},{('Pass', 'SemiPass', 'Fail', '')[i % 4]}\n"
            )


def fault_import(template: Path, work: Path, data: Path, after_s: float) -> dict[str, Any]:
    """kill -9 `import` after AFTER_S seconds: nothing or everything written; the next start sweeps the spool."""
    db, models, tmp = _fresh(template, work, f"import-{after_s:g}s" if after_s > 0 else "import-writing")
    env = _env(db, models, tmp)
    before = _digest(db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa0_label", "import", str(data), "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if after_s > 0:
        time.sleep(after_s)
    else:  # kill in the write phase: as soon as the write-ahead log grows (validation writes nothing)
        wal = Path(str(db) + "-wal")
        base = wal.stat().st_size if wal.exists() else 0
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            if wal.exists() and wal.stat().st_size > base + 1_000_000:
                break
            time.sleep(0.01)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left_at_kill = len(list(tmp.glob("qa0-import-*")))
    after = _digest(db)
    import sqlite3

    with sqlite3.connect(db) as conn:
        imported = conn.execute("SELECT COUNT(*) FROM execution_block WHERE uid LIKE 'uid://A099/%'").fetchone()[0]
    rows = sum(1 for _ in data.open()) - 1
    all_or_nothing = imported in (0, rows)
    intact = all_or_nothing and (after == before if imported == 0 else after[1] == before[1] + rows)
    _cli(env, "agreement")  # any next start of the CLI sweeps spools whose owner is dead
    problems = _side_effects(db, models, tmp)
    return {
        "fault": f"import CLI kill -9 after {after_s:g} s" if after_s > 0 else "import CLI kill -9 while writing",
        "ok": intact and not problems,
        "detail": f"{'finished before the kill; ' if finished else ''}EBs imported {imported:,} of {rows:,}; "
        f"spools at the kill {left_at_kill}, after the next start {len(list(tmp.glob('qa0-import-*')))}",
        "intact": intact,
        "side_effects": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--import-rows", type=int, default=600_000)
    parser.add_argument("--import-times", default="1-16", help="seconds, as A-B (every second) or a,b,c")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the runner logs the killed worker's traceback as a warning
    if "-" in args.import_times:
        lo, hi = (int(x) for x in args.import_times.split("-"))
        times = [float(t) for t in range(lo, hi + 1)]
    else:
        times = [float(t) for t in args.import_times.split(",")]
    load = os.getloadavg()
    print(
        f"# bench_faults {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    work = Path(tempfile.mkdtemp(prefix="qa0-faults-"))
    try:
        template = work / "template.sqlite"
        simulate(engine=get_engine(f"sqlite:///{template}"), n=args.pool, seed=11, aods=4, labeled=600, details_for=300)
        dispose_engines()
        data = work / "big.csv"
        _big_csv(data, args.import_rows)
        results = [fault_retrain_worker(template, work)]
        results += [fault_retrain_cli(template, work, step) for step in RETRAIN_STEPS]
        results += [fault_import(template, work, data, t) for t in times]
        results.append(fault_import(template, work, data, 0.0))  # in the write transaction
        for r in results:
            flag = "ok  " if r["ok"] else "FAIL"
            extra = f" side effects: {r['side_effects']}" if r["side_effects"] else ""
            print(f"{flag} {r['fault']}: data intact={r['intact']}; {r['detail']}{extra}")
        n_ok = sum(r["ok"] for r in results)
        n_intact = sum(r["intact"] for r in results)
        n_side = sum(bool(r["side_effects"]) for r in results)
        print(f"faults: {len(results)}, data intact: {n_intact}, side effects left: {n_side}, all checks ok: {n_ok}")
        return 0 if n_ok == len(results) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
