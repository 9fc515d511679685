"""Who is using the app and what they may do: identity resolution and role checks (no Streamlit here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlmodel import Session, select

from qa0_label.access.authz import Requester, authorize
from qa0_label.store.labels import SYSTEM_LABELERS, LabelError, get_or_create_labeler, normalize_name
from qa0_label.store.models import Labeler

Source = Literal["oidc", "url", "sidebar", "none"]


@dataclass(frozen=True)
class Identity:
    """The person behind a browser session; `locked` means the URL and sidebar cannot change it."""

    name: str | None
    source: Source
    locked: bool = False
    email: str | None = None
    error: str | None = None  # why a requested name was refused (shown to the user)


def oidc_name(user: Mapping[str, Any] | None) -> str | None:
    """The labeler name for a logged-in OIDC user: the e-mail address, else the display name."""
    if not user or not user.get("is_logged_in", False):
        return None
    for key in ("email", "name", "sub"):
        raw = user.get(key)
        if raw:
            try:
                return normalize_name(str(raw))
            except LabelError:
                continue
    return None


def resolve_identity(
    *,
    auth_configured: bool,
    user: Mapping[str, Any] | None,
    url_labeler: str | None,
    chosen: str | None,
) -> Identity:
    """Decide who the user is: OIDC when configured (URL ignored), else the URL's ?labeler=, else the sidebar."""
    if auth_configured:
        # With real login, an URL parameter must never impersonate someone else.
        name = oidc_name(user)
        email = str(user.get("email")) if user and user.get("email") else None
        return Identity(name=name, source="oidc" if name else "none", locked=True, email=email)
    error = None
    if url_labeler is not None and str(url_labeler).strip():
        try:
            return Identity(name=normalize_name(url_labeler), source="url")
        except LabelError as exc:
            error = f"?labeler= ignored: {exc}"
    if chosen is not None and str(chosen).strip():
        try:
            return Identity(name=normalize_name(chosen), source="sidebar", error=error)
        except LabelError as exc:
            error = str(exc)
    return Identity(name=None, source="none", error=error)


def is_lead(role: str | None) -> bool:
    """True for the team-lead role."""
    return role == "lead"


def ensure_labeler(*, session: Session, name: str, lead_names: Iterable[str] = ()) -> str:
    """Make sure NAME is in the roster (a new name becomes an AoD) and return its role.

    lead_names (e-mail addresses listed in the app's secrets as [qa0].leads) are promoted to lead. Callers pass
    them ONLY for an OIDC-authenticated name: a name typed into the URL or sidebar never gains a role. Nobody
    is demoted here, so roles set by a lead in the roster stay as they are.
    """
    labeler = get_or_create_labeler(session=session, name=name)
    wanted = {normalize_name(n, system_ok=True).casefold() for n in lead_names if str(n).strip()}
    if labeler.name.casefold() in wanted and labeler.role != "lead":
        labeler.role = "lead"
        session.add(labeler)
        session.flush()
    return labeler.role


def require_lead(*, session: Session, name: str | Requester, action: str = "set_role") -> Labeler:
    """The lead allowed to do ACTION; NotAllowed otherwise (authz.authorize, the one lead check)."""
    return authorize(session=session, requester=name, action=action)


def roster(*, session: Session, include_system: bool = False) -> list[tuple[str, str]]:
    """Active labelers as (name, role), leads first then by name; the system's labelers only on request."""
    rows = session.exec(select(Labeler.name, Labeler.role).where(Labeler.active == True)).all()  # noqa: E712
    people = [(str(n), str(r)) for n, r in rows if include_system or str(n).casefold() not in SYSTEM_LABELERS]
    return sorted(people, key=lambda p: (not is_lead(p[1]), p[0].lower()))


def set_role_as_lead(*, session: Session, lead: str | Requester, name: str, role: str) -> Labeler:
    """A team lead gives the existing labeler NAME a role (aod or lead); NotAllowed unless authz.authorize allows it.

    LabelError for a name not in the roster (never created here: a typo must not become a person) and for
    demoting the last lead (store.labels.set_role).
    """
    from qa0_label.store.labels import set_role

    authorize(session=session, requester=lead, action="set_role")
    return set_role(session=session, name=name, role=role)
