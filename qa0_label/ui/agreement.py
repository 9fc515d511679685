"""Agreement page (team leads): inter-AoD agreement, per-AoD figures, the model against the AoDs,
the adjudication queue, gold EBs and the roster.

Everything is computed by the library (lead_report, agreement, adjudication); this page only caches and
draws. The expensive report (1000 bootstrap resamples) is cached per newest label id, so a rerun without a
new label costs three tiny state queries. User text (labeler names, comments, reasons, uids) is shown only
in dataframes, st.text, chart data or escaped with widgets.md_escape, never as markdown or HTML.
Lead-only controls are not drawn for AoDs, and the library refuses them too (labels.NotAllowed).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from qa0_label.access import names as roster_ops
from qa0_label.access import visibility
from qa0_label.access.authz import Requester
from qa0_label.access.identity import roster, set_role_as_lead
from qa0_label.lead import adjudication as adj
from qa0_label.lead import agreement
from qa0_label.lead import charts as lead_charts
from qa0_label.lead import report as lead_report
from qa0_label.store.db import session_scope
from qa0_label.store.labels import LabelError, NotAllowed, eb_id_for_uid
from qa0_label.store.models import LABEL_VALUES, ROLES
from qa0_label.ui import widgets as w

N_BOOT = 1000
"""Bootstrap resamples behind every interval on the page (cached, so affordable)."""

# Session-state keys of this page (tests use them too).
K_ADJ_PICK = "qa0-adj-pick"
K_ADJ_UID = "qa0-adj-uid"
K_ADJ_VALUE = "qa0-adj-value"
K_ADJ_REASON = "qa0-adj-reason"
K_ADJ_RESULT = "qa0-adj-result"
K_GOLD_UID = "qa0-gold-uid"
K_GOLD_VALUE = "qa0-gold-value"
K_GOLD_REASON = "qa0-gold-reason"
K_GOLD_RESULT = "qa0-gold-result"
K_ROLE_RESULT = "qa0-role-result"

QUEUE_COLUMNS = [
    "review",
    "uid",
    "source",
    "band",
    "start_time",
    "n_labels",
    "values",
    "leaning",
    "adjudicated_value",
    "last_label_at",
]
PER_AOD_COLUMNS = [
    "labeler",
    "n_labels",
    "share_pass",
    "share_semipass",
    "share_fail",
    "median_seconds",
    "agreement_with_consensus",
    "kappa_with_consensus",
    "n_vs_consensus",
    "agreement_with_model",
    "n_vs_model",
    "gold_accuracy",
    "gold_n",
]


# --- cached data (keys are small state values read on every rerun) ----------------------------------------


def _state(url: str) -> dict[str, Any]:
    with session_scope(w.engine_for(url)) as session:
        return {
            "label_id": lead_report.newest_label_id(session=session),
            "gold": lead_report.gold_state(session=session),
            "model": lead_report.latest_done_version(session=session),
            # A rename or merge moves labels without a new label id: the figures must be recomputed.
            "roster": roster_ops.roster_version(session=session),
        }


@st.cache_data(show_spinner="Computing agreement statistics…", max_entries=8)
def _overview(url: str, label_id: int, roster_version: int = 0, include_accepted: bool = False) -> dict[str, Any]:
    # label_id is the cache key: a new label, undo or adjudication changes it, nothing else does.
    with session_scope(w.engine_for(url)) as session:
        return lead_report.agreement_overview(session=session, n_boot=N_BOOT, include_accepted=include_accepted)


@st.cache_data(show_spinner=False, max_entries=8)
def _per_aod(
    url: str, label_id: int, gold: tuple[int, str], model: int, roster_version: int = 0, include_accepted: bool = False
) -> dict[str, Any]:
    with session_scope(w.engine_for(url)) as session:
        return lead_report.per_aod_table(session=session, include_accepted=include_accepted)


@st.cache_data(show_spinner=False, max_entries=8)
def _model(url: str, model: int, label_id: int) -> dict[str, Any]:
    with session_scope(w.engine_for(url)) as session:
        return {
            "latest": lead_report.model_vs_aods(session=session),
            "history": lead_report.model_history(session=session),
        }


@st.cache_data(show_spinner=False, max_entries=8)
def _queue(url: str, label_id: int, roster_version: int = 0) -> pd.DataFrame:
    with session_scope(w.engine_for(url)) as session:
        return adj.disagreements(session=session)


def _clear_caches() -> None:
    """After a lead's write in this process (state keys change anyway; this frees the old entries)."""
    _queue.clear()
    _per_aod.clear()


def _fmt(value: Any, spec: str = ".3f") -> str:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(out) else format(out, spec)


def _interval(ci: Any) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "95% interval: n/a"
    return f"95% interval {float(ci[0]):.3f} to {float(ci[1]):.3f}"


def _plain_lines(lines: list[str], *, key: str) -> None:
    # Notes can carry labeler names: plain text only.
    with st.container(border=True, key=key):
        for line in lines:
            st.text(f"• {line}")


# --- summary -------------------------------------------------------------------------------------------


def summary_section(data: dict[str, Any]) -> None:
    """Headline statistics with bootstrap intervals, the notes that explain every n/a, and the charts."""
    report = data["report"]
    level = int(round(100 * float(report.get("ci_level") or 0.95)))
    cols = st.columns(5)
    cols[0].metric("EBs rated by ≥ 2", report.get("n_items", 0))
    cols[0].caption(f"{report.get('n_labels', 0)} labels · {report.get('n_labelers', 0)} labelers")
    for col, (key, name) in zip(cols[1:], lead_report.SUMMARY_STATISTICS):
        col.metric(name, _fmt(report.get(key)))
        col.caption(_interval(report.get(f"{key}_ci")).replace("95%", f"{level}%"))
    if data.get("accepted_left_out"):
        st.caption(
            f"{data['accepted_left_out']} accepted model suggestions (key A) are left out: they agree with the "
            "model, not an AoD's own call. Tick 'Count accepted suggestions' above to include them."
        )
    if report.get("notes"):
        _plain_lines(list(report["notes"]), key="qa0-agreement-notes")
    if not report.get("n_items"):
        st.info("Charts appear once some EBs have labels from two AoDs.")
        return
    st.caption(
        f"Intervals: percentile bootstrap over EBs, {report.get('n_boot')} resamples. Ordinal alpha treats "
        "Fail < SemiPass < Pass; agreement uses each AoD's current label (archive labels excluded)."
    )
    pairs = lead_report.kappa_pairs(report)
    left, right = st.columns(2, gap="large")
    with left:
        defined = pairs.dropna(subset=["kappa"])
        n_names = len(set(defined["a"]) | set(defined["b"]))
        # Streamlit's default height="content" collapses a discrete y scale to a few pixels: give it room.
        st.altair_chart(
            lead_charts.kappa_heatmap(defined[["a", "b", "kappa", "n"]]),
            width="stretch",
            height=min(max(260, 32 * n_names + 160), 900),
        )
    with right:
        st.altair_chart(lead_charts.alpha_trend_chart(lead_report.alpha_trend_frame(data["trend"])), width="stretch")
        st.caption("Band: bootstrap interval of the ordinal alpha. Weeks with few shared EBs are unstable.")
    st.subheader("Pairs of AoDs")
    st.dataframe(
        w.percent_frame(pairs, ["percent_agreement"]),
        hide_index=True,
        width="stretch",
        column_config={
            "a": st.column_config.TextColumn("AoD", width="medium"),
            "b": st.column_config.TextColumn("and AoD", width="medium"),
            "n": st.column_config.NumberColumn("shared EBs", format="%d"),
            "kappa": st.column_config.NumberColumn("Cohen κ", format="%.3f"),
            "low": st.column_config.NumberColumn("κ low", format="%.3f"),
            "high": st.column_config.NumberColumn("κ high", format="%.3f"),
            "percent_agreement": w.percent_column("agreement"),
        },
    )
    pair_section(data)


def pair_section(data: dict[str, Any]) -> None:
    """Confusion matrix of two chosen AoDs on the EBs both labelled."""
    names: list[str] = data["labelers"]
    if len(names) < 2:
        return
    c1, c2 = st.columns(2)
    a = c1.selectbox("AoD A", names, index=0, key="qa0-pair-a")
    b = c2.selectbox("AoD B", names, index=1, key="qa0-pair-b")
    if a == b:
        st.caption("Pick two different AoDs.")
        return
    matrix = agreement.pair_confusion(data["labels"], str(a), str(b))
    if int(matrix.to_numpy().sum()) == 0:
        st.caption("These two AoDs have no EB in common.")
        return
    st.altair_chart(lead_charts.pair_confusion_chart(matrix, a_title=str(a), b_title=str(b)))


# --- per AoD ----------------------------------------------------------------------------------------------


def per_aod_section(url: str, state: dict[str, Any]) -> None:
    """Per-AoD workload, label mix, speed and agreement with consensus, model and gold EBs."""
    data = _per_aod(url, state["label_id"], state["gold"], state["model"], state["roster"], state["accepted"])
    table: pd.DataFrame = data["table"]
    if table.empty:
        st.info("No labels yet: per-AoD figures appear with the first labels.")
        return
    st.altair_chart(
        lead_charts.per_labeler_chart(
            table[
                [
                    "labeler",
                    "share_pass",
                    "share_semipass",
                    "share_fail",
                    "n_labels",
                    "median_seconds",
                    "agreement_with_consensus",
                ]
            ]
        ),
        width="stretch",
        height=min(max(200, 30 * len(table) + 120), 900),  # see summary_section: discrete y needs a height
    )
    shares = ["share_pass", "share_semipass", "share_fail", "agreement_with_consensus", "agreement_with_model"]
    st.dataframe(
        w.percent_frame(table[PER_AOD_COLUMNS], [*shares, "gold_accuracy"]),
        hide_index=True,
        width="stretch",
        column_config={
            "labeler": st.column_config.TextColumn("AoD", width="medium"),
            "n_labels": st.column_config.NumberColumn("labels", format="%d"),
            "share_pass": w.percent_column("Pass"),
            "share_semipass": w.percent_column("SemiPass"),
            "share_fail": w.percent_column("Fail"),
            "median_seconds": st.column_config.NumberColumn("median s / EB", format="%.0f"),
            "agreement_with_consensus": w.percent_column("agrees with others"),
            "kappa_with_consensus": st.column_config.NumberColumn("κ vs others", format="%.3f"),
            "n_vs_consensus": st.column_config.NumberColumn("EBs compared", format="%d"),
            "agreement_with_model": w.percent_column("agrees with model"),
            "n_vs_model": st.column_config.NumberColumn("EBs vs model", format="%d"),
            "gold_accuracy": w.percent_column("gold accuracy"),
            "gold_n": st.column_config.NumberColumn("gold EBs", format="%d"),
        },
    )
    model_note = (
        f"model v{data['model_version']}'s out-of-fold (cross-validated) predictions"
        if data["has_model_predictions"]
        else "not available: no model run has stored per-EB out-of-fold predictions (in-sample predictions "
        "would flatter the model, so they are not used)"
    )
    st.caption(
        "Consensus = majority of the OTHER labelers on the same EB (ties to the more cautious value). "
        f"Agreement with the model: {model_note}. Gold accuracy: current labels on gold EBs."
    )


# --- model vs AoDs ----------------------------------------------------------------------------------------


def model_section(url: str, state: dict[str, Any]) -> None:
    """The latest model's kappa and per-class recall against the consensus, and how they moved per version."""
    data = _model(url, state["model"], state["label_id"])
    latest = data["latest"]
    if latest is None:
        st.info("No finished model run yet: retrain from the sidebar once there are enough labels.")
        return
    recall = latest["per_class_recall"]
    cols = st.columns(5)
    cols[0].metric("Model version", f"v{latest['version']}")
    cols[0].caption(f"{latest['n_labels']} labels used")
    cols[1].metric("κ vs consensus", _fmt(latest["kappa"]))
    cols[1].caption(f"accuracy {_fmt(latest['accuracy'])} on {latest['n']} EBs")
    for col, value in zip(cols[2:], LABEL_VALUES):
        col.metric(f"{value} recall", _fmt(recall.get(value)))
    st.caption(f"Source: {latest['source']}.")
    history: pd.DataFrame = data["history"]
    st.altair_chart(lead_charts.model_agreement_chart(history), width="stretch")
    st.dataframe(
        history.sort_values("version", ascending=False),
        hide_index=True,
        width="stretch",
        column_config={
            "finished_at": w.time_column("finished"),
            "n": st.column_config.NumberColumn("EBs in CV", format="%d"),
            **{
                c: st.column_config.NumberColumn(format="%.3f")
                for c in ("kappa", "accuracy", "recall_pass", "recall_semipass", "recall_fail", "macro_f1")
            },
        },
    )


# --- adjudication -----------------------------------------------------------------------------------------


def _pick_from_queue() -> None:
    uid = st.session_state.get(K_ADJ_PICK)
    if uid:
        st.session_state[K_ADJ_UID] = str(uid)


def _adjudicate(url: str, lead: Requester) -> None:
    uid = str(st.session_state.get(K_ADJ_UID) or "").strip()
    value = st.session_state.get(K_ADJ_VALUE)
    reason = str(st.session_state.get(K_ADJ_REASON) or "").strip()
    if not uid or not value:
        st.session_state[K_ADJ_RESULT] = ("error", "Pick an EB and a final QA0 value first.")
        return
    if not reason:
        st.session_state[K_ADJ_RESULT] = ("error", "A reason is required: say why this value is right.")
        return
    try:
        # One write session: the lead check, the EB lookup and the event are one transaction.
        with session_scope(w.engine_for(url), write=True) as session:
            eb_id = eb_id_for_uid(session=session, uid=uid)
            adj.adjudicate(session=session, eb_id=eb_id, lead=lead, value=str(value), reason=reason)
    except (LabelError, NotAllowed) as exc:
        st.session_state[K_ADJ_RESULT] = ("error", f"Not adjudicated: {exc}")
        return
    _clear_caches()
    st.session_state[K_ADJ_RESULT] = ("success", f"Adjudicated {uid} as {value}.")
    st.session_state[K_ADJ_REASON] = ""
    st.session_state[K_ADJ_VALUE] = None  # the next ruling is chosen afresh
    st.session_state[K_ADJ_PICK] = None  # the EB leaves the queue; its uid stays in the box to show the ruling


def _show_result(key: str) -> None:
    item = st.session_state.pop(key, None)
    if item:
        kind, message = item
        # The message can quote a uid or a name: escaped, never markdown.
        (st.error if kind == "error" else st.success)(w.md_escape(message))


def adjudication_section(ctx: w.PageContext, state: dict[str, Any]) -> None:
    """The disagreement queue for everyone; the decision controls for leads only."""
    url = ctx.settings.database_url
    # Blind review: an AoD sees which EBs await a lead, never their labels or counts (access.visibility).
    queue = visibility.visible_queue(_queue(url, state["label_id"], state["roster"]), ctx.scope())
    if queue.empty:
        st.success("No open disagreements: every EB with two or more labels agrees or has been adjudicated.")
    else:
        st.caption(
            f"{len(queue)} EB(s) whose current labels disagree and await a lead (an adjudicated EB returns "
            "only when a later label contradicts the ruling)."
        )
        shown = queue.assign(review=[w.review_url(str(u), ctx.who) for u in queue["uid"]])
        st.dataframe(
            w.blanks_empty(shown[[c for c in QUEUE_COLUMNS if c in shown]]),
            hide_index=True,
            width="stretch",
            key="qa0-adj-queue",
            column_config={
                # One click from the queue to the EB's plots and labels (a new tab; the queue stays here).
                "review": st.column_config.LinkColumn(
                    "open", display_text="review ↗", width="small", help="The EB's review view, in a new tab"
                ),
                "uid": st.column_config.TextColumn("uid", width="medium"),
                "start_time": w.time_column("observed", width="medium"),
                "n_labels": st.column_config.NumberColumn("labels", format="%d"),
                "values": st.column_config.TextColumn("current labels", width="medium"),
                "leaning": st.column_config.TextColumn(
                    "leaning", width="medium", help="Majority value; a tie goes to the more cautious value"
                ),
                "last_label_at": w.time_column("last label", width="medium"),
                "adjudicated_value": st.column_config.TextColumn("earlier ruling"),
            },
        )
    if not ctx.lead or ctx.who is None:
        _show_result(K_ADJ_RESULT)  # e.g. the library's refusal after a lead lost the role meanwhile
        if ctx.lead_locked:
            st.info("Unlock lead actions in the sidebar (your lead passphrase) to adjudicate.")
        else:
            st.info("Only team leads can adjudicate. This queue is read-only for AoDs.")
        return
    with st.container(border=True, key="qa0-adjudicate"):
        st.markdown("**Adjudicate an EB**")
        if not queue.empty:
            uids = queue["uid"].astype(str).tolist()
            summary = dict(zip(uids, queue["values"].astype(str)))
            st.selectbox(
                "From the queue",
                uids,
                index=None,
                key=K_ADJ_PICK,
                placeholder="Pick a disputed EB",
                on_change=_pick_from_queue,
                format_func=lambda u: f"{u} · {summary.get(u, '')}",
            )
        st.text_input("EB uid", key=K_ADJ_UID, placeholder="uid://A002/…", help="Any EB, also one not in the queue")
        uid = str(st.session_state.get(K_ADJ_UID) or "").strip()
        if uid:
            _eb_labels(ctx, uid)
        # No default: a ruling a lead did not choose explicitly must not be stored as "Pass".
        st.segmented_control("Final QA0", list(LABEL_VALUES), key=K_ADJ_VALUE, default=None)
        st.text_input("Reason (required)", key=K_ADJ_REASON, max_chars=500)
        st.button("Adjudicate", key="qa0-adj-go", on_click=_adjudicate, args=(url, ctx.requester), type="primary")
        _show_result(K_ADJ_RESULT)


def _eb_labels(ctx: w.PageContext, uid: str) -> None:
    """Every current label and every adjudication of one EB, as plain data."""
    try:
        with session_scope(ctx.engine) as session:
            eb_id = eb_id_for_uid(session=session, uid=uid)
            labels = adj.labels_for_eb(session=session, eb_id=eb_id).assign(eb_id=eb_id)
            labels = visibility.visible_labels(labels, visibility.label_scope(session=session, requester=ctx.requester))
    except LabelError:
        st.warning("No EB with this uid:")
        st.text(uid)
        return
    # One click to the EB's plots and labels (a new tab, like the queue's links: this panel keeps its state).
    st.link_button(
        "Open this EB's review view",
        w.review_url(uid, ctx.who),
        icon=":material/open_in_new:",
        type="secondary",
    )
    if labels.empty:
        st.caption("Nobody has labelled this EB yet.")
        return
    st.dataframe(
        w.blanks_empty(
            labels[["created_at", "labeler", "role", "kind", "value", "comment", "reason", "seconds_on_eb"]]
        ),
        hide_index=True,
        width="stretch",
        key="qa0-adj-labels",
        column_config=w.label_table_columns(),
    )


# --- gold EBs ---------------------------------------------------------------------------------------------


def _gold(url: str, lead: Requester, mark: bool) -> None:
    uid = str(st.session_state.get(K_GOLD_UID) or "").strip()
    value = st.session_state.get(K_GOLD_VALUE)
    reason = str(st.session_state.get(K_GOLD_REASON) or "").strip()
    if not uid:
        st.session_state[K_GOLD_RESULT] = ("error", "Enter the uid of the EB.")
        return
    if mark and not value:
        st.session_state[K_GOLD_RESULT] = ("error", "Choose the right answer (Pass, SemiPass or Fail) first.")
        return
    if mark and not reason:
        st.session_state[K_GOLD_RESULT] = ("error", "A reason is required: say why this is the right answer.")
        return
    try:
        with session_scope(w.engine_for(url), write=True) as session:
            eb_id = eb_id_for_uid(session=session, uid=uid)
            if mark:
                adj.mark_gold(session=session, eb_id=eb_id, lead=lead, value=str(value), reason=reason)
                message = f"{uid} is a gold EB with answer {value}."
            else:
                was = adj.unmark_gold(session=session, eb_id=eb_id, lead=lead)
                message = f"{uid} is no longer a gold EB." if was else f"{uid} was not a gold EB."
    except (LabelError, NotAllowed) as exc:
        st.session_state[K_GOLD_RESULT] = ("error", f"Gold EBs not changed: {exc}")
        return
    _clear_caches()
    st.session_state[K_GOLD_RESULT] = ("success", message)
    if mark:
        st.session_state[K_GOLD_REASON] = ""


def gold_section(ctx: w.PageContext) -> None:
    """Leads only: mark / unmark gold EBs, the gold set and each labeler's score on it."""
    url = ctx.settings.database_url
    with st.container(border=True, key="qa0-gold"):
        st.markdown("**Mark or unmark a gold EB**")
        c1, c2 = st.columns([3, 2])
        c1.text_input("EB uid", key=K_GOLD_UID, placeholder="uid://A002/…")
        with c2:
            st.segmented_control("Right answer", list(LABEL_VALUES), key=K_GOLD_VALUE, default=None)
        st.text_input("Reason (required to mark)", key=K_GOLD_REASON, max_chars=500)
        b1, b2 = st.columns(2)
        b1.button("Mark as gold", key="qa0-gold-mark", on_click=_gold, args=(url, ctx.requester, True), type="primary")
        b2.button("Unmark", key="qa0-gold-unmark", on_click=_gold, args=(url, ctx.requester, False))
        _show_result(K_GOLD_RESULT)
    st.caption("Gold EBs are served blind to AoDs; their answers are visible to team leads only.")
    with session_scope(ctx.engine) as session:
        table = adj.gold_table(session=session)
        scores = adj.gold_scores(session=session)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown("**Gold EBs**")
        if table.empty:
            st.caption("No gold EBs yet.")
        else:
            st.dataframe(
                w.blanks_empty(
                    table[["uid", "source", "band", "start_time", "value", "set_by", "reason", "created_at"]]
                ),
                hide_index=True,
                width="stretch",
                key="qa0-gold-table",
                column_config={
                    "uid": st.column_config.TextColumn("uid", width="medium"),
                    "start_time": w.time_column("observed", width="medium"),
                    "reason": st.column_config.TextColumn("reason", width="large"),
                    "created_at": w.time_column("set", width="medium"),
                },
            )
    with right:
        st.markdown("**Scores on gold EBs**")
        if scores.empty:
            st.caption("Nobody has labelled a gold EB yet.")
        else:
            st.dataframe(
                w.percent_frame(scores, ["accuracy"]),
                hide_index=True,
                width="stretch",
                key="qa0-gold-scores",
                column_config={"accuracy": w.percent_column("accuracy")},
            )


# --- roster -----------------------------------------------------------------------------------------------


def _set_role(url: str, lead: Requester) -> None:
    name = str(st.session_state.get("qa0-role-name") or "").strip()
    role = str(st.session_state.get("qa0-role-role") or "aod")
    if not name:
        st.session_state[K_ROLE_RESULT] = ("error", "Pick a labeler first.")
        return
    try:
        with session_scope(w.engine_for(url), write=True) as session:
            person = set_role_as_lead(session=session, lead=lead, name=name, role=role)
            shown = person.name
    except (LabelError, NotAllowed) as exc:
        # Beside the button, not a toast: e.g. "... is the last lead" must be read before trying again.
        st.session_state[K_ROLE_RESULT] = ("error", f"Role not changed: {exc}")
        return
    w.refresh_roster()
    st.session_state[K_ROLE_RESULT] = ("success", f"{shown} is now {'a team lead' if role == 'lead' else 'an AoD'}")


def _rename_or_merge(url: str, lead: Requester, merge: bool) -> None:
    source = str(st.session_state.get("qa0-merge-from") or "").strip()
    target = str(st.session_state.get("qa0-merge-into") or "").strip()
    if not source or not target:
        w.flash("error", "Give both names first.")
        return
    try:
        with session_scope(w.engine_for(url), write=True) as session:
            if merge:
                n = roster_ops.merge_labelers(session=session, requester=lead, source=source, into=target)
                message = f"Merged {source} into {target}: {n} label events moved."
            else:
                roster_ops.rename_labeler(session=session, requester=lead, old=source, new=target)
                message = f"Renamed {source} to {target}."
    except (LabelError, NotAllowed) as exc:
        w.flash("error", f"Roster not changed: {exc}")
        return
    w.refresh_roster()
    st.cache_data.clear()  # agreement figures are recomputed with the labels re-attributed
    w.flash("success", message)


def roster_section(ctx: w.PageContext) -> None:
    """Leads only: the team and their roles; rename or merge labelers, with the history of such changes."""
    with session_scope(ctx.engine) as session:
        people = pd.DataFrame(roster(session=session), columns=["name", "role"])
        history = roster_ops.change_history(session=session)
    st.dataframe(people, hide_index=True, width="stretch", height=240)
    c1, c2 = st.columns([2, 1])
    # Roles go to people already in the roster (the library refuses other names): a pick, not free text, so a
    # typo cannot become a new labeler.
    c1.selectbox("Name", people["name"].tolist(), index=None, key="qa0-role-name", placeholder="Pick a labeler")
    c2.selectbox("Role", list(ROLES), key="qa0-role-role")
    st.button("Set role", key="qa0-role-go", on_click=_set_role, args=(ctx.settings.database_url, ctx.requester))
    _show_result(K_ROLE_RESULT)
    st.markdown("**Rename or merge labelers**")
    st.caption(
        "Rename fixes a misspelt name. Merge moves every label of the first labeler to the second (one person "
        "who used two names); the first leaves the roster. Both are recorded below."
    )
    m1, m2 = st.columns(2)
    m1.text_input("Labeler", key="qa0-merge-from", max_chars=80)
    m2.text_input("New name / merge into", key="qa0-merge-into", max_chars=80)
    b1, b2 = st.columns(2)
    url = ctx.settings.database_url
    b1.button("Rename", key="qa0-rename-go", on_click=_rename_or_merge, args=(url, ctx.requester, False))
    b2.button("Merge", key="qa0-merge-go", on_click=_rename_or_merge, args=(url, ctx.requester, True))
    if not history.empty:
        st.dataframe(
            history,
            hide_index=True,
            width="stretch",
            key="qa0-roster-history",
            column_config={"at": st.column_config.DatetimeColumn("when (UTC)", format="YYYY-MM-DD HH:mm")},
        )


# --- page -------------------------------------------------------------------------------------------------


def render() -> None:
    """Draw the Agreement page."""
    ctx = w.page_setup(title="Agreement")
    with st.sidebar:
        w.model_status_panel(ctx)
    w.show_flash()
    st.title("Agreement")
    url = ctx.settings.database_url
    state = _state(url)
    state["accepted"] = st.checkbox(
        "Count accepted suggestions",
        value=False,
        key="qa0-agreement-include-accepted",
        help="Labels an AoD gave by accepting the model's auto-QA0 suggestion (key A). Left out by default: "
        "agreement between AoDs should measure their own calls.",
    )
    names = ["Summary", "AoDs", "Model vs AoDs", "Adjudication"] + (["Gold EBs", "Roster"] if ctx.lead else [])
    tabs = st.tabs(names)
    with tabs[0]:
        summary_section(_overview(url, state["label_id"], state["roster"], state["accepted"]))
    with tabs[1]:
        per_aod_section(url, state)
    with tabs[2]:
        model_section(url, state)
    with tabs[3]:
        adjudication_section(ctx, state)
    if ctx.lead and ctx.who is not None:
        with tabs[4]:
            gold_section(ctx)
        with tabs[5]:
            roster_section(ctx)
    else:
        _show_result(K_GOLD_RESULT)  # a refusal that arrived after the user lost the lead role
        if ctx.lead_locked:
            st.caption("Unlock lead actions in the sidebar to manage gold EBs and the roster.")
        else:
            st.caption("Adjudication, gold EBs and the team roster are managed by team leads.")


if __name__ == "__main__":
    render()
