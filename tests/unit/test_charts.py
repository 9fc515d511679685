"""Altair builders, checked through chart.to_dict(): marks, encodings, tooltips, layers, empty input, user text."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import pytest

from qa0_label.lead import charts as lead_charts
from qa0_label.learning import charts as model_charts
from qa0_label.review import chart_style, charts
from qa0_label.review.view import SpectrumData

EVIL = '<img src=x onerror="alert(1)">{{datum.x}}'


# --- helpers over the Vega-Lite dict -------------------------------------------------------------------


def spec_of(chart: alt.TopLevelMixin) -> dict[str, Any]:
    return chart.to_dict()  # validates against the Vega-Lite schema on the way


def units(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every unit spec (one with a mark) inside layers, concats and facets."""
    stack = [spec]
    while stack:
        cur = stack.pop()
        if "mark" in cur:
            yield cur
        for key in ("layer", "vconcat", "hconcat", "concat"):
            stack.extend(cur.get(key, []))
        if isinstance(cur.get("spec"), dict):
            stack.append(cur["spec"])


def mark_types(spec: dict[str, Any]) -> list[str]:
    return [u["mark"] if isinstance(u["mark"], str) else u["mark"]["type"] for u in units(spec)]


def tooltip_fields(spec: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for u in units(spec):
        tips = u.get("encoding", {}).get("tooltip", [])
        for t in tips if isinstance(tips, list) else [tips]:
            out.add(t["field"])
    return out


def tooltips(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for u in units(spec):
        tips = u.get("encoding", {}).get("tooltip", [])
        out += tips if isinstance(tips, list) else [tips]
    return out


def rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for values in spec.get("datasets", {}).values() for r in values]


def unit_rows(spec: dict[str, Any], unit: dict[str, Any]) -> list[dict[str, Any]]:
    data = unit.get("data") or spec.get("data")
    return spec["datasets"][data["name"]]


def strings_outside_data(obj: Any, key: str = "") -> list[tuple[str, str]]:
    """(key, string) for every string in the spec except the data values."""
    if key == "datasets":
        return []
    if isinstance(obj, str):
        return [(key, obj)]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in strings_outside_data(v, k)]
    if isinstance(obj, list):
        return [p for v in obj for p in strings_outside_data(v, key)]
    return []


def is_no_data(spec: dict[str, Any]) -> bool:
    return mark_types(spec) == ["text"] and rows(spec) == [{"message": chart_style.NO_DATA_TEXT}]


def qa0_ranges(spec: dict[str, Any]) -> list[dict[str, str]]:
    """Colour mapping of every scale whose domain holds QA0 values."""
    out = []
    for u in units(spec):
        scale = u.get("encoding", {}).get("color", {}).get("scale", {})
        domain, rng = scale.get("domain"), scale.get("range")
        if isinstance(domain, list) and "Pass" in domain and isinstance(rng, list):
            out.append(dict(zip(domain, rng)))
    return out


# --- fixtures ------------------------------------------------------------------------------------------


def spectrum_data() -> SpectrumData:
    freqs = np.array([90.5, 92.5, 102.5, 104.5])
    grid = np.linspace(84, 116, 20)
    return SpectrumData(
        spw=pd.DataFrame(
            {
                "spw": [0, 1, 2, 3],
                "freq_ghz": freqs,
                "flux_jy": 5 * (freqs / 97.5) ** -0.6,
                "flux_err_jy": [0.02, 0.02, np.nan, 0.03],
                "n": [200, 200, 1, 200],
            }
        ),
        fit=pd.DataFrame({"freq_ghz": grid, "flux_jy": 5 * (grid / 97.5) ** -0.6}),
        alpha=-0.6,
        alpha_err=0.04,
        expected=pd.DataFrame(
            {
                "freq_ghz": grid,
                "flux_jy": 5.1 * (grid / 97.5) ** -0.55,
                "low": 4.8 * (grid / 97.5) ** -0.55,
                "high": 5.4 * (grid / 97.5) ** -0.55,
            }
        ),
        freq0_ghz=97.5,
        s0_jy=5.0,
        expected_alpha=-0.55,
        expected_alpha_err=0.1,
        band=3,
        band_edges_ghz=(84.0, 116.0),
    )


def light_curve_df(uid: str = "uid://A002/X1/X1") -> pd.DataFrame:
    t = pd.date_range("2024-01-01", periods=5, freq="7D", tz="UTC")
    return pd.DataFrame(
        {
            "eb_id": [1, 2, 3, 4, 5],
            "uid": [f"uid://A002/X1/X{i}" for i in range(4)] + [uid],
            "start_time": t,
            "freq_ghz": [97.5] * 5,
            "flux_jy": [5.0, 5.1, 4.9, 6.5, 5.0],
            "flux_err_jy": [0.1, 0.1, np.nan, 0.1, 0.1],
            "expected_flux_jy": [5.0] * 4 + [np.nan],
            "low": [4.8] * 4 + [np.nan],
            "high": [5.2] * 4 + [np.nan],
            "is_current": [False, False, False, True, False],
            "label": ["Pass", "SemiPass", "unlabelled", "this EB", "Fail"],
        }
    )


def heatmap_df(antennas: tuple[str, ...] = ("DV02", "DA41", "PM01"), value: float = 60.0) -> pd.DataFrame:
    out = []
    for a in antennas:
        for scan in (1, 2, 3):
            out.append(
                {
                    "antenna": a,
                    "scan": scan,
                    "value": value * (3 if a == "DV02" else 1),
                    "vs_array": 1.0,
                    "n": 4,
                    "flagged_fraction": 1.0 if (a == "PM01" and scan == 2) else 0.0,
                }
            )
    return pd.DataFrame(out)


def context_df() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    parts = [pd.DataFrame({"eb_id": [99], "metric": ["pwv_mm"], "value": [1.2], "group": ["this EB"]})]
    for group, loc in (("Pass", 1.0), ("SemiPass", 2.0), ("Fail", 4.0)):
        for metric in ("pwv_mm", "elevation_deg"):
            v = rng.normal(loc * (30 if metric == "elevation_deg" else 1), 0.3, 40)
            parts.append(pd.DataFrame({"eb_id": range(40), "metric": metric, "value": v, "group": group}))
    return pd.concat(parts, ignore_index=True)


BUILDERS: dict[str, tuple[Callable[[pd.DataFrame], alt.TopLevelMixin], pd.DataFrame]] = {
    "light_curve": (charts.light_curve_chart, light_curve_df()),
    "heatmap": (lambda df: charts.heatmap_chart(df, "tsys_k"), heatmap_df()),
    "context": (charts.context_chart, context_df()),
    "metrics_history": (
        model_charts.metrics_history_chart,
        pd.DataFrame({"version": [1, 2], "n_labels": [20, 45], "macro_f1": [0.5, 0.7], "fail_recall": [0.4, 0.8]}),
    ),
    "confusion": (
        model_charts.confusion_chart,
        pd.DataFrame({"true": ["Pass", "Fail"], "predicted": ["Pass", "Pass"], "count": [30, 2]}),
    ),
    "class_balance": (
        model_charts.class_balance_chart,
        pd.DataFrame({"value": ["Pass", "SemiPass", "Fail"], "count": [80, 12, 8]}),
    ),
    "feature_importance": (
        model_charts.feature_importance_chart,
        pd.DataFrame({"feature": ["pwv_mm", "n_antennas"], "importance": [0.3, 0.1]}),
    ),
    "uncertainty": (model_charts.uncertainty_histogram, pd.DataFrame({"uncertainty": np.linspace(0, 1, 50)})),
    "kappa": (lead_charts.kappa_heatmap, pd.DataFrame({"a": ["ana"], "b": ["ben"], "kappa": [0.7], "n": [40]})),
    "alpha_trend": (
        lead_charts.alpha_trend_chart,
        pd.DataFrame(
            {
                "week": ["2024-01-01", "2024-01-08"],
                "alpha_nominal": [0.6, 0.7],
                "alpha_ordinal": [0.7, 0.8],
                "low": [0.6, 0.7],
                "high": [0.8, 0.9],
            }
        ),
    ),
    "per_labeler": (
        lead_charts.per_labeler_chart,
        pd.DataFrame(
            {
                "labeler": ["ana", "ben"],
                "share_pass": [0.8, 0.6],
                "share_semipass": [0.1, 0.2],
                "share_fail": [0.1, 0.2],
                "n_labels": [50, 40],
            }
        ),
    ),
    "pair_confusion": (
        lead_charts.pair_confusion_chart,
        pd.DataFrame({"a_value": ["Pass"], "b_value": ["Fail"], "count": [3]}),
    ),
}


@functools.cache
def sample_spec(name: str) -> dict[str, Any]:
    build, sample = BUILDERS[name]
    return spec_of(build(sample))


# --- every builder -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_turns_an_empty_frame_into_a_no_data_chart(name: str) -> None:
    build, sample = BUILDERS[name]
    assert is_no_data(spec_of(build(pd.DataFrame())))
    assert is_no_data(spec_of(build(sample.iloc[0:0])))
    assert is_no_data(spec_of(build(None)))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_builder_draws_its_sample_and_names_missing_columns(name: str) -> None:
    build, _ = BUILDERS[name]
    spec = sample_spec(name)
    assert not is_no_data(spec) and tooltip_fields(spec)
    with pytest.raises(ValueError, match="missing column"):
        build(pd.DataFrame({"unrelated": [1, 2]}))


def test_empty_spectrum_is_a_no_data_chart() -> None:
    empty = SpectrumData(spw=pd.DataFrame(), fit=pd.DataFrame(), alpha=None, alpha_err=None, expected=pd.DataFrame())
    assert is_no_data(spec_of(charts.spectrum_chart(empty)))


def test_every_numeric_tooltip_is_formatted() -> None:
    for name in BUILDERS:
        for tip in tooltips(sample_spec(name)):
            if tip.get("type") == "quantitative":
                assert tip.get("format"), f"{name}: tooltip {tip['field']} has no number format"
            assert tip.get("title"), f"{name}: tooltip {tip['field']} has no title"


def test_qa0_colours_are_the_same_everywhere() -> None:
    seen = 0
    for name in BUILDERS:
        for mapping in qa0_ranges(sample_spec(name)):
            for value in ("Pass", "SemiPass", "Fail"):
                if value in mapping:
                    assert mapping[value] == charts.QA0_COLORS[value]
            seen += 1
    assert seen >= 5
    assert charts.QA0_COLORS["Pass"].startswith("#2") and charts.QA0_COLORS["Fail"].startswith("#d")


# --- user text stays data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: charts.light_curve_chart(light_curve_df(uid=EVIL)),
        lambda: lead_charts.kappa_heatmap(pd.DataFrame({"a": [EVIL], "b": ["ben"], "kappa": [0.5], "n": [9]})),
        lambda: lead_charts.per_labeler_chart(
            pd.DataFrame({"labeler": [EVIL], "share_pass": [1.0], "share_semipass": [0.0], "share_fail": [0.0]})
        ),
        lambda: model_charts.feature_importance_chart(pd.DataFrame({"feature": [EVIL], "importance": [0.2]})),
        lambda: charts.heatmap_chart(heatmap_df(antennas=(EVIL, "DA41", "DA42")), "tsys_k"),
        lambda: model_charts.class_balance_chart(pd.DataFrame({"value": [EVIL, "Pass"], "count": [1, 2]})),
    ],
)
def test_user_text_travels_only_as_data(build: Callable[[], alt.TopLevelMixin]) -> None:
    spec = spec_of(build())
    outside = [(k, s) for k, s in strings_outside_data(spec) if "onerror" in s]
    # A sort list of axis categories is data too: Vega renders it as escaped text labels.
    assert all(k in ("sort", "domain") for k, _ in outside), outside
    assert any(EVIL in str(r.values()) for r in rows(spec))
    for key, text in strings_outside_data(spec):
        if key in ("expr", "filter", "calculate", "format", "test"):
            assert "onerror" not in text


def test_pair_confusion_axis_titles_are_plain_titles() -> None:
    spec = spec_of(
        lead_charts.pair_confusion_chart(
            pd.DataFrame({"a_value": ["Pass"], "b_value": ["Pass"], "count": [4]}), a_title=EVIL, b_title="ben"
        )
    )
    places = {k for k, s in strings_outside_data(spec) if "onerror" in s}
    assert places == {"title"}


# --- review charts -------------------------------------------------------------------------------------


class _Datum:
    """Attribute access over one data row, for evaluating a layer's filter expression."""

    def __init__(self, row: dict[str, Any]) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return self._row.get(name)


def _passes(expr: Any, row: dict[str, Any]) -> bool:
    # The few Vega expression forms the review charts use: ===, &&, isValid(), > and a bare field.
    py = str(expr).replace("===", "==").replace("&&", " and ").replace("isValid", "_valid")
    return bool(eval(py, {"_valid": lambda v: v is not None and v == v}, {"datum": _Datum(row)}))  # noqa: S307


def visible_rows(spec: dict[str, Any], unit: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a unit draws: the dataset it reads, through its filter transforms."""
    out = unit_rows(spec, unit)
    for step in unit.get("transform", []):
        if "filter" in step:
            out = [r for r in out if _passes(step["filter"], r)]
    return out


def units_of(spec: dict[str, Any], mark: str) -> list[dict[str, Any]]:
    return [u for u in units(spec) if (u["mark"] if isinstance(u["mark"], str) else u["mark"]["type"]) == mark]


def drawn(spec: dict[str, Any]) -> list[str]:
    """Mark types of the layers that draw at least one row."""
    return sorted(
        (u["mark"] if isinstance(u["mark"], str) else u["mark"]["type"])
        for u in units(spec)
        if visible_rows(spec, u) and u["mark"].get("opacity", 1) != 0
    )


def template_only(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in ("datasets", "title")}


def test_spectrum_has_points_error_bars_fit_and_expected_band() -> None:
    spec = spec_of(charts.spectrum_chart(spectrum_data()))
    assert drawn(spec) == ["area", "line", "line", "point", "rule"]
    xs = [r["freq_ghz"] for r in rows(spec)]
    assert min(xs) == 84.0 and max(xs) == 116.0, "the x scale spans the band edges"
    for u in units(spec):
        assert u["encoding"]["x"]["field"] == "freq_ghz" and u["encoding"]["x"]["title"] == "Frequency (GHz)"
        assert u["encoding"]["x"]["scale"] == {"nice": False, "zero": False}
        if "y" in u["encoding"]:
            assert u["encoding"]["y"]["title"] == "Flux density (Jy)"
    area = units_of(spec, "area")[0]
    assert area["encoding"]["y"]["field"] == "low" and area["encoding"]["y2"]["field"] == "high"
    assert len(visible_rows(spec, area)) == 20
    bars = visible_rows(spec, units_of(spec, "rule")[0])
    assert bars[0]["hi"] - bars[0]["lo"] == pytest.approx(0.04) and bars[2]["hi"] == bars[2]["lo"]
    assert {"spw", "freq_ghz", "flux_text", "n"} <= tooltip_fields(spec)
    point = next(u for u in units_of(spec, "point") if u["mark"].get("opacity") != 0)
    assert [r["flux_text"] for r in visible_rows(spec, point)][0].count("±") == 1
    assert len(visible_rows(spec, point)) == 4
    assert "-0.60 ± 0.04" in spec["title"]["subtitle"] and "-0.55" in spec["title"]["subtitle"]


def test_spectrum_without_fit_or_expectation_still_draws_the_points() -> None:
    data = spectrum_data()
    bare = SpectrumData(spw=data.spw, fit=pd.DataFrame(), alpha=None, alpha_err=None, expected=pd.DataFrame())
    spec = spec_of(charts.spectrum_chart(bare))
    assert drawn(spec) == ["point", "rule"] and spec.get("title") == charts.SPECTRUM_TITLE


def test_review_specs_do_not_change_from_eb_to_eb() -> None:
    # Two different EBs: same Vega-Lite spec apart from the data, so the browser only swaps the dataset.
    other = spectrum_data()
    other = SpectrumData(
        spw=other.spw.iloc[:2],
        fit=pd.DataFrame(),
        alpha=None,
        alpha_err=None,
        expected=other.expected,
        band=7,
        band_edges_ghz=(275.0, 373.0),
    )
    pairs = [
        (charts.spectrum_parts(spectrum_data()), charts.spectrum_parts(other)),
        (charts.light_curve_parts(light_curve_df()), charts.light_curve_parts(light_curve_df().iloc[1:4])),
        (charts.heatmap_parts(heatmap_df(), "tsys_k"), charts.heatmap_parts(heatmap_df(("DV01", "DV09")), "tsys_k")),
        (charts.context_parts(context_df()), charts.context_parts(context_df().iloc[::2])),
    ]
    for a, b in pairs:
        assert a is not None and b is not None
        spec_a, spec_b = a.spec(), b.spec()
        assert list(spec_a["datasets"]) == [charts.REVIEW_DATA]
        assert {k: v for k, v in spec_a.items() if k != "datasets"} == {
            k: v for k, v in spec_b.items() if k != "datasets"
        }
        assert not a.frame.equals(b.frame)
        # The fast spec is the Altair chart's own spec, minus the inline data and the per-EB subtitle.
        assert template_only(spec_a) == template_only(spec_of(a.chart()))


def test_light_curve_highlights_this_eb_and_draws_the_expected_band() -> None:
    spec = spec_of(charts.light_curve_chart(light_curve_df()))
    assert drawn(spec) == ["area", "line", "point", "point", "rule"]
    main = next(u for u in units_of(spec, "point") if "shape" in u["encoding"])
    assert main["encoding"]["x"]["type"] == "temporal" and main["encoding"]["x"]["scale"]["type"] == "utc"
    assert main["encoding"]["color"]["field"] == "label"
    data = visible_rows(spec, main)
    assert [r["label"] for r in data if r["marker"] == "this EB"] == ["this EB"]
    assert data[0]["time_text"] == "2024-01-01 00:00 UTC"
    assert data[0]["start_time"] == pd.Timestamp("2024-01-01", tz="UTC").value / 1e6  # epoch ms
    ring = next(u for u in units_of(spec, "point") if "shape" not in u["encoding"])
    assert [r["uid"] for r in visible_rows(spec, ring)] == ["uid://A002/X1/X3"]
    assert {"uid", "time_text", "flux_text", "label", "freq_ghz"} <= tooltip_fields(spec)
    band = units_of(spec, "area")[0]
    assert len(visible_rows(spec, band)) == 4  # the EB without an expectation leaves a gap, not a zero


def test_light_curve_sets_catalogue_quality_pass_points_apart() -> None:
    spec = spec_of(charts.light_curve_chart(light_curve_df()))
    main = next(u for u in units_of(spec, "point") if "shape" in u["encoding"])
    assert main["encoding"]["opacity"]["field"] == "series"
    rows = visible_rows(spec, main)
    for r in rows:
        expected = "this EB" if r["marker"] == "this EB" else "catalogue" if r["label"] == "Pass" else "other"
        assert r["series"] == expected
    scale = main["encoding"]["opacity"]["scale"]
    assert dict(zip(scale["domain"], scale["range"]))["other"] < dict(zip(scale["domain"], scale["range"]))["catalogue"]


def test_light_curve_without_expectation_has_no_band() -> None:
    df = light_curve_df().drop(columns=["low", "high", "expected_flux_jy"])
    assert "area" not in mark_types(spec_of(charts.light_curve_chart(df)))


def test_heatmap_is_antenna_by_scan_with_flag_marks() -> None:
    df = heatmap_df()
    df["outlier"] = df["antenna"] == "DA41"
    spec = spec_of(charts.heatmap_chart(df, "tsys_k"))
    assert sorted(mark_types(spec)) == ["point", "rect", "rect"]
    rect = next(u for u in units_of(spec, "rect") if u["mark"].get("filled") is not False)
    enc = rect["encoding"]
    assert enc["x"]["field"] == "scan" and enc["x"]["type"] == "ordinal"
    assert enc["y"]["field"] == "antenna" and enc["y"]["sort"] == "ascending"
    # Every antenna named: Vega must not drop labels that would overlap, nor cut long names.
    assert enc["y"]["axis"]["labelOverlap"] is False and enc["y"]["axis"]["labelLimit"] == 0
    assert enc["color"]["field"] == "shade" and enc["color"]["title"] == "Tsys (K)"
    assert {"antenna", "scan", "value", "vs_array", "flagged_fraction"} <= tooltip_fields(spec)
    assert any(t["field"] == "value" and t["format"] == ".0f" for t in tooltips(spec))
    assert len(visible_rows(spec, rect)) == 9
    cross = units_of(spec, "point")[0]
    assert [(r["antenna"], r["scan"]) for r in visible_rows(spec, cross)] == [("PM01", 2)], (
        "a cross on the flagged cell"
    )
    shape = cross["encoding"]["shape"]
    assert shape["scale"]["domain"] == [charts.FLAGGED_LEGEND] and shape["scale"]["range"] == [charts.CROSS_PATH]
    assert "legend" in shape and shape["legend"] is not None, "the cross has a legend entry"
    outline = next(u for u in units_of(spec, "rect") if u["mark"].get("filled") is False)
    assert {r["antenna"] for r in visible_rows(spec, outline)} == {"DA41"}, "the outlier antenna is outlined"
    assert outline["encoding"]["stroke"]["scale"]["domain"] == ["Tsys > 1.5 x array median"]
    assert spec["height"] == {"step": charts.HEATMAP_ROW_PX}, "rows of fixed height: the chart grows with the antennas"


def test_heatmap_outliers_follow_the_aod_limits() -> None:
    from qa0_label.review.view import heatmap_outliers

    df = heatmap_df()
    df["vs_array"] = 1.0
    df.loc[df["antenna"] == "DA41", "vs_array"] = 2.0
    df.loc[df["antenna"] == "PM01", "vs_array"] = 1.2  # hotter than the rest but within the limit
    assert heatmap_outliers(df, "tsys_k") == ["DA41"]
    df["vs_array"] = 1.0
    df.loc[df["antenna"] == "DV02", "vs_array"] = 0.2
    assert heatmap_outliers(df, "amplitude") == ["DV02"]
    df["vs_array"] = 0.0
    df.loc[(df["antenna"] == "PM01") & (df["scan"] >= 2), "vs_array"] = 90.0
    assert heatmap_outliers(df, "phase_deg") == ["PM01"]
    assert heatmap_outliers(df.iloc[0:0], "tsys_k") == []


def _legend_entries(legend: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per domain value, the symbol Vega will draw (the legend's per-entry expressions evaluated in Python)."""
    import json
    import re

    out: dict[str, dict[str, Any]] = {}
    for prop in ("symbolType", "symbolStrokeColor", "symbolDash", "symbolFillColor"):
        expr = legend[prop]["expr"]
        table = json.loads(re.fullmatch(r"\((.*)\)\[datum\.value\]", expr).group(1))
        for value, symbol in table.items():
            out.setdefault(value, {})[prop] = symbol
    return out


def test_spectrum_legend_draws_each_series_as_its_mark() -> None:
    spec = charts.template_spec("spectrum", ())
    legend = next(u["encoding"]["color"]["legend"] for u in units(spec) if "color" in u.get("encoding", {}))
    entries = _legend_entries(legend)
    assert entries["measured"]["symbolType"] == "circle"
    assert entries["fit"]["symbolType"] == "stroke" and entries["fit"]["symbolDash"] == []
    assert entries["expected"]["symbolType"] == "stroke" and entries["expected"]["symbolDash"] == charts.LEGEND_DASH
    assert entries["expected range"]["symbolType"] == "square", "the catalogue band has its own entry"
    line_dash = [u["mark"].get("strokeDash") for u in units_of(spec, "line")]
    assert [6, 4] in line_dash, "the expected curve is the dashed line the legend shows"


def test_light_curve_legend_names_the_catalogue_curve_and_band() -> None:
    spec = charts.template_spec("light_curve", (True, True, True))
    color = next(u["encoding"]["color"] for u in units(spec) if "color" in u.get("encoding", {}))
    entries = _legend_entries(color["legend"])
    assert color["scale"]["domain"][:3] == ["Pass", "SemiPass", "Fail"]
    assert entries["catalogue expectation"]["symbolDash"] == charts.LEGEND_DASH
    assert entries["catalogue ± error"]["symbolType"] == "square"
    assert entries["this EB"]["symbolType"] == "diamond"
    bare = charts.template_spec("light_curve", (True, False, False))
    color = next(u["encoding"]["color"] for u in units(bare) if "color" in u.get("encoding", {}))
    assert "catalogue ± error" not in color["scale"]["domain"], "no band, no legend entry for it"


def test_phase_heatmap_is_symmetric_about_zero() -> None:
    df = heatmap_df(value=40.0)
    df.loc[0, "value"] = -75.0
    spec = spec_of(charts.heatmap_chart(df, "phase_deg"))
    scale = units_of(spec, "rect")[0]["encoding"]["color"]["scale"]
    assert scale["domain"] == [-120.0, 120.0] and scale["domainMid"] == 0


def test_heatmap_per_spw_is_faceted() -> None:
    df = pd.concat([heatmap_df().assign(spw=s) for s in range(4)], ignore_index=True)
    spec = spec_of(charts.heatmap_chart(df, "amplitude"))
    assert spec["facet"]["column"]["field"] == "spw" and "rect" in mark_types(spec)
    assert sorted({r["spw"] for r in rows(spec)}) == [0, 1, 2, 3]


def test_context_summarises_each_group_and_marks_this_eb() -> None:
    df = context_df()
    spec = spec_of(charts.context_chart(df))
    # One faceted view, a row per metric with its own x axis (not one chart per metric).
    assert spec["facet"]["row"]["field"] == "title" and spec["resolve"]["scale"]["x"] == "independent"
    assert sorted(mark_types(spec)) == ["bar", "rule", "rule", "tick"]
    assert sorted({r["title"] for r in rows(spec)}) == ["Elevation (deg)", "PWV (mm)"]
    bar = units_of(spec, "bar")[0]
    stats = {(r["metric"], r["group"]): r for r in visible_rows(spec, bar)}
    passed = df[(df.metric == "pwv_mm") & (df.group == "Pass")]["value"]
    assert stats[("pwv_mm", "Pass")]["median"] == pytest.approx(float(np.median(passed)))
    assert stats[("pwv_mm", "Pass")]["n"] == 40 and len(stats) == 6
    this_layer = next(u for u in units_of(spec, "rule") if "y" not in u["encoding"])
    this = visible_rows(spec, this_layer)
    assert [(r["metric"], r["value"]) for r in this] == [("pwv_mm", 1.2)], "no value of this EB for elevation"
    assert "of Pass" in this[0]["where"] and this[0]["value_text"] == "1.20"
    assert len(rows(spec)) == 7, "a few summary rows, not the points"


def test_context_accepts_the_summary_and_draws_percentages_in_percent() -> None:
    from qa0_label.review.view import summarise_context

    long = pd.DataFrame(
        {
            "eb_id": range(5),
            "metric": "flagged_fraction",
            "value": [0.05, 0.01, 0.02, 0.03, 0.04],
            "group": ["this EB"] + ["Pass"] * 4,
        }
    )
    summary = summarise_context(long)
    assert list(summary["group"]) == ["Pass", "this EB"]
    spec = spec_of(charts.context_chart(summary))
    assert spec_of(charts.context_chart(long)) == spec
    this = next(r for r in rows(spec) if r["group"] == "this EB")
    assert this["value"] == pytest.approx(5.0) and this["title"] == "Flagged fraction (%)"
    assert this["where"] == "above 100% of Pass"


# --- model page ----------------------------------------------------------------------------------------


def test_metrics_history_accepts_wide_and_long_frames() -> None:
    wide = BUILDERS["metrics_history"][1]
    long = wide.melt(id_vars=["version", "n_labels"], var_name="metric", value_name="value")
    for df in (wide, long):
        spec = spec_of(model_charts.metrics_history_chart(df))
        assert sorted(mark_types(spec)) == ["line", "point"]
        point = next(u for u in units(spec) if u["mark"]["type"] == "point")
        assert point["encoding"]["y"]["scale"]["domain"] == [0, 1]
        assert {r["metric"] for r in unit_rows(spec, point)} == {"macro F1", "Fail recall"}


def test_metrics_history_labels_counts_as_whole_numbers() -> None:
    one_run = pd.DataFrame({"version": [1], "n_labels": [320], "macro_f1": [0.64], "fail_recall": [0.76]})
    spec = spec_of(model_charts.metrics_history_chart(one_run))
    for unit in units(spec):
        axis = unit["encoding"]["x"]["axis"]
        assert axis["format"] == ",d" and axis["tickMinStep"] == 1


def test_confusion_matrix_keeps_the_qa0_order_and_every_cell() -> None:
    df = pd.DataFrame({"actual": ["Pass", "Fail", "Fail"], "predicted": ["Pass", "Pass", "Fail"], "count": [30, 2, 5]})
    spec = spec_of(model_charts.confusion_chart(df))
    assert sorted(mark_types(spec)) == ["rect", "text"]
    rect = next(u for u in units(spec) if u["mark"]["type"] == "rect")
    assert rect["encoding"]["x"]["scale"]["domain"] == ["Pass", "SemiPass", "Fail"]
    assert rect["encoding"]["y"]["scale"]["domain"] == ["Pass", "SemiPass", "Fail"]
    cells = {(r["r"], r["c"]): r for r in unit_rows(spec, rect)}
    assert len(cells) == 9 and cells[("SemiPass", "SemiPass")]["count"] == 0
    assert cells[("Fail", "Fail")]["row_share"] == pytest.approx(5 / 7)


def test_class_balance_bars_use_qa0_colours() -> None:
    spec = sample_spec("class_balance")
    bar = next(u for u in units(spec) if u["mark"]["type"] == "bar")
    assert bar["encoding"]["x"]["sort"] == ["Pass", "SemiPass", "Fail"]
    assert sum(r["share"] for r in unit_rows(spec, bar)) == pytest.approx(1.0)


def test_feature_importance_shows_the_top_features_largest_first() -> None:
    df = pd.DataFrame({"feature": [f"f{i}" for i in range(30)], "importance": np.arange(30) / 100})
    spec = spec_of(model_charts.feature_importance_chart(df, top=5))
    assert spec["encoding"]["y"]["sort"] == ["f29", "f28", "f27", "f26", "f25"]
    assert len(rows(spec)) == 5


def test_feature_importance_names_every_bar_and_keeps_full_names_on_hover() -> None:
    long_names = ["abs_flux_vs_expected_sigma_over_history", "abs_flux_vs_expected_sigma_over_catalogue", "pwv_mm"]
    df = pd.DataFrame({"feature": long_names, "importance": [0.5, 0.4, 0.1]})
    spec = spec_of(model_charts.feature_importance_chart(df))
    y = spec["encoding"]["y"]
    assert y["axis"]["labelOverlap"] is False and y["axis"]["labelLimit"] == 0
    labels = y["sort"]
    assert all(len(label.rstrip("\u200b")) <= model_charts.FEATURE_LABEL_CHARS for label in labels)
    assert len(set(labels)) == 3, "two long names never collapse to one label"
    assert labels[0].startswith("abs_flux") and labels[0].rstrip("\u200b").endswith("history")
    assert labels[2] == "pwv_mm", "short names stay whole"
    assert [r["feature"] for r in rows(spec)] == long_names, "the tooltip field holds the full name"
    assert "feature" in tooltip_fields(spec)


def test_uncertainty_histogram_bins_raw_values_or_draws_given_bins() -> None:
    raw = pd.DataFrame(
        {"uncertainty": np.random.default_rng(1).random(300), "predicted": ["Pass"] * 200 + ["Fail"] * 100}
    )
    spec = spec_of(model_charts.uncertainty_histogram(raw, bins=10))
    assert sum(r["count"] for r in rows(spec)) == 300 and len(rows(spec)) == 20
    assert spec["encoding"]["x"]["bin"] == "binned" and spec["encoding"]["color"]["field"] == "predicted"
    binned = pd.DataFrame({"bin_start": [0.0, 0.5], "bin_end": [0.5, 1.0], "count": [3, 4]})
    spec = spec_of(model_charts.uncertainty_histogram(binned))
    assert [r["count"] for r in rows(spec)] == [3, 4] and "color" not in spec["encoding"]


# --- agreement page ------------------------------------------------------------------------------------


def test_kappa_heatmap_fills_both_halves() -> None:
    df = pd.DataFrame({"a": ["ana", "ana"], "b": ["ben", "eva"], "kappa": [0.7, 0.4], "n": [40, 12]})
    spec = spec_of(lead_charts.kappa_heatmap(df))
    rect = next(u for u in units(spec) if u["mark"]["type"] == "rect")
    pairs = {(r["a"], r["b"]): r["kappa"] for r in unit_rows(spec, rect)}
    assert pairs[("ana", "ben")] == pairs[("ben", "ana")] == 0.7 and len(pairs) == 4
    assert rect["encoding"]["color"]["scale"]["domain"] == [0, 1]
    assert {"a", "b", "kappa", "n"} <= tooltip_fields(spec)


def test_alpha_trend_has_both_lines_band_and_reference_levels() -> None:
    spec = sample_spec("alpha_trend")
    types = mark_types(spec)
    assert "area" in types and types.count("rule") == 1 and "line" in types
    line = next(u for u in units(spec) if u["mark"]["type"] == "line")
    assert line["encoding"]["x"]["type"] == "temporal"
    assert {r["kind"] for r in unit_rows(spec, line)} == {"nominal", "ordinal"}
    rule = next(u for u in units(spec) if u["mark"]["type"] == "rule")
    assert [r["alpha"] for r in unit_rows(spec, rule)] == [0.667, 0.8]


def test_alpha_trend_does_not_join_weeks_across_a_gap() -> None:
    weeks = pd.to_datetime(["2024-01-01", "2024-01-08", "2024-03-04", "2024-06-03", "2024-06-10"])
    df = pd.DataFrame({"week": weeks, "alpha_nominal": [0.5, 0.6, 0.7, 0.4, 0.5], "alpha_ordinal": 0.6})
    spec = spec_of(lead_charts.alpha_trend_chart(df))
    line = next(u for u in units(spec) if u["mark"]["type"] == "line")
    assert line["encoding"]["detail"]["field"] == "segment", "one line per run of consecutive weeks"
    nominal = sorted((r["week"], r["segment"]) for r in unit_rows(spec, line) if r["kind"] == "nominal")
    assert [seg for _, seg in nominal] == [0, 0, 1, 2, 2], "the lone March week is its own segment: a point"
    assert "point" in mark_types(spec)


def test_kappa_heatmap_names_every_aod_in_full() -> None:
    names = [f"Astronomer number {i:02d} with a long name" for i in range(12)]
    df = pd.DataFrame([(a, b, 0.5, 10) for a in names for b in names if a < b], columns=["a", "b", "kappa", "n"])
    spec = spec_of(lead_charts.kappa_heatmap(df))
    rect = next(u for u in units(spec) if u["mark"]["type"] == "rect")
    for channel in ("x", "y"):
        axis = rect["encoding"][channel]["axis"]
        assert axis["labelOverlap"] is False and axis["labelLimit"] == 0


def test_alpha_trend_with_week_labels_uses_an_ordinal_axis() -> None:
    df = pd.DataFrame({"week": ["2024-W01", "2024-W02"], "alpha_nominal": [0.5, -0.2], "alpha_ordinal": [0.6, 0.1]})
    spec = spec_of(lead_charts.alpha_trend_chart(df))
    line = next(u for u in units(spec) if u["mark"]["type"] == "line")
    assert line["encoding"]["x"]["type"] == "ordinal"
    assert line["encoding"]["y"]["scale"]["domain"][0] == pytest.approx(-0.2)
    assert "area" not in mark_types(spec)


def test_per_labeler_bars_are_normalised_and_carry_extra_columns() -> None:
    spec = sample_spec("per_labeler")
    enc = spec["encoding"]
    assert enc["x"]["stack"] == "normalize" and enc["color"]["field"] == "value"
    assert "n_labels" in tooltip_fields(spec)
    assert {(r["labeler"], r["value"]): r["share"] for r in rows(spec)}[("ben", "Fail")] == 0.2


def test_pair_confusion_accepts_a_crosstab_or_long_frame() -> None:
    a = ["Pass", "Pass", "Fail", "SemiPass"]
    b = ["Pass", "SemiPass", "Fail", "SemiPass"]
    wide = pd.crosstab(pd.Series(a, name="a"), pd.Series(b, name="b"))
    long = pd.DataFrame({"a_value": a, "b_value": b, "count": 1})
    cells = []
    for df in (wide, long):
        spec = spec_of(lead_charts.pair_confusion_chart(df))
        rect = next(u for u in units(spec) if u["mark"]["type"] == "rect")
        cells.append({(r["r"], r["c"]): r["count"] for r in unit_rows(spec, rect)})
    assert cells[0] == cells[1] and cells[0][("Pass", "SemiPass")] == 1 and len(cells[0]) == 9


def _panel_specs() -> dict[str, Any]:
    parts = {
        "spectrum": charts.spectrum_parts(spectrum_data()),
        "light_curve": charts.light_curve_parts(light_curve_df()),
        "heatmap": charts.heatmap_parts(heatmap_df(), "tsys_k"),
        "context": charts.context_parts(context_df()),
    }
    return {kind: p.spec() for kind, p in parts.items() if p is not None}


def _panel_layout(panel: dict[str, Any]) -> list[list[list[dict[str, Any]]]]:
    """Rows of columns of stacked charts."""
    return [[col["vconcat"] if "vconcat" in col else [col] for col in row["hconcat"]] for row in panel["vconcat"]]


def test_review_panel_is_one_view_with_each_chart_on_its_own_data_and_scales() -> None:
    specs = _panel_specs()
    before = {k: {kk: vv for kk, vv in v.items() if kk != "datasets"} for k, v in specs.items()}
    panel = charts.review_panel(specs)
    assert panel is not None
    layout = _panel_layout(panel)
    order = ("heatmap", "spectrum", "light_curve", "context")
    # Heatmap beside spectrum-over-flux-history (above the fold), the context rows below.
    assert [[[sub["data"]["name"] for sub in col] for col in row] for row in layout] == [
        [[f"{charts.REVIEW_DATA}_heatmap"], [f"{charts.REVIEW_DATA}_spectrum", f"{charts.REVIEW_DATA}_light_curve"]],
        [[f"{charts.REVIEW_DATA}_context"]],
    ]
    subs = [sub for row in layout for col in row for sub in col]
    names = [sub["data"]["name"] for sub in subs]
    for kind, name in zip(order, names):
        assert panel["datasets"][name] is specs[kind]["datasets"][charts.REVIEW_DATA]
    assert [sub["title"] for sub in subs] == [specs[k]["title"] for k in order]
    # Each level resolves colour independently: a shared scale would paint the QA0 classes with spw colours.
    stacks = [c for row in panel["vconcat"] for c in row["hconcat"] if "vconcat" in c]
    for level in (panel, *panel["vconcat"], *stacks):
        assert level["resolve"]["scale"]["color"] == "independent"
        assert level["resolve"]["scale"]["stroke"] == "independent"
    assert all(sub.get("width") == charts.PANEL_CHART_WIDTH for sub in subs[:3])
    assert "width" not in subs[3], "the faceted context chart keeps its cell width"
    assert not any("$schema" in sub or "config" in sub for sub in subs)
    after = {k: {kk: vv for kk, vv in v.items() if kk != "datasets"} for k, v in specs.items()}
    assert after == before, "the cached templates are not modified"
    # A valid Vega-Lite document (the Arrow bytes stand in as empty JSON datasets for the schema check).
    alt.VConcatChart.from_dict({**panel, "datasets": {n: [] for n in names}}, validate=True)


def test_review_panel_leaves_out_charts_without_data() -> None:
    specs = _panel_specs()
    panel = charts.review_panel({**specs, "spectrum": None, "heatmap": None})
    assert panel is not None
    assert [[[sub["data"]["name"] for sub in col] for col in row] for row in _panel_layout(panel)] == [
        [[f"{charts.REVIEW_DATA}_light_curve"]],
        [[f"{charts.REVIEW_DATA}_context"]],
    ]
    assert set(panel["datasets"]) == {f"{charts.REVIEW_DATA}_light_curve", f"{charts.REVIEW_DATA}_context"}
    assert charts.review_panel({"spectrum": None, "light_curve": None}) is None


@pytest.mark.parametrize(("metric", "dead_or_hot", "held_at"), [("tsys_k", 4.0, 1.5), ("amplitude", 0.05, 0.5)])
def test_one_bad_antenna_does_not_take_the_whole_colour_scale(metric: str, dead_or_hot: float, held_at: float) -> None:
    df = heatmap_df(antennas=("DA41", "DA42", "DA43", "DA44", "DV01"))
    df["value"] = 60.0 + df["scan"]  # 61-63: the normal spread
    df.loc[df["antenna"] == "DV01", "value"] = 62.0 * dead_or_hot
    spec = spec_of(charts.heatmap_chart(df, metric))
    rect = next(u for u in units_of(spec, "rect") if u["mark"].get("filled") is not False)
    rows = visible_rows(spec, rect)
    shades = {r["antenna"]: r["shade"] for r in rows if r["antenna"] == "DV01"}
    assert shades == {"DV01": pytest.approx(62.0 * held_at)}  # held at the AoD limit ...
    assert {r["value"] for r in rows if r["antenna"] == "DV01"} == {62.0 * dead_or_hot}  # ... the tooltip is not
    assert sorted({r["shade"] for r in rows if r["antenna"] != "DV01"}) == [61.0, 62.0, 63.0]
