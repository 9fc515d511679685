"""The Streamlit app through streamlit.testing (AppTest): every page renders, buttons label the right EB.

Each test gets its own SQLite file under tmp_path (QA0_DATABASE_URL) with demo seeding off (QA0_SEED_DEMO=0);
the seeded variant copies a database simulated once per module.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from qa0_label.access.authz import set_passphrase
from qa0_label.store.db import dispose_engines, get_engine, session_scope
from qa0_label.store.labels import NotAllowed, current_labels, record_label, set_role
from tests.app.auth import PASSPHRASE, has_unlock_panel, unlock

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
PAGES = {
    "label": None,  # the default page
    "agreement": "qa0_label/ui/agreement.py",
    "model": "qa0_label/ui/model.py",
    "data": "qa0_label/ui/data.py",
}
TIMEOUT = 60


def _use_db(monkeypatch: pytest.MonkeyPatch, path: Path) -> str:
    url = f"sqlite:///{path}"
    monkeypatch.setenv("QA0_DATABASE_URL", url)
    monkeypatch.setenv("QA0_SEED_DEMO", "0")
    monkeypatch.setenv("QA0_AUTO_RETRAIN", "0")  # no stray background retrains between tests
    monkeypatch.setenv("QA0_PREFETCH", "0")
    monkeypatch.setenv("QA0_MODEL_DIR", str(path.parent / "models"))
    return url


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with 200 simulated EBs and 120 labels from 4 simulated AoDs, built once per module."""
    from qa0_label.sim.simulate import simulate

    path = tmp_path_factory.mktemp("seeded") / "template.sqlite"
    engine = get_engine(f"sqlite:///{path}")
    simulate(engine=engine, n=200, seed=3, aods=4, labeled=120)
    engine.dispose()
    dispose_engines()
    return path


@pytest.fixture
def empty_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """URL of an empty database the app will use."""
    url = _use_db(monkeypatch, tmp_path / "empty.sqlite")
    yield url
    dispose_engines()


@pytest.fixture
def seeded_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded_template: Path) -> Iterator[str]:
    """URL of a private copy of the seeded database."""
    path = tmp_path / "seeded.sqlite"
    shutil.copyfile(seeded_template, path)
    url = _use_db(monkeypatch, path)
    yield url
    dispose_engines()


def _app(labeler: str | None = "t_aod", **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if labeler:
        at.query_params["labeler"] = labeler
        at.session_state["qa0_confirmed_new_name"] = str(labeler).casefold()  # as if 'Yes, create' was clicked
    for key, value in params.items():
        at.query_params[key] = value
    return at


def _open(at: AppTest, page: str) -> AppTest:
    if PAGES[page]:
        # Land on the default page without a name (cheap), then go to the page as the labeler.
        labeler = at.query_params.pop("labeler", None)
        at.run()
        if labeler:
            at.query_params["labeler"] = labeler
            at.session_state["qa0_confirmed_new_name"] = str(labeler).casefold()  # as if 'Yes, create' was clicked
        at.switch_page(PAGES[page]).run()
    else:
        at.run()
    if has_unlock_panel(at):  # a lead unlocks lead actions with their passphrase (tests/app/auth.py)
        unlock(at)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown_uid(at: AppTest) -> str:
    uids = [t.value for t in at.text if str(t.value).startswith("uid://")]
    assert len(uids) == 1, uids
    return uids[0]


def _let_time_pass(at: AppTest) -> None:
    # The page ignores presses within MIN_DWELL_S of an EB appearing (double-click guard).
    at.session_state["qa0_shown_at"] = time.time() - 5.0


def _current(url: str, labeler: str) -> dict[int, str]:
    with session_scope(get_engine(url)) as session:
        frame = current_labels(session)
    mine = frame[frame["labeler"] == labeler]
    return dict(zip(mine["eb_id"].astype(int), mine["value"]))


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_on_empty_database(empty_db: str, page: str) -> None:
    at = _open(_app(), page)
    assert at.title or at.text or at.markdown  # something was drawn
    if page == "label":
        assert any("Nothing left" in s.value for s in at.success)


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_on_seeded_database(seeded_db: str, page: str) -> None:
    at = _open(_app(), page)
    if page == "label":
        assert _shown_uid(at).startswith("uid://A")


def test_no_labeler_asks_for_a_name(empty_db: str) -> None:
    at = _open(_app(labeler=None), "label")
    assert any("Pick your name" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "qa0-btn-pass"]


@pytest.mark.slow
def test_buttons_label_the_displayed_eb(seeded_db: str) -> None:
    at = _open(_app("t_aod"), "label")
    seen: dict[str, str] = {}
    for value in ("Fail", "Pass", "SemiPass"):
        uid = _shown_uid(at)
        eb_id = at.session_state["qa0_assignment"]["eb_id"]
        if value == "SemiPass":
            at.text_input(key="qa0_comment").input("baseline 3 **low** <b>amp</b>")
        _let_time_pass(at)
        at.button(key=f"qa0-btn-{value.lower()}").click().run()
        assert not at.exception
        seen[uid] = value
        assert _shown_uid(at) != uid, "the next EB is shown after a label"
        assert at.session_state["qa0_assignment"]["eb_id"] != eb_id
    with session_scope(get_engine(seeded_db)) as session:
        rows = (
            session.connection()
            .execute(
                text(
                    "SELECT e.uid, l.value, l.comment, l.seconds_on_eb FROM label l "
                    "JOIN execution_block e ON e.id = l.eb_id JOIN labeler b ON b.id = l.labeler_id "
                    "WHERE b.name = 't_aod' ORDER BY l.id"
                )
            )
            .fetchall()
        )
    assert {r[0]: r[1] for r in rows} == seen
    assert len(rows) == 3
    assert rows[2][2] == "baseline 3 **low** <b>amp</b>"  # stored verbatim
    assert all(r[3] is not None and r[3] >= 0 for r in rows)
    assert at.session_state["qa0_seconds_per_eb"] and len(at.session_state["qa0_seconds_per_eb"]) == 3


def test_press_right_after_an_eb_appears_is_ignored(seeded_db: str) -> None:
    at = _open(_app("t_fast"), "label")
    uid = _shown_uid(at)
    at.session_state["qa0_shown_at"] = time.time() + 60  # as if the EB had only just appeared
    at.button(key="qa0-btn-pass").click().run()
    assert _shown_uid(at) == uid
    assert _current(seeded_db, "t_fast") == {}


@pytest.mark.slow
def test_skip_moves_on_and_undo_reverts(seeded_db: str) -> None:
    at = _open(_app("t_undo"), "label")
    skipped = _shown_uid(at)
    _let_time_pass(at)
    at.button(key="qa0-btn-skip").click().run()
    labelled = _shown_uid(at)
    assert labelled != skipped
    labelled_id = at.session_state["qa0_assignment"]["eb_id"]
    _let_time_pass(at)
    at.button(key="qa0-btn-pass").click().run()
    assert _current(seeded_db, "t_undo") == {labelled_id: "Pass"}
    _let_time_pass(at)
    at.button(key="qa0-btn-undo").click().run()
    assert not at.exception
    assert _shown_uid(at) == labelled, "undo shows the EB again"
    assert _current(seeded_db, "t_undo") == {}
    with session_scope(get_engine(seeded_db)) as session:
        n_skips = (
            session.connection()
            .execute(text("SELECT COUNT(*) FROM skip s JOIN labeler b ON b.id = s.labeler_id WHERE b.name = 't_undo'"))
            .scalar_one()
        )
        kinds = [
            r[0]
            for r in session.connection().execute(
                text(
                    "SELECT l.kind FROM label l JOIN labeler b ON b.id = l.labeler_id WHERE b.name='t_undo' ORDER BY l.id"
                )
            )
        ]
    assert n_skips == 1
    assert kinds == ["review", "undo"], "undo appends an event, nothing is deleted"
    _let_time_pass(at)
    at.button(key="qa0-btn-fail").click().run()
    assert _current(seeded_db, "t_undo") == {labelled_id: "Fail"}


@pytest.mark.slow
def test_retrain_now_creates_a_model_run(seeded_db: str) -> None:
    from qa0_label.learning import training

    at = _open(_app("t_retrain"), "label")
    at.button(key="qa0_retrain").click().run()
    assert not at.exception
    engine = get_engine(seeded_db)
    deadline = time.time() + 120
    runs: list[object] = []
    # The retrain runs in a worker process: wait until its run exists and has finished.
    while time.time() < deadline:
        with session_scope(engine) as session:
            runs = session.connection().execute(text("SELECT status, trigger FROM model_run")).fetchall()
        if runs and not training.status(engine=engine)["running"]:
            break
        time.sleep(0.5)
    assert runs, "Retrain now started a model run"
    assert [tuple(r) for r in runs] == [("done", "manual")], runs
    at.run()
    assert not at.exception
    assert any(m.label == "Version" for m in at.metric), "the sidebar shows the new model"


def test_aod_sees_no_adjudication_and_library_refuses(seeded_db: str) -> None:
    at = _open(_app("t_aod"), "agreement")
    assert not [b for b in at.button if b.key in ("qa0-adj-go", "qa0-role-go")]
    engine = get_engine(seeded_db)
    with session_scope(engine, write=True) as session:
        eb_id = session.connection().execute(text("SELECT MIN(id) FROM execution_block")).scalar_one()
        with pytest.raises(NotAllowed):
            record_label(session=session, eb_id=eb_id, labeler="t_aod", value="Fail", kind="adjudication", reason="x")
    try:
        from qa0_label.lead.adjudication import adjudicate
    except ImportError:
        return
    with session_scope(engine, write=True) as session, pytest.raises(NotAllowed):
        adjudicate(session=session, eb_id=eb_id, lead="t_aod", value="Fail", reason="x")


def test_lead_can_adjudicate_from_the_page(seeded_db: str) -> None:
    engine = get_engine(seeded_db)
    with session_scope(engine, write=True) as session:
        set_role(session=session, name="t_lead", role="lead", create=True)
        set_passphrase(session=session, name="t_lead", passphrase=PASSPHRASE)
        uid = session.connection().execute(text("SELECT uid FROM execution_block ORDER BY id LIMIT 1")).scalar_one()
    at = _open(_app("t_lead"), "agreement")
    at.text_input(key="qa0-adj-uid").input(uid)
    at.text_input(key="qa0-adj-reason").input("antenna DV08 Tsys spike")
    at.button_group(key="qa0-adj-value").set_value("SemiPass")
    at.button(key="qa0-adj-go").click().run()
    assert not at.exception
    with session_scope(engine) as session:
        rows = (
            session.connection()
            .execute(
                text(
                    "SELECT l.value, l.reason FROM label l JOIN labeler b ON b.id = l.labeler_id "
                    "WHERE l.kind = 'adjudication' AND b.name = 't_lead'"
                )
            )
            .fetchall()
        )
    assert [(r[0], r[1]) for r in rows] == [("SemiPass", "antenna DV08 Tsys spike")]


def test_oidc_login_wins_over_the_url(empty_db: str) -> None:
    at = _app("impostor")
    at.secrets["auth"] = {"redirect_uri": "http://localhost/oauth2callback", "cookie_secret": "x" * 32}
    at.user = {"is_logged_in": True, "email": "ana@alma.cl", "name": "Ana"}
    at = _open(at, "label")
    assert "ana@alma.cl" in [t.value.split(" (")[0] for t in at.text]
    with session_scope(get_engine(empty_db)) as session:
        names = {r[0] for r in session.connection().execute(text("SELECT name FROM labeler"))}
    assert "impostor" not in names and "ana@alma.cl" in names


def test_read_only_view_keeps_overlap_blind(seeded_db: str) -> None:
    engine = get_engine(seeded_db)
    with session_scope(engine) as session:
        uid, eb_id = (
            session.connection()
            .execute(
                text(
                    "SELECT e.uid, e.id FROM execution_block e JOIN label l ON l.eb_id = e.id "
                    "WHERE l.comment IS NULL GROUP BY e.id ORDER BY e.id LIMIT 1"
                )
            )
            .one()
        )
    at = _open(_app("t_viewer", eb=uid), "label")
    assert _shown_uid(at) == uid
    assert not [b for b in at.button if b.key == "qa0-btn-pass"], "read-only: no label buttons"
    assert not at.dataframe, "an AoD who has not labelled this EB sees nobody's label"
    with session_scope(engine, write=True) as session:
        set_role(session=session, name="t_lead2", role="lead", create=True)
        set_passphrase(session=session, name="t_lead2", passphrase=PASSPHRASE)
    at = _open(_app("t_lead2", eb=uid), "label")
    assert at.dataframe and len(at.dataframe[0].value) >= 1


def test_first_start_seeds_the_demo_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_db(monkeypatch, tmp_path / "fresh.sqlite")
    monkeypatch.setenv("QA0_SEED_DEMO", "1")
    calls: list[str] = []

    def fake_seed(*, engine: object, progress: object = None) -> bool:
        calls.append(str(engine.url))  # type: ignore[attr-defined]
        progress(0.5, "halfway")  # type: ignore[operator]
        return True

    monkeypatch.setattr("qa0_label.sim.simulate.seed_demo_if_empty", fake_seed)
    at = _open(_app(labeler=None), "label")
    at.run()
    _open(_app(labeler=None), "label")  # a second browser session of the same server process
    assert calls == [f"sqlite:///{tmp_path / 'fresh.sqlite'}"]
    dispose_engines()


def test_sidebar_choices_survive_a_trip_to_other_pages(seeded_db: str) -> None:
    # Streamlit forgets a widget's state on a page that does not draw it; an AoD who turned auto-retrain off
    # (or chose a strategy, or the Phase heatmap) must find it so after looking at another page.
    at = _open(_app(), "label")
    at.toggle(key="qa0_auto_retrain").set_value(False).run()
    at.selectbox(key="qa0_strategy").set_value("entropy").run()
    at.segmented_control(key="qa0_heat_metric").set_value("Phase").run()
    for page in ("qa0_label/ui/agreement.py", "qa0_label/ui/model.py", "qa0_label/ui/data.py", "qa0_label/ui/label.py"):
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.toggle(key="qa0_auto_retrain").value is False, page
    assert at.selectbox(key="qa0_strategy").value == "entropy"
    assert at.segmented_control(key="qa0_heat_metric").value == "Phase"


def test_undo_takes_back_a_skip_and_works_at_the_end_of_the_queue(empty_db: str) -> None:
    from datetime import datetime, timezone

    from qa0_label.store.models import ExecutionBlock

    with session_scope(get_engine(empty_db), write=True) as s:
        for i in range(2):
            s.add(
                ExecutionBlock(
                    uid=f"uid://A002/Xend/X{i}",
                    source="J1256-0547",
                    band=3,
                    start_time=datetime(2024, 1, 1, i, tzinfo=timezone.utc),
                )
            )
    at = _open(_app("t_end"), "label")
    first = _shown_uid(at)
    _let_time_pass(at)
    at.button(key="qa0-btn-pass").click().run()
    skipped = _shown_uid(at)
    _let_time_pass(at)
    at.button(key="qa0-btn-skip").click().run()
    assert any("Nothing left" in s.value for s in at.success)
    at.button(key="qa0-btn-undo").click().run()  # U on the end screen: the skip, the newest action, comes back
    assert not at.exception, [e.value for e in at.exception]
    assert _shown_uid(at) == skipped
    assert len(_current(empty_db, "t_end")) == 1  # the Pass stands
    _let_time_pass(at)
    at.button(key="qa0-btn-fail").click().run()
    assert any("Nothing left" in s.value for s in at.success)
    at.button(key="qa0-btn-undo").click().run()  # then the label on it
    assert _shown_uid(at) == skipped
    _let_time_pass(at)
    at.button(key="qa0-btn-undo").click().run()  # then the Pass before it
    assert _shown_uid(at) == first
    assert _current(empty_db, "t_end") == {}


def test_a_name_added_elsewhere_a_moment_ago_is_known(seeded_db: str) -> None:
    from qa0_label.store.labels import get_or_create_labeler

    _open(_app("t_first"), "label")  # the app has read (and cached) the roster
    with session_scope(get_engine(seeded_db), write=True) as s:  # e.g. the CLI makes a lead meanwhile
        get_or_create_labeler(session=s, name="t_added_now")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["labeler"] = "t_added_now"  # no confirmation in the session: a new name would be asked about
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("New labeler" in t.value for t in at.title)
    assert _shown_uid(at).startswith("uid://")
