"""The team-lead Agreement page through streamlit.testing (AppTest).

Each test gets its own SQLite file under tmp_path (QA0_DATABASE_URL) with demo seeding off (QA0_SEED_DEMO=0);
the seeded variant copies a database with 200 EBs and 160 labels from 4 simulated AoDs, simulated once per
module. Most tests open the page script directly (fast); one goes through the app's navigation.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from qa0_label.lead import adjudication as adj
from qa0_label.lead import agreement
from qa0_label.lead import report as lead_report
from qa0_label.store.db import dispose_engines, get_engine, session_scope
from qa0_label.store.labels import consensus, current_labels, record_label, set_role
from qa0_label.store.models import ModelRun, utcnow
from tests.app.auth import has_unlock_panel, make_lead, unlock

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
PAGE = "qa0_label/ui/agreement.py"
TIMEOUT = 60
EVIL = '<img src=x onerror="alert(1)"> **bold** [link](http://x)'


def _use_db(monkeypatch: pytest.MonkeyPatch, path: Path) -> str:
    url = f"sqlite:///{path}"
    monkeypatch.setenv("QA0_DATABASE_URL", url)
    monkeypatch.setenv("QA0_SEED_DEMO", "0")
    monkeypatch.setenv("QA0_MODEL_DIR", str(path.parent / "models"))
    return url


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 simulated EBs with 160 labels from 4 simulated AoDs, built once per module."""
    from qa0_label.sim.simulate import simulate

    path = tmp_path_factory.mktemp("agreement") / "template.sqlite"
    engine = get_engine(f"sqlite:///{path}")
    simulate(engine=engine, n=200, seed=3, aods=4, labeled=160)
    engine.dispose()
    dispose_engines()
    return path


@pytest.fixture
def empty_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """URL of an empty database the app will use."""
    yield _use_db(monkeypatch, tmp_path / "empty.sqlite")
    dispose_engines()


@pytest.fixture
def seeded_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded_template: Path) -> Iterator[str]:
    """URL of a private copy of the seeded database."""
    path = tmp_path / "seeded.sqlite"
    shutil.copyfile(seeded_template, path)
    yield _use_db(monkeypatch, path)
    dispose_engines()


def _make_lead(url: str, name: str = "t_lead") -> None:
    make_lead(url, name)


def _page(labeler: str, *, via_app: bool = False) -> AppTest:
    at = AppTest.from_file(APP if via_app else str(ROOT / PAGE), default_timeout=TIMEOUT)
    at.query_params["labeler"] = labeler
    at.session_state["qa0_confirmed_new_name"] = str(labeler).casefold()  # as if 'Yes, create' was clicked
    at.run()
    if via_app:
        at.switch_page(PAGE).run()
    if has_unlock_panel(at):  # a lead unlocks lead actions with their passphrase (tests/app/auth.py)
        unlock(at)
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _metric(at: AppTest, label: str) -> str:
    (value,) = [m.value for m in at.metric if m.label == label]
    return str(value)


def _frame_with(at: AppTest, *columns: str) -> pd.DataFrame | None:
    frames = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    return frames[0] if frames else None


def _buttons(at: AppTest) -> set[str]:
    return {str(b.key) for b in at.button}


def _messages(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def _shown_text(at: AppTest) -> str:
    """Everything drawn as markdown: titles, markdown, captions, alerts, metric labels."""
    parts: list[Any] = [*at.markdown, *at.caption, *at.info, *at.success, *at.warning, *at.error, *at.title]
    return "\n".join(str(p.value) for p in parts)


def _queue(url: str) -> pd.DataFrame:
    with session_scope(get_engine(url)) as session:
        return adj.disagreements(session=session)


# --- empty database -------------------------------------------------------------------------------------


def test_empty_database_through_the_app_navigation(empty_db: str) -> None:
    at = _page("t_aod", via_app=True)
    assert _metric(at, "EBs rated by ≥ 2") == "0"
    assert _metric(at, "Fleiss kappa") == "n/a"
    assert any("no labels yet" in t.value for t in at.text), "the n/a is explained by the report's notes"
    assert any("No finished model run" in m for m in _messages(at, "info"))
    assert any("No open disagreements" in m for m in _messages(at, "success"))
    assert "qa0-adj-go" not in _buttons(at)


def test_empty_database_as_a_lead(empty_db: str) -> None:
    _make_lead(empty_db)
    at = _page("t_lead")
    assert [t.label for t in at.tabs] == ["Summary", "AoDs", "Model vs AoDs", "Adjudication", "Gold EBs", "Roster"]
    assert {"qa0-adj-go", "qa0-gold-mark", "qa0-gold-unmark"} <= _buttons(at)
    assert any("No gold EBs yet" in c.value for c in at.caption)


# --- summary, per AoD, model -------------------------------------------------------------------------------


def test_seeded_summary_matches_the_library(seeded_db: str) -> None:
    at = _page("t_aod")
    with session_scope(get_engine(seeded_db)) as session:
        labels = current_labels(session, include_archive=False)
    report = agreement.agreement_report(labels, n_boot=1000)
    assert report["n_items"] > 0
    assert _metric(at, "EBs rated by ≥ 2") == str(report["n_items"])
    assert _metric(at, "Fleiss kappa") == f"{report['fleiss_kappa']:.3f}"
    assert _metric(at, "Krippendorff alpha (ordinal)") == f"{report['krippendorff_alpha_ordinal']:.3f}"
    low, high = report["krippendorff_alpha_ordinal_ci"]
    assert f"95% interval {low:.3f} to {high:.3f}" in [c.value for c in at.caption]
    notes = [t.value for t in at.text if t.value.startswith("• ")]
    assert notes == [f"• {n}" for n in report["notes"]]
    titles = " ".join(str(c.proto.spec) for c in at.get("vega_lite_chart"))
    for title in (
        "Cohen's kappa between AoDs",
        "Krippendorff's alpha",
        "Agreement between two AoDs",
        "Label mix per AoD",
    ):
        assert json.dumps(title)[1:-1] in titles, title
    per_aod = _frame_with(at, "labeler", "median_seconds", "agreement_with_model", "gold_accuracy")
    assert per_aod is not None
    assert sorted(per_aod["labeler"]) == sorted(labels["labeler"].unique())
    assert per_aod["agreement_with_model"].isna().all(), "no out-of-fold predictions stored: NaN, not in-sample"
    assert dict(zip(per_aod["labeler"], per_aod["n_labels"])) == labels.groupby("labeler").size().to_dict()


def test_report_is_cached_until_a_new_label(seeded_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = lead_report.agreement_overview

    def counting(**kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        return real(**kwargs)

    monkeypatch.setattr(lead_report, "agreement_overview", counting)
    at = _page("t_aod")
    at.run()
    at.run()
    _ok(at)
    assert len(calls) == 1, "reruns without a new label reuse the cached report"
    before = _metric(at, "EBs rated by ≥ 2")
    engine = get_engine(seeded_db)
    with session_scope(engine, write=True) as session:
        # A second label on an EB that had one: one more shared EB.
        eb_id = (
            session.connection()
            .execute(text("SELECT eb_id FROM label GROUP BY eb_id HAVING COUNT(*) = 1 ORDER BY eb_id LIMIT 1"))
            .scalar_one()
        )
        record_label(session=session, eb_id=eb_id, labeler="t_second", value="Fail")
    at.run()
    _ok(at)
    assert len(calls) == 2
    assert int(_metric(at, "EBs rated by ≥ 2")) == int(before) + 1


def test_model_tab_shows_the_latest_finished_run(seeded_db: str) -> None:
    matrix = [[30, 3, 2], [4, 6, 2], [1, 1, 9]]
    with session_scope(get_engine(seeded_db), write=True) as session:
        session.add(
            ModelRun(
                version=1,
                status="done",
                n_labels=40,
                finished_at=utcnow(),
                metrics={"confusion_matrix": [[9, 1, 0], [5, 1, 0], [0, 0, 2]]},
            )
        )
        session.add(
            ModelRun(
                version=2,
                status="done",
                n_labels=58,
                finished_at=utcnow(),
                metrics={
                    "confusion_matrix": matrix,
                    "labels": ["Pass", "SemiPass", "Fail"],
                    "per_class_recall": {"Pass": 30 / 35, "SemiPass": 0.5, "Fail": 9 / 11},
                },
            )
        )
    at = _page("t_aod")
    assert _metric(at, "Model version") == "v2"
    assert _metric(at, "κ vs consensus") == f"{lead_report.kappa_from_confusion(matrix):.3f}"
    assert _metric(at, "SemiPass recall") == "0.500"
    history = _frame_with(at, "version", "kappa", "recall_fail")
    assert history is not None and history["version"].tolist() == [2, 1]


# --- adjudication -------------------------------------------------------------------------------------------


def test_lead_adjudicates_an_eb_from_the_queue(seeded_db: str) -> None:
    engine = get_engine(seeded_db)
    _make_lead(seeded_db)
    queue = _queue(seeded_db)
    assert not queue.empty, "the simulated AoDs disagree somewhere"
    eb_id, uid = int(queue.loc[0, "eb_id"]), str(queue.loc[0, "uid"])
    with session_scope(engine, write=True) as session:
        record_label(session=session, eb_id=eb_id, labeler="t_evil", value="SemiPass", comment=EVIL, seconds_on_eb=12)
    at = _page("t_lead")
    at.selectbox(key="qa0-adj-pick").select(uid).run()
    _ok(at)
    assert at.text_input(key="qa0-adj-uid").value == uid
    detail = _frame_with(at, "labeler", "comment", "kind")
    assert detail is not None
    with session_scope(engine) as session:
        expected = adj.labels_for_eb(session=session, eb_id=eb_id)
    assert sorted(detail["labeler"]) == sorted(expected["labeler"])
    assert EVIL in detail["comment"].tolist(), "user text is shown verbatim, as data"
    assert "<img" not in _shown_text(at) and "**bold**" not in _shown_text(at)
    # One click from the panel to the EB's review view.
    from urllib.parse import parse_qs, urlsplit

    links = [b.proto.url for b in at.get("link_button")]
    assert [parse_qs(urlsplit(u).query) for u in links] == [{"eb": [uid], "labeler": ["t_lead"]}]

    # No value chosen yet: refused, nothing stored (there is no silent default).
    at.text_input(key="qa0-adj-reason").input("antenna DV08 Tsys spike in scans 4-6")
    at.button(key="qa0-adj-go").click().run()
    assert any("final QA0 value" in m for m in _messages(at, "error"))
    at.button_group(key="qa0-adj-value").set_value("Fail")
    at.text_input(key="qa0-adj-reason").input("antenna DV08 Tsys spike in scans 4-6")
    at.button(key="qa0-adj-go").click().run()
    _ok(at)
    assert any("Adjudicated" in m for m in _messages(at, "success"))
    with session_scope(engine) as session:
        rows = (
            session.connection()
            .execute(
                text(
                    "SELECT l.eb_id, l.value, l.reason, l.kind FROM label l JOIN labeler b ON b.id = l.labeler_id "
                    "WHERE b.name = 't_lead'"
                )
            )
            .fetchall()
        )
        cons = consensus(session).set_index("eb_id")
    assert [tuple(r) for r in rows] == [(eb_id, "Fail", "antenna DV08 Tsys spike in scans 4-6", "adjudication")]
    assert (cons.loc[eb_id, "value"], cons.loc[eb_id, "source"]) == ("Fail", "adjudication")
    assert eb_id not in _queue(seeded_db)["eb_id"].tolist()
    queue_shown = _frame_with(at, "uid", "values", "leaning")
    assert queue_shown is None or uid not in queue_shown["uid"].tolist(), "the page's queue is refreshed"
    detail = _frame_with(at, "labeler", "comment", "kind")
    assert detail is not None and "adjudication" in detail["kind"].tolist()


def test_adjudication_needs_a_reason(seeded_db: str) -> None:
    _make_lead(seeded_db)
    uid = str(_queue(seeded_db).loc[0, "uid"])
    at = _page("t_lead")
    at.text_input(key="qa0-adj-uid").input(uid)
    at.button_group(key="qa0-adj-value").set_value("Pass")
    at.button(key="qa0-adj-go").click().run()
    _ok(at)
    assert any("reason is required" in m for m in _messages(at, "error"))
    with session_scope(get_engine(seeded_db)) as session:
        n = session.connection().execute(text("SELECT COUNT(*) FROM label WHERE kind = 'adjudication'")).scalar_one()
    assert n == 0


def test_aod_sees_the_queue_read_only(seeded_db: str) -> None:
    at = _page("t_aod")
    shown = _frame_with(at, "uid", "source", "band", "start_time")
    assert shown is not None and shown["uid"].tolist() == _queue(seeded_db)["uid"].tolist()
    # Blind review: which EBs await a lead, never how they were labelled or how many labels they have.
    assert not set(shown.columns) & {"values", "majority", "leaning", "n_labels", "adjudicated_value"}
    # One click from the queue to each EB's review view.
    from urllib.parse import parse_qs, urlsplit

    for link, uid in zip(shown["review"], shown["uid"]):
        assert parse_qs(urlsplit(link).query) == {"eb": [uid], "labeler": ["t_aod"]}
    assert "None" not in shown.astype(str).to_numpy().ravel().tolist(), "blank cells are empty, not 'None'"
    assert not _buttons(at) & {"qa0-adj-go", "qa0-gold-mark", "qa0-gold-unmark", "qa0-role-go"}
    assert not [s for s in at.selectbox if s.key == "qa0-adj-pick"]
    assert any("Only team leads can adjudicate" in m for m in _messages(at, "info"))
    assert "Gold EBs" not in [t.label for t in at.tabs], "gold answers stay hidden from AoDs"


def test_lead_who_lost_the_role_gets_the_library_refusal(seeded_db: str) -> None:
    _make_lead(seeded_db, "t_was_lead")
    _make_lead(seeded_db, "t_other_lead")  # the lead who demotes them (the last lead cannot be demoted)
    uid = str(_queue(seeded_db).loc[0, "uid"])
    at = _page("t_was_lead")
    at.text_input(key="qa0-adj-uid").input(uid)
    at.text_input(key="qa0-adj-reason").input("looks fine")
    at.button_group(key="qa0-adj-value").set_value("Pass")
    with session_scope(get_engine(seeded_db), write=True) as session:
        set_role(session=session, name="t_was_lead", role="aod")  # another lead demoted them meanwhile
    at.button(key="qa0-adj-go").click().run()
    _ok(at)
    assert any("not a team lead" in m for m in _messages(at, "error"))
    with session_scope(get_engine(seeded_db)) as session:
        n = session.connection().execute(text("SELECT COUNT(*) FROM label WHERE kind = 'adjudication'")).scalar_one()
    assert n == 0


# --- gold EBs -----------------------------------------------------------------------------------------------


def test_lead_marks_and_unmarks_a_gold_eb(seeded_db: str) -> None:
    engine = get_engine(seeded_db)
    _make_lead(seeded_db)
    with session_scope(engine) as session:
        labels = current_labels(session, include_archive=False)
        eb_id = int(labels.groupby("eb_id").size().sort_index().loc[lambda s: s >= 2].index[0])
        uid = (
            session.connection()
            .execute(text("SELECT uid FROM execution_block WHERE id = :i"), {"i": eb_id})
            .scalar_one()
        )
    mine = labels[labels["eb_id"] == eb_id]
    at = _page("t_lead")

    at.text_input(key="qa0-gold-uid").input(uid)
    at.button(key="qa0-gold-mark").click().run()
    assert any("Choose the right answer" in m for m in _messages(at, "error"))
    at.button_group(key="qa0-gold-value").set_value("Fail")
    at.button(key="qa0-gold-mark").click().run()
    assert any("reason is required" in m for m in _messages(at, "error"))
    with session_scope(engine) as session:
        assert adj.gold_table(session=session).empty

    at.text_input(key="qa0-gold-reason").input("three dead antennas")
    at.button(key="qa0-gold-mark").click().run()
    _ok(at)
    with session_scope(engine) as session:
        gold = adj.gold_table(session=session)
    assert gold[["uid", "value", "set_by", "reason"]].values.tolist() == [
        [uid, "Fail", "t_lead", "three dead antennas"]
    ]
    table = _frame_with(at, "uid", "value", "set_by")
    assert table is not None and table["uid"].tolist() == [uid]
    scores = _frame_with(at, "labeler", "n", "correct", "accuracy")
    expected = {row.labeler: float(row.value == "Fail") for row in mine.itertuples()}
    assert scores is not None and dict(zip(scores["labeler"], scores["accuracy"])) == expected
    per_aod = _frame_with(at, "labeler", "gold_n", "gold_accuracy").set_index("labeler")
    assert {name: int(per_aod.loc[name, "gold_n"]) for name in expected} == {name: 1 for name in expected}

    at.button(key="qa0-gold-unmark").click().run()
    _ok(at)
    with session_scope(engine) as session:
        assert adj.gold_table(session=session).empty
    assert any("No gold EBs yet" in c.value for c in at.caption)


def test_accepted_suggestions_are_left_out_until_the_box_is_ticked(seeded_db: str) -> None:
    from qa0_label.automation import accept

    with session_scope(get_engine(seeded_db), write=True) as session:
        frame = current_labels(session, include_archive=False)
        multi = frame[frame.duplicated("eb_id", keep=False)]
        accept.mark_accepted(session=session, label_id=int(multi["event_id"].iloc[0]), run_id=None, suggested="Pass")
        n_all = agreement.agreement_report(frame, n_boot=10)["n_labels"]
    at = _page("t_aod")
    assert any("1 accepted model suggestions (key A) are left out" in c.value for c in at.caption)
    assert f"{n_all - 1} labels" in " ".join(c.value for c in at.caption)
    at.checkbox(key="qa0-agreement-include-accepted").check().run()
    _ok(at)
    assert f"{n_all} labels" in " ".join(c.value for c in at.caption)
    assert not any("are left out" in c.value for c in at.caption)


# --- roster -----------------------------------------------------------------------------------------------


def _roles(url: str) -> dict[str, str]:
    with session_scope(get_engine(url)) as session:
        rows = session.connection().execute(text("SELECT name, role FROM labeler")).all()
    return {str(n): str(r) for n, r in rows}


def test_set_role_picks_from_the_roster_and_keeps_a_lead(seeded_db: str) -> None:
    _make_lead(seeded_db)
    before = _roles(seeded_db)
    at = _page("t_lead")
    pick = at.selectbox(key="qa0-role-name")
    # Only people already in the roster (no free text a typo could turn into a new labeler), no system names.
    assert sorted(pick.options) == sorted(n for n in before if n.casefold() not in ("archive", "model"))
    # The only lead steps down: refused with the library's reason, shown as an error, nothing changes.
    pick.set_value("t_lead")
    at.selectbox(key="qa0-role-role").set_value("aod")
    at.button(key="qa0-role-go").click().run()
    _ok(at)
    errors = [m.replace("\\", "") for m in _messages(at, "error")]  # messages are markdown-escaped
    assert any("t_lead is the last lead: make someone else a lead first" in m for m in errors)
    assert _roles(seeded_db) == before
    aod = next(n for n, r in before.items() if r == "aod" and n.casefold() not in ("archive", "model"))
    at.selectbox(key="qa0-role-name").set_value(aod)
    at.selectbox(key="qa0-role-role").set_value("lead")
    at.button(key="qa0-role-go").click().run()
    _ok(at)
    assert any(f"{aod} is now a team lead" in m.replace("\\", "") for m in _messages(at, "success"))
    assert _roles(seeded_db) == {**before, aod: "lead"}
