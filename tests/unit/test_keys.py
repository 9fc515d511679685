"""The Label page's key script: every key of label.KEY_BUTTONS is handled, and nothing but fixed keys goes in."""

from __future__ import annotations

import json
import re

import pytest

from qa0_label.ui import keys, label


def _installed(monkeypatch: pytest.MonkeyPatch, key_buttons: dict[str, str]) -> tuple[str, dict[str, object]]:
    bodies: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        keys.st, "html", lambda body, unsafe_allow_javascript=False: bodies.append((body, unsafe_allow_javascript))
    )
    keys.install(key_buttons=key_buttons, comment_key=label.K_COMMENT)
    assert len(bodies) == 1 and bodies[0][1] is True, "one script element, allowed to run"
    body = bodies[0][0]
    cfg = json.loads(re.search(r"const cfg = (\{.*?\});", body).group(1))
    return body, cfg


def test_every_label_page_key_is_handled_by_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    body, cfg = _installed(monkeypatch, label.KEY_BUTTONS)
    assert cfg["keys"] == {
        "P": "qa0-btn-pass",
        "S": "qa0-btn-semipass",
        "F": "qa0-btn-fail",
        "K": "qa0-btn-skip",
        "U": "qa0-btn-undo",
        "A": "qa0-btn-accept",
    }
    assert cfg["comment"] == label.K_COMMENT and cfg["notice"] == keys.NOTICE_ID
    assert {v: k for k, v in label.VALUE_KEYS.items()}.keys() <= cfg["keys"].keys(), "P / S / F all held and applied"
    assert "Enter" in label.COMMENT_PLACEHOLDER and "Esc" in label.COMMENT_PLACEHOLDER
    assert "textContent = text" in body and "innerHTML" not in body, "the notice is text, never HTML"


def test_a_new_key_is_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    _, cfg = _installed(monkeypatch, {**label.KEY_BUTTONS, "a": "qa0-btn-accept"})
    assert cfg["keys"]["A"] == "qa0-btn-accept", "lower-case keys are normalised"
