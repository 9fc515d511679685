"""Auto-QA0 in the app (AppTest): the Model page's Automation section by role, and key A on the Label page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from qa0_label.automation import runs
from qa0_label.store.db import dispose_engines, get_engine, session_scope
from tests.app import auth
from tests.db import auto_pool

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return auto_pool.build(tmp_path_factory.mktemp("auto-app") / "auto.sqlite")


@pytest.fixture
def url(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    u = auto_pool.copy(template, tmp_path)
    monkeypatch.setenv("QA0_DATABASE_URL", u)
    monkeypatch.setenv("QA0_SEED_DEMO", "0")
    monkeypatch.setenv("QA0_AUTO_RETRAIN", "0")
    monkeypatch.setenv("QA0_PREFETCH", "0")
    monkeypatch.setenv("QA0_LOOKAHEAD", "0")
    monkeypatch.setenv("QA0_MODEL_DIR", str(tmp_path / "models"))
    from qa0_label.store.labels import get_or_create_labeler

    with session_scope(get_engine(u), write=True) as s:  # known names: a new one would first be confirmed
        get_or_create_labeler(session=s, name="t_aod")
    yield u
    dispose_engines()


def _model_page(labeler: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.query_params["labeler"] = labeler
    at.switch_page("qa0_label/ui/model.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_aod_sees_alpha_read_only_and_the_counts(url: str) -> None:
    at = _model_page("t_aod")
    assert any("Automation" in h.value for h in at.subheader)
    assert not [n for n in at.number_input if "alpha" in n.label]
    assert any("set by team leads" in m.value for m in at.markdown)
    labels = {m.label for m in at.metric}
    assert {"Auto-Pass", "Auto-SemiPass", "Auto-Fail", "Needs an AoD"} <= labels
    (check,) = [m.value for m in at.markdown if "Held-out check" in m.value]
    assert "95% interval" in check  # the check is a sample: its spread is shown beside the rate
    assert any("The check is a sample" in c.value for c in at.caption)


def test_lead_sets_alpha_and_it_is_audited(url: str) -> None:
    auth.make_lead(url, auto_pool.LEAD)
    at = _model_page(auto_pool.LEAD)
    # A lead named in the URL is no proof: read-only until they unlock with their passphrase.
    assert not [n for n in at.number_input if "alpha" in n.label]
    assert any("unlock lead actions" in m.value for m in at.markdown)
    auth.unlock(at)
    assert not at.exception, [e.value for e in at.exception]
    box = [n for n in at.number_input if "alpha" in n.label][0]
    box.set_value(0.05)
    [b for b in at.button if "Set alpha" in str(b.label)][0].click().run()
    assert not at.exception
    assert any("0.1 -> 0.05" in s.value for s in at.success)
    with session_scope(get_engine(url)) as s:
        rows = s.connection().execute(text("SELECT alpha, old_alpha FROM auto_alpha ORDER BY id")).all()
    assert [tuple(r) for r in rows][-1] == (0.05, pytest.approx(0.1))


def test_key_a_accepts_the_suggestion(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Random picks only: most of this pool is auto-decided, so an auto-decided EB comes up quickly.
    monkeypatch.setenv("QA0_RANDOM_SHARE", "1")
    monkeypatch.setenv("QA0_OVERLAP_SHARE", "0")
    monkeypatch.setenv("QA0_GOLD_SHARE", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["labeler"] = "t_aod"
    at.run()
    for _ in range(15):
        assert not at.exception, [e.value for e in at.exception]
        accept = [b for b in at.button if b.key == "qa0-btn-accept"]
        if accept:
            break
        [b for b in at.button if b.key == "qa0-btn-skip"][0].click().run()
    assert accept, "no auto-decided EB was shown"
    assert any("would decide this EB alone" in m.value for m in at.markdown)
    at.session_state["qa0_shown_at"] = 0.0  # past the double-click guard
    accept[0].click().run()
    assert not at.exception
    with session_scope(get_engine(url)) as s:
        rows = (
            s.connection()
            .execute(
                text(
                    "SELECT l.value, a.suggested, a.run_id FROM accepted_suggestion a JOIN label l ON l.id = a.label_id "
                    "JOIN labeler b ON b.id = l.labeler_id WHERE b.name = 't_aod'"
                )
            )
            .all()
        )
    assert len(rows) == 1 and rows[0][0] == rows[0][1]
    assert rows[0][2] == runs.serving_run_id(get_engine(url))  # the run whose suggestion was on screen


def test_too_few_labels_the_page_says_why_and_how_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = auto_pool.build(tmp_path / "few.sqlite", n=200, labelled=60, alpha=None)
    monkeypatch.setenv("QA0_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("QA0_SEED_DEMO", "0")
    monkeypatch.setenv("QA0_AUTO_RETRAIN", "0")
    monkeypatch.setenv("QA0_MODEL_DIR", str(tmp_path / "models"))
    from qa0_label.store.labels import get_or_create_labeler

    with session_scope(get_engine(f"sqlite:///{path}"), write=True) as s:
        get_or_create_labeler(session=s, name="t_aod")
    try:
        at = _model_page("t_aod")
        (why,) = [m.value for m in at.warning if "No EB is auto-decided" in m.value]
        assert "too few held-out labels" in why and "114" in why
    finally:
        dispose_engines()


def test_suggestions_can_be_switched_off(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA0_RANDOM_SHARE", "1")
    monkeypatch.setenv("QA0_OVERLAP_SHARE", "0")
    monkeypatch.setenv("QA0_GOLD_SHARE", "0")
    monkeypatch.setenv("QA0_AUTO_SUGGEST", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["labeler"] = "t_aod"
    at.run()
    for _ in range(8):  # with suggestions on, every EB of a trained pool shows the Auto-QA0 box
        assert not at.exception, [e.value for e in at.exception]
        assert "qa0-btn-accept" not in {b.key for b in at.button}
        assert not any("Auto-QA0" in m.value for m in at.markdown)
        [b for b in at.button if b.key == "qa0-btn-skip"][0].click().run()


def test_a_second_opinion_is_not_shown_the_models_call(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from qa0_label.automation import predict

    monkeypatch.setenv("QA0_OVERLAP_SHARE", "1")  # every pick a second opinion on t_truth's labels
    monkeypatch.setenv("QA0_RANDOM_SHARE", "0")
    monkeypatch.setenv("QA0_GOLD_SHARE", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["labeler"] = "t_aod"
    at.run()
    decidable = 0
    for _ in range(6):
        assert not at.exception, [e.value for e in at.exception]
        assert any("second, independent opinion" in m.value for m in at.markdown)  # an overlap pick
        assert "qa0-btn-accept" not in {b.key for b in at.button}
        assert not any("would decide this EB alone" in m.value for m in at.markdown)
        assert any("Auto-QA0 hidden" in m.value for m in at.markdown)
        eb_id = int(at.session_state["qa0_assignment"]["eb_id"])
        item = predict.explain_eb(engine=get_engine(url), eb_id=eb_id)
        decidable += bool(item and item.get("decision") not in (None, predict.NEEDS_AOD))
        [b for b in at.button if b.key == "qa0-btn-skip"][0].click().run()
    assert decidable, "no overlap pick the model would have decided: the test shows nothing"


def _shown_counts(at: AppTest) -> dict[str, int]:
    return {
        m.label.removeprefix("Auto-"): int(m.value.replace(",", "")) for m in at.metric if m.label.startswith("Auto-")
    }


def _marked_alpha(at: AppTest) -> list[str]:
    """The coverage chart's 'alpha in force' mark, as sent to the browser."""
    return [a for chart in at.get("vega_lite_chart") for a in re.findall(r"alpha in force ([0-9.]+)", str(chart.proto))]


def test_the_figures_after_set_alpha_are_those_of_the_new_alpha(url: str) -> None:
    auth.make_lead(url, auto_pool.LEAD)
    at = _model_page(auto_pool.LEAD)
    auth.unlock(at)
    before = _shown_counts(at)
    assert _marked_alpha(at) == ["0.1"]
    [n for n in at.number_input if "alpha" in n.label][0].set_value(0.05)
    [b for b in at.button if "Set alpha" in str(b.label)][0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("0.1 -> 0.05" in s.value for s in at.success)
    # In the same run as the change (no reload): counts, held-out check and chart are the new alpha's.
    engine = get_engine(url)
    now = runs.current_pool_counts(engine=engine, run_id=runs.serving_run_id(engine))  # type: ignore[arg-type]
    assert _shown_counts(at) == {v: now.get(v, 0) for v in ("Pass", "SemiPass", "Fail")} != before
    (check,) = [m.value for m in at.markdown if "Held-out check" in m.value]
    assert "alpha 5.0%" in check
    assert _marked_alpha(at) == ["0.05"]
