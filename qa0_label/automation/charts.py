"""Altair builders for the Model page's Automation section (pure: frames in, charts out; tested via to_dict())."""

from __future__ import annotations

from typing import Any, cast

import altair as alt
import pandas as pd


def curve_frame(curve: list[dict[str, Any]]) -> pd.DataFrame:
    """Long frame (alpha, measure, value) from a run's stored curve: pool coverage and held-out error per alpha."""
    rows = []
    for r in curve:
        a = float(r["alpha"])
        rows.append({"alpha": a, "measure": "share of pool auto-decided", "value": float(r.get("coverage") or 0.0)})
        if r.get("check_error") is not None:
            rows.append({"alpha": a, "measure": "held-out error of auto-decisions", "value": float(r["check_error"])})
    return pd.DataFrame(rows, columns=["alpha", "measure", "value"])


def coverage_curve_chart(frame: pd.DataFrame, alpha: float, *, height: int = 260) -> alt.LayerChart:
    """Coverage (and held-out error) against the maximum error rate alpha, with the alpha in force marked."""
    base = alt.Chart(frame).encode(
        x=alt.X("alpha:Q", title="maximum error rate alpha", axis=alt.Axis(format="%")),
        y=alt.Y("value:Q", title="share", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        color=alt.Color(
            "measure:N",
            title=None,
            scale=alt.Scale(
                domain=["share of pool auto-decided", "held-out error of auto-decisions"], range=["#1f77b4", "#d62728"]
            ),
            legend=alt.Legend(orient="bottom"),
        ),
        tooltip=[alt.Tooltip("alpha:Q", format=".3f"), "measure:N", alt.Tooltip("value:Q", format=".1%")],
    )
    lines = base.mark_line(point=True)
    # The guarantee's line: the error of auto-decisions stays at or below alpha (y = x).
    diag = (
        alt.Chart(pd.DataFrame({"alpha": [0.0, frame["alpha"].max() if len(frame) else 0.1]}))
        .mark_line(strokeDash=[2, 2], color="gray")
        .encode(x="alpha:Q", y=alt.Y("alpha:Q"))
    )
    rule = alt.Chart(pd.DataFrame({"alpha": [float(alpha)], "label": [f"alpha in force {alpha:g}"]}))
    marked = rule.mark_rule(color="black", strokeDash=[6, 3]).encode(x="alpha:Q", tooltip=["label:N"])
    text = rule.mark_text(align="left", dx=4, dy=-110, fontSize=11).encode(x="alpha:Q", text="label:N")
    chart = alt.layer(lines, diag, marked, text).properties(height=height, title="Auto-QA0: coverage vs error")
    return cast(alt.LayerChart, chart)  # altair's stubs widen layer().properties() to LayerChart | FacetChart


def relevance_chart(frame: pd.DataFrame, *, top: int = 15, height: int = 360) -> alt.Chart:
    """Most relevant parameters overall (mean |contribution| towards SemiPass/Fail), coloured by direction."""
    data = frame.head(top)
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("importance:Q", title="mean push towards SemiPass / Fail (log-odds)"),
            y=alt.Y("label:N", sort="-x", title=None),
            color=alt.Color(
                "direction:N",
                title="direction",
                scale=alt.Scale(
                    domain=["higher is worse", "higher is better", "mixed"], range=["#d62728", "#2ca02c", "#999999"]
                ),
            ),
            tooltip=["label:N", "feature:N", alt.Tooltip("importance:Q", format=".3f"), "direction:N"],
        )
        .properties(height=height, title="Most relevant parameters")
    )
