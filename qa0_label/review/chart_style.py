"""Shared look of every chart: QA0 colours, metric titles and formats, the "No data" chart, legends whose
symbols look like their marks, and the small frame checks every builder uses (pure functions, no I/O)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from qa0_label.store.models import LABEL_VALUES

StreamlitChart = alt.Chart | alt.LayerChart | alt.FacetChart | alt.HConcatChart | alt.VConcatChart | alt.ConcatChart
"""A top-level chart st.altair_chart draws (what the builders the pages pass to it return)."""

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


def is_empty(df: pd.DataFrame | None) -> bool:
    return df is None or len(df) == 0


def require(df: pd.DataFrame, columns: Iterable[str], who: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{who}: missing column(s) {', '.join(missing)}; got {', '.join(map(str, df.columns))}")


def axis_title(name: str) -> str:
    title, unit, _ = METRIC_INFO.get(name, (name.replace("_", " "), "", ".3g"))
    return f"{title} ({unit})" if unit else title


def metric_format(name: str) -> str:
    return METRIC_INFO.get(name, ("", "", ".3g"))[2]


def vl_field(name: str) -> str:
    # Vega-Lite reads dots and brackets in field names as nested access; column names are plain.
    return str(name).replace("\\", "\\\\").replace(".", "\\.").replace("[", "\\[").replace("]", "\\]")


def clean(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    num = out.select_dtypes(include="number").columns
    out[num] = out[num].replace([np.inf, -np.inf], np.nan)
    return out


def flux_y(field: str) -> alt.Y:
    # Every flux layer shares one y scale; zero=False keeps a 13 Jy source from sitting on a flat line.
    return alt.Y(field, title="Flux density (Jy)", scale=alt.Scale(zero=False))


def plus_minus(value: pd.Series, err: pd.Series, fmt: str = "{:.3f}") -> list[str]:
    out = []
    for v, e in zip(value, err):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append("")
        elif e is None or (isinstance(e, float) and math.isnan(e)):
            out.append(fmt.format(v))
        else:
            out.append(f"{fmt.format(v)} ± {fmt.format(e)}")
    return out


LEGEND_DASH = [3, 2]
"""The dashed curves' dash in a legend symbol (shorter than on the plot, so the short symbol shows it)."""


def legend_symbols(entries: dict[str, dict[str, Any]], *, label_expr: str | None = None, **legend: Any) -> alt.Legend:
    """A legend whose symbol for each entry looks like its mark: ENTRIES maps a domain value to its symbol
    (shape: circle / diamond / square / stroke / an SVG path, color, filled, width, dash: a stroke-dash list,
    opacity).

    Vega draws one symbol kind per legend; per-entry encode signals give each entry the look of its own
    layer (a dashed line for a dashed curve, a pale square for a band). Entries are fixed names from this
    module, never user text.
    """

    def pick(table: dict[str, Any]) -> dict[str, str]:
        # An expression Vega evaluates per legend entry (datum.value is the entry's domain value).
        return {"expr": f"({json.dumps(table)})[datum.value]"}

    filled = {k: v.get("filled", v.get("shape", "circle") != "stroke") for k, v in entries.items()}
    return alt.Legend(
        symbolType=pick({k: v.get("shape", "circle") for k, v in entries.items()}),
        symbolFillColor=pick({k: v["color"] if filled[k] else "transparent" for k, v in entries.items()}),
        symbolStrokeColor=pick({k: v["color"] for k, v in entries.items()}),
        symbolDash=pick({k: v.get("dash", []) for k, v in entries.items()}),
        symbolStrokeWidth=pick({k: v.get("width", 0 if filled[k] else 2.5) for k, v in entries.items()}),
        symbolOpacity=pick({k: v.get("opacity", 1) for k, v in entries.items()}),
        symbolSize=150,
        symbolLimit=0,
        labelLimit=220,
        # With a per-entry shape Vega places each label over the right half of its symbol: blank (braille
        # blank, not whitespace) characters in front keep the text clear of it.
        labelExpr=f"'\\u2800\\u2800' + ({label_expr or 'datum.label'})",
        **legend,
    )


def as_times(series: pd.Series) -> pd.Series | None:
    """SERIES as UTC times when it holds dates or date strings; None for numbers or other labels."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.to_datetime(series, utc=True)
    if pd.api.types.is_numeric_dtype(series):
        return None
    try:
        return pd.to_datetime(series.astype(str), utc=True, format="mixed")
    except (ValueError, TypeError):
        return None
