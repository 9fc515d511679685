"""Altair builders of the Agreement page (pure; same conventions as review.charts, tested through to_dict()).

An empty DataFrame gives charts.no_data_chart; a non-empty one without the required columns raises
ValueError naming them; user text travels only as data values.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from qa0_label.learning.charts import matrix_chart
from qa0_label.review.chart_style import (
    QA0_COLORS,
    StreamlitChart,
    as_times,
    clean,
    is_empty,
    no_data_chart,
    qa0_scale,
    require,
    vl_field,
)
from qa0_label.store.models import LABEL_VALUES

KRIPPENDORFF_TENTATIVE = 0.667
KRIPPENDORFF_RELIABLE = 0.8

MODEL_SERIES: dict[str, tuple[str, str]] = {
    # column -> (legend name, colour); recalls wear their class colour, kappa a neutral dark blue.
    "kappa": ("kappa vs consensus", "#1f4e9c"),
    "recall_pass": ("Pass recall", QA0_COLORS["Pass"]),
    "recall_semipass": ("SemiPass recall", QA0_COLORS["SemiPass"]),
    "recall_fail": ("Fail recall", QA0_COLORS["Fail"]),
}


def model_agreement_chart(df: pd.DataFrame) -> StreamlitChart:
    """How the model's out-of-fold agreement with the AoD consensus moved across model versions.

    DF: version, n_labels, and any of kappa, recall_pass, recall_semipass, recall_fail (one row per finished
    run, e.g. lead_report.model_history). One line per statistic against the version; the y axis goes below
    zero only when a value does (a kappa can be negative).
    """
    title = "Model vs AoD consensus across versions (cross-validated)"
    if df is None or len(df) == 0:
        return no_data_chart(title)
    missing = [c for c in ("version", "n_labels") if c not in df.columns]
    series = [c for c in MODEL_SERIES if c in df.columns]
    if missing or not series:
        need = missing or [f"one of {', '.join(MODEL_SERIES)}"]
        raise ValueError(
            f"model_agreement_chart: missing column(s) {', '.join(need)}; got {', '.join(map(str, df.columns))}"
        )
    d = df[["version", "n_labels", *series]].copy()
    for col in series:
        d[col] = pd.to_numeric(d[col], errors="coerce").replace([np.inf, -np.inf], np.nan)
    long = d.melt(id_vars=["version", "n_labels"], value_vars=series, var_name="col", value_name="value")
    long = long.dropna(subset=["value"])
    if long.empty:
        return no_data_chart(title)
    long["series"] = long["col"].map(lambda c: MODEL_SERIES[c][0])
    long["version"] = long["version"].astype(int)
    names = [MODEL_SERIES[c][0] for c in series]
    lowest = min(0.0, float(long["value"].min()))
    x = alt.X("version:Q", title="Model version", axis=alt.Axis(format="d", tickMinStep=1))
    y = alt.Y("value:Q", title="Score (out-of-fold)", scale=alt.Scale(domain=[lowest, 1.0]))
    color = alt.Color(
        "series:N", title="Statistic", scale=alt.Scale(domain=names, range=[MODEL_SERIES[c][1] for c in series])
    )
    tips = [
        alt.Tooltip("version:Q", title="Model version", format="d"),
        alt.Tooltip("n_labels:Q", title="Labels used", format=",d"),
        alt.Tooltip("series:N", title="Statistic"),
        alt.Tooltip("value:Q", title="Value", format=".3f"),
    ]
    base = alt.Chart(long)
    return alt.layer(
        base.mark_line().encode(x=x, y=y, color=color, detail="segment:N"),
        base.mark_point(filled=True, size=50).encode(x=x, y=y, color=color, tooltip=tips),
    ).properties(title=title, height=260)


def kappa_heatmap(df: pd.DataFrame) -> StreamlitChart:
    """Cohen's kappa for every pair of labelers (both halves of the matrix), with the pair's item count.

    DF: a, b (labeler names), kappa, n (EBs both labelled).
    """
    title = "Cohen's kappa between AoDs"
    if is_empty(df):
        return no_data_chart(title)
    require(df, ("a", "b", "kappa", "n"), "kappa_heatmap")
    d = clean(df[["a", "b", "kappa", "n"]])
    d["a"], d["b"] = d["a"].astype(str), d["b"].astype(str)
    both = pd.concat([d, d.rename(columns={"a": "b", "b": "a"})], ignore_index=True).drop_duplicates(["a", "b"])
    both = both[both["a"] != both["b"]]
    names = sorted(set(both["a"]) | set(both["b"]))
    both["dark"] = both["kappa"].abs() > 0.75
    # Every name printed in full (Vega would otherwise drop every other overlapping label and cut long ones).
    x = alt.X("a:N", title="AoD", sort=names, axis=alt.Axis(labelAngle=-40, labelOverlap=False, labelLimit=0))
    y = alt.Y("b:N", title="AoD", sort=names, axis=alt.Axis(labelOverlap=False, labelLimit=0))
    tips = [
        alt.Tooltip("a:N", title="AoD"),
        alt.Tooltip("b:N", title="and"),
        alt.Tooltip("kappa:Q", title="kappa", format=".3f"),
        alt.Tooltip("n:Q", title="Shared EBs", format=",d"),
    ]
    base = alt.Chart(both)
    return alt.layer(
        base.mark_rect().encode(
            x=x,
            y=y,
            tooltip=tips,
            color=alt.Color(
                "kappa:Q", title="kappa", scale=alt.Scale(scheme="redyellowgreen", domain=[0, 1], clamp=True)
            ),
        ),
        base.mark_text(fontSize=11).encode(x=x, y=y, text=alt.Text("kappa:Q", format=".2f"), tooltip=tips),
    ).properties(title=title, height=max(160, 28 * len(names)), width=max(160, 28 * len(names)))


def alpha_trend_chart(df: pd.DataFrame) -> StreamlitChart:
    """Krippendorff's alpha per week (nominal and ordinal lines), a confidence band, and the 0.667 / 0.8 marks.

    DF: week (date, or any sortable label), alpha_nominal, alpha_ordinal; optional low, high (the interval of
    the ordinal alpha, drawn as a band) and n (items that week).
    """
    title = "Inter-AoD agreement per week (Krippendorff's alpha)"
    if is_empty(df):
        return no_data_chart(title)
    require(df, ("week", "alpha_nominal", "alpha_ordinal"), "alpha_trend_chart")
    d = clean(df)
    weeks = as_times(d["week"])
    if weeks is not None:
        d["week"] = weeks
        x = alt.X("week:T", title="Week (UTC)", scale=alt.Scale(type="utc"), axis=alt.Axis(format="%Y-%m-%d"))
        week_tip = alt.Tooltip("week:T", title="Week of", format="%Y-%m-%d", formatType="utc")
    else:
        # Week numbers or labels such as "2024-W10" sort as text.
        d["week"] = d["week"].astype(str)
        x = alt.X("week:O", title="Week", sort=sorted(d["week"].unique()))
        week_tip = alt.Tooltip("week:O", title="Week")
    # Weeks more than 8 days apart are not joined: a lone week is a point, not a long line across a gap.
    d = d.sort_values("week", kind="stable")
    if weeks is not None:
        gaps = d["week"].diff() > pd.Timedelta(days=8)
        d["segment"] = gaps.cumsum().astype(int)
    else:
        d["segment"] = 0
    long = d.melt(
        id_vars=[c for c in ("week", "n", "segment") if c in d],
        value_vars=["alpha_nominal", "alpha_ordinal"],
        var_name="kind",
        value_name="alpha",
    )
    long["kind"] = long["kind"].map({"alpha_nominal": "nominal", "alpha_ordinal": "ordinal"})
    low_cols = [c for c in ("alpha_nominal", "alpha_ordinal", "low") if c in d]
    lowest = float(np.nanmin(d[low_cols].to_numpy(dtype=float), initial=0.0))
    y_scale = alt.Scale(domain=[min(0.0, lowest), 1.0])
    y = alt.Y("alpha:Q", title="Krippendorff's alpha", scale=y_scale)
    tips = [week_tip, alt.Tooltip("kind:N", title="Metric"), alt.Tooltip("alpha:Q", title="alpha", format=".3f")]
    if "n" in long:
        tips.append(alt.Tooltip("n:Q", title="EBs", format=",d"))
    color = alt.Color(
        "kind:N", title="alpha", scale=alt.Scale(domain=["nominal", "ordinal"], range=["#9467bd", "#1f77b4"])
    )
    layers: list[alt.Chart] = []
    if {"low", "high"} <= set(d.columns) and d[["low", "high"]].notna().any().all():
        layers.append(
            alt.Chart(d.dropna(subset=["low", "high"]))
            .mark_area(opacity=0.18, color="#1f77b4")
            .encode(
                x=x,
                detail="segment:N",
                y=alt.Y("low:Q", title="Krippendorff's alpha", scale=y_scale),
                y2="high:Q",
                tooltip=[
                    week_tip,
                    alt.Tooltip("low:Q", title="Interval low", format=".3f"),
                    alt.Tooltip("high:Q", title="Interval high", format=".3f"),
                ],
            )
        )
    refs = pd.DataFrame(
        {"alpha": [KRIPPENDORFF_TENTATIVE, KRIPPENDORFF_RELIABLE], "text": ["tentative 0.667", "reliable 0.8"]}
    )
    ref_base = alt.Chart(refs)
    layers += [
        ref_base.mark_rule(strokeDash=[4, 4], color="#777777").encode(y="alpha:Q"),
        ref_base.mark_text(align="left", dx=4, dy=-6, color="#777777", fontSize=10).encode(
            y="alpha:Q", text="text:N", x=alt.value(0)
        ),
    ]
    base = alt.Chart(long.dropna(subset=["alpha"]))
    layers += [
        base.mark_line().encode(x=x, y=y, color=color, detail="segment:N"),
        base.mark_point(filled=True, size=45).encode(x=x, y=y, color=color, tooltip=tips),
    ]
    return alt.layer(*layers).properties(title=title, height=260)


_SHARE_COLUMNS = {"share_pass": "Pass", "share_semipass": "SemiPass", "share_fail": "Fail"}


def per_labeler_chart(df: pd.DataFrame) -> StreamlitChart:
    """Each AoD's share of Pass / SemiPass / Fail as a 100 % stacked bar, so a lenient or strict AoD shows.

    DF: labeler, share_pass, share_semipass, share_fail (fractions); any other columns (n_labels, kappa vs
    consensus, seconds per EB, ...) are added to the tooltip.
    """
    title = "Label mix per AoD"
    if is_empty(df):
        return no_data_chart(title)
    require(df, ("labeler", *_SHARE_COLUMNS), "per_labeler_chart")
    d = clean(df)
    d["labeler"] = d["labeler"].astype(str)
    extras = [c for c in d.columns if c not in ("labeler", *_SHARE_COLUMNS)]
    long = d.melt(id_vars=["labeler", *extras], value_vars=list(_SHARE_COLUMNS), var_name="col", value_name="share")
    long["value"] = long["col"].map(_SHARE_COLUMNS)
    long["order"] = long["value"].map({v: i for i, v in enumerate(LABEL_VALUES)})
    names = sorted(d["labeler"].unique())
    tips: list[alt.Tooltip] = [
        alt.Tooltip("labeler:N", title="AoD"),
        alt.Tooltip("value:N", title="QA0"),
        alt.Tooltip("share:Q", title="Share", format=".1%"),
    ]
    for col in extras:
        kind = "Q" if pd.api.types.is_numeric_dtype(long[col]) else "N"
        fmt = ".3g" if kind == "Q" else alt.Undefined
        tips.append(
            alt.Tooltip(
                field=vl_field(col),
                type="quantitative" if kind == "Q" else "nominal",
                title=str(col).replace("_", " "),
                format=fmt,
            )
        )
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("labeler:N", title="AoD", sort=names, axis=alt.Axis(labelOverlap=False, labelLimit=0)),
            x=alt.X("share:Q", title="Share of the AoD's labels", stack="normalize", axis=alt.Axis(format=".0%")),
            color=alt.Color("value:N", title="QA0", scale=qa0_scale()),
            order=alt.Order("order:Q"),
            tooltip=tips,
        )
        .properties(title=title, height=max(120, 24 * len(names)))
    )


_PAIR_LONG_NAMES: tuple[tuple[str, str], ...] = (
    ("a_value", "b_value"),
    ("value_a", "value_b"),
    ("a", "b"),
    ("actual", "predicted"),
    ("true", "predicted"),
    ("row", "col"),
)


def pair_confusion_chart(df: pd.DataFrame, *, a_title: str = "AoD A", b_title: str = "AoD B") -> StreamlitChart:
    """How two AoDs' labels cross on the EBs both labelled, as a QA0 x QA0 matrix.

    DF is either a square frame (index = A's values, columns = B's values, cells = counts, e.g. from
    pd.crosstab) or long with a count column (count or n) and two value columns named a_value/b_value,
    value_a/value_b or a/b. A_TITLE and B_TITLE name the axes (plain text; Vega renders it as text).
    """
    title = "Agreement between two AoDs"
    if is_empty(df):
        return no_data_chart(title)
    count_col = "count" if "count" in df.columns else ("n" if "n" in df.columns else None)
    pair = next(((r, c) for r, c in _PAIR_LONG_NAMES if r in df.columns and c in df.columns), None)
    if count_col is not None and pair is not None:
        long = df[[pair[0], pair[1], count_col]].rename(
            columns={pair[0]: "a_value", pair[1]: "b_value", count_col: "count"}
        )
    else:
        if not set(map(str, df.columns)) <= set(LABEL_VALUES):
            raise ValueError(
                "pair_confusion_chart: missing column(s) a_value, b_value, count; a square frame must have QA0 "
                f"values as columns, got {', '.join(map(str, df.columns))}"
            )
        wide = df.copy()
        wide.index = wide.index.astype(str)
        wide.columns = wide.columns.astype(str)
        long = wide.stack().rename("count").rename_axis(["a_value", "b_value"]).reset_index()
    return matrix_chart(long, "a_value", "b_value", title=title, row_title=str(a_title), col_title=str(b_title))
