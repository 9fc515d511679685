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
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from qa0_label.review.view import SpectrumData
from qa0_label.store.models import LABEL_VALUES

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

HEATMAP_SCHEMES: dict[str, str] = {
    "tsys_k": "inferno",
    "amplitude": "viridis",
    "phase_deg": "redblue",
    "bp_ripple_db": "orangered",
}

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

KRIPPENDORFF_TENTATIVE = 0.667
KRIPPENDORFF_RELIABLE = 0.8


# --- shared helpers ----------------------------------------------------------------------------------


StreamlitChart = alt.Chart | alt.LayerChart | alt.FacetChart | alt.HConcatChart | alt.VConcatChart | alt.ConcatChart
"""A top-level chart st.altair_chart draws (what the builders the pages pass to it return)."""


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


PANEL_ROWS: tuple[tuple[str, ...], ...] = (("spectrum", "light_curve"), ("heatmap", "context"))
"""The review charts' layout in the one panel view: spectrum and flux history on top, heatmap and context below."""
PANEL_CHART_WIDTH = 390
"""Width (px) of each non-faceted chart in the panel; two of them and their legends fill the label page."""
_INDEPENDENT = {
    "scale": {"color": "independent", "shape": "independent", "size": "independent"},
    "legend": {"color": "independent"},
}


def review_panel(specs: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
    """The review charts (ChartParts.spec() dicts by kind) as ONE Vega-Lite view; None when none has data.

    The browser redraws every element of the label page for each EB, and each Vega view costs it a dataflow
    run, a resize and a canvas of its own: one view of four charts measured ~35 ms faster per key press than
    four views. Each chart keeps its own dataset (renamed to its kind), scales and legend; a kind without
    data is left out (the page says why next to the panel). Pure: the cached templates are not modified.
    """
    rows: list[dict[str, Any]] = []
    datasets: dict[str, Any] = {}
    config: dict[str, Any] | None = None
    for kinds in PANEL_ROWS:
        charts = []
        for kind in kinds:
            spec = specs.get(kind)
            if spec is None:
                continue
            config = config or spec.get("config")
            name = f"{REVIEW_DATA}_{kind}"
            sub = {k: v for k, v in spec.items() if k not in ("$schema", "config", "datasets")}
            sub["data"] = {"name": name}
            if "facet" not in sub:
                sub["width"] = PANEL_CHART_WIDTH
            datasets[name] = spec.get("datasets", {}).get(REVIEW_DATA)
            charts.append(sub)
        if charts:
            # resolve on every level: a nested concat would otherwise share one colour scale between charts.
            rows.append({"hconcat": charts, "resolve": _INDEPENDENT, "spacing": 28})
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
    if data is None or (_is_empty(data.spw) and _is_empty(data.expected)):
        return None
    parts = []
    if not _is_empty(data.expected):
        exp = _clean(data.expected)[["freq_ghz", "flux_jy", "low", "high"]].copy()
        exp["kind"], exp["series"] = "expected", "expected"
        parts.append(exp)
    if not _is_empty(data.fit):
        fit = _clean(data.fit)[["freq_ghz", "flux_jy"]].copy()
        fit["kind"], fit["series"] = "fit", "fit"
        parts.append(fit)
    if not _is_empty(data.spw):
        spw = _clean(data.spw)
        err = spw["flux_err_jy"] if "flux_err_jy" in spw else pd.Series(np.nan, index=spw.index)
        measured = pd.DataFrame(
            {
                "freq_ghz": spw["freq_ghz"],
                "flux_jy": spw["flux_jy"],
                "lo": spw["flux_jy"] - err.fillna(0.0),
                "hi": spw["flux_jy"] + err.fillna(0.0),
                "spw": spw["spw"].astype(float),
                "flux_text": _pm(spw["flux_jy"], err),
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
    if data.expected_alpha is not None and not _is_empty(data.expected):
        subtitle.append(f"catalogue extrapolation with alpha = {data.expected_alpha:+.2f}")
    return ChartParts("spectrum", (), frame, SPECTRUM_TITLE, "; ".join(subtitle) or None)


def _spectrum_template() -> alt.TopLevelMixin:
    series_scale = alt.Scale(domain=list(MODEL_COLORS), range=list(MODEL_COLORS.values()))
    x = alt.X("freq_ghz:Q", title="Frequency (GHz)", scale=alt.Scale(zero=False, nice=False))
    color = alt.Color("series:N", scale=series_scale, title=None)
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
            y=_flux_y("low:Q"),
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
        .encode(x=x, y=_flux_y("flux_jy:Q"), color=color),
        base.transform_filter(_kind_is("fit"))
        .mark_line(strokeWidth=2)
        .encode(x=x, y=_flux_y("flux_jy:Q"), color=color),
        base.transform_filter(_kind_is("measured"))
        .mark_rule(color=MODEL_COLORS["measured"])
        .encode(x=x, y=_flux_y("lo:Q"), y2="hi:Q"),
        base.transform_filter(_kind_is("measured"))
        .mark_point(filled=True, size=70)
        .encode(x=x, y=_flux_y("flux_jy:Q"), color=color, tooltip=tips),
        # No y: these points only stretch the x scale to the band edges.
        base.transform_filter(_kind_is("edge")).mark_point(opacity=0).encode(x=x),
        data=_named(),
    ).properties(height=280)


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
    if _is_empty(df):
        return None
    assert df is not None
    _require(df, LIGHT_CURVE_REQUIRED, "light_curve_chart")
    d = _clean(df)
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
            "flux_text": _pm(flux, err),
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
    color = alt.Color("label:N", scale=qa0_scale(["unlabelled", "this EB"]), title="QA0")
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
                x=x, y=_flux_y("low:Q"), y2="high:Q"
            )
        )
        if has_expected:
            layers.append(
                band.mark_line(color=MODEL_COLORS["expected"], strokeDash=[6, 4], interpolate="monotone").encode(
                    x=x, y=_flux_y("expected_flux_jy:Q")
                )
            )
    layers.append(base.mark_rule(opacity=0.7).encode(x=x, y=_flux_y("lo:Q"), y2="hi:Q", color=color))
    layers.append(
        base.mark_point(filled=True).encode(
            x=x,
            y=_flux_y("flux_jy:Q"),
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
        .encode(x=x, y=_flux_y("flux_jy:Q"), tooltip=tips)
    )
    return alt.layer(*layers, data=_named()).properties(height=280)


def light_curve_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Flux history of a source in one band: points with error bars coloured by QA0, this EB highlighted.

    DF columns (review.light_curve): start_time, flux_jy; optional flux_err_jy, uid, label, is_current,
    freq_ghz, expected_flux_jy, low, high (the catalogue band, drawn as a grey area where both are known).
    """
    parts = light_curve_parts(df)
    return no_data_chart(LIGHT_CURVE_TITLE) if parts is None else parts.chart()


def heatmap_parts(df: pd.DataFrame | None, metric: str) -> ChartParts | None:
    """The heatmap's data (one row per antenna x scan cell); None without data."""
    if _is_empty(df):
        return None
    assert df is not None
    _require(df, ("antenna", "scan", "value"), "heatmap_chart")
    d = _clean(df)
    out = pd.DataFrame(
        {
            "antenna": d["antenna"].astype(str),
            "scan": d["scan"].astype("int64"),
            "value": pd.to_numeric(d["value"], errors="coerce").astype(float),
        }
    )
    optional = [c for c in ("spw", "vs_array", "flagged_fraction", "n") if c in d]
    for col in optional:
        out[col] = d[col].astype("int64") if col == "spw" else pd.to_numeric(d[col], errors="coerce").astype(float)
    reach = None
    if metric == "phase_deg":
        # Symmetric about 0 and at least +-30 deg (in 10 deg steps, so few templates), so noise stays pale
        # and a jump stands out in colour.
        top = float(np.nanmax(np.abs(out["value"].to_numpy(dtype=float)), initial=0.0))
        reach = min(180.0, max(30.0, math.ceil(top / 10.0) * 10.0))
    return ChartParts("heatmap", (metric, reach, tuple(optional)), out.reset_index(drop=True), _heatmap_title(metric))


def _heatmap_template(metric: str, reach: float | None, optional: tuple[str, ...]) -> alt.TopLevelMixin:
    fmt = _fmt(metric)
    scheme: Any = HEATMAP_SCHEMES.get(metric, "viridis")  # a Vega scheme name (altair types them as a Literal)
    if reach is not None:
        scale = alt.Scale(scheme=scheme, domain=[-reach, reach], domainMid=0, clamp=True)
    else:
        scale = alt.Scale(scheme=scheme)
    tips = [alt.Tooltip("antenna:N", title="Antenna"), alt.Tooltip("scan:O", title="Scan")]
    if "spw" in optional:
        tips.append(alt.Tooltip("spw:O", title="spw"))
    tips.append(alt.Tooltip("value:Q", title=_axis_title(metric), format=fmt))
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
    # Ascending antenna names, the same rule for every EB (no per-EB sort list in the spec).
    y = alt.Y("antenna:N", title="Antenna", sort="ascending")
    base = alt.Chart()
    layers: list[alt.Chart] = [
        base.mark_rect().encode(
            x=x,
            y=y,
            tooltip=tips,
            color=alt.Color("value:Q", title=_axis_title(metric), scale=scale, legend=alt.Legend(format=fmt)),
        )
    ]
    if "flagged_fraction" in optional:
        layers.append(
            base.transform_filter(alt.datum.flagged_fraction > 0.5)
            .mark_text(text="✕", fontSize=11, color="#111111" if metric == "phase_deg" else "#ffffff")
            .encode(x=x, y=y, tooltip=tips)
        )
    # A fixed row height: the chart grows with the antenna count while the spec stays the same.
    if "spw" in optional:
        return (
            alt.layer(*layers)
            .properties(height=alt.Step(14), width=140)
            .facet(column=alt.Column("spw:O", title="spw"), data=_named())
        )
    return alt.layer(*layers, data=_named()).properties(height=alt.Step(14))


def heatmap_chart(df: pd.DataFrame, metric: str) -> alt.TopLevelMixin:
    """Antenna x scan grid of one metric (review.heatmap output) so a bad antenna or scan stands out.

    DF columns: antenna, scan, value; optional vs_array, n, flagged_fraction (cells more than half flagged
    get a cross), spw (then one panel per spw). METRIC picks the title, unit and colour scheme.
    """
    parts = heatmap_parts(df, metric)
    return no_data_chart(_heatmap_title(metric)) if parts is None else parts.chart()


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


def context_parts(df: pd.DataFrame | None) -> ChartParts | None:
    """The context chart's data: per metric, the labelled groups' quantiles and this EB's value; None without data.

    DF is review.context output (long: metric, value, group) or review.context_summary output (already
    summarised: metric, group, q05 .. q95, n, value, where).
    """
    if _is_empty(df):
        return None
    assert df is not None
    from qa0_label.review.view import summarise_context

    if "q05" not in df.columns:
        _require(df, ("metric", "value", "group"), "context_chart")
        df = summarise_context(_clean(df))
    if df.empty:
        return None
    d = df.reset_index(drop=True).copy()
    metrics = list(dict.fromkeys(d["metric"].astype(str)))
    order = {m: i for i, m in enumerate(metrics)}
    d["order"] = d["metric"].map(order).astype(float)
    fmts = d["metric"].map(_fmt)
    # A percentage metric is drawn in percent (one axis format serves every row of the facet).
    pct = fmts.str.endswith("%").to_numpy()
    for col in ("q05", "q25", "median", "q75", "q95", "value"):
        d[col] = pd.to_numeric(d[col], errors="coerce").astype(float)
        d.loc[pct, col] = d.loc[pct, col] * 100.0
    d["title"] = [
        f"{METRIC_INFO.get(m, (m.replace('_', ' '), '', ''))[0]} (%)" if p else _axis_title(m)
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


def _matrix_chart(d: pd.DataFrame, row: str, col: str, *, title: str, row_title: str, col_title: str) -> StreamlitChart:
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
        alt.Tooltip("row_share:Q", title="Share of row", format=".0%"),
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


def confusion_chart(df: pd.DataFrame) -> alt.TopLevelMixin:
    """Confusion matrix of consensus label (rows) against model prediction (columns), Pass/SemiPass/Fail order.

    DF is long: (true or actual, predicted, count).
    """
    title = "Confusion matrix"
    if _is_empty(df):
        return no_data_chart(title)
    true_col = "true" if "true" in df.columns else "actual"
    _require(df, (true_col, "predicted", "count"), "confusion_chart")
    return _matrix_chart(
        df, true_col, "predicted", title=title, row_title="AoD consensus", col_title="Model prediction"
    )


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
    tips = [
        alt.Tooltip("value:N", title="QA0"),
        alt.Tooltip("count:Q", title="EBs", format=",d"),
        alt.Tooltip("share:Q", title="Share", format=".0%"),
    ]
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


# --- agreement page ----------------------------------------------------------------------------------


def kappa_heatmap(df: pd.DataFrame) -> StreamlitChart:
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
    long = d.melt(
        id_vars=[c for c in ("week", "n") if c in d],
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
        base.mark_line().encode(x=x, y=y, color=color),
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
    tips: list[alt.Tooltip] = [
        alt.Tooltip("labeler:N", title="AoD"),
        alt.Tooltip("value:N", title="QA0"),
        alt.Tooltip("share:Q", title="Share", format=".0%"),
    ]
    for col in extras:
        kind = "Q" if pd.api.types.is_numeric_dtype(long[col]) else "N"
        fmt = ".3g" if kind == "Q" else alt.Undefined
        tips.append(
            alt.Tooltip(
                field=_field(col),
                type="quantitative" if kind == "Q" else "nominal",
                title=str(col).replace("_", " "),
                format=fmt,
            )
        )
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
    if _is_empty(df):
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
    return _matrix_chart(long, "a_value", "b_value", title=title, row_title=str(a_title), col_title=str(b_title))
