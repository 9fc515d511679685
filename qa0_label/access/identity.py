"""Who is using the app and what they may do: identity resolution and role checks (no Streamlit here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlmodel import Session, select

from qa0_label.store.labels import LabelError, NotAllowed, get_or_create_labeler, normalize_name
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

    lead_names (e.g. e-mail addresses listed in the app's secrets) are promoted to lead; nobody is demoted
    here, so roles set by a lead in the roster stay as they are.
    """
    labeler = get_or_create_labeler(session=session, name=name)
    if labeler.name in {normalize_name(n) for n in lead_names if str(n).strip()} and labeler.role != "lead":
        labeler.role = "lead"
        session.add(labeler)
        session.flush()
    return labeler.role


def require_lead(*, session: Session, name: str) -> Labeler:
    """The labeler NAME if they are a team lead; NotAllowed otherwise (the library-side guard of lead actions)."""
    labeler = session.exec(select(Labeler).where(Labeler.name == normalize_name(name))).first()
    if labeler is None or not is_lead(labeler.role):
        raise NotAllowed(f"{name} is not a team lead; this action is reserved for team leads")
    return labeler


def roster(*, session: Session, include_system: bool = False) -> list[tuple[str, str]]:
    """Active labelers as (name, role), leads first then by name; the 'archive' importer only on request."""
    rows = session.exec(select(Labeler.name, Labeler.role).where(Labeler.active == True)).all()  # noqa: E712
    people = [(str(n), str(r)) for n, r in rows if include_system or n != "archive"]
    return sorted(people, key=lambda p: (not is_lead(p[1]), p[0].lower()))


def set_role_as_lead(*, session: Session, lead: str, name: str, role: str) -> Labeler:
    """A team lead gives NAME a role (aod or lead); refused (NotAllowed) for anyone who is not a lead."""
    from qa0_label.store.labels import set_role

    require_lead(session=session, name=lead)
    return set_role(session=session, name=name, role=role)
