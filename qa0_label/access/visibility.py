"""Blind review: whose labels a requester may see (no Streamlit here). Every surface that shows labels asks here.

The rule (``may_see_others``): an AoD sees other people's labels and comments on an EB only after giving
their own review label on it; a lead who passed ``authz.authorize(..., "see_all_labels")`` sees everything.
Everything else in this module applies that one rule to a shape of data: a set of EB ids, an SQL condition
for the Data page's counts and filters, a label table, a download, the adjudication queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, false, true
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from qa0_label.access.authz import Requester, may
from qa0_label.store.labels import find_labeler
from qa0_label.store.models import Label

QUEUE_PUBLIC_COLUMNS: tuple[str, ...] = ("uid", "source", "band", "start_time")
"""What an AoD sees of the adjudication queue: which EBs, never how they were labelled."""


@dataclass(frozen=True)
class LabelScope:
    """What one requester may see: everything (see_all), or others' labels only on the EBs in ``seen``."""

    see_all: bool
    viewer_id: int | None
    viewer: str | None
    seen: frozenset[int] = frozenset()

    def may_see_others(self, eb_id: int) -> bool:
        """THE rule: others' labels on EB eb_id are visible to a lead, or to whoever has labelled it."""
        return self.see_all or int(eb_id) in self.seen

    def may_see_others_sql(self, eb_col: Any) -> ColumnElement[bool]:
        """The same rule as an SQL condition on EB_COL (for counts and filters computed in the database)."""
        if self.see_all:
            return true()
        if self.viewer_id is None:
            return false()
        mine = sa_select(col(Label.eb_id)).where(col(Label.labeler_id) == self.viewer_id, col(Label.kind) == "review")
        return eb_col.in_(mine)

    def own_sql(self, labeler_col: Any) -> ColumnElement[bool]:
        """True for rows of the viewer's own labels (always visible to them)."""
        if self.viewer_id is None or self.see_all:
            return false()
        return labeler_col == self.viewer_id


def label_scope(*, session: Session, requester: Requester | None) -> LabelScope:
    """The requester's scope: see_all for an authorized lead, else the EBs they gave a review label."""
    if requester is None or not requester.name:
        return LabelScope(see_all=False, viewer_id=None, viewer=None)
    if may(session=session, requester=requester, action="see_all_labels"):
        return LabelScope(see_all=True, viewer_id=None, viewer=requester.name)
    me = find_labeler(session=session, name=requester.name)
    if me is None:
        return LabelScope(see_all=False, viewer_id=None, viewer=requester.name)
    mine = sa_select(col(Label.eb_id)).where(col(Label.labeler_id) == me.id, col(Label.kind) == "review").distinct()
    rows = session.connection().execute(mine)
    return LabelScope(see_all=False, viewer_id=int(me.id), viewer=me.name, seen=frozenset(int(r[0]) for r in rows))  # type: ignore[arg-type]


def visible_labels(frame: pd.DataFrame, scope: LabelScope, *, eb_col: str = "eb_id") -> pd.DataFrame:
    """Rows of a label table the scope may see: own rows always, others' only on EBs it may see."""
    if scope.see_all or frame.empty:
        return frame
    own = _own(frame, scope)
    keep = own | frame[eb_col].map(lambda e: scope.may_see_others(int(e))).astype(bool)
    return frame[keep]


def _own(frame: pd.DataFrame, scope: LabelScope) -> pd.Series:
    if scope.viewer_id is not None and "labeler_id" in frame:
        return frame["labeler_id"] == scope.viewer_id
    if scope.viewer is not None and "labeler" in frame:
        return frame["labeler"].astype(str).str.casefold() == scope.viewer.casefold()
    return pd.Series(False, index=frame.index)


def withheld(frame: pd.DataFrame, scope: LabelScope, *, eb_col: str = "eb_id") -> bool:
    """True when visible_labels would hide some rows of FRAME."""
    return len(visible_labels(frame, scope, eb_col=eb_col)) < len(frame)


def visible_export(frame: pd.DataFrame, scope: LabelScope) -> pd.DataFrame:
    """A label download: a lead gets every row; anyone else their own labels only."""
    if scope.see_all:
        return frame
    return frame[_own(frame, scope)].reset_index(drop=True)


def visible_queue(frame: pd.DataFrame, scope: LabelScope) -> pd.DataFrame:
    """The adjudication queue: whole for a lead; for an AoD only which EBs await a lead, without any counts."""
    if scope.see_all:
        return frame
    return frame[[c for c in QUEUE_PUBLIC_COLUMNS if c in frame]]
