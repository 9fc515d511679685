"""Offline: every page of the app, in headless Chromium, requests nothing from a host other than the app's own.

An observatory network may have no internet: a font, icon or script fetched from elsewhere fails there (and
tells a third party who is using the app). Requests to other hosts are recorded and aborted, so the test does
not wait for a network that is not there.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.test_label_browser import IDLE, browser, server  # noqa: F401 - fixtures

pytestmark = pytest.mark.e2e

PAGES = ("", "agreement", "model", "data")


def test_no_page_requests_another_host(server: tuple[str, str], browser: object) -> None:  # noqa: F811
    base, _db = server
    own = urlsplit(base).netloc
    foreign: list[str] = []
    requests = 0
    context = browser.new_context(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]

    def route(r: object) -> None:
        nonlocal requests
        url = r.request.url  # type: ignore[attr-defined]
        requests += 1
        scheme, netloc = urlsplit(url)[:2]
        if scheme in ("data", "blob") or netloc == own:
            r.continue_()  # type: ignore[attr-defined]
        else:
            foreign.append(url)
            r.abort()  # type: ignore[attr-defined]

    context.route("**/*", route)
    page = context.new_page()
    for path in PAGES:
        page.goto(f"{base}/{path}?labeler=Valentina%20Rojas", wait_until="domcontentloaded")
        page.wait_for_function(IDLE, timeout=60_000)
        page.wait_for_timeout(1500)  # favicon, fonts and lazy chunks arrive after the first render
    # A review view and the read-only EB view use the chart libraries too.
    page.goto(f"{base}/?labeler=Valentina%20Rojas", wait_until="domcontentloaded")
    page.wait_for_selector(".st-key-qa0-uid", timeout=60_000)
    page.wait_for_timeout(1500)
    context.close()
    print(f"requests: {requests}, to other hosts: {len(foreign)}")
    assert requests > 20  # the pages really loaded through this route
    assert foreign == [], foreign
