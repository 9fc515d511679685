"""Altair builders for the team-lead page that charts.py does not have (pure; same conventions as charts.py).

An empty DataFrame gives charts.no_data_chart; a non-empty one without the required columns raises
ValueError naming them; user text travels only as data values.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from qa0_label.review.charts import QA0_COLORS, StreamlitChart, no_data_chart

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
        base.mark_line().encode(x=x, y=y, color=color),
        base.mark_point(filled=True, size=50).encode(x=x, y=y, color=color, tooltip=tips),
    ).properties(title=title, height=260)
