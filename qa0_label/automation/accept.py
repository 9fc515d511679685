"""An AoD accepting the model's auto-QA0 suggestion: an ordinary review label, marked so statistics can tell."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session, col

from qa0_label.store.models import AcceptedSuggestion, Label, ModelRun


def mark_accepted(*, session: Session, label_id: int, run_id: int | None, suggested: str) -> None:
    """Record that review label LABEL_ID accepted the suggestion of run RUN_ID (idempotent for a repeated press)."""
    if session.get(AcceptedSuggestion, int(label_id)) is None:
        session.add(AcceptedSuggestion(label_id=int(label_id), run_id=run_id, suggested=str(suggested)))
        session.flush()


def mark_accepted_from_version(*, session: Session, label_id: int, run_version: int, suggested: str) -> None:
    """mark_accepted for the suggestion the page showed, named by its model version (the page knows no run ids)."""
    stmt = select(col(ModelRun.id)).where(col(ModelRun.version) == int(run_version))
    run_id = session.connection().execute(stmt).scalar()
    mark_accepted(
        session=session, label_id=label_id, run_id=None if run_id is None else int(run_id), suggested=suggested
    )


def accepted_label_ids(*, session: Session) -> set[int]:
    """Ids of review labels that are accepted suggestions (agreement statistics may leave them out)."""
    return {int(r[0]) for r in session.connection().execute(select(col(AcceptedSuggestion.label_id)))}


def ebs_with_accepted(*, session: Session) -> set[int]:
    """EBs with any label that accepted a suggestion: their consensus echoes the model, so calibration skips them."""
    stmt = (
        select(col(Label.eb_id)).join(AcceptedSuggestion, col(AcceptedSuggestion.label_id) == col(Label.id)).distinct()
    )
    return {int(r[0]) for r in session.connection().execute(stmt)}


def without_accepted(*, session: Session, labels: pd.DataFrame, id_column: str = "id") -> pd.DataFrame:
    """LABELS (a frame with label ids) without the accepted suggestions: each AoD's own calls only."""
    ids = accepted_label_ids(session=session)
    if not ids or labels.empty or id_column not in labels:
        return labels
    return labels[~labels[id_column].astype(int).isin(ids)]


def accepted_share(*, session: Session) -> dict[str, int]:
    """Review labels given in all, and how many of them are accepted suggestions."""
    from sqlalchemy import func

    conn = session.connection()
    total = conn.execute(
        select(func.count()).select_from(Label).where(col(Label.kind) == "review", col(Label.value).is_not(None))
    ).scalar()
    acc = conn.execute(select(func.count()).select_from(AcceptedSuggestion)).scalar()
    return {"reviews": int(total or 0), "accepted_suggestions": int(acc or 0)}
