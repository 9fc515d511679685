"""Peak resident memory of the Streamlit app (the whole process tree) on a big pool, visiting every page.

    .venv/bin/python benchmarks/bench_memory.py [--db /tmp/qa0-scale-100k.sqlite] [--labels 5] [--retrain]

Copies the SQLite file (build a 100,000-EB pool with `python -m qa0_label --db sqlite:////tmp/qa0-scale-100k.sqlite
benchmark scale --pool 100000`; --in-place uses the file as is),
starts `streamlit run streamlit_app.py` on it (demo seeding and auto-retrain off), opens headless Chromium,
visits Label (labels --labels EBs with the P/S/F keys), Agreement, Model and Data, and samples the RSS of
the streamlit process and all its children (prefetch / retrain workers) every 0.1 s from /proc (RSS,
and PSS near the peak). --retrain also starts a retrain from the sidebar and samples until it ends. Prints JSON: the peak
of the tree, of the main process, and the tree's peak during each phase (MB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ui import CHROMIUM, CHROMIUM_ARGS, count_ebs, free_port, open_label_page, start_server  # noqa: E402

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
IDLE = (
    "() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state') === 'notRunning'"
)


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


def _pss(pid: int) -> int:
    """Proportional set size: shared library pages split between the processes that map them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if "streamlit run" in cmd:
        return "streamlit server"
    if "multiprocessing" in cmd or "spawn_main" in cmd:
        return "worker process"
    return cmd[:40]


def tree_members(root: int) -> list[int]:
    """ROOT and all its descendants."""
    kids = _children()
    todo, out = [root], []
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


class Sampler(threading.Thread):
    """Samples the tree's RSS until stopped; keeps the overall peak and the peak per named phase."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.phase = "start"
        self.peak_tree = self.peak_main = 0
        self.by_phase: dict[str, int] = {}
        self.peak_pss = 0
        self.at_peak: list[tuple[str, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            members = tree_members(self.pid)
            sizes = [(_name(p), _rss(p)) for p in members]
            total, main = sum(r for _, r in sizes), _rss(self.pid)
            if total > self.peak_tree:
                self.peak_tree, self.at_peak = total, sizes
            self.peak_main = max(self.peak_main, main)
            self.by_phase[self.phase] = max(self.by_phase.get(self.phase, 0), total)
            if total > 0.8 * self.peak_tree:  # PSS is slower to read: only near the peak
                self.peak_pss = max(self.peak_pss, sum(_pss(p) for p in members))
            time.sleep(self.every_s)


def _settle(page: object, timeout_ms: int = 180_000) -> None:
    page.wait_for_timeout(500)  # type: ignore[attr-defined]
    page.wait_for_function(IDLE, timeout=timeout_ms)  # type: ignore[attr-defined]
    page.wait_for_timeout(1000)  # type: ignore[attr-defined]
    page.wait_for_function(IDLE, timeout=timeout_ms)  # type: ignore[attr-defined]


def main() -> int:
    """Run the app on the pool, visit every page, print the peak RSS figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, default=Path("/tmp/qa0-scale-100k.sqlite"))
    ap.add_argument("--in-place", action="store_true", help="label in that file instead of a copy")
    ap.add_argument("--labels", type=int, default=5, help="EBs to label on the Label page")
    ap.add_argument("--retrain", action="store_true", help="also start a retrain from the sidebar and wait for it")
    ap.add_argument("--labeler", default="bench_mem_aod")
    args = ap.parse_args()
    if not args.db.exists():
        print(
            f"{args.db} does not exist; build it with `python -m qa0_label --db sqlite:///PATH benchmark scale --pool 100000`",
            file=sys.stderr,
        )
        return 2

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="qa0_mem_"))
    db = args.db
    if not args.in_place:
        db = work / "qa0.sqlite"
        shutil.copyfile(args.db, db)
    model_dir = args.db.parent / "models" if args.in_place else work / "models"
    port = free_port()
    server = start_server(db, port, work / "server.log", model_dir=model_dir, timing=False)
    sampler = Sampler(server.pid)
    sampler.start()
    result: dict[str, object] = {"ebs": count_ebs(db), "db": str(args.db), "load_before": round(os.getloadavg()[0], 2)}
    t0 = time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            base = f"http://127.0.0.1:{port}"
            sampler.phase = "label page"
            # A new name is confirmed with one click, as a first-time AoD does; later visits find it known.
            open_label_page(page, f"{base}/?labeler={args.labeler}", timeout_ms=180_000)
            _settle(page)
            labelled = 0
            for i in range(args.labels):
                old = page.inner_text(".st-key-qa0-uid").strip()
                page.keyboard.press("psf"[i % 3])
                page.wait_for_function(
                    "(old) => { const u = document.querySelector('.st-key-qa0-uid'); return u && u.innerText.trim() !== old; }",
                    arg=old,
                    timeout=60_000,
                )
                _settle(page)
                labelled += 1
            result["labelled"] = labelled
            for name, path in (("agreement page", "agreement"), ("model page", "model"), ("data page", "data")):
                sampler.phase = name
                page.goto(f"{base}/{path}?labeler={args.labeler}", wait_until="domcontentloaded")
                _settle(page)
            if args.retrain:
                sampler.phase = "retrain"
                page.goto(f"{base}/?labeler={args.labeler}", wait_until="domcontentloaded")
                page.wait_for_selector(".st-key-qa0-uid", timeout=180_000)
                _settle(page)
                page.click(".st-key-qa0_retrain button:visible", timeout=120_000)
                page.wait_for_function("() => document.body.innerText.includes('Retraining')", timeout=60_000)
                page.wait_for_function("() => !document.body.innerText.includes('Retraining')", timeout=600_000)
            sampler.phase = "back on label page"
            page.goto(f"{base}/?labeler={args.labeler}", wait_until="domcontentloaded")
            page.wait_for_selector(".st-key-qa0-uid", timeout=180_000)
            _settle(page)
            time.sleep(2)
            browser.close()
    finally:
        sampler.done.set()
        sampler.join(timeout=5)
        server.terminate()
        try:
            server.wait(timeout=20)
        except Exception:  # noqa: BLE001 - last resort
            server.kill()
    mb = 1024 * 1024
    result.update(
        {
            "peak_rss_mb": round(sampler.peak_tree / mb, 1),
            "peak_main_process_mb": round(sampler.peak_main / mb, 1),
            "peak_by_phase_mb": {k: round(v / mb, 1) for k, v in sampler.by_phase.items()},
            "processes_at_peak_mb": [(n, round(r / mb, 1)) for n, r in sampler.at_peak if r],
            # RSS counts shared library pages once per process; PSS splits them (what the tree really occupies).
            "peak_pss_mb": round(sampler.peak_pss / mb, 1),
            "limit_mb": 1024,
            "under_limit": sampler.peak_tree < 1024 * mb,
            "seconds": round(time.perf_counter() - t0, 1),
            "load_after": round(os.getloadavg()[0], 2),
            "server_log": str(work / "server.log"),
        }
    )
    print(json.dumps(result, indent=2))
    if not args.in_place:
        db.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
