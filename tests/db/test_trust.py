"""Issue 15 on a real database: passphrases and unlock limits, names, rename / merge, undo, pruned model files."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text, update
from sqlmodel import select

from qa0_label.access import authz
from qa0_label.access.identity import set_role_as_lead
from qa0_label.access.names import change_history, merge_labelers, rename_labeler
from qa0_label.config import Settings
from qa0_label.lead import adjudication as adj
from qa0_label.lead.agreement import agreement_report
from qa0_label.queue import assign
from qa0_label.store import labels
from qa0_label.store.db import session_scope
from qa0_label.store.models import Labeler, LeadSecret, Lease, UnlockAttempt, utcnow
from tests.db.al_pool import label, make_pool

PLAIN = Settings(overlap_share=0.0, random_share=0.0, gold_share=0.0, lease_minutes=15)
SECRET = "a long lead passphrase"


def _lead(engine, name: str = "Lena") -> None:
    with session_scope(engine, write=True) as s:
        labels.set_role(session=s, name=name, role="lead", create=True)
        authz.set_passphrase(session=s, name=name, passphrase=SECRET)


def test_passphrase_is_stored_as_a_salted_scrypt_hash(engine) -> None:
    _lead(engine)
    _lead(engine, "Leo")
    with session_scope(engine) as s:
        rows = s.exec(select(LeadSecret)).all()
        dump = " ".join(str(v) for r in rows for v in r.model_dump().values())
    assert SECRET not in dump and SECRET.encode().hex() not in dump
    assert len({r.salt_hex for r in rows}) == 2 and len({r.hash_hex for r in rows}) == 2  # salted: same input
    assert all(r.n >= 2**14 and r.r >= 8 for r in rows)


def test_short_passphrase_and_non_lead_are_refused(engine) -> None:
    with session_scope(engine, write=True) as s:
        labels.set_role(session=s, name="Lena", role="lead", create=True)
        with pytest.raises(labels.LabelError, match="at least"):
            authz.set_passphrase(session=s, name="Lena", passphrase="short")
        labels.get_or_create_labeler(session=s, name="Ana")
        with pytest.raises(labels.LabelError, match="not a team lead"):
            authz.set_passphrase(session=s, name="Ana", passphrase=SECRET)


def test_unlock_then_authorize_and_a_new_passphrase_ends_old_unlocks(engine) -> None:
    _lead(engine)
    req = authz.try_unlock(engine=engine, name="lena", passphrase=SECRET)  # names in any case
    assert req.proof == "unlock" and req.name == "Lena"
    with session_scope(engine) as s:
        assert authz.authorize(session=s, requester=req, action="adjudicate").name == "Lena"
        with pytest.raises(labels.NotAllowed, match="must unlock"):
            authz.authorize(session=s, requester=authz.Requester(name="Lena"), action="gold")
    with session_scope(engine, write=True) as s:
        authz.set_passphrase(session=s, name="Lena", passphrase=SECRET + "!")
    with session_scope(engine) as s, pytest.raises(labels.NotAllowed, match="expired"):
        authz.authorize(session=s, requester=req, action="adjudicate")


def test_unlock_tries_are_limited_per_minute_and_the_limit_is_stored(engine) -> None:
    _lead(engine)
    for _ in range(authz.MAX_TRIES_PER_MINUTE):
        with pytest.raises(labels.NotAllowed, match="wrong passphrase"):
            authz.try_unlock(engine=engine, name="Lena", passphrase="guess guess guess")
    with pytest.raises(authz.TooManyTries):
        authz.try_unlock(engine=engine, name="Lena", passphrase=SECRET)  # even the right one, for a minute
    with session_scope(engine, write=True) as s:  # a minute later
        s.exec(update(UnlockAttempt).values(at=utcnow() - timedelta(minutes=2)))  # type: ignore[call-overload]
    assert authz.try_unlock(engine=engine, name="Lena", passphrase=SECRET).proof == "unlock"


def test_unknown_names_are_limited_too(engine) -> None:
    for _ in range(authz.MAX_TRIES_PER_MINUTE):
        with pytest.raises(labels.NotAllowed, match="no lead passphrase"):
            authz.try_unlock(engine=engine, name="Ghost", passphrase="whatever it is")
    with pytest.raises(authz.TooManyTries):
        authz.try_unlock(engine=engine, name="ghost", passphrase="whatever it is")


@pytest.mark.parametrize(
    ("raw", "stored"),
    [("  Ana   Rojas ", "Ana Rojas"), ("Ana\tRojas", "Ana Rojas"), ("Me\u0301ndez", "Méndez")],
)
def test_names_are_normalised(raw: str, stored: str) -> None:
    assert labels.normalize_name(raw) == stored


@pytest.mark.parametrize(
    "bad",
    ["ab\u200bc", "a\u200dz", "evil\u202eman", "x\u2066y", "\x1b[31mred", "nul\x00", "\ufeffbom", "archive", "MODEL"],
)
def test_names_with_hidden_characters_or_reserved_are_refused(bad: str) -> None:
    with pytest.raises(labels.LabelError):
        labels.normalize_name(bad)


def test_names_compare_case_insensitively(engine) -> None:
    with session_scope(engine, write=True) as s:
        first = labels.get_or_create_labeler(session=s, name="NewAoD")
        again = labels.get_or_create_labeler(session=s, name="newaod")
        assert first.id == again.id
        with pytest.raises(labels.LabelError, match="reserved"):
            labels.get_or_create_labeler(session=s, name="Archive")
        assert labels.get_or_create_labeler(session=s, name="archive", system=True).name == "archive"


def test_merge_moves_labels_records_history_and_agreement_follows(engine) -> None:
    truth = make_pool(engine, 12)
    ebs = sorted(truth)
    _lead(engine)
    label(engine, ebs[:6], "Ana", truth)
    label(engine, ebs[:6], "Bob", truth)
    label(engine, ebs[6:9], "ana r", truth)  # the same person under a second name
    label(engine, ebs[6:9], "Bob", truth)
    with session_scope(engine) as s:
        before = agreement_report(labels.current_labels(s, include_archive=False), n_boot=10)["n_items"]
    lead = authz.try_unlock(engine=engine, name="Lena", passphrase=SECRET)
    with session_scope(engine, write=True) as s:
        with pytest.raises(labels.NotAllowed):
            merge_labelers(session=s, requester=authz.Requester(name="Lena"), source="ana r", into="Ana")
    with session_scope(engine, write=True) as s:
        moved = merge_labelers(session=s, requester=lead, source="ANA R", into="ana")
    assert moved == 3
    with session_scope(engine) as s:
        names = {n for n in s.exec(select(Labeler.name)).all()}
        history = change_history(session=s)
        after = agreement_report(labels.current_labels(s, include_archive=False), n_boot=10)["n_items"]
        # The old name now means the person it was merged into.
        assert labels.find_labeler(session=s, name="ana r").name == "Ana"  # type: ignore[union-attr]
    assert "ana r" not in names
    assert history[["kind", "from_name", "into_name", "by_name", "n_labels"]].values.tolist() == [
        ["merge", "ana r", "Ana", "Lena", 3]
    ]
    assert before == 9 and after == 9  # the 3 EBs rated by 'ana r' and Bob are now rated by Ana and Bob
    with session_scope(engine) as s:
        pairs = agreement_report(labels.current_labels(s, include_archive=False), n_boot=10)["cohen_kappa"]
    assert [(p["a"], p["b"], p["n"]) for p in pairs] == [("Ana", "Bob", 9)]


def test_rename_keeps_labels_and_refuses_collisions(engine) -> None:
    truth = make_pool(engine, 4)
    _lead(engine)
    label(engine, sorted(truth)[:2], "Anna Rojs", truth)
    label(engine, sorted(truth)[2:], "Bob", truth)
    with session_scope(engine, write=True) as s:
        rename_labeler(session=s, requester="Lena", old="anna rojs", new=" Ana  Rojas ")
        with pytest.raises(labels.LabelError, match="merge"):
            rename_labeler(session=s, requester="Lena", old="Ana Rojas", new="bob")
        with pytest.raises(labels.LabelError, match="system"):
            rename_labeler(session=s, requester="Lena", old="Bob", new="archive")
    with session_scope(engine) as s:
        current = labels.current_labels(s)
    assert sorted(set(current["labeler"])) == ["Ana Rojas", "Bob"]


def _roster(engine) -> dict[str, str]:
    with session_scope(engine) as s:
        return {str(n): str(r) for n, r in s.exec(select(Labeler.name, Labeler.role)).all()}


def test_a_lead_sets_roles_only_of_labelers_in_the_roster(engine) -> None:
    _lead(engine)
    with session_scope(engine, write=True) as s:
        labels.get_or_create_labeler(session=s, name="Kenji Tanaka")
        labels.get_or_create_labeler(session=s, name="archive", system=True)
    before = _roster(engine)
    lead = authz.try_unlock(engine=engine, name="Lena", passphrase=SECRET)
    for typo in ("Kenji Tanka", "archive"):  # a misspelt AoD; the importer's own labeler is no person
        with (
            session_scope(engine, write=True) as s,
            pytest.raises(labels.LabelError, match=f"no labeler named '{typo}'"),
        ):
            set_role_as_lead(session=s, lead=lead, name=typo, role="aod")
    assert _roster(engine) == before
    with session_scope(engine, write=True) as s:  # the same person in another case is found, not created
        assert set_role_as_lead(session=s, lead=lead, name="kenji tanaka", role="lead").name == "Kenji Tanaka"
    assert _roster(engine) == {**before, "Kenji Tanaka": "lead"}


def test_the_last_lead_cannot_be_demoted(engine) -> None:
    _lead(engine)
    with session_scope(engine, write=True) as s:
        labels.get_or_create_labeler(session=s, name="Ana")
    with session_scope(engine, write=True) as s, pytest.raises(labels.LabelError, match="Lena is the last lead"):
        set_role_as_lead(session=s, lead="lena", name="LENA", role="aod")
    assert _roster(engine) == {"Lena": "lead", "Ana": "aod"}
    with session_scope(engine, write=True) as s:  # with a second lead, either may step down
        set_role_as_lead(session=s, lead="Lena", name="Ana", role="lead")
        set_role_as_lead(session=s, lead="Lena", name="Lena", role="aod")
    with session_scope(engine, write=True) as s, pytest.raises(labels.LabelError, match="Ana is the last lead"):
        labels.set_role(session=s, name="Ana", role="aod")  # the database owner's path (CLI) too
    with session_scope(engine, write=True) as s:
        labels.set_role(session=s, name="Ana", role="lead")  # a lead staying a lead is no demotion
    assert _roster(engine) == {"Lena": "aod", "Ana": "lead"}


def test_merging_the_last_lead_into_an_aod_is_refused(engine) -> None:
    _lead(engine)
    with session_scope(engine, write=True) as s:
        labels.get_or_create_labeler(session=s, name="lena m")
    with session_scope(engine, write=True) as s, pytest.raises(labels.LabelError, match="last lead"):
        merge_labelers(session=s, requester="Lena", source="Lena", into="lena m")
    assert _roster(engine) == {"Lena": "lead", "lena m": "aod"}
    with session_scope(engine, write=True) as s:  # into a lead, the team keeps one
        labels.set_role(session=s, name="lena m", role="lead")
        merge_labelers(session=s, requester="Lena", source="Lena", into="lena m")
    assert _roster(engine) == {"lena m": "lead"}


def test_undo_leases_the_eb_back_and_next_returns_it(engine) -> None:
    truth = make_pool(engine, 20)
    first = assign.next_for(engine=engine, labeler="ana", settings=PLAIN)
    label(engine, [first["eb_id"]], "ana", truth)
    second = assign.next_for(engine=engine, labeler="ana", settings=PLAIN)
    assert second["eb_id"] != first["eb_id"]
    label(engine, [second["eb_id"]], "ana", truth)
    with session_scope(engine, write=True) as s:
        undo = labels.undo_last(session=s, labeler="ana")
    assert undo is not None and undo.eb_id == second["eb_id"]
    with session_scope(engine) as s:
        lease = s.get(Lease, second["eb_id"])
        ana = s.exec(select(Labeler.id).where(Labeler.name == "ana")).one()
    assert lease is not None and lease.labeler_id == ana and lease.reason == "undo"
    again = assign.next_for(engine=engine, labeler="ana", settings=PLAIN)
    assert again["eb_id"] == second["eb_id"] and again["strategy"] == "undo"
    # Nobody else is handed it while ana looks at it again.
    others = [assign.next_for(engine=engine, labeler=f"o{i}", settings=PLAIN)["eb_id"] for i in range(5)]
    assert second["eb_id"] not in others
    label(engine, [second["eb_id"]], "ana", truth)
    assert assign.next_for(engine=engine, labeler="ana", settings=PLAIN)["eb_id"] != second["eb_id"]


def test_a_reverted_label_no_longer_counts_as_labelled(engine) -> None:
    truth = make_pool(engine, 3)
    target = sorted(truth)[0]
    with session_scope(engine, write=True) as s:
        labels.record_label(session=s, eb_id=target, labeler="ana", value="Pass")
        labels.record_label(session=s, eb_id=sorted(truth)[1], labeler="ana", value="Pass")
        labels.record_label(session=s, eb_id=sorted(truth)[2], labeler="ana", value="Pass")
    with session_scope(engine, write=True) as s:
        labels.undo_last(session=s, labeler="ana")  # EB 3
        labels.undo_last(session=s, labeler="ana")  # EB 2
        labels.undo_last(session=s, labeler="ana")  # EB 1, leased to ana
        s.exec(update(Lease).values(expires_at=utcnow() - timedelta(minutes=1)))  # type: ignore[call-overload]
    # ana walked away: the EBs are unlabelled again for everyone.
    got = {assign.next_for(engine=engine, labeler=f"fresh{i}", settings=PLAIN)["eb_id"] for i in range(3)}
    assert got == set(truth)


def test_adjudication_by_name_only_goes_through_the_lead_check(engine) -> None:
    truth = make_pool(engine, 2)
    eb = sorted(truth)[0]
    with session_scope(engine, write=True) as s:
        labels.get_or_create_labeler(session=s, name="Ana")
        with pytest.raises(labels.NotAllowed):
            labels.record_label(session=s, eb_id=eb, labeler="Ana", value="Fail", kind="adjudication", reason="x")
        with pytest.raises(labels.NotAllowed):
            adj.adjudicate(
                session=s, eb_id=eb, lead=authz.Requester(name="Ana", proof="oidc"), value="Fail", reason="x"
            )
    with session_scope(engine) as s:
        n = s.connection().execute(text("SELECT COUNT(*) FROM label WHERE kind = 'adjudication'")).scalar_one()
    assert n == 0
