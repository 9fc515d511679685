"""The auto-QA0 lines of the Label page's "Why this EB" box: short, escaped, the call or the set."""

from __future__ import annotations

from qa0_label.ui.auto import suggestion_markdown
from qa0_label.ui.widgets import md_escape


def test_an_auto_decided_eb_names_the_call_and_key_a() -> None:
    md = suggestion_markdown({"decision": "Pass", "alpha": 0.02, "set": ["Pass"], "top_reasons": []})
    assert "would decide this EB alone: **Pass**" in md and "<= 2.0%" in md and "**A**" in md
    assert "Nothing pushes this EB" in md


def test_needs_an_aod_shows_the_set_and_points_at_the_model_page_not_the_long_reason() -> None:
    item = {
        "decision": "needs_aod",
        "alpha": 0.05,
        "set": ["Pass", "SemiPass"],
        "why_none": "no threshold could be certified at alpha 0.05: " + "x" * 300,
        "top_reasons": [{"text": "PWV 1.9x the Band 7 limit", "towards": "Fail"}],
    }
    md = suggestion_markdown(item)
    assert "needs an AoD (the model's set at alpha 5.0%: Pass, SemiPass)" in md
    assert "see the Model page" in md and "x" * 300 not in md
    assert f"Why: {md_escape('PWV 1.9x the Band 7 limit')} → Fail" in md and "\n- " not in md


def test_reason_text_is_escaped() -> None:
    item = {
        "decision": "needs_aod",
        "alpha": 0.02,
        "set": [],
        "top_reasons": [{"text": "**a** [b](c)", "towards": "<i>"}],
    }
    md = suggestion_markdown(item)
    assert "**a**" not in md and "[b](c)" not in md and "<i>" not in md
