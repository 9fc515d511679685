"""The alpha in force (max error rate of auto-decisions): read by everyone, changed by team leads only, audited."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from qa0_label.access import authz
from qa0_label.access.authz import Requester
from qa0_label.automation.calibrate import DEFAULT_ALPHA, check_alpha
from qa0_label.store.models import AutoAlpha, Labeler, utcnow


def require_lead(*, session: Session, name: str | Requester) -> Labeler:
    """The lead allowed to change alpha; NotAllowed otherwise (access.authz.authorize, the one lead check).

    NAME is a Requester from a page (a lead must have proved who they are: OIDC or an unlock); a bare name is
    the database owner's tools (CLI, scripts, tests).
    """
    return authz.authorize(session=session, requester=name, action="alpha")


def current_alpha(*, session: Session) -> float:
    """The alpha in force: the newest change a lead made, else DEFAULT_ALPHA."""
    row = session.exec(select(AutoAlpha.alpha).order_by(AutoAlpha.id.desc()).limit(1)).first()  # type: ignore[union-attr]
    return float(row) if row is not None else DEFAULT_ALPHA


def set_alpha(*, session: Session, lead: str | Requester, alpha: float) -> AutoAlpha:
    """A team lead sets alpha (AlphaError outside (0, 0.5), NotAllowed for a non-lead); the change is recorded."""
    who = require_lead(session=session, name=lead)
    value = check_alpha(alpha)
    old = current_alpha(session=session)
    row = AutoAlpha(alpha=value, old_alpha=old, changed_by_id=int(who.id), changed_at=utcnow())  # type: ignore[arg-type]
    session.add(row)
    session.flush()
    return row


def alpha_history(*, session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The newest alpha changes: when, who, old -> new."""
    rows = session.exec(
        select(AutoAlpha, Labeler.name)
        .join(Labeler, Labeler.id == AutoAlpha.changed_by_id)  # type: ignore[arg-type]
        .order_by(AutoAlpha.id.desc())  # type: ignore[union-attr]
        .limit(limit)
    ).all()
    return [
        {"changed_at": r.changed_at, "changed_by": name, "old_alpha": r.old_alpha, "alpha": r.alpha} for r, name in rows
    ]
