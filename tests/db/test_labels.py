"""Label events: append-only, idempotent clicks, undo, skips, consensus rules."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from sqlmodel import Session, select

from qa0_label.store import labels
from qa0_label.store.db import session_scope
from qa0_label.store.models import ExecutionBlock, Label, Lease, Skip, utcnow


def _add_ebs(engine, n: int = 3) -> list[int]:
    with session_scope(engine) as session:
        ebs = [
            ExecutionBlock(
                uid=f"uid://A002/X1/X{i:x}",
                source="J1256-0547",
                band=3,
                start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
            )
            for i in range(n)
        ]
        session.add_all(ebs)
        session.flush()
        return [eb.id for eb in ebs]


@pytest.mark.parametrize(
    "raw,expected", [("pass", "Pass"), ("SEMIPASS", "SemiPass"), (" semi-pass ", "SemiPass"), ("Fail", "Fail")]
)
def test_values_are_case_insensitive(raw: str, expected: str) -> None:
    assert labels.normalize_value(raw) == expected


@pytest.mark.parametrize("raw", ["", "ok", "Unset", "Pending", "passed"])
def test_unknown_values_are_refused(raw: str) -> None:
    with pytest.raises(labels.LabelError):
        labels.normalize_value(raw)


def test_double_submitted_click_stores_one_event(engine) -> None:
    (eb,) = _add_ebs(engine, 1)
    with session_scope(engine) as s:
        first = labels.record_label(session=s, eb_id=eb, labeler="ana", value="Pass", client_event_id="click-1")
    with session_scope(engine) as s:
        again = labels.record_label(session=s, eb_id=eb, labeler="ana", value="Fail", client_event_id="click-1")
        assert again.id == first.id
        assert len(s.exec(select(Label)).all()) == 1


def test_revision_keeps_history_and_newest_counts(engine) -> None:
    (eb,) = _add_ebs(engine, 1)
    with session_scope(engine) as s:
        labels.record_label(session=s, eb_id=eb, labeler="ana", value="Pass")
        labels.record_label(session=s, eb_id=eb, labeler="ana", value="Fail")
        cur = labels.current_labels(s)
        assert cur["value"].tolist() == ["Fail"]
        assert len(s.exec(select(Label)).all()) == 2


def test_undo_appends_and_restores_previous_value(engine) -> None:
    a, b = _add_ebs(engine, 2)
    with session_scope(engine) as s:
        labels.record_label(session=s, eb_id=a, labeler="ana", value="Pass")
        labels.record_label(session=s, eb_id=a, labeler="ana", value="SemiPass")
        labels.record_label(session=s, eb_id=b, labeler="ana", value="Fail")
    with session_scope(engine) as s:
        undo = labels.undo_last(session=s, labeler="ana")
        assert undo is not None and undo.eb_id == b and undo.value is None
        assert set(labels.current_labels(s)["eb_id"]) == {a}
        undo2 = labels.undo_last(session=s, labeler="ana")
        assert undo2.eb_id == a and undo2.value == "Pass"
        assert labels.current_labels(s)["value"].tolist() == ["Pass"]
        assert len(s.exec(select(Label)).all()) == 5  # nothing deleted


def test_undo_with_nothing_to_undo_returns_none(engine) -> None:
    with session_scope(engine) as s:
        assert labels.undo_last(session=s, labeler="nobody") is None


def test_consensus_majority_tie_and_adjudication(engine) -> None:
    a, b, c = _add_ebs(engine, 3)
    with session_scope(engine) as s:
        labels.set_role(session=s, name="lead", role="lead", create=True)
        for who, val in [("x", "Pass"), ("y", "Pass"), ("z", "Fail")]:
            labels.record_label(session=s, eb_id=a, labeler=who, value=val)
        for who, val in [("x", "Pass"), ("y", "SemiPass")]:
            labels.record_label(session=s, eb_id=b, labeler=who, value=val)
        for who, val in [("x", "Pass"), ("y", "Pass")]:
            labels.record_label(session=s, eb_id=c, labeler=who, value=val)
        labels.record_label(session=s, eb_id=c, labeler="lead", value="Fail", kind="adjudication", reason="Tsys spike")
        cons = labels.consensus(s).set_index("eb_id")
    assert cons.loc[a, "value"] == "Pass" and cons.loc[a, "source"] == "majority"
    assert cons.loc[b, "value"] == "SemiPass"  # tie: the more cautious value
    assert cons.loc[c, "value"] == "Fail" and cons.loc[c, "source"] == "adjudication"


def test_aod_cannot_adjudicate(engine) -> None:
    (eb,) = _add_ebs(engine, 1)
    with session_scope(engine) as s:
        with pytest.raises(labels.NotAllowed):
            labels.record_label(session=s, eb_id=eb, labeler="ana", value="Fail", kind="adjudication", reason="x")


def test_adjudication_needs_reason(engine) -> None:
    (eb,) = _add_ebs(engine, 1)
    with session_scope(engine) as s:
        labels.set_role(session=s, name="lead", role="lead", create=True)
        with pytest.raises(labels.LabelError):
            labels.record_label(session=s, eb_id=eb, labeler="lead", value="Fail", kind="adjudication", reason=" ")


def test_label_and_skip_release_the_lease(engine) -> None:
    a, b = _add_ebs(engine, 2)
    with session_scope(engine) as s:
        ana = labels.get_or_create_labeler(session=s, name="ana")
        s.add(Lease(eb_id=a, labeler_id=ana.id, expires_at=utcnow()))
        s.add(Lease(eb_id=b, labeler_id=ana.id, expires_at=utcnow()))
    with session_scope(engine) as s:
        labels.record_label(session=s, eb_id=a, labeler="ana", value="Pass")
        labels.record_skip(session=s, eb_id=b, labeler="ana")
        labels.record_skip(session=s, eb_id=b, labeler="ana")  # a repeated skip is harmless
    with session_scope(engine) as s:
        assert s.exec(select(Lease)).all() == []
        assert len(s.exec(select(Skip)).all()) == 1


def test_returned_event_is_the_stored_row(engine) -> None:
    (eb,) = _add_ebs(engine, 1)
    with session_scope(engine, write=True) as s:
        event = labels.record_label(
            session=s,
            eb_id=eb,
            labeler=" ana ",
            value="semipass",
            comment="phase jumps",
            seconds_on_eb=12.5,
            client_event_id="click-9",
        )
    with session_scope(engine) as s:
        stored = s.exec(select(Label)).one()
        ana = labels.get_or_create_labeler(session=s, name="ana")
    assert event.id == stored.id and event.labeler_id == stored.labeler_id == ana.id
    for field in ("eb_id", "value", "comment", "reason", "seconds_on_eb", "kind", "client_event_id", "reverts_id"):
        assert getattr(event, field) == getattr(stored, field), field
    assert (event.value, event.kind, event.comment) == ("SemiPass", "review", "phase jumps")
    assert abs((event.created_at - stored.created_at.replace(tzinfo=timezone.utc)).total_seconds()) < 1e-3


def test_label_releases_only_the_labelers_own_lease(engine) -> None:
    a, b = _add_ebs(engine, 2)
    with session_scope(engine) as s:
        bob = labels.get_or_create_labeler(session=s, name="bob")
        s.add(Lease(eb_id=a, labeler_id=bob.id, expires_at=utcnow()))
    with session_scope(engine) as s:
        labels.record_label(session=s, eb_id=a, labeler="ana", value="Pass")  # overlap: ana labels bob's EB
    with session_scope(engine) as s:
        assert [(x.eb_id, x.labeler_id) for x in s.exec(select(Lease)).all()] == [(a, bob.id)]


def test_label_sees_unflushed_changes_of_the_same_session(engine) -> None:
    # record_label reads through prebuilt Core queries, which do not autoflush: a role given in this session
    # and not yet flushed must still count.
    (eb,) = _add_ebs(engine, 1)
    with session_scope(engine) as s:
        labels.get_or_create_labeler(session=s, name="lena")
    with session_scope(engine) as s:
        lena = s.exec(select(labels.Labeler).where(labels.Labeler.name == "lena")).one()
        lena.role = "lead"  # dirty, not flushed
        event = labels.record_label(session=s, eb_id=eb, labeler="lena", value="Fail", kind="adjudication", reason="r")
        assert event.kind == "adjudication"


def test_click_racing_its_twin_stores_one_event(engine) -> None:
    # The twin's transaction has inserted the event but not committed when this one looks: on PostgreSQL the
    # look finds nothing and the insert waits, then yields to the twin; on SQLite it waits for the write lock.
    (eb,) = _add_ebs(engine, 1)
    twin = Session(engine)
    first = labels.record_label(session=twin, eb_id=eb, labeler="ana", value="Pass", client_event_id="click-2")
    got: list[object] = []

    def second() -> None:
        try:
            with session_scope(engine, write=True) as s:
                got.append(
                    labels.record_label(session=s, eb_id=eb, labeler="ana", value="Pass", client_event_id="click-2").id
                )
        except BaseException as exc:  # noqa: BLE001 - asserted below
            got.append(exc)

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.5)  # the second click is now waiting on the first one's transaction
    twin.commit()
    twin.close()
    t.join(timeout=30)
    assert got == [first.id]
    with session_scope(engine) as s:
        assert len(s.exec(select(Label)).all()) == 1


def test_unknown_eb_is_refused(engine) -> None:
    with session_scope(engine) as s:
        with pytest.raises(labels.LabelError):
            labels.record_label(session=s, eb_id=999, labeler="ana", value="Pass")
        with pytest.raises(labels.LabelError):
            labels.eb_id_for_uid(session=s, uid="uid://nope")


def test_names_are_trimmed_and_validated(engine) -> None:
    with session_scope(engine) as s:
        assert labels.get_or_create_labeler(session=s, name="  Ana   Li ").name == "Ana Li"
        with pytest.raises(labels.LabelError):
            labels.get_or_create_labeler(session=s, name="   ")
        with pytest.raises(labels.LabelError):
            labels.get_or_create_labeler(session=s, name="x" * 81)


def test_sql_consensus_agrees_with_the_python_rule(engine) -> None:
    # Random votes, revisions, undos and adjudications: labels.consensus_select (what pages use) must give the
    # same value per EB as labels.consensus (what training uses), and consensus_of the same for a subset.
    import random

    from qa0_label.store.models import Labeler

    rng = random.Random(7)
    ebs = _add_ebs(engine, 40)
    with session_scope(engine) as s:
        s.add(Labeler(name="lea", role="lead"))
    for eb in ebs:
        with session_scope(engine) as s:
            for who in rng.sample(["ana", "bo", "cy", "di"], rng.randint(0, 4)):
                for _ in range(rng.randint(1, 2)):
                    labels.record_label(
                        session=s, eb_id=eb, labeler=who, value=rng.choice(["Pass", "SemiPass", "Fail"])
                    )
                if rng.random() < 0.2:
                    labels.undo_last(session=s, labeler=who)
            if rng.random() < 0.15:
                labels.record_label(
                    session=s,
                    eb_id=eb,
                    labeler="lea",
                    value=rng.choice(["Pass", "Fail"]),
                    kind="adjudication",
                    reason="r",
                )
    with session_scope(engine) as s:
        python = dict(zip(labels.consensus(s)["eb_id"].astype(int), labels.consensus(s)["value"]))
        sql = {int(e): v for e, v in s.connection().execute(labels.consensus_select()).fetchall()}
        subset = ebs[::3]
        some = labels.consensus_of(s, subset)
    assert sql == python and len(python) > 20
    assert some == {e: v for e, v in python.items() if e in set(subset)}


def test_undo_takes_back_the_newest_action_skip_or_label(engine) -> None:
    a, b, c = _add_ebs(engine, 3)
    with session_scope(engine) as s:
        labels.record_label(session=s, eb_id=a, labeler="ana", value="Pass")
        labels.record_skip(session=s, eb_id=b, labeler="ana")
    with session_scope(engine) as s:
        assert labels.undo_last_action(session=s, labeler="ana") == ("skip", b)  # not the Pass before it
    with session_scope(engine) as s:
        assert s.exec(select(Skip)).all() == []  # offered to ana again ...
        lease = s.get(Lease, b)
        assert lease is not None and lease.labeler_id == labels.find_labeler(session=s, name="ana").id  # ... now
        assert labels.current_labels(s)["value"].tolist() == ["Pass"]
        assert labels.undo_last_action(session=s, labeler="ana", client_event_id="u1") == ("label", a)
        assert labels.undo_last_action(session=s, labeler="ana", client_event_id="u1") == ("label", a)  # repeat
        assert labels.current_labels(s).empty
        labels.record_skip(session=s, eb_id=c, labeler="bob")  # someone else's skip is not ana's to undo
        assert labels.undo_last_action(session=s, labeler="ana") is None
        assert labels.undo_last_action(session=s, labeler="nobody") is None
        assert len(s.exec(select(Skip)).all()) == 1


@pytest.mark.parametrize(
    ("comment", "refused"),
    [
        ("x" * 2001, "longer than 2,000"),
        ("red \x1b[31malert\x1b[0m", "control character"),
        ("looks fine \u202egnol", "bidi"),
        ("bad \udcff byte", "surrogate"),
    ],
    ids=["too-long", "terminal-escape", "bidi-override", "undecodable-argument"],
)
def test_comments_are_checked_like_names(engine, comment: str, refused: str) -> None:
    (eb,) = _add_ebs(engine, 1)
    with session_scope(engine) as s:
        with pytest.raises(labels.LabelError, match=refused):
            labels.record_label(session=s, eb_id=eb, labeler="ana", value="Pass", comment=comment)
    with session_scope(engine) as s:
        assert labels.current_labels(s).empty


def test_a_comment_keeps_its_lines_and_emoji_and_is_trimmed(engine) -> None:
    (eb,) = _add_ebs(engine, 1)
    text = "DV12 Tsys spike\n\tscan 3 \U0001f469\u200d\U0001f52c"  # a line break, a tab, a ZWJ emoji
    with session_scope(engine) as s:
        labels.record_label(session=s, eb_id=eb, labeler="ana", value="Pass", comment=f"  {text}  ")
        labels.record_label(session=s, eb_id=eb, labeler="bob", value="Pass", comment="   ")
    with session_scope(engine) as s:
        assert sorted(s.exec(select(Label.comment)).all(), key=str) == [text, None]
