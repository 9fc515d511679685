"""Altair builders of the Model page (pure; same conventions as review.charts, tested through to_dict()).

An empty DataFrame gives review.charts.no_data_chart; a non-empty one without the required columns raises
ValueError naming them; user text (feature names) travels only as data values.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from qa0_label.review.chart_style import StreamlitChart, clean, is_empty, no_data_chart, qa0_scale, require
from qa0_label.store.models import LABEL_VALUES

SCORE_NAMES: dict[str, str] = {
    "macro_f1": "macro F1",
    "fail_recall": "Fail recall",
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
}

SCORE_COLORS: dict[str, str] = {
    "macro F1": "#1f77b4",
    "Fail recall": "#9467bd",
    "balanced accuracy": "#17becf",
    "accuracy": "#8c564b",
}


def metrics_history_chart(df: pd.DataFrame) -> StreamlitChart:
    """Model scores against the number of consensus labels, one line per metric.

    DF is wide (version, n_labels, macro_f1, fail_recall, ... any of SCORE_NAMES) or long (version, n_labels,
    metric, value) as model_report.metric_history_long returns.
    """
    title = "Model quality as labels accumulate"
    if is_empty(df):
        return no_data_chart(title)
    require(df, ("version", "n_labels"), "metrics_history_chart")
    if {"metric", "value"} <= set(df.columns):
        long = df[["version", "n_labels", "metric", "value"]].copy()
    else:
        cols = [c for c in df.columns if c in SCORE_NAMES]
        if not cols:
            raise ValueError(f"metrics_history_chart: none of {', '.join(SCORE_NAMES)} in the columns")
        long = df.melt(id_vars=["version", "n_labels"], value_vars=cols, var_name="metric", value_name="value")
    long = clean(long).dropna(subset=["value"])
    if long.empty:
        return no_data_chart(title)
    long["metric"] = long["metric"].map(lambda m: SCORE_NAMES.get(str(m), str(m)))
    # Label counts are whole numbers; with one model run Vega would otherwise print "320.000000".
    x = alt.X("n_labels:Q", title="Consensus labels used for training", axis=alt.Axis(format=",d", tickMinStep=1))
    y = alt.Y("value:Q", title="Score (cross-validated)", scale=alt.Scale(domain=[0, 1]))
    # Not red or green: those colours mean Fail and Pass everywhere else.
    names = list(dict.fromkeys([*SCORE_COLORS, *long["metric"]]))
    color = alt.Color(
        "metric:N",
        title="Metric",
        scale=alt.Scale(domain=names, range=[SCORE_COLORS.get(n, "#7f7f7f") for n in names]),
    )
    tips = [
        alt.Tooltip("version:O", title="Model version"),
        alt.Tooltip("n_labels:Q", title="Labels", format="d"),
        alt.Tooltip("metric:N", title="Metric"),
        alt.Tooltip("value:Q", title="Score", format=".3f"),
    ]
    base = alt.Chart(long)
    return alt.layer(
        base.mark_line().encode(x=x, y=y, color=color),
        base.mark_point(filled=True, size=50).encode(x=x, y=y, color=color, tooltip=tips),
    ).properties(title=title, height=260)


def matrix_chart(d: pd.DataFrame, row: str, col: str, *, title: str, row_title: str, col_title: str) -> StreamlitChart:
    """A QA0 x QA0 count matrix (every cell drawn, QA0 order) with the count and row share in each cell."""
    d = d[[row, col, "count"]].copy()
    d["count"] = pd.to_numeric(d["count"], errors="coerce").fillna(0.0)
    d[row] = d[row].astype(str)
    d[col] = d[col].astype(str)
    seen = set(d[row]) | set(d[col])
    order = [v for v in LABEL_VALUES if seen & set(LABEL_VALUES)] + sorted(seen - set(LABEL_VALUES))
    # Every cell is drawn, zeros included, so the matrix keeps its shape when a class is missing.
    grid = pd.MultiIndex.from_product([order, order], names=[row, col])
    d = d.groupby([row, col])["count"].sum().reindex(grid, fill_value=0.0).reset_index()
    totals = d.groupby(row)["count"].transform("sum")
    d["row_share"] = d["count"] / totals.where(totals > 0)
    d["on_diagonal"] = d[row] == d[col]
    top = float(d["count"].max()) or 1.0
    d["dark"] = d["count"] > top / 2
    x = alt.X("c:N", title=col_title, sort=order, scale=alt.Scale(domain=order), axis=alt.Axis(labelAngle=0))
    y = alt.Y("r:N", title=row_title, sort=order, scale=alt.Scale(domain=order))
    d = d.rename(columns={row: "r", col: "c"})
    tips = [
        alt.Tooltip("r:N", title=row_title),
        alt.Tooltip("c:N", title=col_title),
        alt.Tooltip("count:Q", title="Count", format=",.0f"),
        alt.Tooltip("row_share:Q", title="Share of row", format=".1%"),
    ]
    base = alt.Chart(d)
    return alt.layer(
        base.mark_rect(stroke="#ffffff").encode(
            x=x, y=y, color=alt.Color("count:Q", title="Count", scale=alt.Scale(scheme="blues")), tooltip=tips
        ),
        base.mark_text(fontSize=13).encode(
            x=x,
            y=y,
            text=alt.Text("count:Q", format=",.0f"),
            color=alt.condition(alt.datum.dark, alt.value("#ffffff"), alt.value("#111111")),
            tooltip=tips,
        ),
    ).properties(title=title, height=220, width=260)


def confusion_chart(df: pd.DataFrame) -> StreamlitChart:
    """Confusion matrix of consensus label (rows) against model prediction (columns), Pass/SemiPass/Fail order.

    DF is long: (true or actual, predicted, count).
    """
    title = "Confusion matrix"
    if is_empty(df):
        return no_data_chart(title)
    true_col = "true" if "true" in df.columns else "actual"
    require(df, (true_col, "predicted", "count"), "confusion_chart")
    return matrix_chart(df, true_col, "predicted", title=title, row_title="AoD consensus", col_title="Model prediction")


def class_balance_chart(df: pd.DataFrame) -> StreamlitChart:
    """Number of consensus labels per QA0 value (bars in QA0 colours). DF: value, count (share optional)."""
    title = "Training labels per class"
    if is_empty(df):
        return no_data_chart(title)
    require(df, ("value", "count"), "class_balance_chart")
    d = clean(df)
    d["value"] = d["value"].astype(str)
    total = float(d["count"].sum())
    d["share"] = d["count"] / total if total else 0.0
    order = [v for v in LABEL_VALUES if v in set(d["value"])] + sorted(set(d["value"]) - set(LABEL_VALUES))
    x = alt.X("value:N", title="QA0", sort=order, axis=alt.Axis(labelAngle=0))
    y = alt.Y("count:Q", title="Labelled EBs")
    tips = [
        alt.Tooltip("value:N", title="QA0"),
        alt.Tooltip("count:Q", title="EBs", format=",d"),
        alt.Tooltip("share:Q", title="Share", format=".1%"),
    ]
    base = alt.Chart(d)
    return alt.layer(
        base.mark_bar().encode(x=x, y=y, color=alt.Color("value:N", scale=qa0_scale(), legend=None), tooltip=tips),
        base.mark_text(dy=-7).encode(x=x, y=y, text=alt.Text("count:Q", format=",d")),
    ).properties(title=title, height=220)


FEATURE_LABEL_CHARS = 28
"""Longer feature names are shortened on the axis (middle elided); the tooltip and the page's table have them whole."""


def short_name(name: str, limit: int = FEATURE_LABEL_CHARS) -> str:
    """NAME shortened to LIMIT characters by eliding the middle (both ends of a feature name carry meaning)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return f"{name[:head]}…{name[-(limit - 1 - head) :]}"


def feature_importance_chart(df: pd.DataFrame, *, top: int = 20) -> StreamlitChart:
    """Horizontal bars of the TOP most important features, largest first. DF: feature, importance.

    Every bar is labelled (no label dropped for overlap); names longer than FEATURE_LABEL_CHARS are shortened
    in the middle on the axis and shown whole in the tooltip.
    """
    title = "Feature importance"
    if is_empty(df):
        return no_data_chart(title)
    require(df, ("feature", "importance"), "feature_importance_chart")
    d = clean(df).dropna(subset=["importance"])
    d["feature"] = d["feature"].astype(str)
    d = d.sort_values("importance", ascending=False).head(int(top))
    if d.empty:
        return no_data_chart(title)
    # Unique short labels (two long names could shorten to the same text).
    shorts: list[str] = []
    for name in d["feature"]:
        label = short_name(name)
        while label in shorts:
            label += "\u200b"
        shorts.append(label)
    d["label"] = shorts
    tips = [alt.Tooltip("feature:N", title="Feature"), alt.Tooltip("importance:Q", title="Importance", format=".4f")]
    y = alt.Y("label:N", title=None, sort=shorts, axis=alt.Axis(labelOverlap=False, labelLimit=0))
    return (
        alt.Chart(d)
        .mark_bar(color="#4c78a8")
        .encode(x=alt.X("importance:Q", title="Importance"), y=y, tooltip=tips)
        .properties(title=title, height=max(120, 20 * len(d)))
    )


def uncertainty_histogram(df: pd.DataFrame, *, bins: int = 25) -> StreamlitChart:
    """Histogram of the model's uncertainty over the unlabelled pool, stacked by predicted class when known.

    DF is raw (uncertainty[, predicted]) and binned here into BINS bins, or already binned (bin_start,
    bin_end, count[, predicted]) as model_report.uncertainty_histogram returns.
    """
    title = "Uncertainty of the unlabelled pool"
    if is_empty(df):
        return no_data_chart(title)
    if {"bin_start", "bin_end", "count"} <= set(df.columns):
        h = clean(df)
    else:
        require(df, ("uncertainty",), "uncertainty_histogram")
        vals = pd.to_numeric(df["uncertainty"], errors="coerce").replace([np.inf, -np.inf], np.nan)
        ok = vals.notna()
        if not ok.any():
            return no_data_chart(title)
        lo, hi = float(vals[ok].min()), float(vals[ok].max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, int(bins) + 1)
        classes = df.loc[ok, "predicted"].astype(str) if "predicted" in df else pd.Series("all", index=vals[ok].index)
        parts = []
        for cls in sorted(set(classes)):
            counts, _ = np.histogram(vals[ok][classes == cls], bins=edges)
            parts.append(
                pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "count": counts, "predicted": cls})
            )
        h = pd.concat(parts, ignore_index=True)
        if "predicted" not in df:
            h = h.drop(columns="predicted")
    tips = [
        alt.Tooltip("bin_start:Q", title="From", format=".3f"),
        alt.Tooltip("bin_end:Q", title="To", format=".3f"),
        alt.Tooltip("count:Q", title="EBs", format=",d"),
    ]
    enc: dict[str, Any] = {}
    if "predicted" in h:
        h["predicted"] = h["predicted"].astype(str)
        enc["color"] = alt.Color("predicted:N", title="Predicted", scale=qa0_scale())
        enc["order"] = alt.Order("predicted:N")
        tips.insert(0, alt.Tooltip("predicted:N", title="Predicted"))
    return (
        alt.Chart(h)
        .mark_bar(binSpacing=0)
        .encode(
            x=alt.X("bin_start:Q", title="Model uncertainty", bin="binned"),
            x2="bin_end:Q",
            y=alt.Y("count:Q", title="EBs", stack=True),
            tooltip=tips,
            **enc,
        )
        .properties(title=title, height=220)
    )
