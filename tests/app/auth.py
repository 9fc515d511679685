"""Test helpers for lead actions in AppTest: a lead with a passphrase, and unlocking through the sidebar."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from qa0_label.access.authz import set_passphrase
from qa0_label.store.db import get_engine, session_scope
from qa0_label.store.labels import set_role

PASSPHRASE = "correct horse battery"


def make_lead(url: str, name: str, passphrase: str = PASSPHRASE) -> None:
    """NAME becomes a team lead with PASSPHRASE (as `role NAME lead --set-passphrase` does)."""
    with session_scope(get_engine(url), write=True) as session:
        set_role(session=session, name=name, role="lead", create=True)
        set_passphrase(session=session, name=name, passphrase=passphrase)


def has_unlock_panel(at: AppTest) -> bool:
    """True when the sidebar offers to unlock lead actions."""
    return any(b.key == "qa0_unlock" for b in at.button)


def unlock(at: AppTest, passphrase: str = PASSPHRASE) -> AppTest:
    """Type the passphrase into the sidebar and press Unlock, as a lead does."""
    at.text_input(key="qa0_passphrase").input(passphrase)
    at.button(key="qa0_unlock").click().run()
    return at
