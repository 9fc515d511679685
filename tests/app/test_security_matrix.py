"""Authorization matrix and blind review, driven through the pages as each kind of user (AppTest).

Users: an anonymous URL name (a new ``?labeler=`` that is even listed in ``[qa0].leads``), an AoD with labels,
a team lead who has not unlocked, and a lead who unlocked with their passphrase. Only the unlocked lead may
do lead actions or see other people's labels on EBs they have not labelled; every other cell is a refusal
and must leak no label, comment or count.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from qa0_label.access.authz import LEAD_ACTIONS, Requester, authorize
from qa0_label.lead import adjudication as adj
from qa0_label.store.db import dispose_engines, get_engine, session_scope
from qa0_label.store.labels import NotAllowed
from qa0_label.ui.data import labels_csv
from tests.app.auth import PASSPHRASE, make_lead, unlock

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60
AOD = "Valentina Rojas"
LEAD = "t_lead"
NEWCOMER = "t_newcomer"
PERSONAS = ("anonymous", "aod", "lead_locked", "lead_unlocked")
NAME = {"anonymous": NEWCOMER, "aod": AOD, "lead_locked": LEAD, "lead_unlocked": LEAD}
LEAD_BUTTONS = {"adjudicate": "qa0-adj-go", "gold": "qa0-gold-mark", "set_role": "qa0-role-go", "merge": "qa0-merge-go"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 simulated EBs, 160 labels from 4 AoDs, a lead with a passphrase."""
    from qa0_label.sim.simulate import simulate

    path = tmp_path_factory.mktemp("matrix") / "template.sqlite"
    url = f"sqlite:///{path}"
    engine = get_engine(url)
    simulate(engine=engine, n=200, seed=5, aods=4, labeled=160)
    make_lead(url, LEAD)
    engine.dispose()
    dispose_engines()
    return path


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: Path) -> Iterator[str]:
    path = tmp_path / "matrix.sqlite"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("QA0_DATABASE_URL", url)
    monkeypatch.setenv("QA0_SEED_DEMO", "0")
    monkeypatch.setenv("QA0_AUTO_RETRAIN", "0")
    monkeypatch.setenv("QA0_MODEL_DIR", str(tmp_path / "models"))
    yield url
    dispose_engines()


def _blind_eb(url: str) -> tuple[int, str]:
    """An EB with labels from others, none from AOD: what blind review must hide from AOD."""
    with session_scope(get_engine(url)) as s:
        row = (
            s.connection()
            .execute(
                text(
                    "SELECT e.id, e.uid FROM execution_block e WHERE EXISTS (SELECT 1 FROM label l WHERE l.eb_id = e.id)"
                    " AND NOT EXISTS (SELECT 1 FROM label l JOIN labeler b ON b.id = l.labeler_id"
                    " WHERE l.eb_id = e.id AND b.name = :aod) ORDER BY e.id LIMIT 1"
                ),
                {"aod": AOD},
            )
            .one()
        )
    return int(row[0]), str(row[1])


def _open(persona: str, page: str, **params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT)
    at.query_params["labeler"] = NAME[persona]
    for key, value in params.items():
        at.query_params[key] = value
    at.session_state["qa0_confirmed_new_name"] = NAME[persona].casefold()
    # Even listed as a lead in secrets, a name from the URL gains no role without OIDC login.
    at.secrets["qa0"] = {"leads": [NEWCOMER]}
    at.run()
    if persona == "lead_unlocked":
        unlock(at)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _requester(at: AppTest, persona: str) -> Requester:
    """The requester the page acts for (what its callbacks pass to the library)."""
    held = at.session_state["qa0_unlocked"] if "qa0_unlocked" in at.session_state else None
    if held:
        return Requester(name=held["name"], proof="unlock", unlocked_at=held["at"])
    return Requester(name=NAME[persona])


def _frame(at: AppTest, *columns: str) -> pd.DataFrame | None:
    frames = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    return frames[0] if frames else None


@pytest.mark.parametrize("persona", PERSONAS)
def test_lead_actions_and_blind_labels_on_every_surface(db: str, persona: str) -> None:
    allowed = persona == "lead_unlocked"
    eb_id, uid = _blind_eb(db)
    leaks: list[str] = []

    # Agreement page: the lead controls exist only for the unlocked lead; the queue shows no counts to others.
    at = _open(persona, "qa0_label/ui/agreement.py")
    buttons = {str(b.key) for b in at.button}
    for action, key in LEAD_BUTTONS.items():
        assert (key in buttons) == allowed, (persona, action)
    queue = _frame(at, "uid", "source", "band")
    assert queue is not None
    if not allowed and set(queue.columns) & {"values", "majority", "n_labels"}:
        leaks.append("adjudication queue counts")

    # The library refuses whatever the page would send for this user (the matrix at the one lead check).
    requester = _requester(at, persona)
    with session_scope(get_engine(db)) as s:
        for action in LEAD_ACTIONS:
            try:
                authorize(session=s, requester=requester, action=action)
                ok = True
            except NotAllowed:
                ok = False
            assert ok == allowed, (persona, action)
    with pytest.raises(NotAllowed) if not allowed else _nothing():
        with session_scope(get_engine(db), write=True) as s:
            adj.adjudicate(session=s, eb_id=eb_id, lead=requester, value="Fail", reason="matrix")

    # Data page: counts, summary and label-state filter of an EB the user has not labelled.
    at = _open(persona, "qa0_label/ui/data.py")
    at.text_input(key="qa0-f-uid").input(uid).run()
    table = _frame(at, "uid", "n_labels", "labels")
    assert table is not None and table["uid"].tolist() == [uid]
    if not allowed and (int(table["n_labels"].iloc[0]) or str(table["labels"].iloc[0])):
        leaks.append("browse counts")
    at.selectbox(key="qa0-f-state").set_value("labelled").run()
    after = _frame(at, "uid", "n_labels", "labels")
    if not allowed and after is not None and len(after):
        leaks.append("browse label-state filter")
    download = pd.read_csv(io.BytesIO(labels_csv(db, requester, False)))
    others = download[download["labeler"] != NAME[persona]]
    if not allowed and len(others):
        leaks.append("download")
    if allowed:
        assert len(others) > 0 and download["labeler"].nunique() > 1

    # Review view (?eb=UID): other people's labels only for the unlocked lead.
    at = _open(persona, "qa0_label/ui/label.py", eb=uid)
    labels = _frame(at, "labeler", "value", "comment")
    seen_others = labels is not None and bool((labels["labeler"] != NAME[persona]).any())
    if not allowed and seen_others:
        leaks.append("review view")
    if allowed:
        assert seen_others

    assert leaks == [], f"{persona}: blind labels leaked through {leaks}"


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_url_name_listed_in_secrets_stays_an_aod(db: str) -> None:
    _open("anonymous", "qa0_label/ui/agreement.py")
    with session_scope(get_engine(db)) as s:
        role = s.connection().execute(text("SELECT role FROM labeler WHERE name = :n"), {"n": NEWCOMER}).scalar_one()
    assert role == "aod"


def test_wrong_passphrase_is_refused_and_rate_limited_across_sessions(db: str) -> None:
    at = _open("lead_locked", "qa0_label/ui/agreement.py")
    for _ in range(5):
        unlock(at, "not the passphrase")
    assert "qa0_unlocked" not in at.session_state
    # A new browser session (another AppTest) with the RIGHT passphrase is still refused within the minute.
    again = _open("lead_locked", "qa0_label/ui/agreement.py")
    unlock(again, PASSPHRASE)
    assert "qa0_unlocked" not in again.session_state
    assert any("too many failed tries" in str(t.value) for t in again.toast)
    assert "qa0-adj-go" not in {str(b.key) for b in again.button}


def test_new_url_name_asks_before_it_is_created(db: str) -> None:
    at = AppTest.from_file(str(ROOT / "qa0_label/ui/label.py"), default_timeout=TIMEOUT)
    at.query_params["labeler"] = "valentina rojas"  # an existing person in another case: no question
    at.run()
    assert not [b for b in at.button if b.key == "qa0_confirm_new"]
    at = AppTest.from_file(str(ROOT / "qa0_label/ui/label.py"), default_timeout=TIMEOUT)
    at.query_params["labeler"] = "Brand New"
    at.run()
    assert [b for b in at.button if b.key == "qa0_confirm_new"]
    with session_scope(get_engine(db)) as s:
        assert not s.connection().execute(text("SELECT 1 FROM labeler WHERE name = 'Brand New'")).first()
    at.button(key="qa0_confirm_new").click().run()
    assert not at.exception
    with session_scope(get_engine(db)) as s:
        assert s.connection().execute(text("SELECT 1 FROM labeler WHERE name = 'Brand New'")).first()


@pytest.mark.parametrize("bad", ["archive", "Model", "ab\u200bc", "evil\u202eman", "\x1b[31mred"])
def test_refused_url_names_get_a_clear_message(db: str, bad: str) -> None:
    at = AppTest.from_file(str(ROOT / "qa0_label/ui/label.py"), default_timeout=TIMEOUT)
    at.query_params["labeler"] = bad
    at.run()
    assert not at.exception
    assert any("?labeler= ignored" in str(w.value) for w in at.warning)
    with session_scope(get_engine(db)) as s:
        n = s.connection().execute(text("SELECT COUNT(*) FROM labeler WHERE name = :n"), {"n": bad}).scalar_one()
    assert n == 0


def test_unlocked_lead_merges_two_labelers_from_the_roster(db: str) -> None:
    at = _open("lead_unlocked", "qa0_label/ui/agreement.py")
    at.text_input(key="qa0-merge-from").input("Kenji Tanaka")
    at.text_input(key="qa0-merge-into").input(AOD)
    at.button(key="qa0-merge-go").click().run()
    assert not at.exception
    with session_scope(get_engine(db)) as s:
        names = {r[0] for r in s.connection().execute(text("SELECT name FROM labeler"))}
        history = s.connection().execute(text("SELECT kind, from_name, into_name, by_name FROM labeler_change")).all()
    assert "Kenji Tanaka" not in names
    assert [tuple(h) for h in history] == [("merge", "Kenji Tanaka", AOD, LEAD)]
    history_table = _frame(at, "kind", "from_name", "into_name", "by_name")
    assert history_table is not None and history_table["from_name"].tolist() == ["Kenji Tanaka"]
