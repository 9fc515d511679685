"""Record, undo and revise labels (append-only events); current labels and consensus."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, CompoundSelect, Integer, Select, String, Subquery, bindparam, case, delete, func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from qa0_label.store.db import insert_unless_taken, inserted_key
from qa0_label.store.models import (
    ARCHIVE_LABELER,
    CAUTION_ORDER,
    ROLES,
    ExecutionBlock,
    Label,
    Labeler,
    Lease,
    Skip,
    row_id,
    utcnow,
)
from qa0_label.store.names import (
    MAX_COMMENT_CHARS as MAX_COMMENT_CHARS,
)
from qa0_label.store.names import (
    SYSTEM_LABELERS as SYSTEM_LABELERS,
)
from qa0_label.store.names import (
    LabelError as LabelError,
)
from qa0_label.store.names import (
    NotAllowed as NotAllowed,
)
from qa0_label.store.names import (
    find_labeler as find_labeler,
)
from qa0_label.store.names import (
    name_key as name_key,
)
from qa0_label.store.names import (
    normalize_comment as normalize_comment,
)
from qa0_label.store.names import (
    normalize_name as normalize_name,
)
from qa0_label.store.names import (
    normalize_value as normalize_value,
)
from qa0_label.store.uids import canonical_uid


def get_or_create_labeler(*, session: Session, name: str, role: str = "aod", system: bool = False) -> Labeler:
    """The labeler called NAME (compared case-insensitively), created with ROLE if new (default: an AoD).

    system=True only for the importer's own labeler ('archive'); any other caller is refused reserved names.
    """
    name = normalize_name(name, system_ok=system)
    if role not in ROLES:
        raise LabelError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    labeler = find_labeler(session=session, name=name)
    if labeler is not None:
        return labeler
    labeler = Labeler(name=name, role=role)
    try:
        with session.begin_nested():
            session.add(labeler)
            session.flush()
    except IntegrityError:
        # Another process created the same name between our read and write.
        labeler = session.exec(select(Labeler).where(Labeler.name == name)).one()
    return labeler


def set_role(*, session: Session, name: str, role: str, create: bool = False) -> Labeler:
    """Give the labeler NAME a role; LabelError for an unknown name (unless create) or for the last lead.

    create=True is for the database owner's CLI making the first lead of a new database; a lead in the app
    picks from the roster, so a misspelt name there must not become a new person.
    """
    if role not in ROLES:
        raise LabelError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if create:
        labeler = get_or_create_labeler(session=session, name=name, role=role)
    else:
        found = find_labeler(session=session, name=name)
        if found is None or found.name.casefold() in SYSTEM_LABELERS:
            raise LabelError(f"no labeler named {normalize_name(name, system_ok=True)!r}")
        labeler = found
    if labeler.role == "lead" and role != "lead":
        refuse_last_lead(session=session, labeler=labeler)
    labeler.role = role
    session.add(labeler)
    session.flush()
    return labeler


def refuse_last_lead(*, session: Session, labeler: Labeler) -> None:
    """LabelError when LABELER is the only team lead: without a lead only the command line can appoint one."""
    # FOR UPDATE (PostgreSQL; SQLite's write transactions are serialised anyway): two leads demoting each
    # other at the same moment must not both see the other still a lead.
    leads = session.exec(select(Labeler.id).where(Labeler.role == "lead").with_for_update()).all()
    if not set(leads) - {labeler.id}:
        raise LabelError(f"{labeler.name} is the last lead: make someone else a lead first")


_Q_EB_BY_UID = sa_select(col(ExecutionBlock.id)).where(col(ExecutionBlock.uid) == bindparam("uid", type_=String()))


def eb_id_for_uid(*, session: Session, uid: str) -> int:
    """Database id of the EB with this uid, or LabelError naming the uid."""
    # A prebuilt Core query: the CLI's `label` runs this before every record_label.
    _flush_pending(session)
    eb_id = session.connection().execute(_Q_EB_BY_UID, {"uid": canonical_uid(uid)}).scalar()
    if eb_id is None:
        raise LabelError(f"no EB with uid {uid!r}")
    return int(eb_id)


# record_label runs on every key press of every AoD: prebuilt Core statements (compiled once, cached by
# SQLAlchemy) instead of ORM queries and a unit-of-work flush cut its CPU to a fraction and its statements
# from seven to three (context lookup, insert, lease release).
_CID = bindparam("cid", type_=String())
_Q_LABEL_CONTEXT = sa_select(
    # One round trip for everything a label needs to know: an earlier event with this click's id, whether the
    # EB exists, and the labeler's id and role.
    sa_select(col(Label.id)).where(col(Label.client_event_id) == _CID).scalar_subquery(),
    sa_select(col(ExecutionBlock.id))
    .where(col(ExecutionBlock.id) == bindparam("eb", type_=Integer()))
    .scalar_subquery(),
    sa_select(col(Labeler.id)).where(col(Labeler.name) == bindparam("name", type_=String())).scalar_subquery(),
    sa_select(col(Labeler.role)).where(col(Labeler.name) == bindparam("name", type_=String())).scalar_subquery(),
)
_Q_EVENT_BY_CLIENT_ID = sa_select(col(Label.id)).where(col(Label.client_event_id) == _CID)
_D_LEASE = delete(Lease).where(
    col(Lease.eb_id) == bindparam("eb", type_=Integer()), col(Lease.labeler_id) == bindparam("me", type_=Integer())
)


# A click that arrives twice at once inserts nothing the second time, and the first event is read back instead.
_I_LABEL = insert_unless_taken(Label, "client_event_id", Label.id)


def warm_up(conn: Any) -> None:
    """Compile record_label's context query into CONN's engine statement cache (the parameters match no row)."""
    conn.execute(_Q_LABEL_CONTEXT, {"cid": None, "eb": -1, "name": ""}).all()


def _flush_pending(session: Session) -> None:
    # The Core statements below bypass the ORM's autoflush: rows a caller added to this session but has not
    # flushed yet (a new EB or labeler) must reach the database first, as an ORM query would have made them.
    if session.new or session.deleted or session.dirty:
        session.flush()


def record_label(
    *,
    session: Session,
    eb_id: int,
    labeler: str,
    value: str,
    comment: str | None = None,
    seconds_on_eb: float | None = None,
    client_event_id: str | None = None,
    kind: str = "review",
    reason: str | None = None,
    system: bool = False,
) -> Label:
    """Append a label event; a repeated client_event_id returns the first event instead of a second one.

    system=True lets the system's own labelers (SYSTEM_LABELERS, e.g. the importer's 'archive') label; no
    person-facing caller passes it.
    """
    value = normalize_value(value)
    if kind not in ("review", "adjudication"):
        raise LabelError(f"unknown label kind {kind!r}")
    comment, reason = normalize_comment(comment), normalize_comment(reason, what="reason")
    try:
        name, bad_name = normalize_name(labeler, system_ok=system), None
    except LabelError as exc:  # reported after the click-id and EB checks, in the order callers have relied on
        name, bad_name = "", exc
    _flush_pending(session)
    conn = session.connection()
    existing_id, eb_found, who_id, _role = conn.execute(
        _Q_LABEL_CONTEXT, {"cid": client_event_id, "eb": int(eb_id), "name": name}
    ).one()
    if existing_id is not None:
        return session.get_one(Label, int(existing_id))
    if eb_found is None:
        raise LabelError(f"no EB with id {eb_id}")
    if bad_name is not None:
        raise bad_name
    if who_id is None:  # a new name: rare, so the ORM path that copes with a concurrent creation is fine
        who = get_or_create_labeler(session=session, name=name, system=system)
        who_id = row_id(who)
    if kind == "adjudication":
        from qa0_label.access.authz import authorize  # the one lead check (access imports this module)

        authorize(session=session, requester=name, action="adjudicate")
        if not (reason or "").strip():
            raise LabelError("an adjudication needs a reason")
    row: dict[str, Any] = {
        "eb_id": int(eb_id),
        "labeler_id": int(who_id),
        "value": value,
        "comment": comment or None,
        "reason": reason or None,
        "seconds_on_eb": seconds_on_eb,
        "created_at": utcnow(),
        "kind": kind,
        "client_event_id": client_event_id or uuid.uuid4().hex,
        "reverts_id": None,
    }
    new_id = inserted_key(conn.execute(_I_LABEL[conn.dialect.name], row))
    if new_id is None:
        # The same click arrived twice at once: the first insert won, hand back that one.
        first = conn.execute(_Q_EVENT_BY_CLIENT_ID, {"cid": row["client_event_id"]}).scalar_one()
        return session.get_one(Label, first)
    release_lease(session=session, eb_id=int(eb_id), labeler_id=row["labeler_id"])
    # A detached copy of the stored row: callers read its fields (id, value, kind ...), nothing is lazy-loaded.
    return Label(id=int(new_id), **row)


def undo_last(
    *, session: Session, labeler: str, client_event_id: str | None = None, lease_minutes: float = 15.0
) -> Label | None:
    """Revert the labeler's newest review event by appending an undo event; returns it (None if nothing).

    The EB goes back to the undoer: leased to them again (unless someone else holds an unexpired lease), so the
    queue hands it to them and to nobody else while they look at it again.
    """
    who = get_or_create_labeler(session=session, name=labeler)
    if client_event_id is not None:
        existing = session.exec(select(Label).where(Label.client_event_id == client_event_id)).first()
        if existing is not None:
            return existing
    return _undo_newest(session, row_id(who), _newest_in_force(session, row_id(who)), client_event_id, lease_minutes)


_InForce = tuple[Label | None, list[Label], set[int | None]]  # the newest review in force, the events, the undone ids


def _undo_newest(
    session: Session, who_id: int, in_force: _InForce, client_event_id: str | None, lease_minutes: float
) -> Label | None:
    target, events, reverted = in_force
    if target is None:
        return None
    previous = next(
        (
            e
            for e in events
            if e.eb_id == target.eb_id and row_id(e) < row_id(target) and e.kind == "review" and e.id not in reverted
        ),
        None,
    )
    event = Label(
        eb_id=target.eb_id,
        labeler_id=who_id,
        value=previous.value if previous else None,
        kind="undo",
        reverts_id=target.id,
        client_event_id=client_event_id or uuid.uuid4().hex,
    )
    session.add(event)
    session.flush()
    _lease_back(session, int(target.eb_id), who_id, lease_minutes)
    return event


def _newest_in_force(session: Session, labeler_id: int) -> _InForce:
    # Undo walks back through this labeler's review events that are still in force.
    events = list(
        session.exec(
            select(Label)
            .where(Label.labeler_id == labeler_id, col(Label.kind).in_(("review", "undo")))
            .order_by(col(Label.id).desc())
        ).all()
    )
    reverted = {e.reverts_id for e in events if e.kind == "undo"}
    target = next((e for e in events if e.kind == "review" and e.id not in reverted), None)
    return target, events, reverted


def undo_last_action(
    *, session: Session, labeler: str, client_event_id: str | None = None, lease_minutes: float = 15.0
) -> tuple[str, int] | None:
    """Undo the labeler's newest action, a label or a skip: ("label" | "skip", eb_id), or None if there is none.

    A skip is taken back (the EB is offered to them again, leased to them now); a label is undone by undo_last.
    """
    who = find_labeler(session=session, name=labeler)
    if who is None:
        return None
    if client_event_id is not None:  # a repeated press of the same undo: report it, do not undo one more
        done = session.exec(select(Label).where(Label.client_event_id == client_event_id)).first()
        if done is not None:
            return "label", int(done.eb_id)
    skip = session.exec(select(Skip).where(Skip.labeler_id == who.id).order_by(col(Skip.id).desc())).first()
    in_force = _newest_in_force(session, row_id(who))
    target = in_force[0]
    if skip is not None and (target is None or _aware(skip.created_at) >= _aware(target.created_at)):
        session.delete(skip)
        session.flush()
        _lease_back(session, int(skip.eb_id), row_id(who), lease_minutes)
        return "skip", int(skip.eb_id)
    event = _undo_newest(session, row_id(who), in_force, client_event_id, lease_minutes)
    return None if event is None else ("label", int(event.eb_id))


def _lease_back(session: Session, eb_id: int, labeler_id: int, minutes: float) -> None:
    now = utcnow()
    expires = now + timedelta(minutes=float(minutes))
    lease = session.get(Lease, eb_id)
    if lease is not None and lease.labeler_id != labeler_id and _aware(lease.expires_at) > now:
        return  # someone else is looking at it right now: do not pull it from under them
    if lease is None:
        session.add(Lease(eb_id=eb_id, labeler_id=labeler_id, reason="undo", created_at=now, expires_at=expires))
    else:
        lease.labeler_id, lease.reason, lease.created_at, lease.expires_at = labeler_id, "undo", now, expires
        session.add(lease)
    session.flush()


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def record_skip(*, session: Session, eb_id: int, labeler: str) -> None:
    """Remember that the labeler skipped this EB and release their lease on it."""
    who = get_or_create_labeler(session=session, name=labeler)
    exists = session.exec(select(Skip.id).where(Skip.eb_id == eb_id, Skip.labeler_id == who.id)).first()
    if exists is None:
        session.add(Skip(eb_id=eb_id, labeler_id=row_id(who)))
    release_lease(session=session, eb_id=eb_id, labeler_id=row_id(who))
    session.flush()


def release_lease(*, session: Session, eb_id: int, labeler_id: int) -> None:
    """Drop the labeler's lease on the EB, if they hold one."""
    # The prebuilt statement: this runs on every label (record_label) and on every lost PostgreSQL lease race.
    _flush_pending(session)
    session.connection().execute(_D_LEASE, {"eb": int(eb_id), "me": int(labeler_id)})


# --- the current-label and consensus rules: their one home -----------------------------------------
#
# A labeler's current label on an EB is their newest review or undo event (an undo back to "no label" has no
# value); the newest adjudication of an EB wins over the labelers' majority. Every query of current labels,
# adjudications or consensus is built from the selectables below.

CURRENT_KINDS: tuple[str, ...] = ("review", "undo")


def current_label_ids(eb_where: ColumnElement[bool] | None = None) -> Subquery:
    """Ids of the current-label events: the newest review/undo event per (EB, labeler), as subquery `newest(id)`.

    EB_WHERE (a condition on ExecutionBlock's columns) limits the EBs considered.
    """
    stmt = sa_select(func.max(Label.id).label("id")).where(Label.kind.in_(CURRENT_KINDS))  # type: ignore[attr-defined]
    if eb_where is not None:
        stmt = stmt.join(ExecutionBlock, ExecutionBlock.id == Label.eb_id).where(eb_where)  # type: ignore[arg-type]
    return stmt.group_by(col(Label.eb_id), col(Label.labeler_id)).subquery("newest")


def newest_adjudication_ids(eb_where: ColumnElement[bool] | None = None) -> Subquery:
    """Ids of the newest adjudication event per EB, as subquery `newest_adj(id)`."""
    stmt = sa_select(func.max(col(Label.id)).label("id")).where(col(Label.kind) == "adjudication")
    if eb_where is not None:
        stmt = stmt.join(ExecutionBlock, ExecutionBlock.id == Label.eb_id).where(eb_where)  # type: ignore[arg-type]
    return stmt.group_by(col(Label.eb_id)).subquery("newest_adj")


def current_labels_select(*columns: Any, eb_where: ColumnElement[bool] | None = None) -> Select[Any]:
    """SELECT COLUMNS (of Label, Labeler, ...) FROM the current labels that carry a value."""
    newest = current_label_ids(eb_where)
    return sa_select(*columns).select_from(Label).join(newest, newest.c.id == Label.id).where(Label.value.is_not(None))  # type: ignore[union-attr]


def adjudications_select(*columns: Any, eb_where: ColumnElement[bool] | None = None) -> Select[Any]:
    """SELECT COLUMNS FROM the newest adjudication of each EB."""
    newest = newest_adjudication_ids(eb_where)
    return sa_select(*columns).select_from(Label).join(newest, newest.c.id == Label.id)


_CURRENT_COLUMNS = (
    Label.eb_id,
    Label.labeler_id,
    Labeler.name.label("labeler"),  # type: ignore[attr-defined]
    Labeler.role,
    Label.value,
    Label.comment,
    Label.seconds_on_eb,
    Label.created_at,
    Label.id.label("event_id"),  # type: ignore[union-attr]
)


def current_labels(session: Session, *, include_archive: bool = True) -> pd.DataFrame:
    """Each labeler's current label per EB: the newest review/undo event, when it carries a value."""
    stmt = current_labels_select(*_CURRENT_COLUMNS).join(Labeler, col(Labeler.id) == col(Label.labeler_id))
    if not include_archive:
        stmt = stmt.where(col(Labeler.name) != ARCHIVE_LABELER)
    rows = session.connection().execute(stmt.order_by(col(Label.id))).fetchall()
    cols = ["eb_id", "labeler_id", "labeler", "role", "value", "comment", "seconds_on_eb", "created_at", "event_id"]
    return pd.DataFrame(rows, columns=cols)


def adjudications(session: Session) -> pd.DataFrame:
    """The newest adjudication per EB."""
    stmt = adjudications_select(
        Label.eb_id,
        Label.value,
        Label.reason,
        col(Labeler.name).label("labeler"),
        Label.created_at,
    ).join(Labeler, col(Labeler.id) == col(Label.labeler_id))
    rows = session.connection().execute(stmt).fetchall()
    return pd.DataFrame(rows, columns=["eb_id", "value", "reason", "labeler", "created_at"])


def majority_value(values: Iterable[str]) -> str | None:
    """Majority of values; a tie goes to the more cautious value (Fail before SemiPass before Pass)."""
    counts = Counter(values)
    if not counts:
        return None
    top = max(counts.values())
    return next(v for v in CAUTION_ORDER if counts.get(v, 0) == top)


def consensus_from_frames(current: pd.DataFrame, adjudicated: pd.DataFrame) -> pd.DataFrame:
    """Consensus (eb_id, value, source, n_labels) from current-label and adjudication frames, vectorised.

    An adjudication wins; else the majority of current labels, a tie going to the more cautious value
    (Fail before SemiPass before Pass), exactly as ``majority_value``.
    """
    cols = ["eb_id", "value", "source", "n_labels"]
    rank = {v: i for i, v in enumerate(CAUTION_ORDER)}
    code = np.array([rank.get(v, -1) for v in current["value"]], dtype=np.int64)
    known = code >= 0
    if not known.any():
        out = pd.DataFrame({c: pd.Series(dtype=object if c in ("value", "source") else "int64") for c in cols})
    else:
        ids, inv = np.unique(current["eb_id"].to_numpy()[known].astype(np.int64), return_inverse=True)
        counts = np.zeros((ids.size, len(CAUTION_ORDER)), dtype=np.int64)
        np.add.at(counts, (inv, code[known]), 1)
        # Columns in caution order and argmax takes the first maximum: the majority with a cautious tie-break.
        pick = counts.argmax(axis=1)
        out = pd.DataFrame(
            {
                "eb_id": ids,
                "value": np.asarray(CAUTION_ORDER, dtype=object)[pick],
                "source": np.where((counts > 0).sum(axis=1) == 1, "unanimous", "majority").astype(object),
                "n_labels": counts.sum(axis=1).astype(np.int64),
            }
        )
    if not adjudicated.empty:
        adj = adjudicated[["eb_id", "value"]].copy()
        adj["eb_id"] = adj["eb_id"].astype(np.int64)
        n_of = dict(zip(out["eb_id"], out["n_labels"]))
        adj["source"] = "adjudication"
        adj["n_labels"] = [int(n_of.get(e, 0)) for e in adj["eb_id"]]
        out = pd.concat([out[~out["eb_id"].isin(adj["eb_id"])], adj[cols]], ignore_index=True)
    return out.sort_values("eb_id", ignore_index=True)[cols]


def consensus(session: Session) -> pd.DataFrame:
    """Training label per EB: an adjudication wins, else the majority of current labels (cautious ties)."""
    return consensus_from_frames(current_labels(session), adjudications(session))


def consensus_of(session: Session, eb_ids: Iterable[int]) -> dict[int, str]:
    """EB id -> consensus value for the given EBs that have one (the rule of consensus_from_frames)."""
    ids = sorted({int(e) for e in eb_ids})
    if not ids:
        return {}
    where = ExecutionBlock.id.in_(ids)  # type: ignore[union-attr]
    conn = session.connection()
    cur = pd.DataFrame(
        conn.execute(current_labels_select(Label.eb_id, Label.value, eb_where=where)).fetchall(),
        columns=["eb_id", "value"],
    )
    adj = pd.DataFrame(
        conn.execute(adjudications_select(Label.eb_id, Label.value, eb_where=where)).fetchall(),
        columns=["eb_id", "value"],
    )
    cons = consensus_from_frames(cur, adj)
    return dict(zip(cons["eb_id"].astype(int), cons["value"]))


def consensus_select(eb_where: ColumnElement[bool] | None = None) -> CompoundSelect[Any]:
    """The consensus rule in SQL, SELECT eb_id, value: for pages that must not pull every label into Python.

    The same rule as consensus_from_frames (tests check they agree): the newest adjudication wins; else the
    majority of current labels, a tie going to the first value of CAUTION_ORDER.
    """
    votes = (
        current_labels_select(Label.eb_id, Label.value, func.count().label("n"), eb_where=eb_where)
        .where(Label.value.in_(CAUTION_ORDER))  # type: ignore[union-attr]
        .group_by(col(Label.eb_id), col(Label.value))
        .subquery("votes")
    )
    caution = case({v: i for i, v in enumerate(CAUTION_ORDER)}, value=votes.c.value)
    rank = func.row_number().over(partition_by=votes.c.eb_id, order_by=(votes.c.n.desc(), caution)).label("r")
    ranked = sa_select(votes.c.eb_id, votes.c.value, rank).subquery("ranked")
    adjudicated = (
        adjudications_select(Label.eb_id, Label.value, eb_where=eb_where)
        .where(Label.value.in_(CAUTION_ORDER))  # type: ignore[union-attr]
        .subquery("adjudicated")
    )
    majority = sa_select(ranked.c.eb_id, ranked.c.value).where(
        ranked.c.r == 1, ranked.c.eb_id.not_in(sa_select(adjudicated.c.eb_id))
    )
    return sa_select(adjudicated.c.eb_id, adjudicated.c.value).union_all(majority)
