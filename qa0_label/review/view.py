"""Data behind the AoD review view: one EB from the database as plain dicts and DataFrames (no Streamlit).

Every function is keyword-only, reads through the caller's session, and costs a few small indexed queries
(context() caches its labelled sample until labels or EBs change), so the label page can call all of them
for every EB it shows. Nothing here reveals the current EB's own labels: overlap reviews stay blind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Integer, Select, String, bindparam, func, type_coerce
from sqlalchemy import select as sa_select
from sqlmodel import Session

from qa0_label.review import checks, limits
from qa0_label.review.rows import EBNotFound
from qa0_label.review.rows import frame as frame_rows
from qa0_label.store import labels
from qa0_label.store.models import EB_FIELDS, EBDetail, ExecutionBlock, table_of

HEADER_FIELDS: tuple[str, ...] = EB_FIELDS

HEATMAP_METRICS: tuple[str, ...] = ("tsys_k", "amplitude", "phase_deg", "bp_ripple_db")
"""EBDetail columns the antenna x scan heatmap can show."""


GRID_SOURCE_ALPHA: dict[str, float] = {
    "J1256-0547": -0.55,
    "J0319+4130": -0.68,
    "J2253+1608": -0.68,
    "J1229+0203": -0.92,
    "J1924-2914": -0.59,
    "J0522-3627": -0.24,
    "J1058+0133": -0.57,
    "J0854+2006": -0.47,
    "J2258-2758": -0.62,
    "J0423-0120": -0.52,
    "J1427-4206": -0.60,
    "J1751+0939": -0.46,
    "J1337-1257": -0.55,
    "J1517-2422": -0.32,
    "J0538-4405": -0.53,
    "J0006-0623": -0.66,
    "J1107-4449": -0.73,
    "J1550+0527": -0.81,
}
"""Spectral index between 97.5 and 343.5 GHz from the catalogue's 60-day medians (DOMAIN.md)."""

DEFAULT_ALPHA = -0.6
"""Typical grid quasar spectral index when neither the database nor the table knows the source."""
DEFAULT_ALPHA_SCATTER = 0.1
"""Uncertainty of the extrapolating spectral index when the source's history cannot tell it."""
MIN_HISTORY_FOR_ALPHA = 3
"""Other EBs of a source needed before their mean spectral index replaces the catalogue table."""
FIT_SAMPLES = 60

# --- prebuilt statements (the label page runs them for every EB it shows) ---------------------------------

_EB = table_of(ExecutionBlock)
_OTHER = _EB.alias("o")  # the source's other EBs, for its typical spectral index
_DET = table_of(EBDetail)
_TIME_TYPE = _EB.c.start_time.type
_ID = bindparam("id", type_=Integer())

_Q_EB = sa_select(_EB.c.id.label("eb_id"), *(_EB.c[c] for c in HEADER_FIELDS)).where(_EB.c.id == _ID)


def _history(expr: Any) -> Any:
    """EXPR over the EB's source's other EBs with a plausible spectral index (correlated to the outer EB)."""
    lo, hi = limits.SPECTRAL_INDEX_RANGE
    return (
        sa_select(expr)
        .where(
            _OTHER.c.source == _EB.c.source,
            _OTHER.c.id != _EB.c.id,
            _OTHER.c.spectral_index.between(float(lo), float(hi)),
        )
        .scalar_subquery()
    )


_Q_EB_WITH_HISTORY = _Q_EB.add_columns(
    _history(func.avg(_OTHER.c.spectral_index)).label("hist_alpha"),
    _history(func.avg(_OTHER.c.spectral_index * _OTHER.c.spectral_index)).label("hist_alpha2"),
    _history(func.count(_OTHER.c.spectral_index)).label("hist_n"),
)
_Q_SPW_FLUX = (
    sa_select(
        _DET.c.spw,
        func.avg(_DET.c.freq_ghz),
        func.avg(_DET.c.amplitude),
        func.avg(_DET.c.amplitude * _DET.c.amplitude),
        func.count(_DET.c.amplitude),
    )
    .where(_DET.c.eb_id == _ID, ~_DET.c.flagged, _DET.c.amplitude.is_not(None))
    .group_by(_DET.c.spw)
    .order_by(_DET.c.spw)
)
_Q_LIGHT_CURVE = (
    sa_select(
        _EB.c.id,
        _EB.c.uid,
        _EB.c.start_time,
        _EB.c.freq_ghz,
        _EB.c.flux_jy,
        _EB.c.flux_err_jy,
        _EB.c.expected_flux_jy,
        _EB.c.expected_flux_err_jy,
    )
    .where(
        _EB.c.source == bindparam("source", type_=String()),
        _EB.c.band == bindparam("band", type_=Integer()),
        _EB.c.start_time >= bindparam("t0", type_=_TIME_TYPE),
        _EB.c.start_time <= bindparam("t1", type_=_TIME_TYPE),
    )
    .order_by(_EB.c.start_time, _EB.c.id)
)


@cache
def _details_stmt(columns: tuple[str, ...]) -> Select[Any]:
    """SELECT COLUMNS of one EB's detail rows, built once per column set (the header's and each heatmap's)."""
    # flagged as the driver returns it (0/1 on SQLite): _details converts the column once, where SQLAlchemy's
    # per-row bool conversion cost ~0.3 ms of a ~2.3 ms read of 1,500 rows.
    return sa_select(*(type_coerce(_DET.c[c], Integer) if c == "flagged" else _DET.c[c] for c in columns)).where(
        _DET.c.eb_id == _ID
    )


# --- small helpers ---------------------------------------------------------------------------------


def _utc(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite and timestamp-without-zone columns return naive ones)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _json_dict(value: Any) -> dict[str, Any]:
    # The JSON column comes back parsed; text (a hand-written row) is parsed here, anything else is no extras.
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


def _eb_row(session: Session, eb_id: int, stmt: Select[Any] = _Q_EB) -> dict[str, Any]:
    row = session.connection().execute(stmt, {"id": int(eb_id)}).mappings().first()
    if row is None:
        raise EBNotFound(f"no EB with id {eb_id}")
    return dict(row)


def _details(session: Session, eb_id: int, columns: Sequence[str]) -> pd.DataFrame:
    rows = session.connection().execute(_details_stmt(tuple(columns)), {"id": int(eb_id)}).fetchall()
    frame = frame_rows(rows, columns)
    for col in ("spw", "scan"):
        if col in frame:
            frame[col] = frame[col].astype("int64")
    if "antenna" in frame:
        frame["antenna"] = frame["antenna"].astype(str)
    if "flagged" in frame:
        frame["flagged"] = frame["flagged"].fillna(0).astype(bool)
    return frame


# --- header ----------------------------------------------------------------------------------------

# The detail summaries live in checks.py (with the warnings); re-exported here for callers of view.
tsys_outliers = checks.tsys_outliers
tsys_spikes = checks.tsys_spikes
amplitude_outliers = checks.amplitude_outliers
phase_jumps = checks.phase_jumps
bandpass_ripple = checks.bandpass_ripple


def eb_header(*, session: Session, eb_id: int) -> dict[str, Any]:
    """Everything the review form shows about one EB, plus warnings for metrics outside limits.py.

    Keys: eb_id, uid (as stored), sb_name, project, source, band (int), band_name ("Band 3"), freq_ghz
    (representative frequency, GHz; the spw mean or band centre when the EB has none), start_time (aware UTC),
    array, n_antennas, pwv_mm, pwv_limit_mm, elevation_deg, exec_fraction, duration_s, tsys_median_k,
    tsys_expected_k and tsys_vs_expected (median Tsys / what band, PWV and elevation predict),
    phase_rms_deg with phase_rms_warn_deg / phase_rms_bad_deg (this band and array's limits),
    flagged_fraction, flux_jy, flux_err_jy, expected_flux_jy, expected_flux_err_jy, flux_deviation_sigma,
    spectral_index, spectral_index_err, extra (dict of imported numeric columns), n_spw, n_scans,
    n_detail_antennas, the detail summaries tsys_outliers {antenna: Tsys / array median}, tsys_spikes
    {scan: Tsys / median scan}, amplitude_outliers {antenna: amplitude / array median}, phase_jumps
    {antenna: deg}, bp_ripple {spw: median dB}; then the warnings (checks.evaluate, the one home): warning_list
    [{field, level, text}], warnings {key: message} and warning_levels {key: "warn" | "bad"}, keyed as
    limits.find_problems documents. Missing numbers are None. Raises EBNotFound for an unknown id.
    """
    head = _eb_row(session, eb_id)
    det = _details(session, eb_id, list(checks.DETAIL_COLUMNS))
    for key in HEADER_FIELDS:
        if key not in ("uid", "sb_name", "project", "source", "array", "start_time", "extra", "band"):
            head[key] = _float(head[key])
    head["n_antennas"] = int(head["n_antennas"]) if head["n_antennas"] is not None else None
    head["band"] = int(head["band"])
    head["band_name"] = limits.band_name(head["band"])
    head["start_time"] = _utc(head["start_time"])
    head["extra"] = _json_dict(head["extra"])
    return checks.evaluate(head, det)


# --- spectrum --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpectrumData:
    """Per-spw fluxes of one EB, the power law fitted to them, and the catalogue expectation.

    spw: DataFrame[spw, freq_ghz, flux_jy, flux_err_jy, n] (mean unflagged amplitude, standard error, rows used);
    fit: DataFrame[freq_ghz, flux_jy] sampled over the band (empty when fewer than 2 usable spws);
    alpha, alpha_err: fitted spectral index (None without a fit); freq0_ghz, s0_jy: the fit's reference point;
    expected: DataFrame[freq_ghz, flux_jy, low, high] over the band (empty when the EB has no expected flux);
    expected_alpha, expected_alpha_err: the source's typical index used for the extrapolation.
    """

    spw: pd.DataFrame
    fit: pd.DataFrame
    alpha: float | None
    alpha_err: float | None
    expected: pd.DataFrame
    freq0_ghz: float | None = None
    s0_jy: float | None = None
    expected_alpha: float | None = None
    expected_alpha_err: float | None = None
    band: int | None = None
    band_edges_ghz: tuple[float, float] | None = None


def fit_power_law(
    freq_ghz: Sequence[float],
    flux_jy: Sequence[float],
    flux_err_jy: Sequence[float] | None = None,
    *,
    freq0_ghz: float | None = None,
) -> tuple[float, float, float | None, float]:
    """Weighted least squares of ln S = ln S0 + alpha ln(nu/nu0); returns (S0, alpha, alpha_err, nu0).

    Points with non-positive flux or frequency are ignored. Errors become weights in log space (sigma/S);
    with missing or zero errors all points weigh the same. alpha_err is scaled by sqrt(reduced chi^2) when
    the scatter exceeds the errors, and is None with only two points and no errors. Raises ValueError when
    fewer than two distinct frequencies remain.
    """
    nu = np.asarray(freq_ghz, dtype=float)
    s = np.asarray(flux_jy, dtype=float)
    err = np.asarray(flux_err_jy, dtype=float) if flux_err_jy is not None else np.full_like(s, np.nan)
    ok = np.isfinite(nu) & np.isfinite(s) & (nu > 0) & (s > 0)
    nu, s, err = nu[ok], s[ok], err[ok]
    if nu.size < 2 or np.ptp(nu) <= 0:
        raise ValueError("a power-law fit needs at least two distinct frequencies with positive flux")
    nu0 = float(freq0_ghz) if freq0_ghz and freq0_ghz > 0 else float(np.exp(np.mean(np.log(nu))))
    x = np.log(nu / nu0)
    y = np.log(s)
    sig = err / s
    have_errors = bool(np.all(np.isfinite(sig) & (sig > 0)))
    w = 1.0 / sig**2 if have_errors else np.ones_like(x)
    sw, sx, sy = w.sum(), (w * x).sum(), (w * y).sum()
    sxx, sxy = (w * x * x).sum(), (w * x * y).sum()
    det = sw * sxx - sx * sx
    alpha = (sw * sxy - sx * sy) / det
    ln_s0 = (sxx * sy - sx * sxy) / det
    dof = nu.size - 2
    chi2 = float((w * (y - ln_s0 - alpha * x) ** 2).sum())
    if have_errors:
        var = sw / det
        if dof > 0:
            var *= max(1.0, chi2 / dof)
        alpha_err: float | None = math.sqrt(var)
    elif dof > 0:
        alpha_err = math.sqrt(chi2 / dof * sw / det)
    else:
        alpha_err = None
    return float(math.exp(ln_s0)), float(alpha), alpha_err, nu0


def _band_grid(band: int | None, freqs: np.ndarray) -> tuple[np.ndarray, tuple[float, float] | None]:
    edges = limits.BAND_EDGES_GHZ.get(int(band)) if band is not None else None
    if edges is not None:
        lo, hi = edges
        # Keep the spw points inside the drawn range even for odd imported frequencies.
        if freqs.size:
            lo, hi = min(lo, float(freqs.min())), max(hi, float(freqs.max()))
    elif freqs.size:
        lo, hi = float(freqs.min()) * 0.95, float(freqs.max()) * 1.05
    else:
        return np.array([]), None
    return np.linspace(lo, hi, FIT_SAMPLES), edges


def spectrum(*, session: Session, eb_id: int) -> SpectrumData:
    """Per-spw flux of one EB, its fitted power law, and the catalogue-expected flux over the band.

    The expected curve is the EB's expected_flux_jy (+- expected_flux_err_jy) at its freq_ghz, extrapolated
    with the source's typical spectral index: the mean over the source's other EBs when there are at least
    MIN_HISTORY_FOR_ALPHA, else GRID_SOURCE_ALPHA, else DEFAULT_ALPHA. The band widens away from freq_ghz by
    the index's scatter. Raises EBNotFound for an unknown id.
    """
    head = _eb_row(session, eb_id, _Q_EB_WITH_HISTORY)
    rows = session.connection().execute(_Q_SPW_FLUX, {"id": int(eb_id)}).fetchall()
    spw = pd.DataFrame(rows, columns=["spw", "freq_ghz", "flux_jy", "mean_sq", "n"])
    spw = spw.astype({"freq_ghz": float, "flux_jy": float, "mean_sq": float, "n": int})
    n = spw["n"].to_numpy(dtype=float)
    var = (spw["mean_sq"] - spw["flux_jy"] ** 2).clip(lower=0.0).to_numpy() * n / np.maximum(n - 1.0, 1.0)
    spw["flux_err_jy"] = np.where(n > 1, np.sqrt(var / np.maximum(n, 1.0)), np.nan)
    spw = spw[["spw", "freq_ghz", "flux_jy", "flux_err_jy", "n"]]

    band = int(head["band"]) if head["band"] is not None else None
    eb_freq = _float(head["freq_ghz"])
    usable = spw.dropna(subset=["freq_ghz", "flux_jy"])
    grid, edges = _band_grid(band, usable["freq_ghz"].to_numpy())
    if grid.size == 0 and eb_freq:
        grid, edges = _band_grid(None, np.array([eb_freq]))

    alpha = alpha_err = s0 = nu0 = None
    fit = pd.DataFrame(columns=["freq_ghz", "flux_jy"], dtype=float)
    try:
        s0, alpha, alpha_err, nu0 = fit_power_law(
            usable["freq_ghz"], usable["flux_jy"], usable["flux_err_jy"], freq0_ghz=eb_freq
        )
        fit = pd.DataFrame({"freq_ghz": grid, "flux_jy": s0 * (grid / nu0) ** alpha})
    except ValueError:
        pass

    hist_n = int(head["hist_n"] or 0)
    if hist_n >= MIN_HISTORY_FOR_ALPHA:
        exp_alpha = float(head["hist_alpha"])
        spread = float(head["hist_alpha2"]) - exp_alpha**2
        exp_alpha_err = math.sqrt(max(spread, 0.0) * hist_n / (hist_n - 1)) or DEFAULT_ALPHA_SCATTER
    else:
        exp_alpha = GRID_SOURCE_ALPHA.get(str(head["source"]), DEFAULT_ALPHA)
        exp_alpha_err = DEFAULT_ALPHA_SCATTER
    expected = pd.DataFrame(columns=["freq_ghz", "flux_jy", "low", "high"], dtype=float)
    exp_flux = _float(head["expected_flux_jy"])
    ref_freq = eb_freq or nu0
    if exp_flux is not None and exp_flux > 0 and ref_freq and grid.size:
        rel0 = (_float(head["expected_flux_err_jy"]) or 0.0) / exp_flux
        curve = exp_flux * (grid / ref_freq) ** exp_alpha
        rel = np.sqrt(rel0**2 + (exp_alpha_err * np.log(grid / ref_freq)) ** 2)
        expected = pd.DataFrame(
            {
                "freq_ghz": grid,
                "flux_jy": curve,
                "low": np.clip(curve * (1 - rel), 0.0, None),
                "high": curve * (1 + rel),
            }
        )
    return SpectrumData(
        spw=spw.reset_index(drop=True),
        fit=fit,
        alpha=alpha,
        alpha_err=alpha_err,
        expected=expected,
        freq0_ghz=nu0,
        s0_jy=s0,
        expected_alpha=exp_alpha,
        expected_alpha_err=exp_alpha_err,
        band=band,
        band_edges_ghz=edges,
    )


# --- light curve -----------------------------------------------------------------------------------

LIGHT_CURVE_COLUMNS: tuple[str, ...] = (
    "eb_id",
    "uid",
    "start_time",
    "freq_ghz",
    "flux_jy",
    "flux_err_jy",
    "expected_flux_jy",
    "low",
    "high",
    "is_current",
    "label",
    "series",
)

LIGHT_CURVE_SERIES: tuple[str, ...] = ("catalogue", "other", "this EB")
"""catalogue: consensus Pass, the measurements that go into the Calibrator Source Catalogue; other: unlabelled,
SemiPass or Fail (not catalogue quality); this EB: the EB under review (its own label is never shown)."""


LIGHT_CURVE_MAX_POINTS = 150
"""At most this many EBs in a light curve (the nearest in time to the EB): a 100k pool's busiest source has
over a thousand in a year, and drawing them cost the browser more than the rest of the review view."""


def light_curve(
    *, session: Session, eb_id: int, days: int = 365, max_points: int = LIGHT_CURVE_MAX_POINTS
) -> pd.DataFrame:
    """Flux history of this EB's source in this band, from DAYS before to DAYS after the EB (at most
    MAX_POINTS EBs: the run of that many, in time order, centred on this EB).

    Returns DataFrame[eb_id, uid, start_time (aware UTC), freq_ghz, flux_jy, flux_err_jy, expected_flux_jy,
    low, high, is_current, label, series] sorted by time; low/high = expected_flux_jy -+ expected_flux_err_jy (NaN
    when unknown) draw the expected band. label is the consensus QA0 of each other EB, or "unlabelled"; the
    current EB's label is always "this EB" so an overlap review stays blind. series (LIGHT_CURVE_SERIES)
    separates the catalogue-quality Pass measurements from the rest. Raises EBNotFound.
    """
    head = _eb_row(session, eb_id)
    start = _utc(head["start_time"])
    assert start is not None
    window = timedelta(days=max(int(days), 0))
    params = {"source": head["source"], "band": int(head["band"]), "t0": start - window, "t1": start + window}
    rows = session.connection().execute(_Q_LIGHT_CURVE, params).fetchall()
    frame = frame_rows(
        rows,
        ["eb_id", "uid", "start_time", "freq_ghz", "flux_jy", "flux_err_jy", "expected_flux_jy", "exp_err"],
        text_columns=("uid", "start_time"),
    )
    if frame.empty:
        return pd.DataFrame(columns=list(LIGHT_CURVE_COLUMNS))
    if len(frame) > max_points > 0:
        here = int(np.flatnonzero(frame["eb_id"].to_numpy() == int(eb_id))[0])
        first = min(max(here - max_points // 2, 0), len(frame) - max_points)
        frame = frame.iloc[first : first + max_points].reset_index(drop=True)
    labels_by_eb = labels.consensus_of(session, frame["eb_id"].astype(int))
    frame["eb_id"] = frame["eb_id"].astype("int64")
    frame["uid"] = frame["uid"].astype(str)
    frame["start_time"] = pd.to_datetime([_utc(t) for t in frame["start_time"]], utc=True)
    frame["low"] = frame["expected_flux_jy"] - frame["exp_err"]
    frame["high"] = frame["expected_flux_jy"] + frame["exp_err"]
    frame["is_current"] = frame["eb_id"] == int(eb_id)
    frame["label"] = [labels_by_eb.get(int(e), "unlabelled") for e in frame["eb_id"]]
    frame.loc[frame["is_current"], "label"] = "this EB"
    frame["series"] = np.where(frame["is_current"], "this EB", np.where(frame["label"] == "Pass", "catalogue", "other"))
    return frame[list(LIGHT_CURVE_COLUMNS)].reset_index(drop=True)


# --- heatmap ---------------------------------------------------------------------------------------


def _circular_mean_deg(values: pd.Series) -> float:
    rad = np.radians(values.dropna().to_numpy(dtype=float))
    if rad.size == 0:
        return float("nan")
    return float(np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())))


def heatmap(*, session: Session, eb_id: int, metric: str, by_spw: bool = False) -> pd.DataFrame:
    """One value per antenna x scan (x spw when BY_SPW) of an EBDetail metric, so a bad antenna or scan stands out.

    METRIC is one of HEATMAP_METRICS (ValueError otherwise). Over spws the value is the median (tsys_k,
    amplitude, bp_ripple_db) or the circular mean (phase_deg, which wraps at +-180). All rows count, flagged
    or not: the AoD needs to see what was flagged. Returns DataFrame[antenna, scan, (spw,) value, vs_array,
    n, flagged_fraction] sorted by antenna name then scan; vs_array is value / the scan's median over antennas
    (for phase: value - that median, in deg). Empty (same columns) when the EB has no detail rows.
    """
    if metric not in HEATMAP_METRICS:
        raise ValueError(f"unknown heatmap metric {metric!r}; expected one of {', '.join(HEATMAP_METRICS)}")
    det = _details(session, eb_id, ["antenna", "scan", "spw", metric, "flagged"]).rename(columns={metric: "value"})
    keys = ["antenna", "scan", "spw"] if by_spw else ["antenna", "scan"]
    out_cols = [*keys, "value", "vs_array", "n", "flagged_fraction"]
    if det.empty:
        return pd.DataFrame(columns=out_cols)
    det["flagged"] = det["flagged"].astype(float)
    grouped = det.groupby(keys, sort=True)
    if metric == "phase_deg":
        value = grouped["value"].apply(_circular_mean_deg)
    else:
        value = grouped["value"].median()
    out = pd.DataFrame(
        {"value": value, "n": grouped.size(), "flagged_fraction": grouped["flagged"].mean()}
    ).reset_index()
    ref_keys = ["scan", "spw"] if by_spw else ["scan"]
    if metric == "phase_deg":
        ref = out.groupby(ref_keys)["value"].transform("median")
        out["vs_array"] = (out["value"] - ref + 180.0) % 360.0 - 180.0
    else:
        ref = out.groupby(ref_keys)["value"].transform("median")
        out["vs_array"] = out["value"] / ref.where(ref != 0)
    out["antenna"] = out["antenna"].astype(str)
    return out.sort_values([*keys], ignore_index=True)[out_cols]


HEATMAP_OUTLIER_RULES: dict[str, str] = {
    "tsys_k": f"Tsys > {limits.TSYS_OUTLIER_RATIO:g} x array median",
    "amplitude": f"amplitude < {limits.AMPLITUDE_LOW_RATIO:g} x array median",
    "phase_deg": f"phase off the array by > {limits.PHASE_JUMP_DEG:g} deg",
}
"""What makes an antenna stand out on the heatmap of each metric (the AoD limits of review.limits)."""


def heatmap_outliers(frame: pd.DataFrame, metric: str, top: int = 5) -> list[str]:
    """The antennas of a heatmap frame (review.heatmap output) past the AoD limit for METRIC, worst first (at most TOP).

    Tsys: median over scans of Tsys / array median above TSYS_OUTLIER_RATIO; amplitude: below
    AMPLITUDE_LOW_RATIO; phase: two or more scans further than PHASE_JUMP_DEG from the array.
    """
    if frame.empty or "vs_array" not in frame or metric not in HEATMAP_OUTLIER_RULES:
        return []
    ratio = pd.to_numeric(frame["vs_array"], errors="coerce")
    by_ant = ratio.groupby(frame["antenna"].astype(str))
    if metric == "tsys_k":
        score = by_ant.median()
        worst = score[score > limits.TSYS_OUTLIER_RATIO].sort_values(ascending=False)
    elif metric == "amplitude":
        score = by_ant.median()
        worst = score[score < limits.AMPLITUDE_LOW_RATIO].sort_values()
    else:
        far = (ratio.abs() > limits.PHASE_JUMP_DEG).groupby(frame["antenna"].astype(str)).sum()
        worst = far[far >= 2].sort_values(ascending=False)
    return [str(a) for a in worst.index[:top]]


# --- context among labelled EBs: review/context.py (re-exported for callers of view) --------------------

from qa0_label.review.context import (  # noqa: E402
    CONTEXT_CACHE_SIZE,
    CONTEXT_CAP_PER_CLASS,
    CONTEXT_GROUPS,
    CONTEXT_METRICS,
    CONTEXT_QUANTILES,
    DEFAULT_CONTEXT_METRICS,
    SUMMARY_COLUMNS,
    context,
    context_summary,
    summarise_context,
)

__all__ = [
    "CONTEXT_CACHE_SIZE",
    "CONTEXT_CAP_PER_CLASS",
    "CONTEXT_GROUPS",
    "CONTEXT_METRICS",
    "CONTEXT_QUANTILES",
    "DEFAULT_CONTEXT_METRICS",
    "SUMMARY_COLUMNS",
    "EBNotFound",
    "amplitude_outliers",
    "bandpass_ripple",
    "context",
    "context_summary",
    "eb_header",
    "fit_power_law",
    "heatmap",
    "light_curve",
    "phase_jumps",
    "spectrum",
    "summarise_context",
    "tsys_outliers",
    "tsys_spikes",
]
