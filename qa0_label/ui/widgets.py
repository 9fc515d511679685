"""Pieces every page shares: the cached engine, demo seeding, identity, the sidebar and session counters.

Pages import this module; it holds no SQL (it calls library functions) and keeps only ids and small plain
values in st.session_state.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import sys
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine

from qa0_label.access.authz import Requester, may, try_unlock
from qa0_label.access.identity import Identity, ensure_labeler, is_lead, resolve_identity, roster
from qa0_label.access.visibility import LabelScope, label_scope
from qa0_label.config import Settings, load_settings
from qa0_label.learning.retrain_process import RetrainRunner, should_auto_retrain
from qa0_label.store.db import get_engine, session_scope
from qa0_label.store.labels import NotAllowed

log = logging.getLogger(__name__)

# Session-state keys (one place, so pages and tests agree on them).
K_CHOSEN = "qa0_chosen_labeler"
K_NEW_NAME = "qa0_new_name"
K_STRATEGY = "qa0_strategy"
K_AUTO = "qa0_auto_retrain"
K_TIMES = "qa0_seconds_per_eb"
K_FLASH = "qa0_flash"
K_UNLOCK = "qa0_unlocked"  # {"name": lead name, "at": unlock time}: server-side only, never from the browser
K_PASSPHRASE = "qa0_passphrase"
K_CONFIRMED = "qa0_confirmed_new_name"
K_RELEASE_FOCUS = "qa0_release_focus"  # set when a name was just chosen: the Label page's keys take the focus back

_KEPT = "qa0_kept__"


def kept(key: str, default: Any) -> Any:
    """The value the user chose for widget KEY this session, on any page (see keep_across_pages)."""
    return st.session_state.get(_KEPT + key, st.session_state.get(key, default))


def _store_kept(key: str) -> None:
    st.session_state[_KEPT + key] = st.session_state[key]


def keep_across_pages(key: str, default: Any, allowed: Sequence[Any] | None = None) -> dict[str, Any]:
    """Widget kwargs that keep KEY's value across pages: seed it from the kept copy before it is drawn.

    Streamlit drops a widget's state on a page that does not draw it (and the same widget on two pages is two
    widgets), so a setting made on the Label page came back at its default after a look at another page.
    The docs' remedy: a copy in session state of our own, written by the widget's on_change.
    """
    value = kept(key, default)
    if allowed is not None and value not in allowed:
        value = default
    st.session_state[_KEPT + key] = value
    if key not in st.session_state or st.session_state[key] != value:
        # Only when Streamlit dropped it (another page): a widget value set from the script is sent to the
        # browser again on every run, which redraws the widget on every key press.
        st.session_state[key] = value
    return {"key": key, "on_change": _store_kept, "args": (key,)}


SEED_ENV = "QA0_SEED_DEMO"
STATUS_POLL_S = 2.0
"""Sidebar status poll while a retrain runs: each poll is a server run that a key press may have to wait for."""

_seed_lock = threading.Lock()
_seeded: set[str] = set()


@dataclass(frozen=True)
class PageContext:
    """What a page needs to render: where the data is, who is looking, and what they may do."""

    engine: Engine
    settings: Settings
    identity: Identity
    role: str
    requester: Requester = Requester(name=None)
    lead_ok: bool = False

    @property
    def who(self) -> str | None:
        """The labeler name, or None when nobody is identified yet."""
        return self.identity.name

    @property
    def lead(self) -> bool:
        """True when this user may do lead actions now (authz.authorize: a lead with proof of identity)."""
        return self.lead_ok

    @property
    def lead_locked(self) -> bool:
        """A lead in the roster whose lead actions still need an unlock (no OIDC login in this app)."""
        return is_lead(self.role) and not self.lead_ok

    def scope(self) -> LabelScope:
        """Whose labels this user may see (access.visibility)."""
        with session_scope(self.engine) as session:
            return label_scope(session=session, requester=self.requester)


# Static styling only: no user data is ever put into HTML.
STYLE = """
<style>
.st-key-qa0-uid div[data-testid="stText"], .st-key-qa0-uid div { font-family: "SFMono-Regular", Menlo, Consolas,
  monospace; font-size: 1.45rem; font-weight: 600; color: #12355b; letter-spacing: 0.01em; }
.st-key-qa0-subtitle div[data-testid="stText"] { font-size: 1.0rem; color: #3d4b5c; }
.st-key-qa0-title { gap: 0.1rem; }
.st-key-qa0-warnings div[data-testid="stText"] { color: #a35f00; font-size: 0.9rem; line-height: 1.35; }
.st-key-qa0-no-warnings div[data-testid="stText"] { color: #1e7b3a; font-size: 0.9rem; }
.st-key-qa0-tiles table { width: 100%; margin-bottom: 0.2rem; }
.st-key-qa0-tiles th { font-size: 0.75rem; font-weight: 600; color: #4a5868; background: #f3f6fa; white-space: nowrap;
  padding: 0.1rem 0.5rem; }
.st-key-qa0-tiles td { font-size: 0.95rem; font-variant-numeric: tabular-nums; white-space: nowrap;
  padding: 0.15rem 0.5rem; }
.st-key-qa0-tiles [data-testid="stMarkdownContainer"] { margin-bottom: -0.6rem; }
.st-key-qa0-btn-pass button { background: #1e7b3a; border-color: #1e7b3a; color: white; min-width: 5.8rem; }
.st-key-qa0-btn-semipass button { background: #c98a00; border-color: #c98a00; color: white; min-width: 5.8rem; }
.st-key-qa0-btn-fail button { background: #b3261e; border-color: #b3261e; color: white; min-width: 5.8rem; }
.st-key-qa0-btn-pass button:hover, .st-key-qa0-btn-semipass button:hover, .st-key-qa0-btn-fail button:hover {
  filter: brightness(1.08); color: white; }
.st-key-qa0-actions { padding: 0.4rem 0.6rem; background: #f3f6fa; border-radius: 8px; }
.block-container { padding-top: 3.6rem; }
.st-key-qa0-why table { width: 100%; font-size: 0.85rem; margin-bottom: 0; }
.st-key-qa0-why td, .st-key-qa0-why th { padding: 0.05rem 0.4rem; white-space: nowrap; font-weight: normal; }
.st-key-qa0-why p { font-size: 0.92rem; margin-bottom: 0.3rem; line-height: 1.35; }
/* A narrow window (a laptop with the sidebar open): "Why this EB" goes under the EB instead of being squeezed
   beside it, and a metrics table wider than its column scrolls instead of running under its neighbour. Every
   page: a row of columns wraps (a metric keeps at least 9rem, so "0.609" is not cut to "0.…"), and a column
   holding a chart takes the whole width. Only below 1100 px: at the Label page's design width nothing changes. */
@media (max-width: 1100px) {
  .st-key-qa0-tiles [data-testid="stMarkdownContainer"] { overflow-x: auto; }
  [data-testid="stHorizontalBlock"]:has(> [data-testid="stColumn"] .st-key-qa0-why) { flex-wrap: wrap; }
  [data-testid="stHorizontalBlock"]:has(> [data-testid="stColumn"] .st-key-qa0-why) > [data-testid="stColumn"] {
    flex: 1 1 100% !important; width: 100% !important; min-width: 100%; }
  [data-testid="stMain"] [data-testid="stHorizontalBlock"]:has(> [data-testid="stColumn"]) { flex-wrap: wrap; }
  [data-testid="stMain"] [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] { min-width: 9rem; }
  [data-testid="stMain"] [data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:has([data-testid="stVegaLiteChart"]) {
    min-width: 100%; }
}
</style>
"""

# --- timing (QA0_UI_TIMING=1 logs where a rerun spends its time; used by benchmarks/bench_ui.py) ---------

_TIMING = os.environ.get("QA0_UI_TIMING", "") not in ("", "0")


@contextmanager
def timed(label: str) -> Iterator[None]:
    """Log how long the block took (only when QA0_UI_TIMING is set)."""
    if not _TIMING:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        print(f"[qa0 timing] {label}: {1000 * (time.perf_counter() - t0):.1f} ms", file=sys.stderr, flush=True)


# --- text safety -------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def md_escape(value: Any) -> str:
    """Make any string inert in st.markdown/st.caption: markdown, HTML, links and LaTeX are escaped."""
    return _MD_SPECIAL.sub(r"\\\1", str(value)).replace("\n", " ")


# --- tables: one look for times, percentages and blanks on every page ---------------------------------

TIME_FORMAT = "YYYY-MM-DD HH:mm [UTC]"
"""How every table shows a stored (UTC) time: 2026-12-06 16:40 UTC."""
PERCENT_FORMAT = "%.1f%%"
"""How every table shows a share: 76.7%, 17.5%, 50.0% (values in percent, see percent_frame)."""


def time_column(label: str, **kwargs: Any) -> Any:
    """A table column of stored UTC times, shown as TIME_FORMAT."""
    return st.column_config.DatetimeColumn(label, format=TIME_FORMAT, **kwargs)


def percent_column(label: str, **kwargs: Any) -> Any:
    """A table column of shares already multiplied by 100 (percent_frame), shown with one decimal and %."""
    return st.column_config.NumberColumn(label, format=PERCENT_FORMAT, **kwargs)


def percent_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A copy with COLUMNS (fractions 0-1) in percent, for percent_column; the library frame is untouched."""
    out = frame.copy()
    for col in columns:
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce") * 100.0
    return out


def blanks_empty(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose missing text cells are empty strings (a table shows them blank, not "None")."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].where(out[col].notna(), "")
    return out


def label_table_columns() -> dict[str, Any]:
    """Columns of an EB's label table (Agreement's adjudication panel and the read-only review view)."""
    return {
        "created_at": time_column("time", width="medium"),
        "labeler": st.column_config.TextColumn("labeler", width="medium"),
        "role": st.column_config.TextColumn("role", width="small"),
        "kind": st.column_config.TextColumn("kind", width="medium"),
        "value": st.column_config.TextColumn("QA0", width="small"),
        "comment": st.column_config.TextColumn("comment", width="large"),
        "reason": st.column_config.TextColumn("reason", width="large"),
        "seconds_on_eb": st.column_config.NumberColumn("seconds", format="%.0f", width="small"),
    }


def review_url(uid: str, labeler: str | None) -> str:
    """The address of an EB's read-only review view (the Label page with ?eb=), for link columns."""
    from urllib.parse import urlencode, urljoin

    try:
        here = str(st.context.url or "")
    except Exception:  # noqa: BLE001 - outside a browser session (tests): a relative address
        here = ""
    base = urljoin(here, "./") if here else "./"
    params = {"eb": uid, **({"labeler": labeler} if labeler else {})}
    return f"{base}?{urlencode(params)}"


# --- engine and seeding ------------------------------------------------------------------------


def settings() -> Settings:
    """Settings from the environment (QA0_DATABASE_URL etc.), read on every run so tests can switch them."""
    return load_settings()


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> Engine:
    from qa0_label.ingest.spool import sweep_stale_spools

    sweep_stale_spools()  # import spools of killed imports (start-up of this server)
    return get_engine(url)


def engine_for(url: str) -> Engine:
    """The process-wide engine for URL (schema created or upgraded on first use)."""
    return _engine_for(url)


def seeding_enabled() -> bool:
    """Demo seeding is on unless QA0_SEED_DEMO is 0/false/no (tests and production turn it off)."""
    return os.environ.get(SEED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def ensure_demo_data(engine: Engine, url: str) -> None:
    """Seed the demo EBs and labels into an empty database, once per process, with a visible progress bar."""
    if url in _seeded:
        return
    with _seed_lock:
        if url in _seeded:
            return
        if seeding_enabled():
            from qa0_label.sim.simulate import seed_demo_if_empty

            bar = st.progress(0.0, text="Checking the database…")

            def progress(fraction: float, message: str) -> None:
                bar.progress(min(max(float(fraction), 0.0), 1.0), text=f"First start: preparing demo data — {message}")

            seed_demo_if_empty(engine=engine, progress=progress)
            bar.empty()
        _seeded.add(url)


# --- identity ----------------------------------------------------------------------------------


def auth_configured() -> bool:
    """True when .streamlit/secrets.toml has an [auth] section (Streamlit's built-in OIDC login)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all means no auth
        return False


def _lead_names() -> list[str]:
    try:
        leads = st.secrets.get("qa0", {}).get("leads", [])
    except Exception:  # noqa: BLE001
        return []
    return [str(x) for x in leads] if isinstance(leads, (list, tuple)) else []


def current_identity() -> Identity:
    """Who is using this browser session (OIDC user, else ?labeler= in the URL, else the sidebar choice)."""
    configured = auth_configured()
    user: dict[str, Any] | None = None
    if configured:
        try:
            user = st.user.to_dict()
        except Exception:  # noqa: BLE001
            user = None
    url_value = st.query_params.get("labeler")
    return resolve_identity(
        auth_configured=configured, user=user, url_labeler=url_value, chosen=st.session_state.get(K_CHOSEN)
    )


@st.cache_data(ttl=10, show_spinner=False, max_entries=16)
def _roster(url: str) -> list[tuple[str, str]]:
    # Every rerun needs the roster (sidebar picker, role); it changes rarely, so read it at most every 10 s.
    with session_scope(engine_for(url)) as session:
        return roster(session=session)


def refresh_roster() -> None:
    """Forget the cached roster (after a role change)."""
    _roster.clear()


def _known_name(url: str, name: str) -> str | None:
    """NAME as the roster spells it (compared case-insensitively), or None for a new name."""
    key = name.casefold()
    for fresh in (False, True):
        if fresh:  # not in the cached roster: it may have been added in the last 10 s (CLI, another app host)
            _roster.clear()
        for known, _role in _roster(url):
            if known.casefold() == key:
                return known
    return None


def _role(engine: Engine, url: str, ident: Identity) -> str:
    roles = dict(_roster(url))
    # [qa0].leads only ever promotes an OIDC-authenticated name: a name typed into the URL gains nothing.
    leads = _lead_names() if ident.source == "oidc" else []
    name = str(ident.name)
    if name in roles and name not in leads:
        return roles[name]
    with session_scope(engine, write=True) as session:
        role = ensure_labeler(session=session, name=name, lead_names=leads)
    _roster.clear()
    return role


def requester_for(ident: Identity) -> Requester:
    """The Requester behind this browser session: OIDC login, a passphrase unlock held server-side, or none."""
    if ident.name is None:
        return Requester(name=None)
    if ident.locked:
        return Requester(name=ident.name, proof="oidc")
    held = st.session_state.get(K_UNLOCK)
    if isinstance(held, dict) and str(held.get("name", "")).casefold() == ident.name.casefold():
        return Requester(name=ident.name, proof="unlock", unlocked_at=held.get("at"))
    return Requester(name=ident.name, proof="none")


def _confirm_new_name(name: str) -> None:
    st.session_state[K_CONFIRMED] = name.casefold()


def _cancel_new_name() -> None:
    st.session_state.pop(K_CHOSEN, None)
    if "labeler" in st.query_params:
        del st.query_params["labeler"]


def confirm_new_name(name: str) -> None:
    """A name from ?labeler= that nobody has used: ask before creating it (a typo would split a person)."""
    st.title("New labeler?")
    st.warning("Nobody called this has labelled here yet:")
    st.text(name)
    st.caption("Names are compared without regard to case. Check the spelling: a typo creates a second person.")
    c1, c2 = st.columns(2)
    c1.button(
        "Yes, create this labeler", key="qa0_confirm_new", on_click=_confirm_new_name, args=(name,), type="primary"
    )
    c2.button("No, pick my name", key="qa0_cancel_new", on_click=_cancel_new_name)
    st.stop()


def page_setup(*, title: str) -> PageContext:
    """Common start of every page: engine, demo data, identity and the sidebar."""
    cfg = settings()
    engine = engine_for(cfg.database_url)
    ensure_demo_data(engine, cfg.database_url)
    st.html(STYLE)
    ident = current_identity()
    if ident.name and not ident.locked:
        name = ident.name
        known = _known_name(cfg.database_url, name)
        if known is not None:
            ident = replace(ident, name=known)  # 'newaod' is the 'NewAoD' already in the roster
        elif ident.source == "url" and st.session_state.get(K_CONFIRMED) != name.casefold():
            confirm_new_name(name)
    role = _role(engine, cfg.database_url, ident) if ident.name else "aod"
    requester = requester_for(ident)
    lead_ok = False
    if is_lead(role) and requester.proof != "none":
        with session_scope(engine) as session:
            lead_ok = may(session=session, requester=requester, action="adjudicate")
    if ident.name and not ident.locked:
        # Keep the name across page switches (navigation drops query parameters) and in the URL for reloads.
        st.session_state[K_CHOSEN] = ident.name
        if st.query_params.get("labeler") != ident.name:
            st.query_params["labeler"] = ident.name
    ctx = PageContext(engine=engine, settings=cfg, identity=ident, role=role, requester=requester, lead_ok=lead_ok)
    with st.sidebar:
        identity_panel(ctx)
        if ctx.lead_locked or requester.proof == "unlock":
            unlock_panel(ctx)
    return ctx


def _unlock(url: str, name: str) -> None:
    passphrase = str(st.session_state.get(K_PASSPHRASE) or "")
    st.session_state[K_PASSPHRASE] = ""  # never kept in the session
    if not passphrase:
        flash("error", "Type your lead passphrase first.")
        return
    try:
        req = try_unlock(engine=engine_for(url), name=name, passphrase=passphrase)
    except NotAllowed as exc:
        flash("error", f"Not unlocked: {exc}")
        return
    st.session_state[K_UNLOCK] = {"name": req.name, "at": req.unlocked_at}
    flash("success", "Lead actions unlocked for this browser session.")


def _lock() -> None:
    st.session_state.pop(K_UNLOCK, None)
    flash("info", "Lead actions locked.")


def unlock_panel(ctx: PageContext) -> None:
    """Sidebar block for a lead without OIDC login: unlock lead actions with the passphrase, or lock them."""
    if ctx.lead:
        st.caption("Lead actions unlocked")
        st.button("Lock lead actions", key="qa0_lock", on_click=_lock, icon=":material/lock:")
        return
    # A form, so that Enter in the passphrase box unlocks as the button does.
    with st.form("qa0-unlock", border=True, enter_to_submit=True):
        st.caption("Lead actions (adjudicate, gold EBs, roles, merges) need your lead passphrase.")
        st.text_input("Lead passphrase", type="password", key=K_PASSPHRASE, max_chars=200)
        st.form_submit_button(
            "Unlock lead actions",
            key="qa0_unlock",
            on_click=_unlock,
            args=(ctx.settings.database_url, str(ctx.who)),
            icon=":material/lock_open:",
        )


def _switch_labeler() -> None:
    choice = st.session_state.get("qa0_pick")
    if choice and choice != NEW_NAME_OPTION:
        st.session_state[K_CHOSEN] = choice
        st.query_params["labeler"] = choice
        st.session_state[K_RELEASE_FOCUS] = new_event_id()


def _use_new_name() -> None:
    name = " ".join(unicodedata.normalize("NFC", str(st.session_state.get(K_NEW_NAME) or "")).split())
    if name:
        st.session_state[K_CONFIRMED] = name.casefold()  # typed and confirmed with the button: no second question
        st.session_state[K_CHOSEN] = name
        st.query_params["labeler"] = name
        st.session_state[K_NEW_NAME] = ""
        st.session_state[K_RELEASE_FOCUS] = new_event_id()


NEW_NAME_OPTION = "+ new name…"


def identity_panel(ctx: PageContext) -> None:
    """Sidebar block: who am I, and (without login) a roster picker that also updates ?labeler= in the URL."""
    ident = ctx.identity
    if ident.locked:
        if ident.name is None:
            st.info("Please log in to label.")
            st.button("Log in", on_click=st.login, type="primary", key="qa0_login")
            st.stop()
        st.caption("Signed in as")
        st.text(f"{ident.name} ({'team lead' if ctx.lead else 'AoD'})")
        st.button("Log out", on_click=st.logout, key="qa0_logout")
        return
    people = _roster(ctx.settings.database_url)
    names = [n for n, _ in people]
    if ident.name and ident.name not in names:
        names.insert(0, ident.name)
    options = names + [NEW_NAME_OPTION]
    index = options.index(ident.name) if ident.name in options else None
    st.selectbox(
        "Who am I",
        options,
        index=index,
        key="qa0_pick",
        placeholder="Pick your name",
        on_change=_switch_labeler,
        format_func=lambda n: (
            n if n == NEW_NAME_OPTION else f"{n} · {'lead' if dict(people).get(n) == 'lead' else 'AoD'}"
        ),
    )
    if st.session_state.get("qa0_pick") == NEW_NAME_OPTION or not names:
        st.text_input("Your name", key=K_NEW_NAME, max_chars=80, placeholder="e.g. Ana Rojas")
        st.button("Start labelling as this name", on_click=_use_new_name, key="qa0_use_new")
    if ident.error:
        st.warning(ident.error)


# --- session counters --------------------------------------------------------------------------


def record_seconds(seconds: float) -> None:
    """Remember how long the AoD looked at one EB (for the session counter)."""
    times = list(st.session_state.get(K_TIMES, []))
    times.append(round(float(seconds), 2))
    st.session_state[K_TIMES] = times[-500:]


def forget_last_seconds() -> None:
    """Drop the newest timing (after an undo, that label no longer counts)."""
    times = list(st.session_state.get(K_TIMES, []))
    if times:
        times.pop()
    st.session_state[K_TIMES] = times


def session_counts() -> tuple[int, float | None]:
    """Labels given in this browser session and the median seconds per EB (None before the first)."""
    times = st.session_state.get(K_TIMES, [])
    return len(times), (statistics.median(times) if times else None)


def flash(kind: str, message: str) -> None:
    """Queue a one-shot message (from a callback) for the next render."""
    st.session_state[K_FLASH] = (kind, message)


def show_flash() -> None:
    """Show and clear the queued one-shot message as a toast."""
    item = st.session_state.pop(K_FLASH, None)
    if item:
        kind, message = item
        # Material icons come with Streamlit's own font; emoji need an emoji font that observatory machines
        # often lack (they showed as empty boxes in Debian's chromium).
        icon = {"error": ":material/error:", "warning": ":material/warning:", "success": ":material/check_circle:"}.get(
            kind, ":material/info:"
        )
        st.toast(md_escape(message), icon=icon)  # messages may quote uids or names: never markdown


def new_event_id() -> str:
    """A fresh client event id (one per displayed EB: a repeated press can never store two labels)."""
    return uuid.uuid4().hex


# --- model status ------------------------------------------------------------------------------


@st.cache_data(ttl=1.0, show_spinner=False, max_entries=16)
def _training_status(url: str) -> dict[str, Any]:
    from qa0_label.learning import training

    return training.status(engine=engine_for(url))


def training_status(ctx: PageContext, *, fresh: bool = False) -> dict[str, Any]:
    """training.status() for this database, cached for a second (the sidebar asks on every rerun)."""
    if fresh:
        _training_status.clear()
    return _training_status(ctx.settings.database_url)


@st.cache_resource(show_spinner=False)
def retrain_runner() -> RetrainRunner:
    """The server's retrain worker process (a retrain in a thread would slow every page rerun)."""
    return RetrainRunner()


def _start_retrain(url: str) -> None:
    try:
        retrain_runner().submit(url=url, trigger="manual")
    except Exception as exc:  # noqa: BLE001 - show, do not crash the page
        flash("error", f"Retrain could not start: {exc}")
        return
    _training_status.clear()
    flash("success", "Retrain requested: it runs in the background, keep labelling")


def _when(value: Any) -> str:
    """A stored time (datetime or ISO text) as 'YYYY-MM-DD HH:MM UTC'."""
    if value is None:
        return "–"
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")


def _fmt(value: Any, spec: str = ".3f") -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "–"


def model_status_panel(ctx: PageContext) -> None:
    """Sidebar block: model version, metrics, labels since retrain, Retrain now, auto-retrain toggle.

    While a retrain runs, a fragment polls training.status every STATUS_POLL_S, so the AoD sees progress and
    keeps labelling (only this block reruns).
    """
    url = ctx.settings.database_url
    runner = retrain_runner()
    status = training_status(ctx)
    # Poll every second while a retrain starts or runs, never otherwise: a poll landing during a key press
    # would delay the next EB. An auto-retrain started after a label redraws the page (retrain_started_here).
    busy = bool(status.get("running")) or runner.starting(url)
    run_every = STATUS_POLL_S if busy else None

    @st.fragment(run_every=run_every)
    def _panel() -> None:
        s = training_status(ctx, fresh=run_every is not None)
        starting = runner.starting(url)
        st.markdown("**Model**")
        latest = s.get("latest")
        if latest:
            metrics = latest.get("metrics") or {}
            when = _when(latest.get("finished_at"))
            c1, c2 = st.columns(2)
            c1.metric("Version", f"v{latest.get('version')}")
            c2.metric("Labels used", f"{latest.get('n_labels', '–')}")
            c1.metric("Macro-F1", _fmt(metrics.get("macro_f1")))
            c2.metric("Fail recall", _fmt(metrics.get("fail_recall")))
            st.caption(f"Trained {when} · {s.get('labels_since', 0)} labels since")
        else:
            st.caption(f"No model yet (cold start) · {s.get('labels_since', 0)} labels so far")
        if s.get("running"):
            frac = s.get("progress")
            st.progress(
                min(max(float(frac or 0.0), 0.0), 1.0),
                text=f"Retraining… {md_escape(s.get('progress_text') or '')}",
            )
        elif starting:
            st.progress(0.0, text="Retrain starting…")
        outcome = runner.last_outcome(url)
        if outcome and not outcome.get("started") and time.time() - float(outcome.get("at", 0)) < 300:
            st.caption(f"Retrain not run: {md_escape(outcome.get('message'))}")
        if s.get("last_error"):
            st.caption(f"Last retrain failed: {md_escape(s.get('last_error'))}")
        if (bool(s.get("running")) or starting) != (run_every is not None):
            # A retrain started (poll faster) or finished (serve the new model): redraw the page once.
            st.rerun(scope="app")

    _panel()
    st.button(
        "Retrain now",
        key="qa0_retrain",
        on_click=_start_retrain,
        args=(ctx.settings.database_url,),
        disabled=busy,
        icon=":material/model_training:",
        width="stretch",
    )
    st.toggle(
        f"Auto-retrain every {ctx.settings.auto_retrain_every} labels",
        **keep_across_pages(K_AUTO, auto_retrain_default()),
    )


def auto_retrain_default() -> bool:
    """Auto-retrain starts on unless QA0_AUTO_RETRAIN is 0/false/no/off."""
    return os.environ.get("QA0_AUTO_RETRAIN", "1").strip().lower() not in ("0", "false", "no", "off")


_auto_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa0-auto-retrain")


def maybe_auto_retrain(url: str) -> None:
    """After a label: if auto-retrain is on, check in the background whether enough new labels arrived.

    The check runs off the page thread: the next EB must not wait for it. The retrain runs in the retrain
    worker process; training's database claim keeps one retrain at a time.
    """
    if not kept(K_AUTO, auto_retrain_default()):
        return
    cfg = settings()
    session = _session_id()

    runner = retrain_runner()

    def check() -> None:
        # A failed auto-retrain must never touch the label just saved: it is logged and tried once more (the
        # runner replaces a dead worker); a later label checks again anyway.
        for attempt in (1, 2):
            try:
                if not runner.starting(url) and should_auto_retrain(engine=get_engine(url), settings=cfg):
                    runner.submit(url=url, trigger="auto")
                    _training_status.clear()
                    with _started_lock:
                        _started_for.add(session)
                return
            except Exception:  # noqa: BLE001
                log.warning("auto-retrain could not start (attempt %d of 2)", attempt, exc_info=True)

    _auto_pool.submit(check)


_started_lock = threading.Lock()
_started_for: set[str] = set()


def _session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def retrain_started_here() -> bool:
    """True once after an auto-retrain was started by this browser session's labels (then redraw the page)."""
    session = _session_id()
    with _started_lock:
        if session in _started_for:
            _started_for.discard(session)
            return True
    return False
