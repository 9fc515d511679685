"""Team-lead services: the disagreement queue, adjudication, and gold EBs (keyword-only, one session each).

Queue rule (``disagreements``)
    An EB is in the queue when the current labels of its labelers (the 'archive' importer excluded) hold
    at least two different values, unless a lead has already adjudicated it and nobody has contradicted the
    ruling since. "Since" compares event ids (the label table's insertion order), which do not suffer from
    clock skew between sites. A label that arrives after the newest adjudication and differs from the
    adjudicated value re-opens the EB (new evidence against the ruling); a later label that agrees with the
    ruling does not. Until a lead decides again, ``labels.consensus`` keeps using the (newest) adjudication.

Gold EBs
    A lead fixes the right answer of an EB (``mark_gold``); assign.py serves gold EBs blind to AoDs and
    ``gold_scores`` compares each labeler's current label on them with the gold value.

Permissions
    ``adjudicate``, ``mark_gold`` and ``unmark_gold`` ask ``access.authz.authorize`` (the one lead check):
    ``labels.NotAllowed`` unless the requester is a lead with proof (OIDC, an unlock, or the owner's CLI; a
    bare name means library code run by the database owner). Bad values or EB ids raise ``labels.LabelError``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from qa0_label.access.authz import Requester, authorize
from qa0_label.lead import agreement
from qa0_label.store.labels import (
    LabelError,
    adjudications_select,
    current_labels,
    majority_value,
    normalize_value,
    record_label,
)
from qa0_label.store.models import LABEL_VALUES, ExecutionBlock, GoldEB, Label, Labeler, row_id, utcnow

DISAGREEMENT_COLUMNS: list[str] = [
    "eb_id",
    "uid",
    "source",
    "band",
    "start_time",
    "n_labels",
    "n_pass",
    "n_semipass",
    "n_fail",
    "values",
    "majority",
    "leaning",
    "last_label_at",
    "adjudicated_value",
]
_IN_CHUNK = 500  # ids per IN (...) list, well under every backend's bound-parameter limit


def _require_lead(session: Session, lead: Requester | str, action: str) -> Labeler:
    """The lead allowed to do ACTION (authz.authorize, the one lead check; never creates a labeler)."""
    return authorize(session=session, requester=lead, action=action)


def _require_eb(session: Session, eb_id: int) -> ExecutionBlock:
    eb = session.get(ExecutionBlock, int(eb_id))
    if eb is None:
        raise LabelError(f"no EB with id {eb_id}")
    return eb


def _newest_adjudications(session: Session) -> pd.DataFrame:
    stmt = adjudications_select(Label.eb_id, Label.id.label("event_id"), Label.value)  # type: ignore[union-attr]
    return pd.DataFrame(session.connection().execute(stmt).fetchall(), columns=["eb_id", "event_id", "value"])


def _eb_info(session: Session, eb_ids: list[int]) -> pd.DataFrame:
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(eb_ids), _IN_CHUNK):
        chunk = eb_ids[i : i + _IN_CHUNK]
        rows.extend(
            session.connection()
            .execute(
                sa_select(
                    col(ExecutionBlock.id),
                    col(ExecutionBlock.uid),
                    col(ExecutionBlock.source),
                    col(ExecutionBlock.band),
                    col(ExecutionBlock.start_time),
                ).where(col(ExecutionBlock.id).in_(chunk))
            )
            .all()
        )
    return pd.DataFrame(rows, columns=["eb_id", "uid", "source", "band", "start_time"])


def _summary(values: list[str]) -> str:
    counts = {v: values.count(v) for v in LABEL_VALUES}
    return ", ".join(f"{v} {n}" for v, n in counts.items() if n)


def leaning(values: list[str]) -> str | None:
    """Where the current labels lean, and why: "Pass (majority)", or "Fail (tie -> cautious)" for a tie.

    The value is labels.majority_value's (the consensus rule); a tie is named so a 1:1 split is not called a
    majority.
    """
    value = majority_value(values)
    if value is None:
        return None
    counts = Counter(values)
    top = max(counts.values())
    tie = sum(1 for c in counts.values() if c == top) > 1
    return f"{value} (tie -> cautious)" if tie else f"{value} (majority)"


def disagreements(*, session: Session) -> pd.DataFrame:
    """EBs whose current labels disagree and that await a lead's decision (see the module's queue rule).

    One row per EB, ordered by start_time then uid, with columns: eb_id, uid, source, band, start_time,
    n_labels, n_pass, n_semipass, n_fail, values (e.g. "Pass 2, Fail 1"), majority (cautious ties), leaning
    (the same value said the way a lead reads it: "Pass (majority)" or "Fail (tie -> cautious)"), last_label_at, adjudicated_value (the earlier ruling that was contradicted, or None).
    """
    current = current_labels(session, include_archive=False)
    if current.empty:
        return pd.DataFrame(columns=DISAGREEMENT_COLUMNS)
    adjudicated = _newest_adjudications(session).set_index("eb_id")
    queue: list[dict[str, Any]] = []
    for eb_id, group in current.groupby("eb_id", sort=False):
        values = group["value"].tolist()
        if len(set(values)) < 2:
            continue
        ruling: str | None = None
        if eb_id in adjudicated.index:
            ruling = str(adjudicated.at[eb_id, "value"])
            after = group[group["event_id"] > int(adjudicated.at[eb_id, "event_id"])]
            if not (after["value"] != ruling).any():
                continue
        queue.append(
            {
                "eb_id": int(eb_id),
                "n_labels": len(values),
                "n_pass": values.count("Pass"),
                "n_semipass": values.count("SemiPass"),
                "n_fail": values.count("Fail"),
                "values": _summary(values),
                "majority": majority_value(values),
                "leaning": leaning(values),
                "last_label_at": max(group["created_at"]),
                "adjudicated_value": ruling,
            }
        )
    if not queue:
        return pd.DataFrame(columns=DISAGREEMENT_COLUMNS)
    frame = pd.DataFrame(queue).merge(_eb_info(session, [q["eb_id"] for q in queue]), on="eb_id")
    frame = frame.sort_values(["start_time", "uid"], kind="stable", ignore_index=True)
    return frame[DISAGREEMENT_COLUMNS]


def labels_for_eb(*, session: Session, eb_id: int) -> pd.DataFrame:
    """Everything a lead needs to decide one EB: each labeler's current label plus every adjudication.

    Columns: event_id, kind ('review' or 'adjudication'), labeler, role, value, comment, reason,
    seconds_on_eb, created_at; ordered by event_id (oldest first). Includes the 'archive' label if any.
    Unknown eb_id raises LabelError.
    """
    _require_eb(session, eb_id)
    rows = session.exec(
        select(Label, Labeler.name, Labeler.role)
        .join(Labeler, Labeler.id == Label.labeler_id)  # type: ignore[arg-type]
        .where(Label.eb_id == int(eb_id))
        .order_by(Label.id)  # type: ignore[arg-type]
    ).all()
    newest_review: dict[int, tuple[Label, str, str]] = {}
    adjudications: list[tuple[Label, str, str]] = []
    for event, name, role in rows:
        if event.kind == "adjudication":
            adjudications.append((event, name, role))
        else:
            newest_review[event.labeler_id] = (event, name, role)
    # An undo back to "no label" leaves that labeler without a current label.
    keep = [r for r in newest_review.values() if r[0].value is not None] + adjudications
    keep.sort(key=lambda r: r[0].id or 0)
    cols = ["event_id", "kind", "labeler", "role", "value", "comment", "reason", "seconds_on_eb", "created_at"]
    return pd.DataFrame(
        [
            (
                e.id,
                "adjudication" if e.kind == "adjudication" else "review",
                name,
                role,
                e.value,
                e.comment,
                e.reason,
                e.seconds_on_eb,
                e.created_at,
            )
            for e, name, role in keep
        ],
        columns=cols,
    )


def adjudicate(
    *,
    session: Session,
    eb_id: int,
    lead: Requester | str,
    value: str,
    reason: str,
    client_event_id: str | None = None,
) -> Label:
    """Record a lead's ruling on an EB (wins over the majority in labels.consensus); returns the event."""
    who = _require_lead(session, lead, "adjudicate")
    return record_label(
        session=session,
        eb_id=int(eb_id),
        labeler=who.name,
        value=value,
        kind="adjudication",
        reason=reason,
        client_event_id=client_event_id,
    )


def mark_gold(*, session: Session, eb_id: int, lead: Requester | str, value: str, reason: str | None = None) -> GoldEB:
    """Make an EB a gold EB with VALUE (or change its gold value); leads only."""
    who = _require_lead(session, lead, "gold")
    value = normalize_value(value)
    _require_eb(session, eb_id)
    gold = session.get(GoldEB, int(eb_id))
    if gold is None:
        gold = GoldEB(eb_id=int(eb_id), value=value, set_by_id=row_id(who), reason=(reason or None))
        try:
            with session.begin_nested():
                session.add(gold)
                session.flush()
            return gold
        except IntegrityError:
            # Another lead marked the same EB at the same moment: fall through and update theirs.
            gold = session.get(GoldEB, int(eb_id))
            if gold is None:
                raise
    gold.value = value
    gold.set_by_id = who.id  # type: ignore[assignment]
    gold.reason = reason or None
    gold.created_at = utcnow()  # when the value in force was set
    session.add(gold)
    session.flush()
    return gold


def unmark_gold(*, session: Session, eb_id: int, lead: Requester | str) -> bool:
    """Remove an EB from the gold set; leads only. True if it was gold."""
    _require_lead(session, lead, "gold")
    gold = session.get(GoldEB, int(eb_id))
    if gold is None:
        return False
    session.delete(gold)
    session.flush()
    return True


def gold_table(*, session: Session) -> pd.DataFrame:
    """All gold EBs: DataFrame(eb_id, uid, source, band, start_time, value, set_by, reason, created_at)."""
    rows = (
        session.connection()
        .execute(
            sa_select(
                col(GoldEB.eb_id),
                col(ExecutionBlock.uid),
                col(ExecutionBlock.source),
                col(ExecutionBlock.band),
                col(ExecutionBlock.start_time),
                col(GoldEB.value),
                col(Labeler.name),
                col(GoldEB.reason),
                col(GoldEB.created_at),
            )
            .join(ExecutionBlock, col(ExecutionBlock.id) == col(GoldEB.eb_id))
            .join(Labeler, col(Labeler.id) == col(GoldEB.set_by_id))
            .order_by(col(GoldEB.eb_id))
        )
        .all()
    )
    cols = ["eb_id", "uid", "source", "band", "start_time", "value", "set_by", "reason", "created_at"]
    return pd.DataFrame(rows, columns=cols)


def gold_scores(*, session: Session) -> pd.DataFrame:
    """Each labeler's current labels on gold EBs vs the gold value: DataFrame(labeler, n, correct, accuracy).

    Archive labels are excluded; labelers without a label on a gold EB are not listed.
    """
    gold = gold_table(session=session)[["eb_id", "value"]]
    return agreement.gold_accuracy(current_labels(session, include_archive=False), gold)
