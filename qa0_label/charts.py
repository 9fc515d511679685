"""Altair chart builders: DataFrame in, Altair chart out (pure; unit-tested through chart.to_dict()).

Conventions every builder follows:
- an empty (or None) DataFrame gives a small chart with a "No data" text mark, never an exception; a
  non-empty one that lacks a required column raises ValueError naming it (a programming error);
- user text (uids, labeler, source and feature names) travels only as data values, shown by tooltips and
  axis labels, which Vega escapes; it is never put into expressions or format strings (an axis title a
  caller passes is drawn by Vega as plain text, never as HTML);
- QA0 values are always coloured from QA0_COLORS (Pass green, SemiPass amber, Fail red);
- axis titles carry units and tooltips format their numbers.
Return types are Altair top-level charts (Chart, LayerChart, VConcatChart or FacetChart); pass them to
st.altair_chart as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from qa0_label.models import LABEL_VALUES
from qa0_label.review import SpectrumData

QA0_COLORS: dict[str, str] = {"Pass": "#2e9e44", "SemiPass": "#f0a202", "Fail": "#d7301f"}
"""The one colour per QA0 value used by every chart."""

OTHER_COLORS: dict[str, str] = {"unlabelled": "#9e9e9e", "this EB": "#1f4e9c"}
"""Colours for the non-QA0 categories that appear next to labels."""

MODEL_COLORS: dict[str, str] = {"measured": "#222222", "fit": "#1f77b4", "expected": "#8c8c8c"}

NO_DATA_TEXT = "No data"

METRIC_INFO: dict[str, tuple[str, str, str]] = {
    # name -> (title, unit, d3 number format)
    "tsys_k": ("Tsys", "K", ".0f"),
    "amplitude": ("Amplitude", "Jy", ".3f"),
    "phase_deg": ("Phase", "deg", ".1f"),
    "bp_ripple_db": ("Bandpass ripple", "dB", ".1f"),
    "pwv_mm": ("PWV", "mm", ".2f"),
    "pwv_over_limit": ("PWV / band limit", "", ".2f"),
    "elevation_deg": ("Elevation", "deg", ".1f"),
    "n_antennas": ("Antennas", "", ".0f"),
    "exec_fraction": ("Execution fraction", "", ".2f"),
    "tsys_median_k": ("Median Tsys", "K", ".0f"),
    "phase_rms_deg": ("Phase RMS", "deg", ".1f"),
    "flagged_fraction": ("Flagged fraction", "", ".1%"),
    "spectral_index": ("Spectral index", "", "+.2f"),
    "duration_s": ("Duration", "s", ".0f"),
    "flux_deviation_sigma": ("Flux - expected", "sigma", "+.1f"),
    "flux_ratio": ("Flux / expected", "", ".3f"),
}
"""Display title, unit and number format of the metrics the review charts show."""

HEATMAP_SCHEMES: dict[str, str] = {"tsys_k": "inferno", "amplitude": "viridis", "phase_deg": "redblue", "bp_ripple_db": "orangered"}

SCORE_NAMES: dict[str, str] = {
    "macro_f1": "macro F1",
    "fail_recall": "Fail recall",
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
}

SCORE_COLORS: dict[str, str] = {
    "macro F1": "#1f77b4", "Fail recall": "#9467bd", "balanced accuracy": "#17becf", "accuracy": "#8c564b",
}

KRIPPENDORFF_TENTATIVE = 0.667
KRIPPENDORFF_RELIABLE = 0.8


# --- shared helpers ----------------------------------------------------------------------------------


def qa0_scale(extra: Iterable[str] = ()) -> alt.Scale:
    """Colour scale with the QA0 values first (fixed colours), then any of OTHER_COLORS asked for."""
    domain = [*LABEL_VALUES, *extra]
    colors = {**QA0_COLORS, **OTHER_COLORS}
    return alt.Scale(domain=domain, range=[colors.get(v, "#555555") for v in domain])


def no_data_chart(title: str = "", *, height: int = 120) -> alt.Chart:
    """A placeholder chart with a single "No data" text mark."""
    chart = (
        alt.Chart(pd.DataFrame({"message": [NO_DATA_TEXT]}))
        .mark_text(fontSize=14, color="#888888")
        .encode(text=alt.Text("message:N"))
        .properties(height=height)
    )
    return chart.properties(title=title) if title else chart


def _is_empty(df: pd.DataFrame | None) -> bool:
    return df is None or len(df) == 0


def _require(df: pd.DataFrame, columns: Iterable[str], who: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{who}: missing column(s) {', '.join(missing)}; got {', '.join(map(str, df.columns))}")


def _axis_title(name: str) -> str:
    title, unit, _ = METRIC_INFO.get(name, (name.replace("_", " "), "", ".3g"))
    return f"{title} ({unit})" if unit else title


def _fmt(name: str) -> str:
    return METRIC_INFO.get(name, ("", "", ".3g"))[2]


def _field(name: str) -> str:
    # Vega-Lite reads dots and brackets in field names as nested access; column names are plain.
    return str(name).replace("\\", "\\\\").replace(".", "\\.").replace("[", "\\[").replace("]", "\\]")


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    num = out.select_dtypes(include="number").columns
    out[num] = out[num].replace([np.inf, -np.inf], np.nan)
    return out


def _flux_y(field: str) -> alt.Y:
    # Every flux layer shares one y scale; zero=False keeps a 13 Jy source from sitting on a flat line.
    return alt.Y(field, title="Flux density (Jy)", scale=alt.Scale(zero=False))


def _utc_text(series: pd.Series) -> pd.Series:
    times = pd.to_datetime(series, utc=True)
    return times.dt.strftime("%Y-%m-%d %H:%M UTC")


def _pm(value: pd.Series, err: pd.Series, fmt: str = "{:.3f}") -> list[str]:
    out = []
    for v, e in zip(value, err):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append("")
        elif e is None or (isinstance(e, float) and math.isnan(e)):
            out.append(fmt.format(v))
        else:
            out.append(f"{fmt.format(v)} ± {fmt.format(e)}")
    return out


# --- review page -----------------------------------------------------------------------------------


def spectrum_chart(data: SpectrumData) -> alt.TopLevelMixin:
    """Flux density per spw (points with standard-error bars), the fitted power law, and the expected band.

    DATA is review.SpectrumData; its spw, fit and expected frames may each be empty. The legend names the
    three series; the subtitle gives the fitted and the expected spectral index.
    """
    title = "Flux density per spectral window"
    if data is None or (_is_empty(data.spw) and _is_empty(data.expected)):
        return no_data_chart(title)
    series_scale = alt.Scale(domain=list(MODEL_COLORS), range=list(MODEL_COLORS.values()))
    x_domain = list(data.band_edges_ghz) if data.band_edges_ghz else alt.Undefined
    x = alt.X("freq_ghz:Q", title="Frequency (GHz)", scale=alt.Scale(zero=False, domain=x_domain, nice=False))
    layers: list[alt.Chart] = []

    if not _is_empty(data.expected):
        exp = _clean(data.expected)
        exp["series"] = "expected"
        base = alt.Chart(exp)
        layers.append(
            base.mark_area(opacity=0.2, color=MODEL_COLORS["expected"]).encode(
                x=x, y=_flux_y("low:Q"), y2="high:Q",
                tooltip=[alt.Tooltip("freq_ghz:Q", title="Frequency (GHz)", format=".2f"),
                         alt.Tooltip("flux_jy:Q", title="Expected (Jy)", format=".3f"),
                         alt.Tooltip("low:Q", title="Low (Jy)", format=".3f"),
                         alt.Tooltip("high:Q", title="High (Jy)", format=".3f")],
            )
        )
        layers.append(
            base.mark_line(strokeDash=[6, 4]).encode(
                x=x, y=_flux_y("flux_jy:Q"),
                color=alt.Color("series:N", scale=series_scale, title=None),
            )
        )
    if not _is_empty(data.fit):
        fit = _clean(data.fit)
        fit["series"] = "fit"
        layers.append(
            alt.Chart(fit).mark_line(strokeWidth=2).encode(
                x=x, y=_flux_y("flux_jy:Q"),
                color=alt.Color("series:N", scale=series_scale, title=None),
            )
        )
    if not _is_empty(data.spw):
        spw = _clean(data.spw)
        err = spw["flux_err_jy"].fillna(0.0) if "flux_err_jy" in spw else 0.0
        spw["lo"] = spw["flux_jy"] - err
        spw["hi"] = spw["flux_jy"] + err
        spw["series"] = "measured"
        spw["flux_text"] = _pm(spw["flux_jy"], spw.get("flux_err_jy", pd.Series([np.nan] * len(spw))))
        base = alt.Chart(spw)
        layers.append(base.mark_rule(color=MODEL_COLORS["measured"]).encode(x=x, y=_flux_y("lo:Q"), y2="hi:Q"))
        tips = [alt.Tooltip("spw:O", title="spw"), alt.Tooltip("freq_ghz:Q", title="Frequency (GHz)", format=".3f"),
                alt.Tooltip("flux_text:N", title="Flux (Jy)")]
        if "n" in spw:
            tips.append(alt.Tooltip("n:Q", title="Samples", format="d"))
        layers.append(
            base.mark_point(filled=True, size=70).encode(
                x=x, y=_flux_y("flux_jy:Q"),
                color=alt.Color("series:N", scale=series_scale, title=None), tooltip=tips,
            )
        )
    subtitle = []
    if data.alpha is not None:
        err_txt = f" ± {data.alpha_err:.2f}" if data.alpha_err is not None else ""
        subtitle.append(f"fitted alpha = {data.alpha:+.2f}{err_txt}")
    if data.expected_alpha is not None and not _is_empty(data.expected):
        subtitle.append(f"catalogue extrapolation with alpha = {data.expected_alpha:+.2f}")
    return alt.layer(*layers).properties(
        title=alt.TitleParams(title, subtitle="; ".join(subtitle) if subtitle else alt.Undefined), height=280
    )


LIGHT_CURVE_REQUIRED = ("start_time", "flux_jy")


def light_curve_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Flux history of a source in one band: points with error bars coloured by QA0, this EB highlighted.

    DF columns (review.light_curve): start_time, flux_jy; optional flux_err_jy, uid, label, is_current,
    freq_ghz, expected_flux_jy, low, high (the catalogue band, drawn as a grey area when present).
    """
    title = "Flux history (same source and band)"
    if _is_empty(df):
        return no_data_chart(title)
    _require(df, LIGHT_CURVE_REQUIRED, "light_curve_chart")
    d = _clean(df)
    d["start_time"] = pd.to_datetime(d["start_time"], utc=True)
    d["time_text"] = _utc_text(d["start_time"])
    if "label" not in d:
        d["label"] = "unlabelled"
    current_mask = d["is_current"].fillna(False).astype(bool) if "is_current" in d else pd.Series(False, index=d.index)
    d["is_current"] = current_mask
    d["label"] = d["label"].fillna("unlabelled").astype(str)
    d.loc[current_mask, "label"] = "this EB"
    d["marker"] = np.where(current_mask, "this EB", "other")
    err = d["flux_err_jy"] if "flux_err_jy" in d else pd.Series(np.nan, index=d.index)
    d["lo"] = d["flux_jy"] - err.fillna(0.0)
    d["hi"] = d["flux_jy"] + err.fillna(0.0)
    d["flux_text"] = _pm(d["flux_jy"], err)
    if "uid" not in d:
        d["uid"] = ""
    x = alt.X("start_time:T", title="Observation date (UTC)", scale=alt.Scale(type="utc"),
              axis=alt.Axis(format="%Y-%m-%d", labelAngle=-30))
    color = alt.Color("label:N", scale=qa0_scale(["unlabelled", "this EB"]), title="QA0")
    layers: list[alt.Chart] = []
    if {"low", "high"} <= set(d.columns) and d[["low", "high"]].notna().any().all():
        band = d.dropna(subset=["low", "high"])
        layers.append(
            alt.Chart(band).mark_area(opacity=0.2, color=MODEL_COLORS["expected"], interpolate="monotone").encode(
                x=x, y=_flux_y("low:Q"), y2="high:Q"
            )
        )
        if "expected_flux_jy" in band:
            layers.append(
                alt.Chart(band).mark_line(color=MODEL_COLORS["expected"], strokeDash=[6, 4], interpolate="monotone")
                .encode(x=x, y=_flux_y("expected_flux_jy:Q"))
            )
    base = alt.Chart(d)
    tips = [alt.Tooltip("uid:N", title="EB"), alt.Tooltip("time_text:N", title="Start"),
            alt.Tooltip("flux_text:N", title="Flux (Jy)"), alt.Tooltip("label:N", title="QA0")]
    if "freq_ghz" in d:
        tips.insert(2, alt.Tooltip("freq_ghz:Q", title="Frequency (GHz)", format=".2f"))
    if "expected_flux_jy" in d:
        tips.append(alt.Tooltip("expected_flux_jy:Q", title="Expected (Jy)", format=".3f"))
    layers.append(base.mark_rule(opacity=0.7).encode(x=x, y=_flux_y("lo:Q"), y2="hi:Q", color=color))
    layers.append(
        base.mark_point(filled=True, opacity=0.9).encode(
            x=x, y=_flux_y("flux_jy:Q"), color=color,
            shape=alt.Shape("marker:N", scale=alt.Scale(domain=["other", "this EB"], range=["circle", "diamond"]), legend=None),
            size=alt.Size("marker:N", scale=alt.Scale(domain=["other", "this EB"], range=[45, 220]), legend=None),
            tooltip=tips,
        )
    )
    current = d[current_mask]
    if not current.empty:
        # A ring around this EB so it stands out whatever the colour of its neighbours.
        layers.append(
            alt.Chart(current).mark_point(size=480, strokeWidth=2, color=OTHER_COLORS["this EB"]).encode(
                x=x, y=_flux_y("flux_jy:Q"), tooltip=tips
            )
        )
    return alt.layer(*layers).properties(title=title, height=280)


def heatmap_chart(df: pd.DataFrame, metric: str) -> alt.TopLevelMixin:
    """Antenna x scan grid of one metric (review.heatmap output) so a bad antenna or scan stands out.

    DF columns: antenna, scan, value; optional vs_array, n, flagged_fraction (cells more than half flagged
    get a cross), spw (then one panel per spw). METRIC picks the title, unit and colour scheme.
    """
    label = METRIC_INFO.get(metric, (metric, "", ".3g"))[0]
    title = f"{label} per antenna and scan"
    if _is_empty(df):
        return no_data_chart(title)
    _require(df, ("antenna", "scan", "value"), "heatmap_chart")
    d = _clean(df)
    d["antenna"] = d["antenna"].astype(str)
    antennas = sorted(d["antenna"].unique())
    fmt = _fmt(metric)
    scheme = HEATMAP_SCHEMES.get(metric, "viridis")
    if metric == "phase_deg":
        # Symmetric about 0 and at least +-30 deg, so noise stays pale and a jump stands out in colour.
        reach = float(np.nanmax(np.abs(d["value"].to_numpy(dtype=float)), initial=0.0))
        reach = min(180.0, max(30.0, math.ceil(reach / 10.0) * 10.0))
        scale = alt.Scale(scheme=scheme, domain=[-reach, reach], domainMid=0, clamp=True)
    else:
        scale = alt.Scale(scheme=scheme)
    tips = [alt.Tooltip("antenna:N", title="Antenna"), alt.Tooltip("scan:O", title="Scan")]
    if "spw" in d:
        tips.append(alt.Tooltip("spw:O", title="spw"))
    tips.append(alt.Tooltip("value:Q", title=_axis_title(metric), format=fmt))
    if "vs_array" in d:
        tips.append(
            alt.Tooltip("vs_array:Q", title="vs array median (deg)" if metric == "phase_deg" else "x array median",
                        format="+.1f" if metric == "phase_deg" else ".2f")
        )
    if "flagged_fraction" in d:
        tips.append(alt.Tooltip("flagged_fraction:Q", title="Flagged", format=".0%"))
    if "n" in d:
        tips.append(alt.Tooltip("n:Q", title="Samples", format="d"))
    x = alt.X("scan:O", title="Scan", axis=alt.Axis(labelAngle=0))
    y = alt.Y("antenna:N", title="Antenna", sort=antennas)
    # Layers carry no data of their own: the frame sits on the layer (or the facet) once.
    base = alt.Chart()
    layers: list[alt.Chart] = [
        base.mark_rect().encode(
            x=x, y=y, tooltip=tips,
            color=alt.Color("value:Q", title=_axis_title(metric), scale=scale, legend=alt.Legend(format=fmt)),
        )
    ]
    if "flagged_fraction" in d:
        layers.append(
            base.transform_filter(alt.datum.flagged_fraction > 0.5)
            .mark_text(text="✕", fontSize=11, color="#111111" if metric == "phase_deg" else "#ffffff")
            .encode(x=x, y=y, tooltip=tips)
        )
    height = max(120, 13 * len(antennas))
    if "spw" in d:
        return (
            alt.layer(*layers, data=d)
            .properties(height=height, width=140)
            .facet(column=alt.Column("spw:O", title="spw"))
            .properties(title=title)
        )
    return alt.layer(*layers, data=d).properties(title=title, height=height)


def _as_times(series: pd.Series) -> pd.Series | None:
    """SERIES as UTC times when it holds dates or date strings; None for numbers or other labels."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.to_datetime(series, utc=True)
    if pd.api.types.is_numeric_dtype(series):
        return None
    try:
        return pd.to_datetime(series.astype(str), utc=True, format="mixed")
    except (ValueError, TypeError):
        return None


def _percentile_text(value: float, groups: dict[str, np.ndarray]) -> str:
    parts = []
    for name in LABEL_VALUES:
        vals = groups.get(name)
        if vals is not None and vals.size:
            parts.append(f"above {100.0 * float((vals < value).mean()):.0f}% of {name}")
    return "; ".join(parts)


def _context_summary(df: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    part = df[df["metric"] == metric]
    stats = []
    groups: dict[str, np.ndarray] = {}
    for name in LABEL_VALUES:
        vals = part.loc[part["group"] == name, "value"].dropna().to_numpy(dtype=float)
        groups[name] = vals
        if vals.size:
            q05, q25, q50, q75, q95 = np.quantile(vals, [0.05, 0.25, 0.5, 0.75, 0.95])
            stats.append({"group": name, "q05": q05, "q25": q25, "median": q50, "q75": q75, "q95": q95, "n": int(vals.size)})
    this = part.loc[part["group"] == "this EB", "value"].dropna()
    marks = pd.DataFrame(
        [{"value": float(v), "where": _percentile_text(float(v), groups)} for v in this.head(1)],
        columns=["value", "where"],
    )
    return pd.DataFrame(stats, columns=["group", "q05", "q25", "median", "q75", "q95", "n"]), marks


def context_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Per metric, the 5-25-50-75-95 % spread of labelled Pass / SemiPass / Fail EBs with this EB as a line.

    DF is review.context output (metric, value, group with "this EB" and QA0 values). Quantiles are computed
    here, so the spec carries a few numbers per metric instead of thousands of points. One row per metric,
    each with its own x axis and unit.
    """
    title = "This EB among labelled EBs"
    if _is_empty(df):
        return no_data_chart(title)
    _require(df, ("metric", "value", "group"), "context_chart")
    d = _clean(df).dropna(subset=["value"])
    metrics = list(dict.fromkeys(d["metric"].astype(str)))
    rows = []
    for metric in metrics:
        stats, marks = _context_summary(d, metric)
        if stats.empty and marks.empty:
            continue
        fmt = _fmt(metric)
        x_title = _axis_title(metric)
        axis = alt.Axis(format=fmt) if fmt.endswith("%") else alt.Axis()
        y = alt.Y("group:N", title=None, sort=list(LABEL_VALUES), scale=alt.Scale(domain=list(LABEL_VALUES)))
        color = alt.Color("group:N", scale=qa0_scale(), legend=None)
        layers: list[alt.Chart] = []
        if not stats.empty:
            tips = [alt.Tooltip("group:N", title="Labelled"), alt.Tooltip("n:Q", title="EBs", format="d"),
                    alt.Tooltip("median:Q", title="Median", format=fmt), alt.Tooltip("q25:Q", title="25%", format=fmt),
                    alt.Tooltip("q75:Q", title="75%", format=fmt), alt.Tooltip("q05:Q", title="5%", format=fmt),
                    alt.Tooltip("q95:Q", title="95%", format=fmt)]
            base = alt.Chart(stats)
            layers += [
                base.mark_rule().encode(x=alt.X("q05:Q", title=x_title, scale=alt.Scale(zero=False), axis=axis), x2="q95:Q",
                                        y=y, color=color, tooltip=tips),
                base.mark_bar(size=14, opacity=0.55).encode(x="q25:Q", x2="q75:Q", y=y, color=color, tooltip=tips),
                base.mark_tick(color="#111111", thickness=2, size=16).encode(x="median:Q", y=y, tooltip=tips),
            ]
        if not marks.empty:
            mtips = [alt.Tooltip("value:Q", title=f"This EB: {x_title}", format=fmt), alt.Tooltip("where:N", title="Position")]
            layers.append(
                alt.Chart(marks).mark_rule(color=OTHER_COLORS["this EB"], strokeWidth=3).encode(
                    x=alt.X("value:Q", title=x_title, axis=axis), tooltip=mtips
                )
            )
        rows.append(alt.layer(*layers).properties(height=70, title=alt.TitleParams(x_title, fontSize=12, anchor="start")))
    if not rows:
        return no_data_chart(title)
    return alt.vconcat(*rows, spacing=8).properties(title=title).resolve_scale(x="independent")


# --- model page --------------------------------------------------------------------------------------


def metrics_history_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Model scores against the number of consensus labels, one line per metric.

    DF is wide (version, n_labels, macro_f1, fail_recall, ... any of SCORE_NAMES) or long (version, n_labels,
    metric, value) as model_report.metric_history_long returns.
    """
    title = "Model quality as labels accumulate"
    if _is_empty(df):
        return no_data_chart(title)
    _require(df, ("version", "n_labels"), "metrics_history_chart")
    if {"metric", "value"} <= set(df.columns):
        long = df[["version", "n_labels", "metric", "value"]].copy()
    else:
        cols = [c for c in df.columns if c in SCORE_NAMES]
        if not cols:
            raise ValueError(f"metrics_history_chart: none of {', '.join(SCORE_NAMES)} in the columns")
        long = df.melt(id_vars=["version", "n_labels"], value_vars=cols, var_name="metric", value_name="value")
    long = _clean(long).dropna(subset=["value"])
    if long.empty:
        return no_data_chart(title)
    long["metric"] = long["metric"].map(lambda m: SCORE_NAMES.get(str(m), str(m)))
    x = alt.X("n_labels:Q", title="Consensus labels used for training")
    y = alt.Y("value:Q", title="Score (cross-validated)", scale=alt.Scale(domain=[0, 1]))
    # Not red or green: those colours mean Fail and Pass everywhere else.
    names = list(dict.fromkeys([*SCORE_COLORS, *long["metric"]]))
    color = alt.Color(
        "metric:N", title="Metric",
        scale=alt.Scale(domain=names, range=[SCORE_COLORS.get(n, "#7f7f7f") for n in names]),
    )
    tips = [alt.Tooltip("version:O", title="Model version"), alt.Tooltip("n_labels:Q", title="Labels", format="d"),
            alt.Tooltip("metric:N", title="Metric"), alt.Tooltip("value:Q", title="Score", format=".3f")]
    base = alt.Chart(long)
    return alt.layer(
        base.mark_line().encode(x=x, y=y, color=color),
        base.mark_point(filled=True, size=50).encode(x=x, y=y, color=color, tooltip=tips),
    ).properties(title=title, height=260)


def _matrix_chart(d: pd.DataFrame, row: str, col: str, *, title: str, row_title: str, col_title: str) -> alt.LayerChart:
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
    tips = [alt.Tooltip("r:N", title=row_title), alt.Tooltip("c:N", title=col_title),
            alt.Tooltip("count:Q", title="Count", format=",.0f"), alt.Tooltip("row_share:Q", title="Share of row", format=".0%")]
    base = alt.Chart(d)
    return alt.layer(
        base.mark_rect(stroke="#ffffff").encode(
            x=x, y=y, color=alt.Color("count:Q", title="Count", scale=alt.Scale(scheme="blues")), tooltip=tips
        ),
        base.mark_text(fontSize=13).encode(
            x=x, y=y, text=alt.Text("count:Q", format=",.0f"),
            color=alt.condition(alt.datum.dark, alt.value("#ffffff"), alt.value("#111111")), tooltip=tips,
        ),
    ).properties(title=title, height=220, width=260)


def confusion_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Confusion matrix of consensus label (rows) against model prediction (columns), Pass/SemiPass/Fail order.

    DF is long: (true or actual, predicted, count).
    """
    title = "Confusion matrix"
    if _is_empty(df):
        return no_data_chart(title)
    true_col = "true" if "true" in df.columns else "actual"
    _require(df, (true_col, "predicted", "count"), "confusion_chart")
    return _matrix_chart(df, true_col, "predicted", title=title, row_title="AoD consensus", col_title="Model prediction")


def class_balance_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Number of consensus labels per QA0 value (bars in QA0 colours). DF: value, count (share optional)."""
    title = "Training labels per class"
    if _is_empty(df):
        return no_data_chart(title)
    _require(df, ("value", "count"), "class_balance_chart")
    d = _clean(df)
    d["value"] = d["value"].astype(str)
    total = float(d["count"].sum())
    d["share"] = d["count"] / total if total else 0.0
    order = [v for v in LABEL_VALUES if v in set(d["value"])] + sorted(set(d["value"]) - set(LABEL_VALUES))
    x = alt.X("value:N", title="QA0", sort=order, axis=alt.Axis(labelAngle=0))
    y = alt.Y("count:Q", title="Labelled EBs")
    tips = [alt.Tooltip("value:N", title="QA0"), alt.Tooltip("count:Q", title="EBs", format=",d"),
            alt.Tooltip("share:Q", title="Share", format=".0%")]
    base = alt.Chart(d)
    return alt.layer(
        base.mark_bar().encode(x=x, y=y, color=alt.Color("value:N", scale=qa0_scale(), legend=None), tooltip=tips),
        base.mark_text(dy=-7).encode(x=x, y=y, text=alt.Text("count:Q", format=",d")),
    ).properties(title=title, height=220)


def feature_importance_chart(df: pd.DataFrame, *, top: int = 20) -> alt.TopLevelMixin:
    """Horizontal bars of the TOP most important features, largest first. DF: feature, importance."""
    title = "Feature importance"
    if _is_empty(df):
        return no_data_chart(title)
    _require(df, ("feature", "importance"), "feature_importance_chart")
    d = _clean(df).dropna(subset=["importance"])
    d["feature"] = d["feature"].astype(str)
    d = d.sort_values("importance", ascending=False).head(int(top))
    if d.empty:
        return no_data_chart(title)
    order = d["feature"].tolist()
    tips = [alt.Tooltip("feature:N", title="Feature"), alt.Tooltip("importance:Q", title="Importance", format=".4f")]
    return (
        alt.Chart(d)
        .mark_bar(color="#4c78a8")
        .encode(x=alt.X("importance:Q", title="Importance"), y=alt.Y("feature:N", title=None, sort=order), tooltip=tips)
        .properties(title=title, height=max(120, 18 * len(d)))
    )


def uncertainty_histogram(df: pd.DataFrame, *, bins: int = 25) -> alt.TopLevelMixin:
    """Histogram of the model's uncertainty over the unlabelled pool, stacked by predicted class when known.

    DF is raw (uncertainty[, predicted]) and binned here into BINS bins, or already binned (bin_start,
    bin_end, count[, predicted]) as model_report.uncertainty_histogram returns.
    """
    title = "Uncertainty of the unlabelled pool"
    if _is_empty(df):
        return no_data_chart(title)
    if {"bin_start", "bin_end", "count"} <= set(df.columns):
        h = _clean(df)
    else:
        _require(df, ("uncertainty",), "uncertainty_histogram")
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
            parts.append(pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "count": counts, "predicted": cls}))
        h = pd.concat(parts, ignore_index=True)
        if "predicted" not in df:
            h = h.drop(columns="predicted")
    tips = [alt.Tooltip("bin_start:Q", title="From", format=".3f"), alt.Tooltip("bin_end:Q", title="To", format=".3f"),
            alt.Tooltip("count:Q", title="EBs", format=",d")]
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
            x=alt.X("bin_start:Q", title="Model uncertainty", bin="binned"), x2="bin_end:Q",
            y=alt.Y("count:Q", title="EBs", stack=True), tooltip=tips, **enc,
        )
        .properties(title=title, height=220)
    )


# --- agreement page ----------------------------------------------------------------------------------


def kappa_heatmap(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Cohen's kappa for every pair of labelers (both halves of the matrix), with the pair's item count.

    DF: a, b (labeler names), kappa, n (EBs both labelled).
    """
    title = "Cohen's kappa between AoDs"
    if _is_empty(df):
        return no_data_chart(title)
    _require(df, ("a", "b", "kappa", "n"), "kappa_heatmap")
    d = _clean(df[["a", "b", "kappa", "n"]])
    d["a"], d["b"] = d["a"].astype(str), d["b"].astype(str)
    both = pd.concat([d, d.rename(columns={"a": "b", "b": "a"})], ignore_index=True).drop_duplicates(["a", "b"])
    both = both[both["a"] != both["b"]]
    names = sorted(set(both["a"]) | set(both["b"]))
    both["dark"] = both["kappa"].abs() > 0.75
    x = alt.X("a:N", title="AoD", sort=names, axis=alt.Axis(labelAngle=-40))
    y = alt.Y("b:N", title="AoD", sort=names)
    tips = [alt.Tooltip("a:N", title="AoD"), alt.Tooltip("b:N", title="and"),
            alt.Tooltip("kappa:Q", title="kappa", format=".3f"), alt.Tooltip("n:Q", title="Shared EBs", format=",d")]
    base = alt.Chart(both)
    return alt.layer(
        base.mark_rect().encode(
            x=x, y=y, tooltip=tips,
            color=alt.Color("kappa:Q", title="kappa", scale=alt.Scale(scheme="redyellowgreen", domain=[0, 1], clamp=True)),
        ),
        base.mark_text(fontSize=11).encode(x=x, y=y, text=alt.Text("kappa:Q", format=".2f"), tooltip=tips),
    ).properties(title=title, height=max(160, 28 * len(names)), width=max(160, 28 * len(names)))


def alpha_trend_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Krippendorff's alpha per week (nominal and ordinal lines), a confidence band, and the 0.667 / 0.8 marks.

    DF: week (date, or any sortable label), alpha_nominal, alpha_ordinal; optional low, high (the interval of
    the ordinal alpha, drawn as a band) and n (items that week).
    """
    title = "Inter-AoD agreement per week (Krippendorff's alpha)"
    if _is_empty(df):
        return no_data_chart(title)
    _require(df, ("week", "alpha_nominal", "alpha_ordinal"), "alpha_trend_chart")
    d = _clean(df)
    weeks = _as_times(d["week"])
    if weeks is not None:
        d["week"] = weeks
        x = alt.X("week:T", title="Week (UTC)", scale=alt.Scale(type="utc"), axis=alt.Axis(format="%Y-%m-%d"))
        week_tip = alt.Tooltip("week:T", title="Week of", format="%Y-%m-%d", formatType="utc")
    else:
        # Week numbers or labels such as "2024-W10" sort as text.
        d["week"] = d["week"].astype(str)
        x = alt.X("week:O", title="Week", sort=sorted(d["week"].unique()))
        week_tip = alt.Tooltip("week:O", title="Week")
    long = d.melt(id_vars=[c for c in ("week", "n") if c in d], value_vars=["alpha_nominal", "alpha_ordinal"],
                  var_name="kind", value_name="alpha")
    long["kind"] = long["kind"].map({"alpha_nominal": "nominal", "alpha_ordinal": "ordinal"})
    low_cols = [c for c in ("alpha_nominal", "alpha_ordinal", "low") if c in d]
    lowest = float(np.nanmin(d[low_cols].to_numpy(dtype=float), initial=0.0))
    y_scale = alt.Scale(domain=[min(0.0, lowest), 1.0])
    y = alt.Y("alpha:Q", title="Krippendorff's alpha", scale=y_scale)
    tips = [week_tip, alt.Tooltip("kind:N", title="Metric"), alt.Tooltip("alpha:Q", title="alpha", format=".3f")]
    if "n" in long:
        tips.append(alt.Tooltip("n:Q", title="EBs", format=",d"))
    color = alt.Color("kind:N", title="alpha", scale=alt.Scale(domain=["nominal", "ordinal"], range=["#9467bd", "#1f77b4"]))
    layers: list[alt.Chart] = []
    if {"low", "high"} <= set(d.columns) and d[["low", "high"]].notna().any().all():
        layers.append(
            alt.Chart(d.dropna(subset=["low", "high"])).mark_area(opacity=0.18, color="#1f77b4").encode(
                x=x, y=alt.Y("low:Q", title="Krippendorff's alpha", scale=y_scale), y2="high:Q",
                tooltip=[week_tip, alt.Tooltip("low:Q", title="Interval low", format=".3f"),
                         alt.Tooltip("high:Q", title="Interval high", format=".3f")],
            )
        )
    refs = pd.DataFrame({"alpha": [KRIPPENDORFF_TENTATIVE, KRIPPENDORFF_RELIABLE], "text": ["tentative 0.667", "reliable 0.8"]})
    ref_base = alt.Chart(refs)
    layers += [
        ref_base.mark_rule(strokeDash=[4, 4], color="#777777").encode(y="alpha:Q"),
        ref_base.mark_text(align="left", dx=4, dy=-6, color="#777777", fontSize=10).encode(
            y="alpha:Q", text="text:N", x=alt.value(0)
        ),
    ]
    base = alt.Chart(long.dropna(subset=["alpha"]))
    layers += [
        base.mark_line().encode(x=x, y=y, color=color),
        base.mark_point(filled=True, size=45).encode(x=x, y=y, color=color, tooltip=tips),
    ]
    return alt.layer(*layers).properties(title=title, height=260)


_SHARE_COLUMNS = {"share_pass": "Pass", "share_semipass": "SemiPass", "share_fail": "Fail"}


def per_labeler_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Each AoD's share of Pass / SemiPass / Fail as a 100 % stacked bar, so a lenient or strict AoD shows.

    DF: labeler, share_pass, share_semipass, share_fail (fractions); any other columns (n_labels, kappa vs
    consensus, seconds per EB, ...) are added to the tooltip.
    """
    title = "Label mix per AoD"
    if _is_empty(df):
        return no_data_chart(title)
    _require(df, ("labeler", *_SHARE_COLUMNS), "per_labeler_chart")
    d = _clean(df)
    d["labeler"] = d["labeler"].astype(str)
    extras = [c for c in d.columns if c not in ("labeler", *_SHARE_COLUMNS)]
    long = d.melt(id_vars=["labeler", *extras], value_vars=list(_SHARE_COLUMNS), var_name="col", value_name="share")
    long["value"] = long["col"].map(_SHARE_COLUMNS)
    long["order"] = long["value"].map({v: i for i, v in enumerate(LABEL_VALUES)})
    names = sorted(d["labeler"].unique())
    tips: list[alt.Tooltip] = [alt.Tooltip("labeler:N", title="AoD"), alt.Tooltip("value:N", title="QA0"),
                               alt.Tooltip("share:Q", title="Share", format=".0%")]
    for col in extras:
        kind = "Q" if pd.api.types.is_numeric_dtype(long[col]) else "N"
        fmt = (".3g" if kind == "Q" else alt.Undefined)
        tips.append(alt.Tooltip(field=_field(col), type="quantitative" if kind == "Q" else "nominal",
                                title=str(col).replace("_", " "), format=fmt))
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("labeler:N", title="AoD", sort=names),
            x=alt.X("share:Q", title="Share of the AoD's labels", stack="normalize", axis=alt.Axis(format=".0%")),
            color=alt.Color("value:N", title="QA0", scale=qa0_scale()),
            order=alt.Order("order:Q"),
            tooltip=tips,
        )
        .properties(title=title, height=max(120, 24 * len(names)))
    )


_PAIR_LONG_NAMES: tuple[tuple[str, str], ...] = (
    ("a_value", "b_value"), ("value_a", "value_b"), ("a", "b"), ("actual", "predicted"), ("true", "predicted"),
    ("row", "col"),
)


def pair_confusion_chart(df: pd.DataFrame, *, a_title: str = "AoD A", b_title: str = "AoD B") -> alt.TopLevelMixin:
    """How two AoDs' labels cross on the EBs both labelled, as a QA0 x QA0 matrix.

    DF is either a square frame (index = A's values, columns = B's values, cells = counts, e.g. from
    pd.crosstab) or long with a count column (count or n) and two value columns named a_value/b_value,
    value_a/value_b or a/b. A_TITLE and B_TITLE name the axes (plain text; Vega renders it as text).
    """
    title = "Agreement between two AoDs"
    if _is_empty(df):
        return no_data_chart(title)
    count_col = "count" if "count" in df.columns else ("n" if "n" in df.columns else None)
    pair = next(((r, c) for r, c in _PAIR_LONG_NAMES if r in df.columns and c in df.columns), None)
    if count_col is not None and pair is not None:
        long = df[[pair[0], pair[1], count_col]].rename(columns={pair[0]: "a_value", pair[1]: "b_value", count_col: "count"})
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
    return _matrix_chart(long, "a_value", "b_value", title=title, row_title=str(a_title), col_title=str(b_title))

