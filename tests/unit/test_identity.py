"""Pure UI logic: who the user is, markdown escaping, which key presses count."""

from __future__ import annotations

import pytest

from qa0_label.access.identity import oidc_name, resolve_identity
from qa0_label.ui.label import press_is_current
from qa0_label.ui.widgets import md_escape


def test_oidc_identity_ignores_the_url_and_the_sidebar() -> None:
    who = resolve_identity(
        auth_configured=True,
        user={"is_logged_in": True, "email": "ana@alma.cl", "name": "Ana"},
        url_labeler="boss",
        chosen="someone",
    )
    assert (who.name, who.source, who.locked, who.email) == ("ana@alma.cl", "oidc", True, "ana@alma.cl")


def test_oidc_configured_but_logged_out_is_nobody() -> None:
    who = resolve_identity(auth_configured=True, user={"is_logged_in": False}, url_labeler="boss", chosen=None)
    assert who.name is None and who.locked


def test_oidc_name_falls_back_to_the_display_name() -> None:
    assert oidc_name({"is_logged_in": True, "name": "  Ana   Rojas "}) == "Ana Rojas"
    assert oidc_name({"is_logged_in": True}) is None
    assert oidc_name(None) is None


def test_without_auth_the_url_preselects_then_the_sidebar() -> None:
    assert resolve_identity(auth_configured=False, user=None, url_labeler="aod1", chosen="aod2").name == "aod1"
    sidebar = resolve_identity(auth_configured=False, user=None, url_labeler=None, chosen=" aod2 ")
    assert (sidebar.name, sidebar.source) == ("aod2", "sidebar")
    assert resolve_identity(auth_configured=False, user=None, url_labeler="", chosen=None).name is None


def test_an_invalid_url_name_is_refused_with_a_reason() -> None:
    who = resolve_identity(auth_configured=False, user=None, url_labeler="x" * 81, chosen=None)
    assert who.name is None and who.error and "80" in who.error


@pytest.mark.parametrize(
    "raw",
    ["**bold**", "<b>html</b>", "[link](http://evil)", "`code`", "# head", "$x^2$", "a_b_c", ":red[alert]"],
)
def test_md_escape_leaves_no_active_markdown(raw: str) -> None:
    out = md_escape(raw)
    for ch in "*<>[]()`#$_:":
        # every special character that survives is escaped by a backslash
        for i, c in enumerate(out):
            if c == ch:
                assert i > 0 and out[i - 1] == "\\", (raw, out)


def test_md_escape_keeps_plain_text_readable() -> None:
    assert md_escape("Tsys high on DV08") == "Tsys high on DV08"
    assert md_escape("line1\nline2") == "line1 line2"


def _press(**kw: object) -> bool:
    base = dict(
        current={"eb_id": 7, "labeler": "ana"}, event="e1", shown_at=100.0, eb_id=7, event_id="e1", who="ana", now=101.0
    )
    base.update(kw)
    return press_is_current(**base)  # type: ignore[arg-type]


def test_a_press_counts_for_the_eb_on_screen() -> None:
    assert _press()


@pytest.mark.parametrize(
    "change",
    [
        {"eb_id": 8},  # bound to another EB
        {"event_id": "old"},  # an earlier display of the same EB
        {"who": "bob"},  # another identity
        {"current": None},  # nothing on screen
        {"now": 100.1},  # within the double-click guard
    ],
)
def test_stale_or_too_early_presses_are_ignored(change: dict[str, object]) -> None:
    assert not _press(**change)


def test_metrics_table_marks_warnings_and_escapes_database_text() -> None:
    from qa0_label.ui.label import metrics_table

    header = {
        "band": 7,
        "freq_ghz": 343.5,
        "array": "12m|**x** [y](z)",
        "n_antennas": 43,
        "pwv_mm": 1.9,
        "pwv_limit_mm": 1.2,
        "elevation_deg": 55.0,
        "exec_fraction": 1.0,
        "flux_jy": 2.1,
        "warning_levels": {"pwv_mm": "bad"},
    }
    table = metrics_table(header, {"pwv_mm": "PWV 1.90 mm is above the Band 7 limit"})
    first = table.split("\n\n")[0].splitlines()
    assert len(first) == 3 and first[0].count(" | ") == 5, "six columns, the database text did not add any"
    assert ":red[**⚠ PWV**]" in first[0] and ":red-background[1\\.90 mm · limit 1\\.20]" in first[2]
    assert "12m\\|\\*\\*x\\*\\* \\[y\\]\\(z\\)" in first[2]
    assert "⚠" not in table.split("\n\n")[1], "only the warned metric is marked"


def test_metrics_table_shows_tsys_against_expectation_and_the_phase_limit() -> None:
    from qa0_label.ui.label import metrics_table

    header = {
        "band": 7,
        "tsys_median_k": 290.0,
        "tsys_vs_expected": 1.84,
        "tsys_outliers": {"DV03": 3.1},
        "phase_rms_deg": 12.0,
        "phase_rms_warn_deg": 30.0,
        "warning_levels": {"tsys_median_k": "warn"},
    }
    table = metrics_table(header, {"tsys_median_k": "median Tsys is 1.8x what this band predicts"})
    assert "1\\.8x exp\\. · 1 outlier ant\\." in table and ":orange[**⚠ Tsys" in table
    assert "limit 30" in table


def test_why_box_is_one_markdown_block_with_escaped_reason_and_proportional_bars() -> None:
    from qa0_label.ui.label import BAR_CELLS, why_markdown

    text = why_markdown(
        {
            "strategy": "margin-diverse",
            "model_version": 3,
            "reason": "<b>close</b> call [x](y) *between*",
            "proba": {"Pass": 0.5, "SemiPass": 0.45, "Fail": 0.05},
            "uncertainty": 0.05,
        }
    )
    assert text.startswith("**Why this EB**") and "margin\\-diverse  ·  model v3" in text
    assert "\\<b\\>close\\</b\\> call \\[x\\]\\(y\\) \\*between\\*" in text, "the reason cannot become markup"
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["Pass"].count("█") == BAR_CELLS // 2 and rows["Pass"].count("░") == BAR_CELLS - BAR_CELLS // 2
    assert rows["Fail"].count("█") == round(0.05 * BAR_CELLS) and "| 0.05 |" in rows["Fail"]
    assert "uncertainty 0.050" in text


def test_why_box_without_prediction_says_so_except_after_undo() -> None:
    from qa0_label.ui.label import why_markdown

    assert "No model prediction" in why_markdown({"strategy": "cold-start", "proba": None})
    undo = why_markdown({"strategy": "undo", "reason": "You undid your label", "proba": None})
    assert "No model prediction" not in undo and "█" not in undo and "You undid your label" in undo


def test_warnings_are_one_plain_text_line_each() -> None:
    from qa0_label.ui.label import warning_lines

    text = warning_lines({"pwv_mm": "PWV 1.90 mm is above the limit", "odd_field": ""})
    lines = text.split("\n")
    assert len(lines) == 2 and lines[0].startswith("⚠ ") and lines[0].endswith("PWV 1.90 mm is above the limit")
    assert lines[1] == "⚠ Odd field"


def test_a_warning_that_names_its_check_does_not_repeat_the_title() -> None:
    from qa0_label.ui.label import warning_lines

    text = warning_lines(
        {
            "pwv_mm": "PWV 4.02 mm is above the Band 7 limit",
            "amplitude_outliers": "low-amplitude antennas (dead or mispointed?): DA41 (12% of the array)",
            "n_antennas": "5 antennas after flagging",
        }
    )
    assert text.split("\n") == [
        "⚠ PWV 4.02 mm is above the Band 7 limit",
        "⚠ Low-amplitude antennas (dead or mispointed?): DA41 (12% of the array)",
        "⚠ Antennas: 5 antennas after flagging",
    ]
