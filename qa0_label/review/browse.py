"""Queries behind the Data page's EB browser and the read-only review view (no Streamlit here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Subquery, and_, case, distinct, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from qa0_label.access.visibility import LabelScope, visible_labels
from qa0_label.store.labels import current_labels_select
from qa0_label.store.models import LABEL_VALUES, ExecutionBlock, Label, Labeler, table_of

LABEL_STATES: tuple[str, ...] = ("any", "unlabelled", "labelled", "disputed", "adjudicated")
"""Label-state filter values: disputed = current labels disagree; adjudicated = a lead decided."""

BROWSE_COLUMNS: tuple[str, ...] = (
    "uid",
    "source",
    "band",
    "array",
    "start_time",
    "n_antennas",
    "pwv_mm",
    "elevation_deg",
    "exec_fraction",
    "n_labels",
    "labels",
    "adjudicated",
)


@dataclass(frozen=True)
class BrowseFilter:
    """What the user asked to see; every field optional."""

    source: str | None = None
    band: int | None = None
    start: date | None = None
    end: date | None = None  # inclusive day
    label_state: str = "any"
    uid_contains: str | None = None


def filter_options(*, session: Session) -> dict[str, Any]:
    """Choices for the browse filters: sources, bands, first and last observation date."""
    conn = session.connection()
    eb = table_of(ExecutionBlock).c
    sources = [r[0] for r in conn.execute(sa_select(eb.source).distinct().order_by(eb.source))]
    bands = [int(r[0]) for r in conn.execute(sa_select(eb.band).distinct().order_by(eb.band))]
    lo, hi = conn.execute(sa_select(func.min(eb.start_time), func.max(eb.start_time))).one()
    return {"sources": sources, "bands": bands, "first": _as_date(lo), "last": _as_date(hi)}


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def _label_counts(scope: LabelScope) -> Subquery:
    """Per EB: how many current labels SCOPE may see, how many distinct values, and the count of each value."""
    cur = current_labels_select(
        Label.eb_id,
        func.count().label("n"),
        func.count(distinct(col(Label.value))).label("n_values"),
        *(func.sum(case((col(Label.value) == v, 1), else_=0)).label(f"n_{v.lower()}") for v in LABEL_VALUES),
    ).where(or_(scope.may_see_others_sql(Label.eb_id), scope.own_sql(Label.labeler_id)))
    return cur.group_by(col(Label.eb_id)).subquery("c")


def _eb_filter(flt: BrowseFilter) -> list[ColumnElement[bool]]:
    eb = ExecutionBlock
    where: list[ColumnElement[bool]] = []
    if flt.source:
        where.append(eb.source == flt.source)  # type: ignore[arg-type]
    if flt.band is not None:
        where.append(eb.band == int(flt.band))  # type: ignore[arg-type]
    if flt.start is not None:
        where.append(eb.start_time >= datetime.combine(flt.start, time.min, tzinfo=timezone.utc))  # type: ignore[arg-type]
    if flt.end is not None:
        end = datetime.combine(flt.end + timedelta(days=1), time.min, tzinfo=timezone.utc)
        where.append(eb.start_time < end)  # type: ignore[arg-type]
    if flt.uid_contains:
        # LIKE wildcards in user input are matched literally.
        needle = flt.uid_contains.strip().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        where.append(eb.uid.like(f"%{needle}%", escape="!"))  # type: ignore[attr-defined]
    return where


def browse_ebs(
    *, session: Session, flt: BrowseFilter, limit: int = 500, scope: LabelScope | None = None
) -> tuple[pd.DataFrame, int]:
    """EBs matching the filter (newest first, at most LIMIT rows) and how many match in total.

    Label counts, the label summary, the adjudicated flag and the label-state filter only see what SCOPE may
    see (access.visibility: an AoD's own labels, and others' on EBs they labelled); None = everything (the
    database owner's code; the app always passes the viewer's scope).
    """
    if flt.label_state not in LABEL_STATES:
        raise ValueError(f"unknown label state {flt.label_state!r}; expected one of {', '.join(LABEL_STATES)}")
    scope = scope or LabelScope(see_all=True, viewer_id=None, viewer=None)
    c = _label_counts(scope)
    a = (
        sa_select(col(Label.eb_id))
        .where(col(Label.kind) == "adjudication", scope.may_see_others_sql(col(Label.eb_id)))
        .distinct()
        .subquery("a")
    )
    n = func.coalesce(c.c.n, 0)
    state = {
        "any": None,
        "unlabelled": and_(n == 0, a.c.eb_id.is_(None)),
        "labelled": n > 0,
        "disputed": func.coalesce(c.c.n_values, 0) > 1,
        "adjudicated": a.c.eb_id.is_not(None),
    }[flt.label_state]
    where = _eb_filter(flt) + ([state] if state is not None else [])
    eb = ExecutionBlock.__table__  # type: ignore[attr-defined]
    joined = eb.outerjoin(c, c.c.eb_id == eb.c.id).outerjoin(a, a.c.eb_id == eb.c.id)
    conn = session.connection()
    total = int(conn.execute(sa_select(func.count()).select_from(joined).where(*where)).scalar_one())
    # The EB columns the browser shows come from BROWSE_COLUMNS; the label counts are computed here.
    shown = [eb.c[name] for name in BROWSE_COLUMNS if name in eb.c]
    stmt = (
        sa_select(
            eb.c.id.label("eb_id"),
            *shown,
            n.label("n_labels"),
            func.coalesce(c.c.n_pass, 0).label("n_pass"),
            func.coalesce(c.c.n_semipass, 0).label("n_semi"),
            func.coalesce(c.c.n_fail, 0).label("n_fail"),
            case((a.c.eb_id.is_(None), 0), else_=1).label("adjudicated"),
        )
        .select_from(joined)
        .where(*where)
        .order_by(eb.c.start_time.desc(), eb.c.id.desc())
        .limit(int(limit))
    )
    result = conn.execute(stmt)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    frame["labels"] = [_label_summary(p, s, f) for p, s, f in zip(frame.n_pass, frame.n_semi, frame.n_fail)]
    frame["adjudicated"] = frame["adjudicated"].astype(bool)
    frame["start_time"] = pd.to_datetime(frame["start_time"], utc=True)
    return frame.drop(columns=["n_pass", "n_semi", "n_fail"]), total


def _label_summary(n_pass: int, n_semi: int, n_fail: int) -> str:
    parts = [f"{n} {v}" for n, v in ((n_pass, "Pass"), (n_semi, "SemiPass"), (n_fail, "Fail")) if n]
    return ", ".join(parts)


def eb_id_for_uid(*, session: Session, uid: str) -> int | None:
    """Database id of the EB with this uid, or None."""
    found = session.exec(select(ExecutionBlock.id).where(ExecutionBlock.uid == str(uid).strip())).first()
    return int(found) if found is not None else None


def uid_of(*, session: Session, eb_id: int) -> str | None:
    """The uid of EB eb_id, or None."""
    found = session.exec(select(ExecutionBlock.uid).where(ExecutionBlock.id == eb_id)).first()
    return str(found) if found is not None else None


def eb_labels(*, session: Session, eb_id: int, scope: LabelScope) -> tuple[pd.DataFrame, bool]:
    """Label events of one EB as SCOPE may see them (access.visibility), and whether any were withheld."""
    conn = session.connection()
    stmt = (
        sa_select(
            col(Label.id),
            col(Label.eb_id),
            col(Label.labeler_id),
            col(Labeler.name),
            col(Labeler.role),
            col(Label.kind),
            col(Label.value),
            col(Label.comment),
            col(Label.reason),
            col(Label.seconds_on_eb),
            col(Label.created_at),
        )
        .join(Labeler, col(Labeler.id) == col(Label.labeler_id))
        .where(col(Label.eb_id) == int(eb_id))
        .order_by(col(Label.id))
    )
    rows = conn.execute(stmt).fetchall()
    columns = ["event_id", "eb_id", "labeler_id", "labeler", "role", "kind", "value", "comment", "reason"]
    frame = pd.DataFrame(rows, columns=[*columns, "seconds_on_eb", "created_at"])
    shown = visible_labels(frame, scope)
    return shown.drop(columns=["eb_id", "labeler_id"]), len(shown) < len(frame)
