"""Who may do a team-lead action: the one rule every lead action asks (no Streamlit here).

A lead action (adjudicate, gold EBs, roles, renames and merges of labelers, the auto-QA0 alpha, seeing every
labeler's labels, downloading all labels) needs two things:

* the requester is a team lead in the roster, and
* the requester has *proved* who they are: logged in through OIDC (``proof="oidc"``), unlocked this browser
  session with their lead passphrase (``proof="unlock"``), or is the database owner's command line
  (``proof="owner"``: whoever runs the CLI can open the database file anyway).

A name typed into the sidebar or the URL (``?labeler=``) is no proof: such a requester is an AoD whatever
the roster says. ``authorize`` is the only place this is decided; ``may`` is its yes/no form for drawing.

Passphrases are set from the CLI (``role NAME lead --set-passphrase``) and stored as a salted scrypt hash
(memory-hard: 32 MiB per guess). Unlocking is limited to MAX_TRIES_PER_MINUTE failed tries per name; the tries
are rows in the database, so the limit holds across reruns, browser sessions and server restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from qa0_label.store.db import session_scope
from qa0_label.store.models import Labeler, LeadSecret, UnlockAttempt, row_id, utcnow
from qa0_label.store.names import LabelError, NotAllowed, find_labeler, name_key

Proof = Literal["oidc", "unlock", "owner", "none"]

LEAD_ACTIONS: dict[str, str] = {
    "adjudicate": "adjudicate EBs",
    "gold": "mark or unmark gold EBs",
    "set_role": "change roles",
    "rename": "rename labelers",
    "merge": "merge labelers",
    "alpha": "change the auto-QA0 alpha",
    "see_all_labels": "see every labeler's labels before giving one's own",
    "download_all": "download every labeler's labels",
}
"""Every lead action, with the words used in refusals."""

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
"""scrypt cost: 128 * r * N = 32 MiB of memory and ~0.1 s per guess."""
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSPHRASE = 10
MAX_TRIES_PER_MINUTE = 5
"""Failed unlock tries allowed per name in any 60 s window."""
UNLOCK_HOURS = 12.0
"""An unlock lasts this long (a working shift), or until the passphrase is changed."""


class TooManyTries(NotAllowed):
    """Unlocking was refused without checking the passphrase: too many failed tries in the last minute."""


@dataclass(frozen=True)
class Requester:
    """Who asks for an action and what proves it (see the module docstring)."""

    name: str | None
    proof: Proof = "none"
    unlocked_at: datetime | None = None

    @classmethod
    def owner(cls, name: str) -> Requester:
        """The database owner's tools (CLI, scripts) acting as the lead NAME."""
        return cls(name=name, proof="owner")


def as_requester(who: Requester | str) -> Requester:
    """A Requester as is; a bare name is library code called by the database owner (CLI, scripts, tests)."""
    return who if isinstance(who, Requester) else Requester.owner(who)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def authorize(*, session: Session, requester: Requester | str, action: str) -> Labeler:
    """The lead allowed to do ACTION for this requester; NotAllowed with the reason otherwise. THE lead check."""
    if action not in LEAD_ACTIONS:
        raise ValueError(f"unknown lead action {action!r}")
    req = as_requester(requester)
    what = LEAD_ACTIONS[action]
    if not req.name:
        raise NotAllowed(f"only a team lead can {what}; nobody is identified")
    labeler = find_labeler(session=session, name=req.name)
    if labeler is None or labeler.role != "lead":
        raise NotAllowed(f"{req.name} is not a team lead; only team leads can {what}")
    if req.proof in ("oidc", "owner"):
        return labeler
    if req.proof == "unlock" and req.unlocked_at is not None:
        secret = session.get(LeadSecret, labeler.id)
        at = _aware(req.unlocked_at)
        fresh = utcnow() - at < timedelta(hours=UNLOCK_HOURS)
        if secret is not None and _aware(secret.set_at) <= at and fresh:
            return labeler
        raise NotAllowed(f"the unlock of lead actions for {labeler.name} has expired; unlock again")
    raise NotAllowed(f"{labeler.name} must unlock lead actions with their passphrase to {what}")


def may(*, session: Session, requester: Requester | str, action: str) -> bool:
    """True when authorize would allow ACTION (for deciding what to draw)."""
    try:
        authorize(session=session, requester=requester, action=action)
    except NotAllowed:
        return False
    return True


# --- passphrases -----------------------------------------------------------------------------------------


def _hash(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32)


def set_passphrase(*, session: Session, name: str, passphrase: str) -> Labeler:
    """Store a new passphrase for the lead NAME (database owner's CLI only); earlier unlocks stop working."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise LabelError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
    labeler = find_labeler(session=session, name=name)
    if labeler is None or labeler.role != "lead":
        raise LabelError(f"{name} is not a team lead; give them the lead role first")
    salt = secrets.token_bytes(16)
    digest = _hash(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    secret = session.get(LeadSecret, labeler.id) or LeadSecret(
        labeler_id=row_id(labeler), salt_hex="", hash_hex="", n=0, r=0, p=0
    )
    secret.salt_hex, secret.hash_hex = salt.hex(), digest.hex()
    secret.n, secret.r, secret.p, secret.set_at = SCRYPT_N, SCRYPT_R, SCRYPT_P, utcnow()
    session.add(secret)
    session.flush()
    return labeler


def has_passphrase(*, session: Session, name: str) -> bool:
    """True when the lead NAME has a passphrase to unlock with."""
    labeler = find_labeler(session=session, name=name)
    return labeler is not None and session.get(LeadSecret, labeler.id) is not None


def failed_tries(*, session: Session, name: str, now: datetime | None = None) -> int:
    """Failed unlock tries for NAME in the last minute."""
    since = (now or utcnow()) - timedelta(minutes=1)
    count = session.exec(
        select(func.count())
        .select_from(UnlockAttempt)
        .where(UnlockAttempt.name_key == name_key(name)[:80], UnlockAttempt.at > since, UnlockAttempt.ok == False)  # noqa: E712
    ).one()
    return int(count or 0)


def unlock(*, session: Session, name: str, passphrase: str) -> Requester:
    """Check NAME's passphrase and return an unlocked Requester; NotAllowed (TooManyTries) when it fails.

    Call in a write session that commits even when this raises NotAllowed for a wrong passphrase (the failed
    try must be counted): the UI and CLI record it through ``record_failed_unlock`` in a session of its own.
    """
    now = utcnow()
    if failed_tries(session=session, name=name, now=now) >= MAX_TRIES_PER_MINUTE:
        raise TooManyTries(f"too many failed tries for {name}: wait a minute and try again")
    labeler = find_labeler(session=session, name=name)
    secret = session.get(LeadSecret, labeler.id) if labeler is not None and labeler.role == "lead" else None
    if secret is None:
        _hash(passphrase, b"0" * 16, SCRYPT_N, SCRYPT_R, SCRYPT_P)  # same cost: no hint which names exist
        raise NotAllowed(
            f"{name} has no lead passphrase; the database owner sets one with "
            f"`python -m qa0_label role {name!r} lead --set-passphrase`"
        )
    digest = _hash(passphrase, bytes.fromhex(secret.salt_hex), secret.n, secret.r, secret.p)
    if not hmac.compare_digest(digest.hex(), secret.hash_hex):
        raise NotAllowed("wrong passphrase")
    session.add(UnlockAttempt(name_key=name_key(name)[:80], at=now, ok=True))
    session.flush()
    return Requester(name=labeler.name, proof="unlock", unlocked_at=now)  # type: ignore[union-attr]


def record_failed_unlock(*, session: Session, name: str) -> None:
    """Count one failed unlock try for NAME (and forget tries older than a day)."""
    now = utcnow()
    session.exec(delete(UnlockAttempt).where(col(UnlockAttempt.at) < now - timedelta(days=1)))
    session.add(UnlockAttempt(name_key=name_key(name)[:80], at=now, ok=False))
    session.flush()


def try_unlock(*, engine: Engine, name: str, passphrase: str) -> Requester:
    """unlock() in its own write transaction; a wrong passphrase is counted (committed) before NotAllowed."""
    try:
        with session_scope(engine, write=True) as session:
            return unlock(session=session, name=name, passphrase=passphrase)
    except TooManyTries:
        raise
    except NotAllowed:
        with session_scope(engine, write=True) as session:
            record_failed_unlock(session=session, name=name)
        raise
