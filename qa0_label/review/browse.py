"""Queries behind the Data page's EB browser and the read-only review view (no Streamlit here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import bindparam, text
from sqlmodel import Session, select

from qa0_label.store.models import ExecutionBlock

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
    sources = [r[0] for r in conn.execute(text("SELECT DISTINCT source FROM execution_block ORDER BY source"))]
    bands = [int(r[0]) for r in conn.execute(text("SELECT DISTINCT band FROM execution_block ORDER BY band"))]
    lo, hi = conn.execute(text("SELECT MIN(start_time), MAX(start_time) FROM execution_block")).one()
    return {"sources": sources, "bands": bands, "first": _as_date(lo), "last": _as_date(hi)}


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


# Current label per (eb, labeler) = newest review/undo event; undo events without a value mean "no label".
_CURRENT = """
SELECT l.eb_id, l.value FROM label l
JOIN (SELECT eb_id, labeler_id, MAX(id) AS id FROM label WHERE kind IN ('review', 'undo')
      GROUP BY eb_id, labeler_id) newest ON newest.id = l.id
WHERE l.value IS NOT NULL
"""


def browse_ebs(*, session: Session, flt: BrowseFilter, limit: int = 500) -> tuple[pd.DataFrame, int]:
    """EBs matching the filter (newest first, at most LIMIT rows) and how many match in total."""
    if flt.label_state not in LABEL_STATES:
        raise ValueError(f"unknown label state {flt.label_state!r}; expected one of {', '.join(LABEL_STATES)}")
    where = ["1=1"]
    params: dict[str, Any] = {}
    if flt.source:
        where.append("e.source = :source")
        params["source"] = flt.source
    if flt.band is not None:
        where.append("e.band = :band")
        params["band"] = int(flt.band)
    if flt.start is not None:
        where.append("e.start_time >= :t0")
        params["t0"] = datetime.combine(flt.start, time.min, tzinfo=timezone.utc)
    if flt.end is not None:
        where.append("e.start_time < :t1")
        params["t1"] = datetime.combine(flt.end + timedelta(days=1), time.min, tzinfo=timezone.utc)
    if flt.uid_contains:
        # LIKE wildcards in user input are matched literally.
        where.append("e.uid LIKE :uid ESCAPE '!'")
        needle = flt.uid_contains.strip().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params["uid"] = f"%{needle}%"
    state = {
        "any": "1=1",
        "unlabelled": "COALESCE(c.n, 0) = 0 AND a.eb_id IS NULL",
        "labelled": "COALESCE(c.n, 0) > 0",
        "disputed": "COALESCE(c.n_values, 0) > 1",
        "adjudicated": "a.eb_id IS NOT NULL",
    }[flt.label_state]
    where.append(state)
    base = f"""
        FROM execution_block e
        LEFT JOIN (SELECT eb_id, COUNT(*) AS n, COUNT(DISTINCT value) AS n_values,
                          SUM(CASE WHEN value = 'Pass' THEN 1 ELSE 0 END) AS n_pass,
                          SUM(CASE WHEN value = 'SemiPass' THEN 1 ELSE 0 END) AS n_semi,
                          SUM(CASE WHEN value = 'Fail' THEN 1 ELSE 0 END) AS n_fail
                   FROM ({_CURRENT}) cur GROUP BY eb_id) c ON c.eb_id = e.id
        LEFT JOIN (SELECT DISTINCT eb_id FROM label WHERE kind = 'adjudication') a ON a.eb_id = e.id
        WHERE {" AND ".join(where)}
    """
    conn = session.connection()
    # Times go through the column's own type so SQLite compares strings of the same format.
    time_type = ExecutionBlock.__table__.c.start_time.type  # type: ignore[attr-defined]
    binds = [bindparam(k, type_=time_type) for k in ("t0", "t1") if k in params]
    total = int(conn.execute(text("SELECT COUNT(*) " + base).bindparams(*binds), params).scalar_one())
    rows = conn.execute(
        text(
            """SELECT e.id, e.uid, e.source, e.band, e.array, e.start_time, e.n_antennas, e.pwv_mm,
                      e.elevation_deg, e.exec_fraction, COALESCE(c.n, 0), COALESCE(c.n_pass, 0),
                      COALESCE(c.n_semi, 0), COALESCE(c.n_fail, 0),
                      CASE WHEN a.eb_id IS NULL THEN 0 ELSE 1 END """
            + base
            + " ORDER BY e.start_time DESC, e.id DESC LIMIT :limit"
        ).bindparams(*binds),
        {**params, "limit": int(limit)},
    ).fetchall()
    frame = pd.DataFrame(
        rows,
        columns=[
            "eb_id",
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
            "n_pass",
            "n_semi",
            "n_fail",
            "adjudicated",
        ],
    )
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


def eb_labels(*, session: Session, eb_id: int, viewer: str | None, viewer_role: str) -> tuple[pd.DataFrame, bool]:
    """Label events of one EB as a viewer may see them, and whether others' labels were withheld.

    Overlap reviews must stay blind: an AoD sees other people's labels on an EB only after giving their
    own; team leads see everything.
    """
    conn = session.connection()
    rows = conn.execute(
        text(
            """SELECT l.id, lb.name, lb.role, l.kind, l.value, l.comment, l.reason, l.seconds_on_eb, l.created_at
               FROM label l JOIN labeler lb ON lb.id = l.labeler_id
               WHERE l.eb_id = :eb ORDER BY l.id"""
        ),
        {"eb": int(eb_id)},
    ).fetchall()
    frame = pd.DataFrame(
        rows,
        columns=["event_id", "labeler", "role", "kind", "value", "comment", "reason", "seconds_on_eb", "created_at"],
    )
    if viewer_role == "lead":
        return frame, False
    own = frame[frame["labeler"] == viewer] if viewer else frame.iloc[0:0]
    has_own_label = bool((own["kind"] == "review").any())
    if has_own_label:
        return frame, False
    return own, bool(len(frame) > len(own))
