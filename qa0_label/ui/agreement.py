"""Agreement page (team leads): inter-AoD agreement, the roster, and lead-only adjudication.

The full agreement dashboard comes with the agreement step; this page already shows agreement_report when the
library is available, and keeps every lead-only control hidden from AoDs (the library refuses them too).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from qa0_label.db import session_scope
from qa0_label.identity import roster, set_role_as_lead
from qa0_label.labels import LabelError, NotAllowed, current_labels, eb_id_for_uid, record_label
from qa0_label.models import LABEL_VALUES, ROLES
from qa0_label.ui import widgets as w


@st.cache_data(ttl=10, show_spinner=False, max_entries=8)
def _report(url: str) -> dict[str, Any] | None:
    try:
        from qa0_label.agreement import agreement_report
    except ImportError:
        return None
    with session_scope(w.engine_for(url)) as session:
        return dict(agreement_report(current_labels(session, include_archive=False)))


def report_section(ctx: w.PageContext) -> None:
    """Headline agreement statistics and pairwise Cohen kappa as tables."""
    report = _report(ctx.settings.database_url)
    if report is None:
        st.info("Agreement statistics are not available in this installation yet (qa0_label.agreement missing).")
        return
    cols = st.columns(4)
    cols[0].metric("EBs rated by ≥ 2", report.get("n_items", 0))
    for col, key, label in (
        (cols[1], "fleiss_kappa", "Fleiss κ"),
        (cols[2], "krippendorff_alpha_nominal", "Krippendorff α (nominal)"),
        (cols[3], "krippendorff_alpha_ordinal", "Krippendorff α (ordinal)"),
    ):
        value = report.get(key)
        col.metric(label, "–" if value is None else f"{float(value):.3f}")
    pairs = pd.DataFrame(report.get("cohen_kappa") or [], columns=["a", "b", "n", "kappa"])
    st.subheader("Pairwise Cohen κ")
    if pairs.empty:
        st.caption("No pair of labelers has rated the same EBs yet.")
    else:
        st.dataframe(pairs.sort_values("n", ascending=False), hide_index=True, width="stretch")


def _adjudicate(url: str, lead: str) -> None:
    uid = str(st.session_state.get("qa0-adj-uid") or "").strip()
    value = st.session_state.get("qa0-adj-value")
    reason = str(st.session_state.get("qa0-adj-reason") or "").strip()
    try:
        with session_scope(w.engine_for(url), write=True) as session:
            eb_id = eb_id_for_uid(session=session, uid=uid)
            try:
                from qa0_label.adjudication import adjudicate
            except ImportError:
                record_label(
                    session=session, eb_id=eb_id, labeler=lead, value=str(value), kind="adjudication", reason=reason
                )
            else:
                adjudicate(session=session, eb_id=eb_id, lead=lead, value=str(value), reason=reason)
    except (LabelError, NotAllowed) as exc:
        w.flash("error", f"Not adjudicated: {exc}")
        return
    w.flash("success", f"Adjudicated {uid} as {value}")
    st.session_state["qa0-adj-reason"] = ""


def _set_role(url: str, lead: str) -> None:
    name = str(st.session_state.get("qa0-role-name") or "").strip()
    role = str(st.session_state.get("qa0-role-role") or "aod")
    try:
        with session_scope(w.engine_for(url), write=True) as session:
            set_role_as_lead(session=session, lead=lead, name=name, role=role)
    except (LabelError, NotAllowed) as exc:
        w.flash("error", f"Role not changed: {exc}")
        return
    w.flash("success", f"{name} is now {'a team lead' if role == 'lead' else 'an AoD'}")


def lead_section(ctx: w.PageContext) -> None:
    """Lead-only controls: adjudicate one EB, set roles. Never drawn for an AoD."""
    url = ctx.settings.database_url
    assert ctx.who is not None and ctx.lead
    left, right = st.columns(2, gap="large")
    with left, st.container(border=True, key="qa0-adjudicate"):
        st.markdown("**Adjudicate an EB**")
        st.text_input("EB uid", key="qa0-adj-uid", placeholder="uid://A002/…")
        st.segmented_control("Final QA0", list(LABEL_VALUES), key="qa0-adj-value", default="Pass", required=True)
        st.text_input("Reason (required)", key="qa0-adj-reason", max_chars=500)
        st.button("Adjudicate", key="qa0-adj-go", on_click=_adjudicate, args=(url, ctx.who), type="primary")
    with right, st.container(border=True, key="qa0-roster"):
        st.markdown("**Team roster**")
        with session_scope(ctx.engine) as session:
            people = pd.DataFrame(roster(session=session), columns=["name", "role"])
        st.dataframe(people, hide_index=True, width="stretch", height=200)
        c1, c2 = st.columns([2, 1])
        c1.text_input("Name", key="qa0-role-name", max_chars=80)
        c2.selectbox("Role", list(ROLES), key="qa0-role-role")
        st.button("Set role", key="qa0-role-go", on_click=_set_role, args=(url, ctx.who))


def render() -> None:
    """Draw the Agreement page."""
    ctx = w.page_setup(title="Agreement")
    with st.sidebar:
        w.model_status_panel(ctx)
    w.show_flash()
    st.title("Agreement")
    report_section(ctx)
    if ctx.lead:
        st.divider()
        lead_section(ctx)
    else:
        st.caption("Adjudication and the team roster are available to team leads.")


if __name__ == "__main__":
    render()
