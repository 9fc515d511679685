"""Model page: how the model improves with labels, its cross-validated errors, and what the pool looks like."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from qa0_label.learning import charts
from qa0_label.learning import report as mr
from qa0_label.store.db import session_scope
from qa0_label.ui import auto as auto_ui
from qa0_label.ui import widgets as w


@st.cache_data(ttl=5, show_spinner=False, max_entries=8)
def report_data(url: str) -> dict[str, Any]:
    """Everything the page shows, read in one session (refreshed every few seconds at most)."""
    with session_scope(w.engine_for(url)) as session:
        history = mr.run_history(session=session)
        latest = mr.latest_done_run(session=session)
        balance = mr.class_balance(session=session)
        scores = mr.pool_scores(session=session, run_id=latest["id"]) if latest else pd.DataFrame()
    return {"history": history, "latest": latest, "balance": balance, "scores": scores}


def render() -> None:
    """Draw the Model page."""
    ctx = w.page_setup(title="Model")
    with st.sidebar:
        w.model_status_panel(ctx)
    w.show_flash()
    st.title("Model")
    data = report_data(ctx.settings.database_url)
    history: pd.DataFrame = data["history"]
    latest = data["latest"]
    if latest is None:
        st.info(
            "No trained model yet. The queue serves diverse cold-start picks until enough labels exist; "
            "start a retrain from the sidebar."
        )
    else:
        m = latest["metrics"]
        cols = st.columns(5)
        cols[0].metric("Version", f"v{latest['version']}")
        cols[1].metric("Labels used", latest["n_labels"])
        cols[2].metric("Macro-F1 (CV)", _fmt(m.get("macro_f1")))
        cols[3].metric("Fail recall (CV)", _fmt(m.get("fail_recall")))
        cols[4].metric("Balanced accuracy", _fmt(m.get("balanced_accuracy")))
        if latest.get("estimator"):
            st.caption(f"Estimator: {w.md_escape(latest['estimator'])}")

    left, right = st.columns(2, gap="large")
    with left:
        long = mr.metric_history_long(history)
        if long.empty:
            st.caption("Model quality vs number of labels: appears after the first finished retrain.")
        else:
            st.altair_chart(charts.metrics_history_chart(long), width="stretch")
    with right:
        cm = mr.confusion_frame(latest["metrics"]) if latest else None
        if cm is None:
            st.caption("Confusion matrix: the latest run stored none.")
        else:
            st.altair_chart(charts.confusion_chart(cm), width="stretch")

    left, right = st.columns(2, gap="large")
    with left:
        balance = data["balance"]
        if int(balance["count"].sum()) == 0:
            st.caption("Class balance: no labels yet.")
        else:
            st.altair_chart(charts.class_balance_chart(balance), width="stretch")
    with right:
        scores: pd.DataFrame = data["scores"]
        hist = mr.uncertainty_histogram(scores) if not scores.empty else pd.DataFrame()
        if hist.empty:
            st.caption("Uncertainty of the unlabelled pool: appears once a model has scored it.")
        else:
            st.altair_chart(charts.uncertainty_histogram(hist), width="stretch")
            st.caption(f"{len(scores):,} unlabelled EBs scored by v{latest['version']}")

    importances = mr.feature_importance_frame(latest["metrics"], latest["features"]) if latest else None
    if importances is not None:
        left, right = st.columns([3, 2], gap="large")
        with left:
            st.altair_chart(charts.feature_importance_chart(importances.head(20)), width="stretch")
        with right:
            # Every feature with its full name (the chart shortens long ones).
            st.dataframe(
                importances,
                hide_index=True,
                width="stretch",
                height=min(38 + 35 * len(importances), 460),
                key="qa0-importances",
                column_config={
                    "feature": st.column_config.TextColumn("feature", width="medium"),
                    "importance": st.column_config.NumberColumn("importance", format="%.4f"),
                },
            )

    auto_ui.render_automation(ctx)  # auto-QA0 (qa0_label/automation)

    st.subheader("Model runs")
    if history.empty:
        st.caption("No runs yet.")
    else:
        # Metrics first, the (long) estimator description last: it must not push the numbers off screen.
        order = [c for c in history.columns if c != "estimator"] + ["estimator"]
        st.dataframe(
            history.sort_values("version", ascending=False)[order],
            hide_index=True,
            width="stretch",
            key="qa0-runs",
            column_config={
                "version": st.column_config.NumberColumn("version", format="v%d", width="small"),
                "started_at": w.time_column("started", width="medium"),
                "finished_at": w.time_column("finished", width="medium"),
                "n_labels": st.column_config.NumberColumn("labels", format="%d"),
                **{m: st.column_config.NumberColumn(m.replace("_", " "), format="%.3f") for m in mr.HISTORY_METRICS},
                "estimator": st.column_config.TextColumn("estimator", width="medium", help="Full text on hover"),
            },
        )


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "–"


if __name__ == "__main__":
    render()
