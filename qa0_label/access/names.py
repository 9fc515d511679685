"""Lead operations on the roster: rename a labeler, merge two labelers into one (with a history of who did it)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from qa0_label.access.authz import Requester, authorize
from qa0_label.store.labels import SYSTEM_LABELERS, LabelError, find_labeler, normalize_name, refuse_last_lead
from qa0_label.store.models import GoldEB, Label, Labeler, LabelerChange, LeadSecret, Lease, Skip, row_id


def _person(session: Session, name: str) -> Labeler:
    labeler = find_labeler(session=session, name=name)
    if labeler is None:
        raise LabelError(f"no labeler named {name!r}")
    if labeler.name.casefold() in SYSTEM_LABELERS:
        raise LabelError(f"{labeler.name!r} is the system's own labeler; it cannot be renamed or merged")
    return labeler


def rename_labeler(*, session: Session, requester: Requester | str, old: str, new: str) -> Labeler:
    """A lead renames OLD to NEW (e.g. fixes a typo); labels stay with the person; OLD keeps pointing at them."""
    lead = authorize(session=session, requester=requester, action="rename")
    person = _person(session, old)
    clean = normalize_name(new)
    other = find_labeler(session=session, name=clean)
    if other is not None and other.id != person.id:
        raise LabelError(f"{other.name!r} already exists; merge the two labelers instead")
    if clean == person.name:
        return person
    n = session.exec(select(func.count()).select_from(Label).where(Label.labeler_id == person.id)).one()
    session.add(
        LabelerChange(
            kind="rename", from_name=person.name, into_name=clean, into_id=row_id(person), by_name=lead.name, n_labels=n
        )
    )
    person.name = clean
    session.add(person)
    session.flush()
    return person


def merge_labelers(*, session: Session, requester: Requester | str, source: str, into: str) -> int:
    """A lead merges SOURCE into INTO: every label, skip and gold mark moves over, SOURCE leaves the roster.

    Returns how many label events moved. INTO keeps its own role. Where both labelled the same EB, the newer
    label becomes INTO's current label (the older stays in the history). Agreement is computed from labels,
    so it follows on the next read.
    """
    lead = authorize(session=session, requester=requester, action="merge")
    src, dst = _person(session, source), _person(session, into)
    if src.id == dst.id:
        raise LabelError(f"{source!r} and {into!r} are the same labeler")
    if src.role == "lead" and dst.role != "lead":
        refuse_last_lead(session=session, labeler=src)  # SOURCE's role goes with it: the team keeps a lead
    n = int(session.exec(select(func.count()).select_from(Label).where(Label.labeler_id == src.id)).one() or 0)
    session.exec(update(Label).where(col(Label.labeler_id) == src.id).values(labeler_id=dst.id))
    both = select(Skip.eb_id).where(Skip.labeler_id == dst.id)
    session.exec(delete(Skip).where(col(Skip.labeler_id) == src.id, col(Skip.eb_id).in_(both)))
    session.exec(update(Skip).where(col(Skip.labeler_id) == src.id).values(labeler_id=dst.id))
    session.exec(delete(Lease).where(col(Lease.labeler_id) == src.id))
    session.exec(update(GoldEB).where(col(GoldEB.set_by_id) == src.id).values(set_by_id=dst.id))
    session.exec(delete(LeadSecret).where(col(LeadSecret.labeler_id) == src.id))
    session.exec(update(LabelerChange).where(col(LabelerChange.into_id) == src.id).values(into_id=dst.id))
    session.add(
        LabelerChange(
            kind="merge", from_name=src.name, into_name=dst.name, into_id=row_id(dst), by_name=lead.name, n_labels=n
        )
    )
    session.flush()
    session.delete(src)
    session.flush()
    return n


def change_history(*, session: Session) -> pd.DataFrame:
    """Renames and merges, newest first: at, kind, from_name, into_name, by_name, n_labels."""
    rows = session.exec(select(LabelerChange).order_by(LabelerChange.id.desc())).all()  # type: ignore[union-attr]
    cols = ["at", "kind", "from_name", "into_name", "by_name", "n_labels"]
    return pd.DataFrame([[getattr(r, c) for c in cols] for r in rows], columns=cols)


def roster_version(*, session: Session) -> int:
    """Changes whenever a rename or merge happens (a cache key for agreement figures)."""
    return int(session.exec(select(func.max(LabelerChange.id))).one() or 0)
