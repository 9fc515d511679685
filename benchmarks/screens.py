"""Screenshots of every page, as an AoD and as a team lead, for a reviewer to look at (PNG files, git-ignored).

    .venv/bin/python benchmarks/screens.py [--out benchmarks/screens] [--db PATH]

Seeds the demo database (the same `seed-demo` step as `make run`) into a temporary directory unless --db
gives one (a copy is used), starts `streamlit run streamlit_app.py` on a free port and saves, at 1600x1000
in headless Chromium: the Label page (the viewport, i.e. what is above the fold, and the whole page), the
read-only review view of an EB, every tab of the Agreement page, the Model page and the Data page, once as
the AoD "Valentina Rojas" and once as the lead "Carolina Méndez". Prints the files it wrote.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_ui import CHROMIUM, CHROMIUM_ARGS, free_port, start_server  # noqa: E402

AOD = "Valentina Rojas"
LEAD = "Carolina Méndez"
IDLE = (
    "() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state') === 'notRunning'"
)
CHARTS_DRAWN = (
    "() => Array.from(document.querySelectorAll('[data-testid=\"stVegaLiteChart\"]'))"
    ".filter((c) => c.offsetParent !== null).every((c) => c.querySelector('canvas, svg'))"
)


FULL_HEIGHT = (
    "() => { const m = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
    " return m.scrollHeight + 40; }"
)


def settle(page: object, pause: float = 1.0) -> None:
    """Wait until the script run finished and every chart is drawn, then a little longer for layout."""
    page.wait_for_function(IDLE, timeout=120_000)  # type: ignore[attr-defined]
    page.wait_for_function(CHARTS_DRAWN, timeout=60_000)  # type: ignore[attr-defined]
    time.sleep(pause)


def seed(db: Path) -> None:
    """The `make run` seeding step into DB."""
    env = {**os.environ, "QA0_SEED_DEMO": "1"}
    subprocess.run(
        [sys.executable, "-m", "qa0_label", "--db", f"sqlite:///{db}", "seed-demo", "--quiet"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def main() -> int:
    """Take the screenshots."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "screens")
    ap.add_argument("--db", type=Path, help="use a copy of this SQLite file instead of seeding the demo")
    ap.add_argument("--no-retrain", action="store_true", help="leave the database without a model (cold start)")
    ap.add_argument("--pages", default="label,review,agreement,model,data", help="comma-separated subset")
    ap.add_argument("--as", dest="roles", default="aod,lead", help="aod, lead or both")
    args = ap.parse_args()
    pages = set(args.pages.split(","))
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="qa0_screens_"))
    db = work / "qa0.sqlite"
    if args.db:
        shutil.copyfile(args.db, db)
    else:
        seed(db)
    if not args.no_retrain:
        # A trained model, so the Model page and the "why this EB" box show what they show on a working day.
        subprocess.run(
            [sys.executable, "-m", "qa0_label", "--db", f"sqlite:///{db}", "retrain", "--quiet"],
            cwd=ROOT,
            env={**os.environ, "QA0_MODEL_DIR": str(work / "models")},
            check=True,
            stdout=subprocess.DEVNULL,
        )
    with sqlite3.connect(db) as conn:
        some_uid = str(conn.execute("SELECT uid FROM execution_block ORDER BY id LIMIT 1 OFFSET 7").fetchone()[0])
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(db, port, work / "server.log", model_dir=work / "models", timing=False)
    base = f"http://127.0.0.1:{port}"
    written: list[Path] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for who, tag in ((AOD, "aod"), (LEAD, "lead")):
                if tag not in args.roles.split(","):
                    continue
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                q = urllib.parse.quote(who)

                def shot(name: str, *, full: bool = True, page: object = page, tag: str = tag) -> None:
                    path = args.out / f"{tag}-{name}.png"
                    if full:
                        # Streamlit scrolls inside its main section, not the document: grow the window instead.
                        height = page.evaluate(FULL_HEIGHT)  # type: ignore[attr-defined]
                        page.set_viewport_size({"width": 1600, "height": max(1000, int(height))})  # type: ignore[attr-defined]
                        time.sleep(1.0)
                    page.screenshot(path=str(path))  # type: ignore[attr-defined]
                    page.set_viewport_size({"width": 1600, "height": 1000})  # type: ignore[attr-defined]
                    written.append(path)

                page.goto(f"{base}/?labeler={q}", wait_until="domcontentloaded")
                page.wait_for_selector(".st-key-qa0-uid", timeout=120_000)
                settle(page)
                if "label" in pages:
                    shot("label-fold", full=False)
                    shot("label-full")
                if "review" in pages:
                    page.goto(f"{base}/?labeler={q}&eb={urllib.parse.quote(some_uid)}", wait_until="domcontentloaded")
                    page.wait_for_selector(".st-key-qa0-labels", timeout=60_000)
                    settle(page)
                    shot("review-view")
                for slug in [s for s in ("agreement", "model", "data") if s in pages]:
                    page.goto(f"{base}/{slug}?labeler={q}", wait_until="domcontentloaded")
                    page.wait_for_selector("h1", timeout=60_000)
                    settle(page, 2.0)
                    if slug != "agreement":
                        shot(slug)
                        continue
                    tabs = page.locator("[role='tab']")
                    for i in range(tabs.count()):
                        name = tabs.nth(i).inner_text().strip().lower().replace(" ", "-")
                        tabs.nth(i).click()
                        settle(page, 1.5)
                        shot(f"agreement-{i}-{name}")
                page.close()
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
