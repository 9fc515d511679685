"""Overlap picks (a blind second opinion): EBs reviewed by exactly one other AoD, drawn at random.

The rule: among the newest ``window`` label events, an EB whose reviews with a value (by AoDs; the archive and
leads do not count) all come from one labeler who is not me, not adjudicated, not leased to someone else, not
skipped or labelled by me. A pick checks the first ``sample`` such EBs of a uniformly random order and tries the
first ``limit`` free ones in that order.

``grouping_select`` says it in one statement: group the window's reviews by EB, ORDER BY random(). It groups
every review of the window (20,000 label events at most; 6 ms at 7,700), and one pick in ten is an overlap
pick, so ``next``'s p95 grew with every label. ``draw`` gives the same answer from a few dozen random label ids:
an EB's newest review in the window stands for it (one row per EB, however often its AoD relabelled it), so
ids in a uniformly random order give the eligible EBs in a uniformly random order. When the draws do not
settle it (eligible EBs rare among the window's ids), the caller falls back on the grouping statement.

No import of queue.assign (which builds these with its own lease / skip conditions): no import cycle.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Integer, bindparam, case, exists, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import col

from qa0_label.store.models import Label, Labeler

Condition = Callable[[Any], Any]
"""Given an EB id column, the SQL condition that the EB is free for me (not settled, leased, skipped, mine)."""

_AOD = sa_select(col(Labeler.id)).where(col(Labeler.role) == "aod", col(Labeler.name) != "archive")
_OTHER = Label.__table__.alias("other")  # type: ignore[attr-defined]
# An alias: the caller's per-EB checks (FROM label) must not be correlated with the drawn row by mistake.
_DRAWN = Label.__table__.alias("drawn")  # type: ignore[attr-defined]
_LO = bindparam("lo", type_=Integer())
_Q_LABEL_RANGE = sa_select(
    sa_select(func.min(Label.id)).scalar_subquery(), sa_select(func.max(Label.id)).scalar_subquery()
)

RNG = random.Random()
"""The draws' own generator: they must not move the module-level one, which seeds the random route's
start (and so a seeded replay such as benchmark al)."""


def grouping_select(*, free: Condition, me: Any, window: int, sample: int, limit: int) -> Any:
    """The rule as one statement (grouping the whole window): the fallback, and the reference in the tests."""
    newest = sa_select(func.max(Label.id)).scalar_subquery()
    reviews = (
        sa_select(col(Label.eb_id))
        .where(
            Label.id > newest - window,
            col(Label.kind) == "review",
            Label.value.is_not(None),  # type: ignore[union-attr]
            Label.labeler_id.in_(_AOD),  # type: ignore[attr-defined]
        )
        .group_by(col(Label.eb_id))
        # One labeler only (min = max), and not me.
        .having(func.min(Label.labeler_id) == func.max(Label.labeler_id), func.min(Label.labeler_id) != me)
        # A random sample first, so the per-EB checks below run on a few rows, not on every candidate.
        .order_by(func.random())
        .limit(sample)
        .subquery()
    )
    return sa_select(reviews.c.eb_id).where(free(reviews.c.eb_id)).limit(limit)


def draws_select(*, free: Condition, me: Any) -> Any:
    """Of the label ids bound as :ids (all inside the window above :lo), those that are an eligible EB's newest
    review in the window, with their EB and whether it is free for me (1 / 0)."""
    return (
        sa_select(_DRAWN.c.id, _DRAWN.c.eb_id, case((free(_DRAWN.c.eb_id), 1), else_=0))
        .where(
            _DRAWN.c.id.in_(bindparam("ids", expanding=True)),
            _DRAWN.c.kind == "review",
            _DRAWN.c.value.is_not(None),
            _DRAWN.c.labeler_id != me,
            # The AoD test as a per-row probe: with an IN list over the labeler index SQLite scanned every AoD's
            # labels of the window once 64 ids were drawn (1.1 ms instead of 0.3 ms).
            exists().where(
                col(Labeler.id) == _DRAWN.c.labeler_id, col(Labeler.role) == "aod", col(Labeler.name) != "archive"
            ),
        )
        .where(
            ~exists().where(
                _OTHER.c.eb_id == _DRAWN.c.eb_id,
                _OTHER.c.id > _LO,
                _OTHER.c.kind == "review",
                _OTHER.c.value.is_not(None),
                _OTHER.c.labeler_id.in_(_AOD),
                or_(_OTHER.c.labeler_id != _DRAWN.c.labeler_id, _OTHER.c.id > _DRAWN.c.id),
            )
        )
    )


def draw(
    conn: Any, stmt: Any, params: dict[str, Any], *, window: int, sample: int, limit: int, rounds: Sequence[int]
) -> list[int] | None:
    """grouping_select's answer from label ids drawn at random (stmt: a draws_select, params: its :me and the
    caller's); None when len(rounds) rounds of draws did not settle it."""
    low, high = conn.execute(_Q_LABEL_RANGE).one()
    if high is None:
        return []
    lo = int(high) - window
    ids = range(max(lo + 1, int(low)), int(high) + 1)
    seen: set[int] = set()
    eligible, out = 0, []
    for size in rounds:
        # A fresh sample, minus the ids seen: the unseen ones in it follow in a uniformly random order too.
        drawn = [i for i in RNG.sample(ids, min(size, len(ids))) if i not in seen]
        seen.update(drawn)
        found = {int(r[0]): (int(r[1]), bool(r[2])) for r in conn.execute(stmt, {**params, "ids": drawn, "lo": lo})}
        for i in drawn:
            if i in found:
                eligible += 1
                if found[i][1]:
                    out.append(found[i][0])
                if len(out) == limit or eligible == sample:
                    return out
        if len(seen) == len(ids):
            return out  # every id of the window was drawn: nothing else is eligible
    return None


def warm_up(conn: Any, stmt: Any, params: dict[str, Any]) -> None:
    """Compile the draw's statements on CONN (the parameters match no row)."""
    conn.execute(_Q_LABEL_RANGE).all()
    conn.execute(stmt, {**params, "ids": [-1], "lo": 0}).all()
