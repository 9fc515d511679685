"""Team-lead services on a real database: revisions in agreement, adjudication, the queue, gold EBs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from qa0_label.lead import adjudication as adj
from qa0_label.lead import agreement
from qa0_label.store import labels
from qa0_label.store.db import session_scope
from qa0_label.store.models import ExecutionBlock, GoldEB, Label, Labeler


def _add_ebs(engine, n: int) -> list[int]:
    start = datetime(2024, 5, 1, 3, 0, tzinfo=timezone.utc)
    with session_scope(engine) as s:
        ebs = [
            ExecutionBlock(
                uid=f"uid://A002/Xadj/X{i:x}",
                source="J1924-2914",
                band=3 + i % 4,
                start_time=start + timedelta(hours=i),
            )
            for i in range(n)
        ]
        s.add_all(ebs)
        s.flush()
        return [int(eb.id) for eb in ebs]


def _label(engine, eb: int, who: str, value: str) -> None:
    with session_scope(engine, write=True) as s:
        labels.record_label(session=s, eb_id=eb, labeler=who, system=who == "archive", value=value)


@pytest.fixture
def team(engine):
    """An engine with two leads (lena, leo) and 6 EBs; returns (engine, eb ids)."""
    ebs = _add_ebs(engine, 6)
    with session_scope(engine) as s:
        labels.set_role(session=s, name="lena", role="lead", create=True)
        labels.set_role(session=s, name="leo", role="lead", create=True)
    return engine, ebs


def _queue(engine) -> list[int]:
    with session_scope(engine) as s:
        return adj.disagreements(session=s)["eb_id"].tolist()


def test_revised_label_counts_with_its_new_value(team) -> None:
    engine, (e1, e2, e3, *_) = team
    for eb, a, b in ((e1, "Pass", "Fail"), (e2, "Pass", "Pass"), (e3, "SemiPass", "Pass")):
        _label(engine, eb, "ana", a)
        _label(engine, eb, "bob", b)
    _label(engine, e1, "ana", "Fail")  # ana revises her first label
    with session_scope(engine) as s:
        report = agreement.agreement_report(labels.current_labels(s, include_archive=False), n_boot=20)
    (pair,) = report["cohen_kappa"]
    assert pair["n"] == 3
    assert pair["kappa"] == pytest.approx(agreement.cohen_kappa(["Fail", "Pass", "SemiPass"], ["Fail", "Pass", "Pass"]))
    assert pair["kappa"] != pytest.approx(agreement.cohen_kappa(["Pass", "Pass", "SemiPass"], ["Fail", "Pass", "Pass"]))
    assert report["percent_agreement"] == pytest.approx(2 / 3)


def test_archive_labels_stay_out_of_agreement_and_the_queue(team) -> None:
    engine, (e1, *_) = team
    _label(engine, e1, "ana", "Pass")
    _label(engine, e1, "archive", "Fail")
    assert _queue(engine) == []
    with session_scope(engine) as s:
        assert agreement.agreement_report(labels.current_labels(s, include_archive=False), n_boot=20)["n_items"] == 0


def test_adjudication_overrides_majority(team) -> None:
    engine, (e1, *_) = team
    for who, value in (("ana", "Pass"), ("bob", "Pass"), ("cid", "Fail")):
        _label(engine, e1, who, value)
    with session_scope(engine) as s:
        assert labels.consensus(s).set_index("eb_id").loc[e1, "value"] == "Pass"
    with session_scope(engine, write=True) as s:
        event = adj.adjudicate(session=s, eb_id=e1, lead="lena", value="fail", reason="antenna DV07 phase jumps")
        assert event.kind == "adjudication" and event.value == "Fail"
    with session_scope(engine) as s:
        row = labels.consensus(s).set_index("eb_id").loc[e1]
        assert (row["value"], row["source"]) == ("Fail", "adjudication")


def test_adjudication_is_idempotent_per_click_and_needs_a_reason(team) -> None:
    engine, (e1, *_) = team
    with session_scope(engine, write=True) as s:
        first = adj.adjudicate(session=s, eb_id=e1, lead="lena", value="Pass", reason="ok", client_event_id="c1")
        again = adj.adjudicate(session=s, eb_id=e1, lead="lena", value="Pass", reason="ok", client_event_id="c1")
        assert again.id == first.id
        with pytest.raises(labels.LabelError):
            adj.adjudicate(session=s, eb_id=e1, lead="lena", value="Pass", reason="  ")
        with pytest.raises(labels.LabelError):
            adj.adjudicate(session=s, eb_id=999_999, lead="lena", value="Pass", reason="x")


@pytest.mark.parametrize("action", ["adjudicate", "mark_gold", "unmark_gold"])
@pytest.mark.parametrize("who", ["ana", "stranger"])
def test_aods_and_unknown_names_cannot_decide(team, action: str, who: str) -> None:
    engine, (e1, *_) = team
    _label(engine, e1, "ana", "Pass")  # ana exists as an AoD; "stranger" does not exist at all
    with session_scope(engine, write=True) as s:
        with pytest.raises(labels.NotAllowed):
            if action == "adjudicate":
                adj.adjudicate(session=s, eb_id=e1, lead=who, value="Fail", reason="looks bad")
            elif action == "mark_gold":
                adj.mark_gold(session=s, eb_id=e1, lead=who, value="Fail")
            else:
                adj.unmark_gold(session=s, eb_id=e1, lead=who)
    with session_scope(engine) as s:
        assert s.exec(select(Label).where(Label.kind == "adjudication")).all() == []
        assert s.exec(select(GoldEB)).all() == []
        assert s.exec(select(Labeler).where(Labeler.name == "stranger")).first() is None


def test_queue_empties_after_adjudication_and_reopens_only_when_contradicted(team) -> None:
    engine, (e1, e2, e3, *_) = team
    _label(engine, e1, "ana", "Pass")
    _label(engine, e1, "bob", "Fail")
    _label(engine, e2, "ana", "Pass")
    _label(engine, e2, "bob", "Pass")  # agreement: never queued
    _label(engine, e3, "ana", "SemiPass")  # one label: nothing to disagree with
    with session_scope(engine) as s:
        queue = adj.disagreements(session=s)
    assert queue["eb_id"].tolist() == [e1]
    row = queue.iloc[0]
    assert row["uid"] == "uid://A002/Xadj/X0" and row["band"] == 3 and row["n_labels"] == 2
    assert (row["n_pass"], row["n_semipass"], row["n_fail"]) == (1, 0, 1)
    assert row["values"] == "Pass 1, Fail 1" and row["majority"] == "Fail"
    assert row["leaning"] == "Fail (tie -> cautious)", "a 1:1 split is not called a majority"
    assert row["adjudicated_value"] is None

    with session_scope(engine, write=True) as s:
        adj.adjudicate(session=s, eb_id=e1, lead="lena", value="Fail", reason="Tsys spikes on spw 2")
    assert _queue(engine) == []

    _label(engine, e1, "cid", "Fail")  # agrees with the ruling: stays closed
    assert _queue(engine) == []

    _label(engine, e1, "dee", "Pass")  # contradicts the ruling: back in the queue
    with session_scope(engine) as s:
        queue = adj.disagreements(session=s)
    assert queue["eb_id"].tolist() == [e1]
    assert queue.iloc[0]["adjudicated_value"] == "Fail" and queue.iloc[0]["n_labels"] == 4

    with session_scope(engine, write=True) as s:
        adj.adjudicate(session=s, eb_id=e1, lead="leo", value="Fail", reason="confirmed with DSO")
    assert _queue(engine) == []


def test_a_revision_that_resolves_the_disagreement_leaves_the_queue(team) -> None:
    engine, (e1, *_) = team
    _label(engine, e1, "ana", "Pass")
    _label(engine, e1, "bob", "SemiPass")
    assert _queue(engine) == [e1]
    _label(engine, e1, "bob", "Pass")
    assert _queue(engine) == []


def test_labels_for_eb_shows_current_labels_and_rulings(team) -> None:
    engine, (e1, e2, *_) = team
    with session_scope(engine, write=True) as s:
        labels.record_label(session=s, eb_id=e1, labeler="ana", value="Pass", comment="clean")
        labels.record_label(session=s, eb_id=e1, labeler="ana", value="SemiPass", comment="low elevation")
        labels.record_label(session=s, eb_id=e1, labeler="bob", value="Fail", seconds_on_eb=42.0)
        labels.record_label(session=s, eb_id=e2, labeler="bob", value="Fail")
        labels.record_label(session=s, eb_id=e1, labeler="cid", value="Pass")
    with session_scope(engine, write=True) as s:
        labels.undo_last(session=s, labeler="cid")  # cid withdraws: no current label from cid
        adj.adjudicate(session=s, eb_id=e1, lead="lena", value="SemiPass", reason="elevation 22 deg")
    with session_scope(engine) as s:
        view = adj.labels_for_eb(session=s, eb_id=e1)
        with pytest.raises(labels.LabelError):
            adj.labels_for_eb(session=s, eb_id=999_999)
    assert view[["kind", "labeler", "value"]].values.tolist() == [
        ["review", "ana", "SemiPass"],
        ["review", "bob", "Fail"],
        ["adjudication", "lena", "SemiPass"],
    ]
    assert view["comment"].tolist()[0] == "low elevation"
    assert view["reason"].tolist()[2] == "elevation 22 deg"
    assert view["seconds_on_eb"].tolist()[1] == 42.0
    assert view["event_id"].is_monotonic_increasing


def test_gold_marking_updating_scoring_and_unmarking(team) -> None:
    engine, (e1, e2, e3, *_) = team
    for eb, a, b in ((e1, "Pass", "Pass"), (e2, "Fail", "SemiPass"), (e3, "Pass", "Fail")):
        _label(engine, eb, "ana", a)
        _label(engine, eb, "bob", b)
    _label(engine, e1, "archive", "Fail")  # archive is never scored
    with session_scope(engine, write=True) as s:
        adj.mark_gold(session=s, eb_id=e1, lead="lena", value="pass", reason="textbook")
        adj.mark_gold(session=s, eb_id=e2, lead="lena", value="SemiPass")
        adj.mark_gold(session=s, eb_id=e2, lead="leo", value="Fail", reason="second look: amplitude drop")
        with pytest.raises(labels.LabelError):
            adj.mark_gold(session=s, eb_id=e3, lead="lena", value="Perfect")
        with pytest.raises(labels.LabelError):
            adj.mark_gold(session=s, eb_id=999_999, lead="lena", value="Pass")
    with session_scope(engine) as s:
        table = adj.gold_table(session=s)
        scores = adj.gold_scores(session=s).set_index("labeler")
    assert table["eb_id"].tolist() == [e1, e2]
    assert table["value"].tolist() == ["Pass", "Fail"]  # the update replaced, not duplicated
    assert table["set_by"].tolist() == ["lena", "leo"]
    assert table["uid"].tolist()[0] == "uid://A002/Xadj/X0"
    assert scores.loc["ana", ["n", "correct"]].tolist() == [2, 2]
    assert scores.loc["bob", ["n", "correct"]].tolist() == [2, 1]
    assert scores.loc["bob", "accuracy"] == pytest.approx(0.5)
    assert "archive" not in scores.index

    with session_scope(engine, write=True) as s:
        assert adj.unmark_gold(session=s, eb_id=e2, lead="lena") is True
        assert adj.unmark_gold(session=s, eb_id=e2, lead="lena") is False
    with session_scope(engine) as s:
        assert adj.gold_table(session=s)["eb_id"].tolist() == [e1]
        assert adj.gold_scores(session=s).set_index("labeler").loc["bob", "n"] == 1


def test_empty_database_gives_empty_frames(team) -> None:
    engine, _ = team
    with session_scope(engine) as s:
        assert adj.disagreements(session=s).empty
        assert list(adj.disagreements(session=s).columns) == adj.DISAGREEMENT_COLUMNS
        assert adj.gold_table(session=s).empty
        assert adj.gold_scores(session=s).empty
        report = agreement.agreement_report(labels.current_labels(s, include_archive=False))
    json.dumps(report, allow_nan=False)
    assert report["n_items"] == 0 and report["notes"]


def test_per_labeler_stats_and_trend_from_database_rows(team) -> None:
    engine, ebs = team
    for i, eb in enumerate(ebs):
        _label(engine, eb, "ana", "Pass")
        _label(engine, eb, "bob", "Pass" if i % 3 else "Fail")
    with session_scope(engine) as s:
        current = labels.current_labels(s, include_archive=False)
        gold = adj.gold_table(session=s)
    stats = agreement.per_labeler_stats(current, gold=gold).set_index("labeler")
    assert stats.loc["bob", "agreement_with_consensus"] == pytest.approx(4 / 6)
    trend = agreement.weekly_trend(current, n_boot=20)  # created_at comes back from the database as stored
    assert trend["n_items"].sum() == 6
    assert str(trend["week"].dt.tz) == "UTC"


def test_leaning_says_tie_not_majority_for_a_split() -> None:
    from qa0_label.lead.adjudication import leaning

    assert leaning(["Pass", "Fail"]) == "Fail (tie -> cautious)"
    assert leaning(["Pass", "SemiPass"]) == "SemiPass (tie -> cautious)"
    assert leaning(["Pass", "Pass", "Fail"]) == "Pass (majority)"
    assert leaning([]) is None
