"""From `make run` on an empty database directory to the first EB on screen, in a real browser.

    .venv/bin/python benchmarks/bench_start.py [--runs 3]

Each run makes a fresh, empty db/ directory under /tmp, starts `make run` there (QA0_DATABASE_URL points into
it, STREAMLIT_SERVER_PORT at a free port; the venv is the one running this script, not rebuilt), and polls
the server with headless Chromium: the clock stops when the Label page shows an EB's uid and its charts are
drawn. Prints per run: seconds to the server listening, to the first EB on screen, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_ui import CHROMIUM, CHROMIUM_ARGS, free_port, open_label_page  # noqa: E402

DRAWN = (
    "() => { const c = document.querySelectorAll('[data-testid=\"stVegaLiteChart\"]');"
    " return document.querySelector('.st-key-qa0-uid') && c.length > 0"
    " && Array.from(c).every((e) => e.querySelector('canvas, svg')); }"
)


def listening(port: int) -> bool:
    """True once something accepts connections on PORT."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def one_run(browser: object, work: Path) -> dict[str, float]:
    """`make run` on an empty WORK/db; seconds to listening and to the first EB drawn."""
    db_dir = work / "db"
    db_dir.mkdir(parents=True)
    port = free_port()
    venv = Path(sys.prefix)  # the venv running this script
    env = {
        **os.environ,
        "QA0_DATABASE_URL": f"sqlite:///{db_dir / 'qa0.sqlite'}",
        "QA0_MODEL_DIR": str(db_dir / "models"),
        "QA0_SEED_DEMO": "1",
        "STREAMLIT_SERVER_PORT": str(port),
        "STREAMLIT_SERVER_ADDRESS": "127.0.0.1",
        "STREAMLIT_SERVER_HEADLESS": "true",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    # -o: the venv exists already; make must not reinstall requirements into it.
    cmd = ["make", "-s", "-C", str(ROOT), "-o", f"{venv}/.installed", "run", f"VENV={venv}"]
    log = (work / "make.log").open("wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not listening(port):
            if proc.poll() is not None:
                raise RuntimeError(f"make run exited: {(work / 'make.log').read_text()[-2000:]}")
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("no server after 300 s")
            time.sleep(0.05)
        t_listen = time.perf_counter() - t0
        page = browser.new_page(viewport={"width": 1600, "height": 1000})  # type: ignore[attr-defined]
        open_label_page(page, f"http://127.0.0.1:{port}/?labeler=first_visitor", timeout_ms=300_000)
        page.wait_for_function(DRAWN, timeout=300_000, polling=50)
        t_eb = time.perf_counter() - t0
        page.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # make and the streamlit server it started
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    return {"listening_s": round(t_listen, 2), "first_eb_s": round(t_eb, 2)}


def main() -> int:
    """Run and print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    runs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(args.runs):
            load = os.getloadavg()[0]
            with tempfile.TemporaryDirectory(prefix="qa0_start_") as tmp:
                result = one_run(browser, Path(tmp))
            result["load_average"] = round(load, 2)
            runs.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
        browser.close()
    firsts = [r["first_eb_s"] for r in runs]
    summary = {
        "runs": runs,
        "first_eb_median_s": round(statistics.median(firsts), 2),
        "first_eb_min_s": min(firsts),
        "first_eb_max_s": max(firsts),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
