"""Auto-QA0 on the pages: the Label page's suggestion box (key A) and the Model page's Automation section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from qa0_label.automation import accept, charts, policy, predict, runs
from qa0_label.automation.calibrate import ALPHA_GRID, AlphaError
from qa0_label.store.db import session_scope
from qa0_label.store.labels import NotAllowed
from qa0_label.ui import widgets as w


@st.cache_data(ttl=30, show_spinner=False, max_entries=256)
def suggestion(url: str, eb_id: int, model_version: int | None) -> dict[str, Any] | None:
    """The model's auto-QA0 call for one EB (cached per EB and model version for a short while)."""
    return predict.explain_eb(engine=w.engine_for(url), eb_id=int(eb_id))


def mark_accepted(session: Any, event: Any, run_version: int, value: str) -> None:
    """Label-page hook: the label just stored accepted the suggestion of model version RUN_VERSION."""
    accept.mark_accepted_from_version(session=session, label_id=int(event.id), run_version=run_version, suggested=value)


def suggestion_markdown(item: dict[str, Any]) -> str:
    """Auto-QA0 in the "Why this EB" box: the call or the set, and the reasons (numbers and fixed words only).

    Two short paragraphs, no list: it is drawn on every key press, and the long why-nothing-is-decided text
    lives on the Model page.
    """
    decision = item.get("decision")
    alpha = float(item.get("alpha") or 0.0)
    if decision and decision != predict.NEEDS_AOD:
        head = (
            f"**Auto-QA0**: the model would decide this EB alone: **{decision}** (error rate of its "
            f"auto-decisions <= {alpha:.1%}). Press **A** to accept it as your label."
        )
    else:
        shown = ", ".join(item.get("set") or []) or "–"
        head = f"**Auto-QA0**: needs an AoD (the model's set at alpha {alpha:.1%}: {shown})"
        if item.get("why_none"):
            head += " · :gray[nothing is auto-decided yet: see the Model page]"
    reasons = item.get("top_reasons") or []
    if reasons:
        why = "Why: " + " · ".join(f"{w.md_escape(r['text'])} → {w.md_escape(r['towards'])}" for r in reasons)
    else:
        why = ":gray[Nothing pushes this EB towards SemiPass or Fail.]"
    return f"{head}\n\n{why}"


INDEPENDENT_PICKS = ("overlap",)
"""Picks on which the model's call is not shown (gold checks look like random picks and keep it, or they would
stand out)."""


def suggestion_for(url: str, assignment: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Label page: (the model's call on the shown EB, or None; markdown for the "Why this EB" box, or None)."""
    version = assignment.get("model_version")
    if not version:
        return None, None
    if assignment.get("strategy") in INDEPENDENT_PICKS:
        # The second opinion feeds the agreement statistics: an AoD who read the model's call first is not an
        # independent second rater, whichever key they then press.
        return None, ":gray[Auto-QA0 hidden: this is an independent second opinion.]"
    try:
        item = suggestion(url, int(assignment["eb_id"]), int(version))
    except Exception as exc:  # noqa: BLE001 - the label page must keep working without the suggestion
        return None, f":gray[Auto-QA0 unavailable: {w.md_escape(exc)}]"
    return (item, suggestion_markdown(item)) if item else (None, None)


def draw_accept(
    item: dict[str, Any], url: str, assignment: dict[str, Any], who: str, on_label: Callable[..., None]
) -> None:
    """Label page: the Accept button (key A) under "Why this EB" when the model would decide the EB alone."""
    decision = item.get("decision")
    if decision and decision != predict.NEEDS_AOD:
        st.button(
            f"Accept {decision}",
            key="qa0-btn-accept",
            shortcut="A",
            on_click=on_label,
            args=(decision, int(assignment["eb_id"]), str(st.session_state.get("qa0_event_id")), who, url),
            kwargs={"accepted_from": int(assignment["model_version"])},
            help="Record the model's suggestion as your label (marked as an accepted suggestion)",
        )


# --- Model page ----------------------------------------------------------------------------------


@st.cache_data(ttl=10, show_spinner=False, max_entries=8)
def automation_data(url: str) -> dict[str, Any]:
    """Everything the Automation section shows."""
    engine = w.engine_for(url)
    state = runs.state(engine=engine)
    counts = runs.current_pool_counts(engine=engine, run_id=state["run_id"]) if state["run_id"] else {}
    with session_scope(engine) as s:
        history = policy.alpha_history(session=s)
        share = accept.accepted_share(session=s)
    return {"state": state, "counts": counts, "history": history, "accepted": share}


@st.cache_data(ttl=300, show_spinner=False, max_entries=4)
def relevance_data(url: str, version: int | None) -> pd.DataFrame:
    """The serving model's most relevant parameters (recomputed when the model changes)."""
    return pd.DataFrame(predict.relevance(engine=w.engine_for(url)))


def render_automation(ctx: w.PageContext) -> None:
    """Model page section: alpha (leads change it), pool counts, held-out check, curve, relevant parameters."""
    url = ctx.settings.database_url
    st.subheader("Automation")
    data = automation_data(url)
    if _alpha_control(ctx, float(data["state"]["alpha"])):
        # Read again: the figures below must be those of the alpha just set, not of the one the control showed.
        data = automation_data(url)
    state, summary = data["state"], data["state"]["summary"]
    alpha = float(state["alpha"])
    if summary is None:
        st.info("Auto-QA0 appears after the next retrain: it calibrates on labels the model did not train on.")
        return
    counts, pool = data["counts"], summary.get("pool") or {}
    cols = st.columns(4)
    for col, value in zip(cols[:3], ("Pass", "SemiPass", "Fail")):
        col.metric(f"Auto-{value}", f"{counts.get(value, 0):,}")
    auto_total = sum(counts.values())
    cols[3].metric("Needs an AoD", f"{max(int(pool.get('pool', 0)) - auto_total, 0):,}")
    if summary.get("threshold") is None:
        st.warning(f"No EB is auto-decided: {summary.get('why_none')}")
    check = summary.get("check") or {}
    if check.get("n_auto"):
        interval = check.get("error_interval")
        spread = f", 95% interval {interval[0]:.1%}-{interval[1]:.1%}" if interval else ""
        st.markdown(
            f"Held-out check (model v{state['version']}): **{check['n_wrong']} wrong of {check['n_auto']}** "
            f"auto-decisions on {check['n']} consensus labels calibration did not use "
            f"(**{check['error']:.1%}**{spread}; alpha {alpha:.1%}, certified with probability "
            f">= {1 - float(summary.get('delta', 0.1)):.0%})."
        )
        st.caption(
            "The check is a sample: the guarantee bounds the true error rate, and a check set of this size "
            "reads above alpha now and then (about one run in ten) even when the true rate is below it."
        )
        per = pd.DataFrame(
            [
                {"value": k, "auto-decided (held-out)": v["n_auto"], "wrong": v["n_wrong"]}
                for k, v in check["per_class"].items()
            ]
        )
        st.dataframe(per, hide_index=True)
    else:
        st.caption(f"Held-out check: no auto-decision among the {check.get('n', 0)} held-out consensus labels.")
    curve = charts.curve_frame(summary.get("curve") or [])
    if not curve.empty:
        st.altair_chart(charts.coverage_curve_chart(curve, alpha), width="stretch")
    st.caption(
        f"Calibrated on {summary.get('n_calibration', 0)} held-out labels (out-of-fold scores), checked on "
        f"{summary.get('n_check', 0)}. Accepted suggestions so far: {data['accepted']['accepted_suggestions']:,} of "
        f"{data['accepted']['reviews']:,} review labels"
        + (
            f"; {summary['accepted_left_out']:,} EBs with an accepted suggestion left out of calibration "
            "(their label is the model's own call)."
            if summary.get("accepted_left_out")
            else "."
        )
    )
    rel = relevance_data(url, state["version"])
    if not rel.empty:
        st.altair_chart(charts.relevance_chart(rel), width="stretch")
    if data["history"]:
        with st.expander("Alpha changes"):
            st.dataframe(pd.DataFrame(data["history"]), hide_index=True)


def _alpha_control(ctx: w.PageContext, alpha: float) -> bool:
    """Alpha for everyone, its control for an unlocked lead; True when the lead just changed it."""
    if not ctx.lead:
        hint = "unlock lead actions in the sidebar to change it" if ctx.lead_locked else "set by team leads"
        st.markdown(f"Maximum error rate of auto-decisions (alpha): **{alpha:.1%}** :gray[({hint})]")
        return False
    with st.form("qa0-alpha", border=False):
        cols = st.columns([2, 1])
        new = cols[0].number_input(
            "Maximum error rate of auto-decisions (alpha)",
            min_value=0.001,
            max_value=0.499,
            value=float(alpha),
            step=0.005,
            format="%.3f",
            help=f"Between 0 and 0.5; the curve shows {ALPHA_GRID[0]:g}-{ALPHA_GRID[-1]:g}.",
        )
        if cols[1].form_submit_button("Set alpha"):
            try:
                out = runs.change_alpha(engine=ctx.engine, lead=ctx.requester, alpha=float(new))
            except (NotAllowed, AlphaError) as exc:
                st.error(str(exc))
                return False
            automation_data.clear()
            st.success(f"alpha {out['old_alpha']:g} -> {out['alpha']:g}")
            return True
    return False
