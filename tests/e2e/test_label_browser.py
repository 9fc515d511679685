"""The Label page in headless Chromium against a real `streamlit run` server and a temporary database.

An AoD labels EBs with the P / S / F keys; the database must then hold exactly those labels for exactly the
uids that were on screen when each key was pressed. Typing a comment must not trigger the shortcuts, and a
double click must not store two labels.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from qa0_label.store.db import dispose_engines, get_engine, session_scope

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
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
UID = ".st-key-qa0-uid"
IDLE = (
    "() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state') === 'notRunning'"
)
DWELL_S = 0.5  # the page ignores presses within 0.4 s of an EB appearing (double-click guard)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of a streamlit server on a freshly simulated temporary database."""
    from qa0_label.sim.simulate import simulate

    work = tmp_path_factory.mktemp("e2e")
    db_url = f"sqlite:///{work / 'e2e.sqlite'}"
    engine = get_engine(db_url)
    simulate(engine=engine, n=80, seed=5, aods=2, labeled=30)
    port = _free_port()
    env = {**os.environ, "QA0_DATABASE_URL": db_url, "QA0_SEED_DEMO": "0", "QA0_MODEL_DIR": str(work / "models")}
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"streamlit did not start: {(work / 'server.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", db_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        engine.dispose()
        dispose_engines()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium driven by Playwright (playwright install cannot download browsers here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser: object, base: str, labeler: str) -> object:
    page = browser.new_page(viewport={"width": 1500, "height": 950})  # type: ignore[attr-defined]
    page.goto(f"{base}/?labeler={labeler}", wait_until="domcontentloaded")
    page.wait_for_selector(f"{UID}, .st-key-qa0_confirm_new", timeout=60_000)
    if page.query_selector(".st-key-qa0_confirm_new"):  # a new name: the app asks before creating it
        page.click(".st-key-qa0_confirm_new button")
    page.wait_for_selector(UID, timeout=60_000)
    page.wait_for_function(IDLE, timeout=60_000)
    return page


def _uid(page: object) -> str:
    return str(page.inner_text(UID)).strip()  # type: ignore[attr-defined]


def _wait_new_eb(page: object, old_uid: str) -> str:
    page.wait_for_function(  # type: ignore[attr-defined]
        "(old) => { const el = document.querySelector('.st-key-qa0-uid'); return el && el.innerText.trim() !== old; }",
        arg=old_uid,
        timeout=30_000,
    )
    page.wait_for_function(IDLE, timeout=30_000)  # type: ignore[attr-defined]
    return _uid(page)


def _labels(db_url: str, labeler: str) -> list[tuple[str, str, str | None]]:
    with session_scope(get_engine(db_url)) as session:
        rows = (
            session.connection()
            .execute(
                text(
                    "SELECT e.uid, l.value, l.comment FROM label l JOIN execution_block e ON e.id = l.eb_id "
                    "JOIN labeler b ON b.id = l.labeler_id WHERE b.name = :n ORDER BY l.id"
                ),
                {"n": labeler},
            )
            .fetchall()
        )
    return [(str(r[0]), str(r[1]), r[2]) for r in rows]


def test_keys_label_exactly_the_ebs_on_screen(server: tuple[str, str], browser: object) -> None:
    base, db_url = server
    page = _open(browser, base, "e2e_aod")
    expected: list[tuple[str, str]] = []
    for i in range(10):
        uid = _uid(page)
        assert uid.startswith("uid://")
        key, value = [("p", "Pass"), ("s", "SemiPass"), ("f", "Fail")][i % 3]
        time.sleep(DWELL_S)
        page.keyboard.press(key)  # type: ignore[attr-defined]
        expected.append((uid, value))
        _wait_new_eb(page, uid)
    stored = _labels(db_url, "e2e_aod")
    assert [(u, v) for u, v, _ in stored] == expected
    assert len({u for u, _ in expected}) == 10, "every press labelled a different EB"
    page.close()  # type: ignore[attr-defined]


def test_typing_a_comment_does_not_fire_shortcuts(server: tuple[str, str], browser: object) -> None:
    base, db_url = server
    page = _open(browser, base, "e2e_typist")
    uid = _uid(page)
    box = page.locator(".st-key-qa0_comment input")  # type: ignore[attr-defined]
    box.click()
    page.keyboard.type("PSF ok, spw 3 ripple; fine")  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    page.wait_for_function(IDLE, timeout=30_000)  # type: ignore[attr-defined]
    time.sleep(DWELL_S)
    assert _uid(page) == uid, "typing P, S or F in the comment box must not label the EB"
    assert _labels(db_url, "e2e_typist") == []
    box.blur()
    page.keyboard.press("f")  # type: ignore[attr-defined]
    _wait_new_eb(page, uid)
    assert _labels(db_url, "e2e_typist") == [(uid, "Fail", "PSF ok, spw 3 ripple; fine")]
    assert page.locator(".st-key-qa0_comment input").input_value() == "", "the comment clears for the next EB"  # type: ignore[attr-defined]
    page.close()  # type: ignore[attr-defined]


def test_double_click_stores_one_label(server: tuple[str, str], browser: object) -> None:
    base, db_url = server
    page = _open(browser, base, "e2e_double")
    uid = _uid(page)
    time.sleep(DWELL_S)
    page.locator(".st-key-qa0-btn-pass button:visible").first.dblclick()  # type: ignore[attr-defined]
    _wait_new_eb(page, uid)
    time.sleep(1.0)  # let a second press, if any, arrive and finish
    page.wait_for_function(IDLE, timeout=30_000)  # type: ignore[attr-defined]
    assert _labels(db_url, "e2e_double") == [(uid, "Pass", None)]
    page.close()  # type: ignore[attr-defined]


NOTICE = "#qa0-key-notice"


def _focus_in_input(page: object) -> bool:
    return bool(page.evaluate("() => ['INPUT', 'TEXTAREA'].includes(document.activeElement?.tagName)"))  # type: ignore[attr-defined]


def test_comment_enter_then_s_labels_semipass_with_that_comment(server: tuple[str, str], browser: object) -> None:
    base, db_url = server
    page = _open(browser, base, "e2e_enter")
    uid = _uid(page)
    box = page.locator(".st-key-qa0_comment input")  # type: ignore[attr-defined]
    assert "Enter" in (box.get_attribute("placeholder") or ""), "the placeholder says how to leave the box"
    box.click()
    page.keyboard.type("DV12 Tsys spike in scan 4")  # type: ignore[attr-defined]
    time.sleep(DWELL_S)
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    page.keyboard.press("s")  # type: ignore[attr-defined]  # at once: the comment's rerun may still be running
    new_uid = _wait_new_eb(page, uid)
    assert new_uid != uid, "the next EB is shown"
    assert _labels(db_url, "e2e_enter") == [(uid, "SemiPass", "DV12 Tsys spike in scan 4")]
    assert not _focus_in_input(page), "after Enter the focus is back on the page"
    assert page.locator(".st-key-qa0_comment input").input_value() == ""  # type: ignore[attr-defined]
    page.close()  # type: ignore[attr-defined]


def test_escape_leaves_the_comment_box_and_the_next_key_labels(server: tuple[str, str], browser: object) -> None:
    base, db_url = server
    page = _open(browser, base, "e2e_escape")
    uid = _uid(page)
    page.locator(".st-key-qa0_comment input").click()  # type: ignore[attr-defined]
    page.keyboard.type("fine")  # type: ignore[attr-defined]
    page.keyboard.press("Escape")  # type: ignore[attr-defined]
    time.sleep(DWELL_S)
    assert not _focus_in_input(page)
    page.keyboard.press("p")  # type: ignore[attr-defined]
    _wait_new_eb(page, uid)
    assert _labels(db_url, "e2e_escape") == [(uid, "Pass", "fine")]
    page.close()  # type: ignore[attr-defined]


def test_key_during_a_rerun_that_keeps_the_eb_lands_on_it(server: tuple[str, str], browser: object) -> None:
    base, db_url = server
    page = _open(browser, base, "e2e_rerun_same")
    uid = _uid(page)
    time.sleep(DWELL_S)
    # Switching the heatmap metric reruns the page; P pressed meanwhile belongs to the EB on screen.
    page.locator(".st-key-qa0_heat_metric button", has_text="Phase").click()  # type: ignore[attr-defined]
    page.keyboard.press("p")  # type: ignore[attr-defined]
    _wait_new_eb(page, uid)
    assert _labels(db_url, "e2e_rerun_same") == [(uid, "Pass", None)]
    page.close()  # type: ignore[attr-defined]


def test_key_during_the_rerun_that_changes_the_eb_is_refused_visibly(server: tuple[str, str], browser: object) -> None:
    base, db_url = server
    page = _open(browser, base, "e2e_rerun_next")
    uid = _uid(page)
    time.sleep(DWELL_S)
    page.keyboard.press("p")  # type: ignore[attr-defined]
    page.keyboard.press("f")  # type: ignore[attr-defined]  # while the page moves on to the next EB
    new_uid = _wait_new_eb(page, uid)
    # The notice first says the key is held, then (once the page is idle on the new EB) that it was not taken.
    page.wait_for_function(  # type: ignore[attr-defined]
        "(sel) => (document.querySelector(sel)?.textContent || '').includes('not taken')", arg=NOTICE, timeout=15_000
    )
    assert page.is_visible(NOTICE)  # type: ignore[attr-defined]
    notice = page.inner_text(NOTICE)  # type: ignore[attr-defined]
    assert "F not taken" in notice and "EB changed" in notice
    time.sleep(1.0)
    assert _uid(page) == new_uid, "the refused key did not label the EB that replaced the one it was meant for"
    assert _labels(db_url, "e2e_rerun_next") == [(uid, "Pass", None)]
    page.close()  # type: ignore[attr-defined]


def test_the_first_key_after_choosing_a_name_labels(server: tuple[str, str], browser: object) -> None:
    # After a name is picked in the sidebar the cursor stays in that box: P typed "p" there, not a Pass.
    base, db_url = server
    # A simulated AoD, in the roster since the server started (the picker lists the roster it cached).
    with session_scope(get_engine(db_url)) as session:
        name = str(
            session.connection()
            .execute(text("SELECT name FROM labeler WHERE role = 'aod' AND name NOT LIKE 'e2e%' ORDER BY name"))
            .scalars()
            .first()
        )
    before = _labels(db_url, name)
    page = browser.new_page(viewport={"width": 1500, "height": 950})  # type: ignore[attr-defined]
    page.goto(base, wait_until="domcontentloaded")
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    picker.click()
    page.keyboard.type(name)  # the list is virtualised: with many names the option may not be drawn yet
    page.get_by_role("option", name=name).click()
    page.wait_for_selector(UID, timeout=60_000)
    page.wait_for_function(IDLE, timeout=60_000)
    uid = _uid(page)
    time.sleep(DWELL_S)
    page.keyboard.press("p")
    _wait_new_eb(page, uid)
    after = _labels(db_url, name)
    assert len(after) == len(before) + 1 and after[-1][:2] == (uid, "Pass")
    page.close()


def test_auto_retrain_switch_stays_as_set_across_pages(server: tuple[str, str], browser: object) -> None:
    base, _ = server
    page = _open(browser, base, "e2e_switch")
    switch = page.locator(".st-key-qa0_auto_retrain input")
    assert switch.is_checked()
    page.locator(".st-key-qa0_auto_retrain label").click()
    page.wait_for_function(IDLE, timeout=30_000)
    for name in ("Agreement", "Label", "Model", "Label"):
        page.get_by_role("link", name=name).first.click()
        page.wait_for_selector(".st-key-qa0_auto_retrain input", timeout=30_000)
        page.wait_for_function(IDLE, timeout=30_000)
        assert not switch.is_checked(), f"the switch came back on after a visit to {name}"
    page.close()


def test_enter_in_the_passphrase_box_unlocks_lead_actions(server: tuple[str, str], browser: object) -> None:
    from qa0_label.access.authz import set_passphrase
    from qa0_label.store.labels import set_role

    base, db_url = server
    with session_scope(get_engine(db_url), write=True) as session:
        set_role(session=session, name="e2e_lead", role="lead", create=True)  # as `role NAME lead` does
        set_passphrase(session=session, name="e2e_lead", passphrase="correct horse battery")
    page = browser.new_page(viewport={"width": 1500, "height": 950})  # type: ignore[attr-defined]
    page.goto(f"{base}/agreement?labeler=e2e_lead", wait_until="domcontentloaded")
    box = page.locator(".st-key-qa0_passphrase input")
    box.fill("correct horse battery")
    box.press("Enter")
    page.get_by_text("Lock lead actions", exact=True).wait_for(timeout=30_000)
    assert page.get_by_text("Unlock lead actions", exact=True).count() == 0
    page.close()


def test_a_narrow_window_puts_why_this_eb_under_the_eb(server: tuple[str, str], browser: object) -> None:
    base, _ = server
    page = browser.new_page(viewport={"width": 800, "height": 700})  # type: ignore[attr-defined]
    page.goto(f"{base}/?labeler=e2e_narrow", wait_until="domcontentloaded")
    if page.wait_for_selector(f"{UID}, .st-key-qa0_confirm_new", timeout=60_000) and page.query_selector(
        ".st-key-qa0_confirm_new"
    ):
        page.click(".st-key-qa0_confirm_new button")
    page.wait_for_selector(".st-key-qa0-why", timeout=60_000)
    page.wait_for_function(IDLE, timeout=60_000)
    actions = page.locator(".st-key-qa0-actions").bounding_box()
    why = page.locator(".st-key-qa0-why").bounding_box()
    assert why["y"] >= actions["y"] + actions["height"], "'Why this EB' sits under the decision bar, not over it"
    tiles = page.locator(".st-key-qa0-tiles").bounding_box()
    assert tiles["x"] + tiles["width"] <= 800, "the metrics table stays inside the window (it scrolls)"
    page.close()
