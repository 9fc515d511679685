"""Label-page latency in a real browser: key press -> next EB fully rendered (new uid shown, charts drawn).

    .venv/bin/python benchmarks/bench_ui.py [--ebs 5000] [--presses 30] [--retrain] [--dwell 3]
    .venv/bin/python benchmarks/bench_ui.py --db /tmp/ui100k/qa0.sqlite --in-place --presses 30
    QA0_AUTO_SUGGEST=0 .venv/bin/python benchmarks/bench_ui.py --baseline   # the label page without the auto-QA0 box

Builds (once, cached under benchmarks/out/) a simulated database of N EBs, copies it, starts
`streamlit run streamlit_app.py` on a free port, opens /?labeler=... in headless Chromium and presses P / S / F.
The time is measured inside the browser: from the keydown event to the first animation frame where the uid
text differs from the previous one, the script run has finished, no element is stale and every chart has
drawn. Between presses the "AoD" looks at the EB for --dwell seconds (real AoDs look for many seconds; the
page prefetches the next EBs meanwhile); the first --warmup presses are not counted. With --retrain another --presses
presses each run while a background retrain started from the sidebar is in progress (a retrain that ends is
started again, so every one of those presses overlaps a retrain).

Besides the latency (median / p95 / max) it prints the median moments the new uid showed and the script run
finished, and the CPU each press cost: browser_cpu (the page's renderer main thread, Chrome's TaskDuration)
and server_cpu (the streamlit process and its children, so during a retrain it includes the retrain worker).
CPU per press does not depend on how busy the machine is; the latency does (load_average is printed).
With --baseline the same browser and probe then measure a one-button Streamlit app (a key press swaps one line
of text): Streamlit's own round trip on this machine, the floor any Streamlit label page sits on.
With --db the benchmark uses an existing database (e.g. a 100,000-EB pool; run `retrain` on it first).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KEYS = "psf"

# Resolves to {total, uid, idle}: milliseconds from the last keydown to the first frame where the new EB is fully
# drawn, to the frame where its uid first showed, and to the frame where the script run had also finished.
WAIT_RENDERED = """
([oldUid]) => new Promise((resolve) => {
  let uidAt = null, idleAt = null;
  const check = () => {
    const uidEl = document.querySelector('.st-key-qa0-uid');
    const app = document.querySelector('[data-testid="stApp"]');
    // textContent and querySelector: reading innerText would force a layout in every frame the probe runs.
    const uid = uidEl ? uidEl.textContent.trim() : '';
    const idle = app && app.getAttribute('data-test-script-state') === 'notRunning';
    const stale = document.querySelector('[data-stale="true"]') ? 1 : 0;
    const charts = Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'));
    const drawn = charts.filter((c) => c.querySelector('canvas, svg')).length;
    // The page's key script (ui/keys.py) sees the keydown first and may stop it from reaching the listener
    // installed below: take whichever recorded the press.
    const now = performance.now() - Math.max(window.__qa0KeyAt || 0, window.__qa0LastKeyAt || 0);
    if (uid && uid !== oldUid && uidAt === null) uidAt = now;
    if (uid && uid !== oldUid && idle && idleAt === null) idleAt = now;
    // An EB without detail rows has fewer charts (a caption says so): every chart on the page must be drawn.
    if (uid && uid !== oldUid && idle && stale === 0 && drawn === charts.length) {
      resolve({total: now, uid: uidAt, idle: idleAt, charts: charts.length});
    } else {
      requestAnimationFrame(check);
    }
  };
  requestAnimationFrame(check);
})
"""

INSTALL = """
() => { window.__qa0KeyAt = 0;
        document.addEventListener('keydown', () => { window.__qa0KeyAt = performance.now(); }, true); }
"""


def open_label_page(page: object, url: str, *, timeout_ms: int = 120_000) -> None:
    """Go to URL (?labeler=NAME) and confirm a new name the way a first-time AoD does (one click)."""
    page.goto(url, wait_until="domcontentloaded")  # type: ignore[attr-defined]
    page.wait_for_selector(".st-key-qa0-uid, .st-key-qa0_confirm_new button", timeout=timeout_ms)  # type: ignore[attr-defined]
    confirm = page.query_selector(".st-key-qa0_confirm_new button")  # type: ignore[attr-defined]
    if confirm is not None:
        confirm.click()
    page.wait_for_selector(".st-key-qa0-uid", timeout=timeout_ms)  # type: ignore[attr-defined]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_database(n: int, path: Path) -> Path:
    """A simulated database of N EBs (+ labels by 4 AoDs), built once and reused."""
    if path.exists():
        return path
    from qa0_label.sim.simulate import simulate
    from qa0_label.store.db import dispose_engines, get_engine

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    for leftover in tmp.parent.glob(tmp.name + "*"):
        leftover.unlink()
    t0 = time.perf_counter()
    engine = get_engine(f"sqlite:///{tmp}")
    simulate(engine=engine, n=n, seed=11, aods=4, labeled=min(400, n))
    # The usual state: a model exists and its queues are ranked (a cold start is a one-off).
    from qa0_label.config import load_settings
    from qa0_label.learning.training import retrain

    retrain(engine=engine, settings=load_settings(f"sqlite:///{tmp}"), trigger="cli")
    engine.dispose()
    dispose_engines()
    tmp.replace(path)
    print(f"built {path.name}: {n} EBs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return path


def count_ebs(db: Path) -> int:
    """How many EBs the database holds."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM execution_block").fetchone()[0] or 0)


BASELINE_APP = """
import streamlit as st

st.session_state.setdefault("n", 0)


def _next() -> None:
    st.session_state.n += 1


for label in ("Pass", "SemiPass", "Fail"):
    st.button(label, key=f"b-{label}", shortcut=label[0], on_click=_next)
with st.container(key="qa0-uid"):
    st.text(f"uid://A002/Xbaseline/X{st.session_state.n:x}")
"""
"""The real alternative's floor: a Streamlit app whose key press only swaps one line of text (no database)."""


def measure_baseline(work: Path, presses: int, warmup: int, dwell: float) -> dict[str, object]:
    """BASELINE_APP in the same browser set-up and probe: Streamlit's own key -> rerun -> paint round trip."""
    from playwright.sync_api import sync_playwright

    script = work / "baseline_app.py"
    script.write_text(BASELINE_APP)
    port = free_port()
    server = start_server(work / "unused.sqlite", port, work / "baseline.log", timing=False, script=script)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.wait_for_selector(".st-key-qa0-uid", timeout=120_000)
            page.evaluate(INSTALL)
            time.sleep(dwell)
            measure(page, warmup, dwell)
            samples = measure(page, presses, dwell, cdp=cdp, server_pid=server.pid)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return press_stats(samples)


def start_server(
    db: Path,
    port: int,
    log: Path,
    *,
    model_dir: Path | None = None,
    timing: bool = True,
    script: Path | str = "streamlit_app.py",
) -> subprocess.Popen[bytes]:
    """`streamlit run streamlit_app.py` on PORT against DB (demo seeding off); also used by bench_memory.py."""
    env = {
        **os.environ,
        "QA0_DATABASE_URL": f"sqlite:///{db}",
        "QA0_SEED_DEMO": "0",
        "QA0_UI_TIMING": "1" if timing else "0",
        # Retrains run only when the benchmark asks for one (auto-retrain would start one every 25 labels).
        "QA0_AUTO_RETRAIN": "0",
        "QA0_MODEL_DIR": str(model_dir or db.parent / "models"),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 90  # a cold start on a busy 2-core box can take a minute
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"streamlit did not start; see {log}")


def stats(samples: list[float]) -> dict[str, float]:
    """Median, p95 and max of SAMPLES (ms)."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ordered[-1], 1),
    }


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process PID and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        me = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(me)
        cpu[me] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        cur = todo.pop()
        total += cpu.get(cur, 0.0)
        todo.extend(children.get(cur, []))
    return total


def browser_task_s(cdp: object) -> float:
    """Seconds the page's renderer main thread has spent on tasks so far (Chrome's TaskDuration metric)."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]  # type: ignore[attr-defined]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def measure(
    page: object,
    presses: int,
    dwell: float,
    *,
    while_running: bool = False,
    cdp: object = None,
    server_pid: int | None = None,
) -> list[dict[str, float]]:
    """Press P/S/F PRESSES times; per press the in-browser times (ms) of uid shown, run finished, all drawn,
    and (given CDP and SERVER_PID) the CPU milliseconds the browser page and the server tree spent meanwhile."""
    samples: list[dict[str, float]] = []
    for i in range(presses):
        if while_running and not retrain_running(page):
            break
        old = page.text_content(".st-key-qa0-uid").strip()  # type: ignore[attr-defined, union-attr]
        b0 = browser_task_s(cdp) if cdp is not None else 0.0
        s0 = tree_cpu_s(server_pid) if server_pid else 0.0
        page.keyboard.press(KEYS[i % 3])  # type: ignore[attr-defined]
        times = page.evaluate(WAIT_RENDERED, [old])  # type: ignore[attr-defined]
        sample = {k: float(v) for k, v in times.items() if v is not None}
        if cdp is not None:
            sample["browser_cpu"] = 1000 * (browser_task_s(cdp) - b0)
        if server_pid:
            sample["server_cpu"] = 1000 * (tree_cpu_s(server_pid) - s0)
        samples.append(sample)
        time.sleep(dwell)
    return samples


def press_stats(samples: list[dict[str, float]]) -> dict[str, object]:
    """stats() of the full latency, plus the medians of the moments the uid showed and the run finished."""
    out: dict[str, object] = dict(stats([s["total"] for s in samples]))
    out["charts_per_eb"] = sorted(collections.Counter(int(s.get("charts", -1)) for s in samples).items())
    for key in ("uid", "idle", "browser_cpu", "server_cpu"):
        values = [s[key] for s in samples if key in s]
        if values:
            out[f"{key}_median_ms"] = round(statistics.median(values), 1)
    return out


def server_summary(log: Path, skip: int) -> dict[str, object]:
    """Cache hits / misses and median server-side times from the QA0_UI_TIMING lines (after SKIP pages)."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("[qa0 timing]")]
    bundles = [ln for ln in lines if "] bundle " in ln][skip:]

    def median_of(label: str) -> float | None:
        values = [float(ln.rsplit(":", 1)[1].split()[0]) for ln in lines if f"] {label}:" in ln][skip:]
        return round(statistics.median(values), 1) if values else None

    return {
        "bundle_cache_hits": sum("(hit)" in ln for ln in bundles),
        "bundle_cache_misses": sum("(miss)" in ln for ln in bundles),
        "server_page_median_ms": median_of("review fragment"),
        "record_label_median_ms": median_of("record_label"),
        "next_for_median_ms": median_of("next_for"),
    }


def retrain_running(page: object) -> bool:
    """True while the sidebar shows a retrain in progress."""
    return bool(page.evaluate("() => document.body.innerText.includes('Retraining')"))  # type: ignore[attr-defined]


def start_retrain(page: object) -> None:
    """Press the sidebar's Retrain now and wait until the sidebar says a retrain is running."""
    page.click(".st-key-qa0_retrain button:visible", timeout=120_000)  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => document.body.innerText.includes('Retraining')", timeout=30_000
    )


def measure_during_retrains(
    page: object, presses: int, dwell: float, *, cdp: object, server_pid: int, max_retrains: int = 30
) -> tuple[list[dict[str, float]], int]:
    """PRESSES presses, each while a background retrain runs: a retrain that ends is started again (a 5,000-EB
    retrain lasts a few presses only). Returns the samples and how many retrains were started."""
    samples: list[dict[str, float]] = []
    retrains = 0
    while len(samples) < presses and retrains <= max_retrains:
        if not retrain_running(page):
            start_retrain(page)
            retrains += 1
        samples += measure(page, 1, dwell, while_running=True, cdp=cdp, server_pid=server_pid)
    return samples, retrains


def main() -> int:
    """Run the benchmark and print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ebs", type=int, default=5000)
    ap.add_argument("--presses", type=int, default=30)
    ap.add_argument("--dwell", type=float, default=3.0, help="seconds the AoD looks at each EB")
    ap.add_argument("--warmup", type=int, default=3, help="presses before measuring (worker start, caches)")
    ap.add_argument("--retrain", action="store_true", help="also measure while a background retrain runs")
    ap.add_argument("--screenshot", help="save a screenshot of the Label page here")
    ap.add_argument("--samples", type=Path, help="also write every press's timings here (JSON)")
    ap.add_argument(
        "--db",
        type=Path,
        help="use this SQLite file (with a trained model) instead of building one, "
        "e.g. a 100,000-EB pool from `python -m qa0_label simulate`",
    )
    ap.add_argument("--in-place", action="store_true", help="with --db: label in that file instead of a copy")
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="also measure a one-button Streamlit app (key -> one line of text) the same way, in the same run",
    )
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    base = args.db if args.db else build_database(args.ebs, OUT / f"bench_{args.ebs}.sqlite")
    work = Path(tempfile.mkdtemp(prefix="qa0_bench_"))
    db = work / "bench.sqlite"
    if args.db and args.in_place:
        db = args.db
    else:
        shutil.copyfile(base, db)
    port = free_port()
    server = start_server(db, port, work / "server.log")
    result: dict[str, object] = {"ebs": count_ebs(db), "dwell_s": args.dwell, "load_average": os.getloadavg()[0]}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            open_label_page(page, f"http://127.0.0.1:{port}/?labeler=bench_aod")
            page.evaluate(INSTALL)
            page.wait_for_function(
                "() => document.querySelector('[data-testid=\"stApp\"]').getAttribute('data-test-script-state') === 'notRunning'",
                timeout=120_000,
            )
            page.wait_for_function(
                "() => { const c = document.querySelectorAll('[data-testid=\"stVegaLiteChart\"]');"
                " return c.length > 0 && Array.from(c).every((e) => e.querySelector('canvas, svg')); }",
                timeout=60_000,
            )
            time.sleep(args.dwell)
            if args.screenshot:
                page.screenshot(path=args.screenshot)
            measure(page, args.warmup, args.dwell)
            samples = measure(page, args.presses, args.dwell, cdp=cdp, server_pid=server.pid)
            result["press_to_rendered"] = press_stats(samples)
            if args.samples:
                args.samples.write_text(json.dumps(samples, indent=1))
            result["server"] = server_summary(work / "server.log", skip=1 + args.warmup)
            print(json.dumps(result), file=sys.stderr, flush=True)
            if args.retrain:
                during, retrains = measure_during_retrains(
                    page, args.presses, args.dwell, cdp=cdp, server_pid=server.pid
                )
                result["retrains_started"] = retrains
                result["press_to_rendered_during_retrain"] = press_stats(during) if during else "retrain ended too soon"
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    try:
        if args.baseline:
            result["baseline_one_button_app"] = measure_baseline(work, args.presses, args.warmup, args.dwell)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
