"""lookahead.reserve_next: the EB after the current one is leased ahead and next_for then serves exactly it."""

from __future__ import annotations

from dataclasses import replace

from qa0_label.config import Settings
from qa0_label.queue import assign, lookahead
from qa0_label.store import labels
from qa0_label.store.db import session_scope
from qa0_label.store.models import Lease
from tests.db.al_pool import label, make_pool
from tests.db.test_assign import _fake_run

PLAIN = Settings(overlap_share=0.0, random_share=0.0, gold_share=0.0, lease_minutes=15)


def _next(engine, who: str, settings: Settings) -> dict:
    pick = assign.next_for(engine=engine, labeler=who, settings=settings)
    assert pick is not None
    return pick


def test_reserved_eb_is_served_next_and_the_current_one_stays_on_screen(engine) -> None:
    truth = make_pool(engine, 60)
    order = sorted(truth)[::-1][:20]
    _fake_run(engine, truth, order)
    current = _next(engine, "ana", PLAIN)
    assert current["eb_id"] == order[0]
    ahead = lookahead.reserve_next(engine=engine, labeler="ana", current_eb_id=current["eb_id"], settings=PLAIN)
    assert ahead == order[1]
    # Idempotent, and a rerun (or a reload) still shows the current EB, not the reserved one.
    assert lookahead.reserve_next(engine=engine, labeler="ana", current_eb_id=current["eb_id"], settings=PLAIN) == ahead
    assert _next(engine, "ana", PLAIN)["eb_id"] == current["eb_id"]
    # Another AoD cannot get the reserved EB.
    assert _next(engine, "bo", PLAIN)["eb_id"] == order[2]
    label(engine, [current["eb_id"]], "ana", truth)
    served = _next(engine, "ana", PLAIN)
    assert served["eb_id"] == ahead and served["strategy"] == current["strategy"] and served["model_version"] == 1
    # Once the current EB is labelled, a late reservation for it does nothing.
    assert lookahead.reserve_next(engine=engine, labeler="ana", current_eb_id=current["eb_id"], settings=PLAIN) is None


def test_skip_moves_on_to_the_reserved_eb(engine) -> None:
    truth = make_pool(engine, 40)
    _fake_run(engine, truth, sorted(truth))
    current = _next(engine, "ana", PLAIN)
    ahead = lookahead.reserve_next(engine=engine, labeler="ana", current_eb_id=current["eb_id"], settings=PLAIN)
    with session_scope(engine, write=True) as s:
        labels.record_skip(session=s, eb_id=current["eb_id"], labeler="ana")
    assert _next(engine, "ana", PLAIN)["eb_id"] == ahead


def test_reservations_keep_the_routing_shares_and_never_repeat_an_eb(engine) -> None:
    truth = make_pool(engine, 300)
    _fake_run(engine, truth, sorted(truth))
    label(engine, sorted(truth)[-60:], "li", truth)  # overlap candidates
    settings = replace(PLAIN, overlap_share=0.2, random_share=0.1)
    seen: list[int] = []
    kinds: list[str] = []
    current = _next(engine, "ana", settings)
    for _ in range(60):
        ahead = lookahead.reserve_next(engine=engine, labeler="ana", current_eb_id=current["eb_id"], settings=settings)
        assert ahead is not None and ahead != current["eb_id"]
        label(engine, [current["eb_id"]], "ana", truth)
        seen.append(current["eb_id"])
        current = _next(engine, "ana", settings)
        assert current["eb_id"] == ahead, "the reserved EB is the one served"
        kinds.append(current["strategy"])
    assert len(set(seen)) == len(seen)
    assert 9 <= kinds.count("overlap") <= 15 and 4 <= kinds.count("random") <= 8
    lookahead.reserve_next(engine=engine, labeler="ana", current_eb_id=current["eb_id"], settings=settings)
    with session_scope(engine) as s:
        held = s.connection().execute(Lease.__table__.select()).fetchall()
    assert len(held) == 2, "one reservation at a time: the current EB and the next one"


def test_cold_start_reserves_nothing(engine) -> None:
    make_pool(engine, 30)
    current = _next(engine, "ana", PLAIN)
    assert lookahead.reserve_next(engine=engine, labeler="ana", current_eb_id=current["eb_id"], settings=PLAIN) is None
