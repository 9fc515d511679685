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

import functools
import json
import math
from dataclasses import dataclass
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from qa0_label.review import limits
from qa0_label.review.chart_style import (
    HEATMAP_SCHEMES,
    LEGEND_DASH,
    METRIC_INFO,
    MODEL_COLORS,
    OTHER_COLORS,
    QA0_COLORS,
    axis_title,
    clean,
    flux_y,
    is_empty,
    legend_symbols,
    metric_format,
    no_data_chart,
    plus_minus,
    qa0_scale,
    require,
)
from qa0_label.review.view import HEATMAP_OUTLIER_RULES, SpectrumData
from qa0_label.store.models import LABEL_VALUES

# --- review page -----------------------------------------------------------------------------------
#
# The four review charts are drawn for every EB an AoD looks at, so each is split into a spec template and one
# dataset. The template depends only on a few small keys (metric, which optional columns exist), is built with
# Altair once per key and cached as a Vega-Lite dict; per EB only the DataFrame is prepared. Every layer reads
# the same named dataset (filtered by a "kind" column where layers need different rows), so two EBs' specs are
# identical and the browser swaps the data of a live Vega view instead of compiling a new one.

REVIEW_DATA = "qa0_data"
"""Name of the one dataset every review chart reads."""


@dataclass(frozen=True)
class ChartParts:
    """A review chart as (cached template, per-EB data): .chart() for Altair, .spec() for a fast Vega-Lite dict."""

    kind: str
    key: tuple[Any, ...]
    frame: pd.DataFrame
    title: str
    subtitle: str | None = None

    def chart(self) -> alt.TopLevelMixin:
        """The Altair chart with its data inline (and the subtitle, when there is one)."""
        chart = _TEMPLATES[self.kind](*self.key)
        title: Any = alt.TitleParams(self.title, subtitle=self.subtitle) if self.subtitle else self.title
        return chart.properties(title=title, datasets={REVIEW_DATA: _records(self.frame)})

    def spec(self) -> dict[str, Any]:
        """Vega-Lite dict: the cached template (shared: do not mutate) plus datasets {REVIEW_DATA: the DataFrame}.

        The title is fixed per chart kind; the per-EB subtitle is left out (show it next to the chart) so the
        spec stays the same from EB to EB.
        """
        return {**template_spec(self.kind, self.key), "datasets": {REVIEW_DATA: self.frame}}


@functools.lru_cache(maxsize=128)
def template_spec(kind: str, key: tuple[Any, ...]) -> dict[str, Any]:
    """The Vega-Lite dict of a review chart template (built once per kind and key)."""
    title = _heatmap_title(key[0]) if kind == "heatmap" else _TITLES[kind]
    return _TEMPLATES[kind](*key).properties(title=title).to_dict(validate=False)


PANEL_LAYOUT: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("heatmap",), ("spectrum", "light_curve")),
    (("context",),),
)
"""The review charts in the one panel view: rows of columns, each column a stack of charts. The first row is
what an AoD reads first and fits above the fold at 1600x1000: the antenna x scan heatmap (as tall as the
antenna count needs) beside the spectrum with the flux history under it; the context rows are one scroll away."""
PANEL_CHART_WIDTH = 330
REVIEW_PLOT_HEIGHT = 185
"""Height (px) of the spectrum and of the flux history, stacked beside the heatmap."""
"""Width (px) of each non-faceted chart in the panel; two of them and their legends fill the label page."""
_INDEPENDENT = {
    "scale": {"color": "independent", "shape": "independent", "size": "independent", "stroke": "independent"},
    "legend": {"color": "independent", "shape": "independent", "stroke": "independent"},
}


def _panel_chart(kind: str, spec: dict[str, Any], datasets: dict[str, Any]) -> dict[str, Any]:
    name = f"{REVIEW_DATA}_{kind}"
    sub = {k: v for k, v in spec.items() if k not in ("$schema", "config", "datasets")}
    sub["data"] = {"name": name}
    if "facet" not in sub:
        sub["width"] = PANEL_CHART_WIDTH
    datasets[name] = spec.get("datasets", {}).get(REVIEW_DATA)
    return sub


def review_panel(specs: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
    """The review charts (ChartParts.spec() dicts by kind) as ONE Vega-Lite view laid out as PANEL_LAYOUT; None
    when none has data.

    The browser redraws every element of the label page for each EB, and each Vega view costs it a dataflow
    run, a resize and a canvas of its own: one view of four charts measured ~35 ms faster per key press than
    four views. Each chart keeps its own dataset (renamed to its kind), scales and legend; a kind without
    data is left out (the page says why next to the panel). Pure: the cached templates are not modified.
    """
    rows: list[dict[str, Any]] = []
    datasets: dict[str, Any] = {}
    config: dict[str, Any] | None = None
    for columns in PANEL_LAYOUT:
        cols = []
        for stack in columns:
            charts = []
            for kind in stack:
                spec = specs.get(kind)
                if spec is not None:
                    config = config or spec.get("config")
                    charts.append(_panel_chart(kind, spec, datasets))
            if len(charts) == 1:
                cols.append(charts[0])
            elif charts:
                cols.append({"vconcat": charts, "resolve": _INDEPENDENT, "spacing": 18})
        if cols:
            # resolve on every level: a nested concat would otherwise share one colour scale between charts.
            rows.append({"hconcat": cols, "resolve": _INDEPENDENT, "spacing": 28})
    if not rows:
        return None
    panel: dict[str, Any] = {"vconcat": rows, "resolve": _INDEPENDENT, "spacing": 24, "datasets": datasets}
    if config:
        panel["config"] = config
    return panel


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (NaN -> None) for an inline Altair dataset."""
    out = frame.astype(object).where(frame.notna(), None)
    return out.to_dict(orient="records")


def _named() -> alt.NamedData:
    return alt.NamedData(name=REVIEW_DATA)


def _kind_is(kind: str) -> str:
    return f"datum.kind === '{kind}'"


SPECTRUM_TITLE = "Flux density per spectral window"
LIGHT_CURVE_TITLE = "Flux history (same source and band)"
CONTEXT_TITLE = "This EB among labelled EBs"


def _heatmap_title(metric: str) -> str:
    return f"{METRIC_INFO.get(metric, (metric, '', '.3g'))[0]} per antenna and scan"


def spectrum_parts(data: SpectrumData | None) -> ChartParts | None:
    """The spectrum chart's data (one frame, rows by kind: expected / fit / measured / edge); None without data."""
    if data is None or (is_empty(data.spw) and is_empty(data.expected)):
        return None
    parts = []
    if not is_empty(data.expected):
        exp = clean(data.expected)[["freq_ghz", "flux_jy", "low", "high"]].copy()
        exp["kind"], exp["series"] = "expected", "expected"
        parts.append(exp)
    if not is_empty(data.fit):
        fit = clean(data.fit)[["freq_ghz", "flux_jy"]].copy()
        fit["kind"], fit["series"] = "fit", "fit"
        parts.append(fit)
    if not is_empty(data.spw):
        spw = clean(data.spw)
        err = spw["flux_err_jy"] if "flux_err_jy" in spw else pd.Series(np.nan, index=spw.index)
        measured = pd.DataFrame(
            {
                "freq_ghz": spw["freq_ghz"],
                "flux_jy": spw["flux_jy"],
                "lo": spw["flux_jy"] - err.fillna(0.0),
                "hi": spw["flux_jy"] + err.fillna(0.0),
                "spw": spw["spw"].astype(float),
                "flux_text": plus_minus(spw["flux_jy"], err),
                "n": spw["n"].astype(float) if "n" in spw else np.nan,
            }
        )
        measured["kind"], measured["series"] = "measured", "measured"
        parts.append(measured)
    if data.band_edges_ghz:
        # Invisible points at the band edges: the x scale spans the whole band (a data-driven domain, so the
        # spec does not change with the band).
        parts.append(pd.DataFrame({"freq_ghz": [float(e) for e in data.band_edges_ghz], "kind": "edge"}))
    frame = pd.concat(parts, ignore_index=True)
    for col in ("freq_ghz", "flux_jy", "low", "high", "lo", "hi", "spw", "n"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float) if col in frame else np.nan
    for col in ("flux_text", "series"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), "") if col in frame else ""
    frame = frame[["kind", "series", "freq_ghz", "flux_jy", "low", "high", "lo", "hi", "spw", "flux_text", "n"]]
    subtitle = []
    if data.alpha is not None:
        err_txt = f" ± {data.alpha_err:.2f}" if data.alpha_err is not None else ""
        subtitle.append(f"fitted alpha = {data.alpha:+.2f}{err_txt}")
    if data.expected_alpha is not None and not is_empty(data.expected):
        subtitle.append(f"catalogue extrapolation with alpha = {data.expected_alpha:+.2f}")
    return ChartParts("spectrum", (), frame, SPECTRUM_TITLE, "; ".join(subtitle) or None)


def _spectrum_template() -> alt.TopLevelMixin:
    domain = [*MODEL_COLORS, "expected range"]
    series_scale = alt.Scale(domain=domain, range=[*MODEL_COLORS.values(), MODEL_COLORS["expected"]])
    x = alt.X("freq_ghz:Q", title="Frequency (GHz)", scale=alt.Scale(zero=False, nice=False))
    # The legend draws each series as its mark: a point, a line, a dashed line, the pale band.
    legend = legend_symbols(
        {
            "measured": {"shape": "circle", "color": MODEL_COLORS["measured"]},
            "fit": {"shape": "stroke", "color": MODEL_COLORS["fit"]},
            "expected": {"shape": "stroke", "color": MODEL_COLORS["expected"], "dash": LEGEND_DASH},
            "expected range": {"shape": "square", "color": MODEL_COLORS["expected"], "opacity": 0.35},
        },
        label_expr=(
            "({'measured': 'measured ± error', 'fit': 'power-law fit', 'expected': 'catalogue expectation',"
            " 'expected range': 'catalogue ± error'})[datum.value]"
        ),
    )
    color = alt.Color("series:N", scale=series_scale, title=None, legend=legend)
    base = alt.Chart()
    tips = [
        alt.Tooltip("spw:O", title="spw"),
        alt.Tooltip("freq_ghz:Q", title="Frequency (GHz)", format=".3f"),
        alt.Tooltip("flux_text:N", title="Flux (Jy)"),
        alt.Tooltip("n:Q", title="Samples", format="d"),
    ]
    return alt.layer(
        base.transform_filter(_kind_is("expected"))
        .mark_area(opacity=0.2, color=MODEL_COLORS["expected"])
        .encode(
            x=x,
            y=flux_y("low:Q"),
            y2="high:Q",
            tooltip=[
                alt.Tooltip("freq_ghz:Q", title="Frequency (GHz)", format=".2f"),
                alt.Tooltip("flux_jy:Q", title="Expected (Jy)", format=".3f"),
                alt.Tooltip("low:Q", title="Low (Jy)", format=".3f"),
                alt.Tooltip("high:Q", title="High (Jy)", format=".3f"),
            ],
        ),
        base.transform_filter(_kind_is("expected"))
        .mark_line(strokeDash=[6, 4])
        .encode(x=x, y=flux_y("flux_jy:Q"), color=color),
        base.transform_filter(_kind_is("fit")).mark_line(strokeWidth=2).encode(x=x, y=flux_y("flux_jy:Q"), color=color),
        base.transform_filter(_kind_is("measured"))
        .mark_rule(color=MODEL_COLORS["measured"])
        .encode(x=x, y=flux_y("lo:Q"), y2="hi:Q"),
        base.transform_filter(_kind_is("measured"))
        .mark_point(filled=True, size=70)
        .encode(x=x, y=flux_y("flux_jy:Q"), color=color, tooltip=tips),
        # No y: these points only stretch the x scale to the band edges.
        base.transform_filter(_kind_is("edge")).mark_point(opacity=0).encode(x=x),
        data=_named(),
    ).properties(height=REVIEW_PLOT_HEIGHT)


def spectrum_chart(data: SpectrumData) -> alt.TopLevelMixin:
    """Flux density per spw (points with standard-error bars), the fitted power law, and the expected band.

    DATA is review.SpectrumData; its spw, fit and expected frames may each be empty (those layers then draw
    nothing). The x axis spans the band (band_edges_ghz). The legend names the three series; the subtitle
    gives the fitted and the expected spectral index.
    """
    parts = spectrum_parts(data)
    return no_data_chart(SPECTRUM_TITLE) if parts is None else parts.chart()


LIGHT_CURVE_REQUIRED = ("start_time", "flux_jy")


def light_curve_parts(df: pd.DataFrame | None) -> ChartParts | None:
    """The light curve's data (one row per EB); None without data. Same columns as light_curve_chart takes."""
    if is_empty(df):
        return None
    assert df is not None
    require(df, LIGHT_CURVE_REQUIRED, "light_curve_chart")
    d = clean(df)
    times = pd.to_datetime(d["start_time"], utc=True)
    current = d["is_current"].fillna(False).astype(bool) if "is_current" in d else pd.Series(False, index=d.index)
    label = d["label"].fillna("unlabelled").astype(str) if "label" in d else pd.Series("unlabelled", index=d.index)
    label[current] = "this EB"
    # Catalogue-quality (Pass) measurements apart from the rest: the rest is drawn fainter.
    series = np.where(current, "this EB", np.where(label == "Pass", "catalogue", "other"))
    if "series" in d:
        series = np.where(current, "this EB", d["series"].fillna("other").astype(str).to_numpy())
    err = pd.to_numeric(d["flux_err_jy"], errors="coerce") if "flux_err_jy" in d else pd.Series(np.nan, index=d.index)
    flux = pd.to_numeric(d["flux_jy"], errors="coerce").astype(float)
    out = pd.DataFrame(
        {
            # Epoch milliseconds: a temporal field Vega reads the same from JSON and from Arrow.
            "start_time": (times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(milliseconds=1),
            "time_text": times.dt.strftime("%Y-%m-%d %H:%M UTC"),
            "uid": d["uid"].astype(str) if "uid" in d else "",
            "flux_jy": flux,
            "lo": flux - err.fillna(0.0),
            "hi": flux + err.fillna(0.0),
            "flux_text": plus_minus(flux, err),
            "label": label,
            "marker": np.where(current, "this EB", "other"),
            "series": series,
            "is_current": current.to_numpy(),
        }
    )
    has_freq, has_expected = "freq_ghz" in d, "expected_flux_jy" in d
    has_band = {"low", "high"} <= set(d.columns)
    for col, present in (
        ("freq_ghz", has_freq),
        ("expected_flux_jy", has_expected),
        ("low", has_band),
        ("high", has_band),
    ):
        if present:
            out[col] = pd.to_numeric(d[col], errors="coerce").astype(float).to_numpy()
    return ChartParts("light_curve", (has_freq, has_expected, has_band), out.reset_index(drop=True), LIGHT_CURVE_TITLE)


def _light_curve_template(has_freq: bool, has_expected: bool, has_band: bool) -> alt.TopLevelMixin:
    x = alt.X(
        "start_time:T",
        title="Observation date (UTC)",
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format="%Y-%m-%d", labelAngle=-30),
    )
    points = [*LABEL_VALUES, "unlabelled", "this EB"]
    symbols: dict[str, dict[str, Any]] = {v: {"color": {**QA0_COLORS, **OTHER_COLORS}[v]} for v in points}
    symbols["this EB"]["shape"] = "diamond"
    # The catalogue curve and band are drawn in fixed grey; their legend entries name them all the same.
    if has_band and has_expected:
        symbols["catalogue expectation"] = {"shape": "stroke", "color": MODEL_COLORS["expected"], "dash": LEGEND_DASH}
    if has_band:
        symbols["catalogue ± error"] = {"shape": "square", "color": MODEL_COLORS["expected"], "opacity": 0.35}
    color = alt.Color(
        "label:N",
        scale=alt.Scale(domain=list(symbols), range=[v["color"] for v in symbols.values()]),
        title="QA0",
        legend=legend_symbols(symbols),
    )
    base = alt.Chart()
    tips = [
        alt.Tooltip("uid:N", title="EB"),
        alt.Tooltip("time_text:N", title="Start"),
        alt.Tooltip("flux_text:N", title="Flux (Jy)"),
        alt.Tooltip("label:N", title="QA0"),
    ]
    if has_freq:
        tips.insert(2, alt.Tooltip("freq_ghz:Q", title="Frequency (GHz)", format=".2f"))
    if has_expected:
        tips.append(alt.Tooltip("expected_flux_jy:Q", title="Expected (Jy)", format=".3f"))
    layers: list[alt.Chart] = []
    if has_band:
        # EBs without an expectation are left out of the band (a gap, never a zero).
        band = base.transform_filter("isValid(datum.low) && isValid(datum.high)")
        layers.append(
            band.mark_area(opacity=0.2, color=MODEL_COLORS["expected"], interpolate="monotone").encode(
                x=x, y=flux_y("low:Q"), y2="high:Q"
            )
        )
        if has_expected:
            layers.append(
                band.mark_line(color=MODEL_COLORS["expected"], strokeDash=[6, 4], interpolate="monotone").encode(
                    x=x, y=flux_y("expected_flux_jy:Q")
                )
            )
    layers.append(base.mark_rule(opacity=0.7).encode(x=x, y=flux_y("lo:Q"), y2="hi:Q", color=color))
    layers.append(
        base.mark_point(filled=True).encode(
            x=x,
            y=flux_y("flux_jy:Q"),
            color=color,
            opacity=alt.Opacity(
                "series:N",
                scale=alt.Scale(domain=["catalogue", "other", "this EB"], range=[0.95, 0.35, 0.95]),
                legend=None,
            ),
            shape=alt.Shape(
                "marker:N", scale=alt.Scale(domain=["other", "this EB"], range=["circle", "diamond"]), legend=None
            ),
            size=alt.Size("marker:N", scale=alt.Scale(domain=["other", "this EB"], range=[45, 220]), legend=None),
            tooltip=tips,
        )
    )
    # A ring around this EB so it stands out whatever the colour of its neighbours.
    layers.append(
        base.transform_filter("datum.is_current")
        .mark_point(size=480, strokeWidth=2, color=OTHER_COLORS["this EB"])
        .encode(x=x, y=flux_y("flux_jy:Q"), tooltip=tips)
    )
    return alt.layer(*layers, data=_named()).properties(height=REVIEW_PLOT_HEIGHT)


def light_curve_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Flux history of a source in one band: points with error bars coloured by QA0, this EB highlighted.

    DF columns (review.light_curve): start_time, flux_jy; optional flux_err_jy, uid, label, is_current,
    freq_ghz, expected_flux_jy, low, high (the catalogue band, drawn as a grey area where both are known).
    """
    parts = light_curve_parts(df)
    return no_data_chart(LIGHT_CURVE_TITLE) if parts is None else parts.chart()


def heatmap_parts(df: pd.DataFrame | None, metric: str) -> ChartParts | None:
    """The heatmap's data (one row per antenna x scan cell); None without data."""
    if is_empty(df):
        return None
    assert df is not None
    require(df, ("antenna", "scan", "value"), "heatmap_chart")
    d = clean(df)
    out = pd.DataFrame(
        {
            "antenna": d["antenna"].astype(str),
            "scan": d["scan"].astype("int64"),
            "value": pd.to_numeric(d["value"], errors="coerce").astype(float),
        }
    )
    optional = [c for c in ("spw", "vs_array", "flagged_fraction", "n", "outlier") if c in d]
    for col in optional:
        if col == "spw":
            out[col] = d[col].astype("int64")
        elif col == "outlier":
            out[col] = d[col].fillna(False).astype(bool)
        else:
            out[col] = pd.to_numeric(d[col], errors="coerce").astype(float)
    out["shade"] = _shade(out["value"], metric)
    reach = None
    if metric == "phase_deg":
        # Symmetric about 0 and at least +-30 deg (in 10 deg steps, so few templates), so noise stays pale
        # and a jump stands out in colour.
        top = float(np.nanmax(np.abs(out["value"].to_numpy(dtype=float)), initial=0.0))
        reach = min(180.0, max(30.0, math.ceil(top / 10.0) * 10.0))
    return ChartParts("heatmap", (metric, reach, tuple(optional)), out.reset_index(drop=True), _heatmap_title(metric))


def _shade(values: pd.Series, metric: str) -> pd.Series:
    """The value the colour shows: past the AoD limit (Tsys above 1.5 x, amplitude below 0.5 x the median) it is
    held at the limit, so one hot or dead antenna does not squeeze every other cell into one colour (its row
    is outlined, and the tooltip keeps the real value)."""
    med = float(np.nanmedian(values.to_numpy(dtype=float))) if values.notna().any() else float("nan")
    if not (math.isfinite(med) and med > 0):
        return values
    if metric == "tsys_k":
        return values.clip(upper=med * limits.TSYS_OUTLIER_RATIO)
    if metric == "amplitude":
        return values.clip(lower=med * limits.AMPLITUDE_LOW_RATIO)
    return values


HEATMAP_ROW_PX = 10
"""Height of one antenna row: 43-50 antennas fit above the fold with every name printed."""
OUTLIER_COLOR = "#00b7eb"
FLAGGED_LEGEND = "more than half flagged"
CROSS_PATH = "M-1,-1L1,1M-1,1L1,-1"
"""An "x" as a Vega symbol path (the flagged-cell mark and its legend symbol)."""


def _heatmap_template(metric: str, reach: float | None, optional: tuple[str, ...]) -> alt.TopLevelMixin:
    fmt = metric_format(metric)
    scheme: Any = HEATMAP_SCHEMES.get(metric, "viridis")  # a Vega scheme name (altair types them as a Literal)
    if reach is not None:
        scale = alt.Scale(scheme=scheme, domain=[-reach, reach], domainMid=0, clamp=True)
    else:
        scale = alt.Scale(scheme=scheme)
    tips = [alt.Tooltip("antenna:N", title="Antenna"), alt.Tooltip("scan:O", title="Scan")]
    if "spw" in optional:
        tips.append(alt.Tooltip("spw:O", title="spw"))
    tips.append(alt.Tooltip("value:Q", title=axis_title(metric), format=fmt))
    if "vs_array" in optional:
        tips.append(
            alt.Tooltip(
                "vs_array:Q",
                title="vs array median (deg)" if metric == "phase_deg" else "x array median",
                format="+.1f" if metric == "phase_deg" else ".2f",
            )
        )
    if "flagged_fraction" in optional:
        tips.append(alt.Tooltip("flagged_fraction:Q", title="Flagged", format=".0%"))
    if "n" in optional:
        tips.append(alt.Tooltip("n:Q", title="Samples", format="d"))
    x = alt.X("scan:O", title="Scan", axis=alt.Axis(labelAngle=0))
    # Ascending antenna names, the same rule for every EB (no per-EB sort list in the spec); every name shown.
    y = alt.Y(
        "antenna:N",
        title="Antenna",
        sort="ascending",
        axis=alt.Axis(labelOverlap=False, labelFontSize=HEATMAP_ROW_PX - 1, labelLimit=0, labelPadding=2),
    )
    base = alt.Chart()
    layers: list[alt.Chart] = [
        base.mark_rect().encode(
            x=x,
            y=y,
            tooltip=tips,
            color=alt.Color("shade:Q", title=axis_title(metric), scale=scale, legend=alt.Legend(format=fmt)),
        )
    ]
    if "outlier" in optional:
        # The antennas past the AoD limit get an outlined row (and a legend entry saying which limit).
        rule = HEATMAP_OUTLIER_RULES.get(metric, "past the AoD limit")
        layers.append(
            base.transform_filter("datum.outlier")
            .transform_calculate(mark=f"{json.dumps(rule)}")
            .mark_rect(filled=False, strokeWidth=1.6)
            .encode(
                x=x,
                y=y,
                tooltip=tips,
                stroke=alt.Stroke(
                    "mark:N",
                    scale=alt.Scale(domain=[rule], range=[OUTLIER_COLOR]),
                    legend=legend_symbols(
                        {rule: {"shape": "square", "color": OUTLIER_COLOR, "filled": False}}, title=None
                    ),
                ),
            )
        )
    if "flagged_fraction" in optional:
        cross = "#111111" if metric == "phase_deg" else "#ffffff"
        layers.append(
            base.transform_filter(alt.datum.flagged_fraction > 0.5)
            .transform_calculate(flag=f"{json.dumps(FLAGGED_LEGEND)}")
            .mark_point(filled=False, strokeWidth=1.4, size=30, color=cross, opacity=1)
            .encode(
                x=x,
                y=y,
                tooltip=tips,
                shape=alt.Shape(
                    "flag:N",
                    scale=alt.Scale(domain=[FLAGGED_LEGEND], range=[CROSS_PATH]),
                    legend=legend_symbols(
                        {FLAGGED_LEGEND: {"shape": CROSS_PATH, "color": "#111111", "filled": False, "width": 1.6}},
                        title=None,
                    ),
                ),
            )
        )
    # A fixed row height: the chart grows with the antenna count while the spec stays the same.
    if "spw" in optional:
        return (
            alt.layer(*layers)
            .properties(height=alt.Step(HEATMAP_ROW_PX), width=140)
            .facet(column=alt.Column("spw:O", title="spw"), data=_named())
        )
    return alt.layer(*layers, data=_named()).properties(height=alt.Step(HEATMAP_ROW_PX))


def heatmap_chart(df: pd.DataFrame, metric: str) -> alt.TopLevelMixin:
    """Antenna x scan grid of one metric (review.heatmap output) so a bad antenna or scan stands out.

    DF columns: antenna, scan, value; optional vs_array, n, flagged_fraction (cells more than half flagged
    get a cross), spw (then one panel per spw). METRIC picks the title, unit and colour scheme.
    """
    parts = heatmap_parts(df, metric)
    return no_data_chart(_heatmap_title(metric)) if parts is None else parts.chart()


def context_parts(df: pd.DataFrame | None) -> ChartParts | None:
    """The context chart's data: per metric, the labelled groups' quantiles and this EB's value; None without data.

    DF is review.context output (long: metric, value, group) or review.context_summary output (already
    summarised: metric, group, q05 .. q95, n, value, where).
    """
    if is_empty(df):
        return None
    assert df is not None
    from qa0_label.review.view import summarise_context

    if "q05" not in df.columns:
        require(df, ("metric", "value", "group"), "context_chart")
        df = summarise_context(clean(df))
    if df.empty:
        return None
    d = df.reset_index(drop=True).copy()
    metrics = list(dict.fromkeys(d["metric"].astype(str)))
    order = {m: i for i, m in enumerate(metrics)}
    d["order"] = d["metric"].map(order).astype(float)
    fmts = d["metric"].map(metric_format)
    # A percentage metric is drawn in percent (one axis format serves every row of the facet).
    pct = fmts.str.endswith("%").to_numpy()
    for col in ("q05", "q25", "median", "q75", "q95", "value"):
        d[col] = pd.to_numeric(d[col], errors="coerce").astype(float)
        d.loc[pct, col] = d.loc[pct, col] * 100.0
    d["title"] = [
        f"{METRIC_INFO.get(m, (m.replace('_', ' '), '', ''))[0]} (%)" if p else axis_title(m)
        for m, p in zip(d["metric"].astype(str), pct)
    ]
    plain = fmts.where(~pct, fmts.str.replace("%", "f", regex=False))
    d["kind"] = np.where(d["group"].astype(str) == "this EB", "this", "stats")
    cols = {c: d[c].to_numpy(dtype=float) for c in ("q05", "q25", "median", "q75", "q95", "value")}

    def txt(v: float, f: str) -> str:
        return "" if math.isnan(v) else format(v, f)

    fl = plain.tolist()
    d["median_text"] = [txt(v, f) for v, f in zip(cols["median"], fl)]
    d["iqr_text"] = [txt(a, f) and f"{txt(a, f)} – {txt(b, f)}" for a, b, f in zip(cols["q25"], cols["q75"], fl)]
    d["range_text"] = [txt(a, f) and f"{txt(a, f)} – {txt(b, f)}" for a, b, f in zip(cols["q05"], cols["q95"], fl)]
    d["value_text"] = [txt(v, f) for v, f in zip(cols["value"], fl)]
    d["n"] = pd.to_numeric(d["n"], errors="coerce").astype(float)
    d["where"] = d["where"].astype(object).where(d["where"].notna(), "") if "where" in d else ""
    out_cols = [
        "kind",
        "metric",
        "title",
        "order",
        "group",
        "q05",
        "q25",
        "median",
        "q75",
        "q95",
        "n",
        "value",
        "median_text",
        "iqr_text",
        "range_text",
        "value_text",
        "where",
    ]
    return ChartParts("context", (), d[out_cols], CONTEXT_TITLE)


def _context_template() -> alt.TopLevelMixin:
    y = alt.Y("group:N", title=None, sort=list(LABEL_VALUES), scale=alt.Scale(domain=list(LABEL_VALUES)))
    color = alt.Color("group:N", scale=qa0_scale(), legend=None)
    tips = [
        alt.Tooltip("group:N", title="Labelled"),
        alt.Tooltip("n:Q", title="EBs", format="d"),
        alt.Tooltip("median_text:N", title="Median"),
        alt.Tooltip("iqr_text:N", title="25% – 75%"),
        alt.Tooltip("range_text:N", title="5% – 95%"),
    ]
    stats = alt.Chart().transform_filter(_kind_is("stats"))
    x = alt.X("q05:Q", title=None, scale=alt.Scale(zero=False))
    cell = alt.layer(
        stats.mark_rule().encode(x=x, x2="q95:Q", y=y, color=color, tooltip=tips),
        stats.mark_bar(size=14, opacity=0.55).encode(x="q25:Q", x2="q75:Q", y=y, color=color, tooltip=tips),
        stats.mark_tick(color="#111111", thickness=2, size=16).encode(x="median:Q", y=y, tooltip=tips),
        alt.Chart()
        .transform_filter(_kind_is("this"))
        .mark_rule(color=OTHER_COLORS["this EB"], strokeWidth=3)
        .encode(
            x="value:Q",
            tooltip=[
                alt.Tooltip("title:N", title="Metric"),
                alt.Tooltip("value_text:N", title="This EB"),
                alt.Tooltip("where:N", title="Position"),
            ],
        ),
    ).properties(height=60, width=CONTEXT_WIDTH)
    # One faceted view (one row per metric, each with its own x axis and unit), not six concatenated charts.
    header = alt.Header(
        title=None,
        labelAngle=0,
        labelAlign="left",
        labelAnchor="start",
        labelOrient="top",
        labelFontSize=12,
        labelFontWeight="bold",
        labelPadding=2,
    )
    return (
        cell.facet(row=alt.Row("title:N", sort=alt.SortField("order"), header=header), data=_named(), spacing=6)
        .resolve_scale(x="independent")
        .resolve_axis(x="independent")
    )


CONTEXT_WIDTH = 460
"""Plot width of the context chart's rows (a faceted chart cannot stretch to its container)."""


def context_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Per metric, the 5-25-50-75-95 % spread of labelled Pass / SemiPass / Fail EBs with this EB as a line.

    DF is review.context output (metric, value, group with "this EB" and QA0 values) or review.context_summary
    output. Quantiles are computed before drawing, so the spec carries a few numbers per metric instead of
    thousands of points. One faceted chart: a row per metric, each with its own x axis and unit.
    """
    parts = context_parts(df)
    return no_data_chart(CONTEXT_TITLE) if parts is None else parts.chart()


_TITLES: dict[str, str] = {"spectrum": SPECTRUM_TITLE, "light_curve": LIGHT_CURVE_TITLE, "context": CONTEXT_TITLE}
_TEMPLATES: dict[str, Any] = {
    "spectrum": _spectrum_template,
    "light_curve": _light_curve_template,
    "heatmap": _heatmap_template,
    "context": _context_template,
}
