"""Data behind the AoD review view: one EB from the database as plain dicts and DataFrames (no Streamlit).

Every function is keyword-only, reads through the caller's session, and costs a few small indexed queries
(context() caches its labelled sample until labels or EBs change), so the label page can call all of them
for every EB it shows. Nothing here reveals the current EB's own labels: overlap reviews stay blind.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, bindparam, func, literal_column, text
from sqlalchemy import select as sa_select
from sqlmodel import Session

from qa0_label.review import limits
from qa0_label.store import labels
from qa0_label.store.models import CAUTION_ORDER, ExecutionBlock

HEADER_FIELDS: tuple[str, ...] = (
    "uid",
    "sb_name",
    "project",
    "source",
    "band",
    "array",
    "start_time",
    "duration_s",
    "n_antennas",
    "pwv_mm",
    "elevation_deg",
    "tsys_median_k",
    "phase_rms_deg",
    "flagged_fraction",
    "exec_fraction",
    "freq_ghz",
    "flux_jy",
    "flux_err_jy",
    "spectral_index",
    "spectral_index_err",
    "expected_flux_jy",
    "expected_flux_err_jy",
    "extra",
)

HEATMAP_METRICS: tuple[str, ...] = ("tsys_k", "amplitude", "phase_deg", "bp_ripple_db")
"""EBDetail columns the antenna x scan heatmap can show."""

CONTEXT_METRICS: dict[str, str] = {
    "pwv_mm": "e.pwv_mm",
    "pwv_over_limit": "e.pwv_mm",  # divided by the band's limit in Python
    "elevation_deg": "e.elevation_deg",
    "n_antennas": "e.n_antennas",
    "exec_fraction": "e.exec_fraction",
    "tsys_median_k": "e.tsys_median_k",
    "phase_rms_deg": "e.phase_rms_deg",
    "flagged_fraction": "e.flagged_fraction",
    "spectral_index": "e.spectral_index",
    "duration_s": "e.duration_s",
    "flux_deviation_sigma": "NULL",  # from the four flux columns in Python
    "flux_ratio": "NULL",  # measured / expected flux
}
"""Metrics context() can place among labelled EBs (name -> SQL expression over execution_block e)."""

DEFAULT_CONTEXT_METRICS: tuple[str, ...] = (
    "pwv_over_limit",
    "elevation_deg",
    "phase_rms_deg",
    "flagged_fraction",
    "exec_fraction",
    "flux_deviation_sigma",
)
"""Band-independent metrics (PWV relative to the band's limit), so EBs of all bands can be compared."""

CONTEXT_GROUPS: tuple[str, ...] = ("this EB", "Pass", "SemiPass", "Fail")

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
CONTEXT_CAP_PER_CLASS = 2000
FIT_SAMPLES = 60

_TIME_TYPE = ExecutionBlock.__table__.c.start_time.type  # type: ignore[attr-defined]


class EBNotFound(LookupError):
    """No EB with the requested id."""


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


def _frame(
    rows: Sequence[Sequence[Any]], columns: Sequence[str], text_columns: Sequence[str] = ("antenna",)
) -> pd.DataFrame:
    """DataFrame from result rows, column-wise (pandas' row-object path is ~20x slower for 1,500 rows)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = {}
    for name, values in zip(columns, zip(*rows)):
        try:
            # None becomes NaN; text raises and stays object.
            out[name] = np.array(values, dtype=float) if name not in text_columns else np.asarray(values, dtype=object)
        except (TypeError, ValueError):
            out[name] = np.asarray(values, dtype=object)
    return pd.DataFrame(out)


def _json_dict(value: Any) -> dict[str, Any]:
    # A raw SELECT returns SQLite's JSON column as text and PostgreSQL's as a parsed object.
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


def _eb_row(session: Session, eb_id: int, extra_sql: str = "") -> dict[str, Any]:
    cols = ", ".join(f"e.{c}" for c in HEADER_FIELDS)
    row = (
        session.connection()
        .execute(
            text(f"SELECT e.id AS eb_id, {cols}{extra_sql} FROM execution_block e WHERE e.id = :id"), {"id": int(eb_id)}
        )
        .mappings()
        .first()
    )
    if row is None:
        raise EBNotFound(f"no EB with id {eb_id}")
    return dict(row)


def _details(session: Session, eb_id: int, columns: Sequence[str]) -> pd.DataFrame:
    cols = ", ".join(columns)
    rows = (
        session.connection()
        .execute(text(f"SELECT {cols} FROM eb_detail WHERE eb_id = :id"), {"id": int(eb_id)})
        .fetchall()
    )
    frame = _frame(rows, columns)
    for col in ("spw", "scan"):
        if col in frame:
            frame[col] = frame[col].astype("int64")
    if "antenna" in frame:
        frame["antenna"] = frame["antenna"].astype(str)
    if "flagged" in frame:
        frame["flagged"] = frame["flagged"].fillna(0).astype(bool)
    return frame


# --- header ----------------------------------------------------------------------------------------


def _group_median(codes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of VALUES per integer code (NaN values ignored): (codes present, medians), in code order."""
    ok = ~np.isnan(values)
    codes, values = codes[ok], values[ok]
    if codes.size == 0:
        return codes, values
    order = np.lexsort((values, codes))
    codes, values = codes[order], values[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, codes.size])
    med = 0.5 * (values[starts + (counts - 1) // 2] + values[starts + counts // 2])
    return codes[starts], med


def _per_spw_ratio(details: pd.DataFrame, column: str, by: str) -> pd.Series:
    """Median of COLUMN per (BY, spw) divided by the spw's median over BY values, then the median over spws.

    Each spw is compared with its own median because Tsys and flux change across the band. Plain numpy
    (sort once, pick the middle): the header runs this for every EB the page shows.
    """
    values = pd.to_numeric(details[column], errors="coerce").to_numpy(dtype=float)
    values = np.where(values > 0, values, np.nan)
    if np.isnan(values).all():
        return pd.Series(dtype=float)
    by_codes, by_names = pd.factorize(details[by], sort=True)
    spw_codes, spw_names = pd.factorize(details["spw"], sort=True)
    if len(by_names) < 3:
        return pd.Series(dtype=float)
    n_spw = max(len(spw_names), 1)
    cell, med = _group_median(by_codes.astype(np.int64) * n_spw + spw_codes, values)
    cell_by, cell_spw = cell // n_spw, cell % n_spw
    spw_present, spw_med = _group_median(cell_spw, med)
    ref = np.full(n_spw, np.nan)
    ref[spw_present] = spw_med
    ratio = med / ref[cell_spw]
    got, per_by = _group_median(cell_by, ratio)
    return pd.Series(per_by, index=np.asarray(by_names)[got])


def tsys_outliers(details: pd.DataFrame, ratio: float = limits.TSYS_OUTLIER_RATIO) -> dict[str, float]:
    """Antenna -> Tsys / array median for antennas above RATIO (worst first); DETAILS: antenna, spw, tsys_k."""
    ant = _per_spw_ratio(details, "tsys_k", "antenna")
    return {str(a): round(float(r), 2) for a, r in ant[ant > ratio].sort_values(ascending=False).items()}


def tsys_spikes(details: pd.DataFrame, ratio: float = limits.TSYS_SPIKE_RATIO) -> dict[int, float]:
    """Scan -> Tsys / median scan for scans above RATIO (the whole array hot at once); DETAILS: scan, spw, tsys_k."""
    scans = _per_spw_ratio(details, "tsys_k", "scan")
    return {int(k): round(float(r), 2) for k, r in scans[scans > ratio].sort_values(ascending=False).items()}


def amplitude_outliers(details: pd.DataFrame, low: float = limits.AMPLITUDE_LOW_RATIO) -> dict[str, float]:
    """Antenna -> amplitude / array median for antennas below LOW (dead or badly pointed); flagged rows count.

    DETAILS: antenna, spw, amplitude. Flagged rows are kept on purpose: a dead antenna that the online
    system flagged is still a dead antenna the AoD should know about.
    """
    ant = _per_spw_ratio(details, "amplitude", "antenna")
    return {str(a): round(float(r), 3) for a, r in ant[ant < low].sort_values().items()}


def phase_jumps(details: pd.DataFrame, min_jump_deg: float = limits.PHASE_JUMP_DEG) -> dict[str, float]:
    """Antenna -> size (deg) of a lasting phase step between scans, for steps above MIN_JUMP_DEG.

    DETAILS: antenna, scan, phase_deg (and flagged). Per antenna and scan the unflagged phases are averaged
    on the circle, the array's common phase of each scan is removed, and the step is the largest difference
    between the mean phase before and after a scan boundary with at least two scans on each side (so a
    single noisy scan is no jump).
    """
    phase = pd.to_numeric(details["phase_deg"], errors="coerce").to_numpy(dtype=float)
    ok = ~np.isnan(phase)
    if "flagged" in details:
        ok &= ~details["flagged"].to_numpy(dtype=bool)
    ant_codes, ant_names = pd.factorize(details["antenna"].to_numpy()[ok], sort=True)
    scan_codes, scan_names = pd.factorize(details["scan"].to_numpy()[ok], sort=True)
    n_ant, n_scan = len(ant_names), len(scan_names)
    if n_scan < 4 or n_ant < 3:
        return {}
    rad = np.radians(phase[ok])
    cell = ant_codes * n_scan + scan_codes
    size = n_ant * n_scan
    count = np.bincount(cell, minlength=size).reshape(n_ant, n_scan)
    zsum = (np.bincount(cell, np.cos(rad), size) + 1j * np.bincount(cell, np.sin(rad), size)).reshape(n_ant, n_scan)
    have = count > 0
    vals = np.where(have, zsum / np.maximum(count, 1), 0.0)  # antenna x scan mean phasor
    common = vals.sum(axis=0) / np.maximum(have.sum(axis=0), 1)
    # Remove the array's common phase of each scan (atmosphere, calibration) before looking for steps.
    filled = np.where(have, vals * np.conj(common / np.where(np.abs(common) > 0, np.abs(common), 1.0)), 0.0)
    csum, ccount = np.cumsum(filled, axis=1), np.cumsum(have, axis=1)
    total, tcount = csum[:, -1:], ccount[:, -1:]
    # Split after scan position k-1: mean phase before vs after, both sides with >= 2 scans.
    before, nb = csum[:, :-1], ccount[:, :-1]
    after, na = total - before, tcount - nb
    step = np.abs(np.degrees(np.angle(after * np.conj(before))))
    step = np.where((nb >= 2) & (na >= 2), step, 0.0)
    best = step.max(axis=1)
    out = {str(a): round(float(b), 1) for a, b in zip(ant_names, best) if b > min_jump_deg}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def bandpass_ripple(details: pd.DataFrame) -> dict[int, float]:
    """Spw -> median ripple (dB) over its unflagged antenna x scan rows; DETAILS: spw, bp_ripple_db, flagged.

    The median over the whole spw is what the SemiPass rule looks at: a spw-wide ripple, not one noisy
    autocorrelation.
    """
    ripple = pd.to_numeric(details["bp_ripple_db"], errors="coerce").to_numpy(dtype=float)
    if "flagged" in details:
        ripple = np.where(details["flagged"].to_numpy(dtype=bool), np.nan, ripple)
    codes, names = pd.factorize(details["spw"], sort=True)
    got, med = _group_median(codes.astype(np.int64), ripple)
    return {int(names[c]): round(float(v), 2) for c, v in zip(got, med)}


def eb_header(*, session: Session, eb_id: int) -> dict[str, Any]:
    """Everything the review form shows about one EB, plus warnings for metrics outside limits.py.

    Keys: eb_id, uid (as stored), sb_name, project, source, band (int), band_name ("Band 3"), freq_ghz
    (representative frequency, GHz; the spw mean or band centre when the EB has none), start_time (aware UTC),
    array, n_antennas, pwv_mm, pwv_limit_mm, elevation_deg, exec_fraction, duration_s, tsys_median_k,
    phase_rms_deg, flagged_fraction, flux_jy, flux_err_jy, expected_flux_jy, expected_flux_err_jy,
    flux_deviation_sigma, spectral_index, spectral_index_err, extra (dict of imported numeric columns),
    n_spw, n_scans, n_detail_antennas, and the detail summaries tsys_outliers {antenna: Tsys / array median},
    tsys_spikes {scan: Tsys / median scan}, amplitude_outliers {antenna: amplitude / array median},
    phase_jumps {antenna: deg}, bp_ripple {spw: median dB}; then warnings {key: message} and
    warning_levels {key: "warn" | "bad"}, keyed as limits.find_problems documents (an EB field name, or
    a detail check name such as "tsys_outliers"). Missing numbers are None.
    Raises EBNotFound for an unknown id.
    """
    head = _eb_row(session, eb_id)
    det = _details(
        session,
        eb_id,
        ["antenna", "spw", "scan", "freq_ghz", "tsys_k", "amplitude", "phase_deg", "bp_ripple_db", "flagged"],
    )
    for key in HEADER_FIELDS:
        if key not in ("uid", "sb_name", "project", "source", "array", "start_time", "extra", "band"):
            head[key] = _float(head[key])
    head["n_antennas"] = int(head["n_antennas"]) if head["n_antennas"] is not None else None
    head["band"] = int(head["band"])
    head["band_name"] = limits.band_name(head["band"])
    head["start_time"] = _utc(head["start_time"])
    if head["freq_ghz"] is None:
        spw_freq = det["freq_ghz"].dropna()
        if not spw_freq.empty:
            head["freq_ghz"] = float(spw_freq.mean())
        elif head["band"] in limits.BAND_EDGES_GHZ:
            head["freq_ghz"] = limits.band_center_ghz(head["band"])
    # The limit at the EB's own tuning: the same number the PWV warning uses.
    head["pwv_limit_mm"] = (
        limits.pwv_limit_mm(head["band"], head["freq_ghz"])
        if head["band"] in limits.ACCEPTABLE_ZENITH_OPACITY
        else None
    )
    head["flux_deviation_sigma"] = limits.flux_deviation_sigma(
        head["flux_jy"], head["flux_err_jy"], head["expected_flux_jy"], head["expected_flux_err_jy"]
    )
    head["extra"] = _json_dict(head["extra"])
    head["n_spw"] = int(det["spw"].nunique())
    head["n_scans"] = int(det["scan"].nunique())
    head["n_detail_antennas"] = int(det["antenna"].nunique())
    head["tsys_outliers"] = tsys_outliers(det)
    head["tsys_spikes"] = tsys_spikes(det)
    head["amplitude_outliers"] = amplitude_outliers(det)
    head["phase_jumps"] = phase_jumps(det)
    head["bp_ripple"] = bandpass_ripple(det)
    problems = limits.find_problems(head)
    head["warnings"] = {p.field: p.message for p in problems}
    head["warning_levels"] = {p.field: p.level for p in problems}
    return head


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
    lo_a, hi_a = limits.SPECTRAL_INDEX_RANGE
    hist = f"""
        FROM execution_block o WHERE o.source = e.source AND o.id <> e.id
        AND o.spectral_index BETWEEN {lo_a} AND {hi_a}"""
    head = _eb_row(
        session,
        eb_id,
        f""", (SELECT AVG(o.spectral_index) {hist}) AS hist_alpha,
              (SELECT AVG(o.spectral_index * o.spectral_index) {hist}) AS hist_alpha2,
              (SELECT COUNT(o.spectral_index) {hist}) AS hist_n""",
    )
    conn = session.connection()
    rows = conn.execute(
        text(
            """SELECT spw, AVG(freq_ghz), AVG(amplitude), AVG(amplitude * amplitude), COUNT(amplitude)
               FROM eb_detail WHERE eb_id = :id AND NOT flagged AND amplitude IS NOT NULL
               GROUP BY spw ORDER BY spw"""
        ),
        {"id": int(eb_id)},
    ).fetchall()
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
)


LIGHT_CURVE_MAX_POINTS = 150
"""At most this many EBs in a light curve (the nearest in time to the EB): a 100k pool's busiest source has
over a thousand in a year, and drawing them cost the browser more than the rest of the review view."""


def light_curve(
    *, session: Session, eb_id: int, days: int = 365, max_points: int = LIGHT_CURVE_MAX_POINTS
) -> pd.DataFrame:
    """Flux history of this EB's source in this band, from DAYS before to DAYS after the EB (at most
    MAX_POINTS EBs: the run of that many, in time order, centred on this EB).

    Returns DataFrame[eb_id, uid, start_time (aware UTC), freq_ghz, flux_jy, flux_err_jy, expected_flux_jy,
    low, high, is_current, label] sorted by time; low/high = expected_flux_jy -+ expected_flux_err_jy (NaN
    when unknown) draw the expected band. label is the consensus QA0 of each other EB, or "unlabelled"; the
    current EB's label is always "this EB" so an overlap review stays blind. Raises EBNotFound.
    """
    head = _eb_row(session, eb_id)
    start = _utc(head["start_time"])
    assert start is not None
    window = timedelta(days=max(int(days), 0))
    params = {"source": head["source"], "band": int(head["band"]), "t0": start - window, "t1": start + window}
    where = "e.source = :source AND e.band = :band AND e.start_time >= :t0 AND e.start_time <= :t1"
    binds = [bindparam("t0", type_=_TIME_TYPE), bindparam("t1", type_=_TIME_TYPE)]
    conn = session.connection()
    rows = conn.execute(
        text(
            f"""SELECT e.id, e.uid, e.start_time, e.freq_ghz, e.flux_jy, e.flux_err_jy, e.expected_flux_jy,
                       e.expected_flux_err_jy
                FROM execution_block e WHERE {where} ORDER BY e.start_time, e.id"""
        ).bindparams(*binds),
        params,
    ).fetchall()
    frame = _frame(
        rows,
        ["eb_id", "uid", "start_time", "freq_ghz", "flux_jy", "flux_err_jy", "expected_flux_jy", "exp_err"],
        text_columns=("uid", "start_time"),
    )
    if frame.empty:
        return pd.DataFrame(columns=list(LIGHT_CURVE_COLUMNS))
    if len(frame) > max_points > 0:
        here = int(np.flatnonzero(frame["eb_id"].to_numpy() == int(eb_id))[0])
        start = min(max(here - max_points // 2, 0), len(frame) - max_points)
        frame = frame.iloc[start : start + max_points].reset_index(drop=True)
    labels_by_eb = labels.consensus_of(session, frame["eb_id"].astype(int))
    frame["eb_id"] = frame["eb_id"].astype("int64")
    frame["uid"] = frame["uid"].astype(str)
    frame["start_time"] = pd.to_datetime([_utc(t) for t in frame["start_time"]], utc=True)
    frame["low"] = frame["expected_flux_jy"] - frame["exp_err"]
    frame["high"] = frame["expected_flux_jy"] + frame["exp_err"]
    frame["is_current"] = frame["eb_id"] == int(eb_id)
    frame["label"] = [labels_by_eb.get(int(e), "unlabelled") for e in frame["eb_id"]]
    frame.loc[frame["is_current"], "label"] = "this EB"
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


# --- context among labelled EBs ----------------------------------------------------------------------


def _sampled_consensus(band: int | None, cap: int) -> Select[Any]:
    """(grp, EB columns of _CONTEXT_SELECT) of up to CAP consensus-labelled EBs per class, optionally of one band.

    The consensus comes from labels.consensus_select (SQL, so the page never pulls every label into Python).
    The sample order is a fixed multiplicative hash of the id: representative, and stable as labels accumulate.
    """
    cons = labels.consensus_select(ExecutionBlock.band == band if band is not None else None).subquery("cons")  # type: ignore[arg-type]
    k = func.row_number().over(
        partition_by=cons.c.value, order_by=((cons.c.eb_id * 2654435761) % 4294967296, cons.c.eb_id)
    )
    sampled = sa_select(cons.c.eb_id, cons.c.value, k.label("k")).subquery("s")
    e = ExecutionBlock.__table__.alias("e")  # type: ignore[attr-defined]
    return (
        sa_select(sampled.c.value.label("grp"), literal_column(_CONTEXT_SELECT))
        .select_from(sampled.join(e, e.c.id == sampled.c.eb_id))
        .where(sampled.c.k <= cap)
    )


def context(
    *,
    session: Session,
    eb_id: int,
    metrics: Sequence[str] = DEFAULT_CONTEXT_METRICS,
    cap_per_class: int = CONTEXT_CAP_PER_CLASS,
    same_band: bool = False,
) -> pd.DataFrame:
    """Where this EB's metrics sit among EBs already labelled Pass, SemiPass and Fail (consensus labels).

    METRICS are keys of CONTEXT_METRICS (ValueError otherwise); up to CAP_PER_CLASS labelled EBs per class are
    used (a fixed pseudo-random sample, cached until labels or EBs change), optionally only of the EB's own
    band. This EB itself is never part of a labelled group, and its own label is never shown. Returns long
    DataFrame[eb_id, metric, value, group] with group in CONTEXT_GROUPS ("this EB" first); rows with a
    missing value are dropped.
    """
    unknown = [m for m in metrics if m not in CONTEXT_METRICS]
    if unknown:
        raise ValueError(
            f"unknown context metric(s) {', '.join(map(repr, unknown))}; expected {', '.join(CONTEXT_METRICS)}"
        )
    conn = session.connection()
    this_rows = conn.execute(
        text(f"SELECT {_CONTEXT_SELECT} FROM execution_block e WHERE e.id = :eb"), {"eb": int(eb_id)}
    ).fetchall()
    if not this_rows:
        raise EBNotFound(f"no EB with id {eb_id}")
    this = _context_frame(this_rows)
    this["group"] = "this EB"
    band = int(this["band"].iloc[0]) if same_band and this["band"].notna().all() else None
    labelled = _labelled_sample(session, cap=int(cap_per_class), band=band)
    # The EB under review is never its own context, whatever label it has.
    data = pd.concat([this, labelled[labelled["eb_id"] != int(eb_id)]], ignore_index=True)
    long = data.melt(id_vars=["eb_id", "group"], value_vars=list(metrics), var_name="metric", value_name="value")
    long = long.replace([np.inf, -np.inf], np.nan).dropna(subset=["value"])
    long["group"] = pd.Categorical(long["group"], categories=list(CONTEXT_GROUPS), ordered=True)
    long["metric"] = pd.Categorical(long["metric"], categories=list(dict.fromkeys(metrics)), ordered=True)
    long = long.sort_values(["metric", "group", "eb_id"], ignore_index=True)
    long["group"] = long["group"].astype(str)
    long["metric"] = long["metric"].astype(str)
    return long[["eb_id", "metric", "value", "group"]]


_CONTEXT_BASE = ("band", "freq_ghz", "pwv_mm", "flux_jy", "flux_err_jy", "expected_flux_jy", "expected_flux_err_jy")
_CONTEXT_SQL_METRICS = tuple(m for m, sql in CONTEXT_METRICS.items() if sql != "NULL" and m not in _CONTEXT_BASE)
_CONTEXT_SELECT = ", ".join(
    ["e.id"] + [f"e.{c}" for c in _CONTEXT_BASE] + [f"{CONTEXT_METRICS[m]} AS {m}" for m in _CONTEXT_SQL_METRICS]
)
_CONTEXT_CACHE: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()
_CONTEXT_LOCK = threading.Lock()
CONTEXT_CACHE_SIZE = 8


def _context_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """EB rows of _CONTEXT_SELECT as floats, with every derived metric of CONTEXT_METRICS added."""
    data = _frame(rows, ["eb_id", *_CONTEXT_BASE, *_CONTEXT_SQL_METRICS], text_columns=())
    for col in data.columns:
        data[col] = pd.to_numeric(data[col], errors="coerce").astype(float)
    data["eb_id"] = data["eb_id"].astype("int64")
    data["pwv_over_limit"] = data["pwv_mm"] / limits.pwv_limits_mm(data["band"], data["freq_ghz"])
    err = np.hypot(data["flux_err_jy"].fillna(0.0), data["expected_flux_err_jy"].fillna(0.0))
    data["flux_deviation_sigma"] = (data["flux_jy"] - data["expected_flux_jy"]) / err.where(err > 0)
    data["flux_ratio"] = data["flux_jy"] / data["expected_flux_jy"].where(data["expected_flux_jy"] > 0)
    return data


def _labelled_sample(session: Session, *, cap: int, band: int | None) -> pd.DataFrame:
    """Metrics of up to CAP consensus-labelled EBs per class (column group), cached per database state.

    Every EB's review shows the same labelled sample, so it is computed once per state of the label and
    EB tables: a new label, undo, adjudication or import changes the version key and the sample is rebuilt.
    """
    return _labelled_sample_keyed(session, cap=cap, band=band)[1]


def _labelled_sample_keyed(session: Session, *, cap: int, band: int | None) -> tuple[tuple[Any, ...], pd.DataFrame]:
    """(cache key, sample) of _labelled_sample: the key names the database state the sample belongs to."""
    conn = session.connection()
    version = tuple(
        conn.execute(
            text(
                """SELECT (SELECT MAX(id) FROM label), (SELECT COUNT(*) FROM label),
                          (SELECT MAX(id) FROM execution_block), (SELECT COUNT(*) FROM execution_block),
                          (SELECT MAX(imported_at) FROM execution_block)"""
            )
        ).one()
    )
    key = (conn.engine.url.render_as_string(hide_password=True), cap, band, version)
    with _CONTEXT_LOCK:
        cached = _CONTEXT_CACHE.get(key)
        if cached is not None:
            _CONTEXT_CACHE.move_to_end(key)
            return key, cached
    rows = conn.execute(_sampled_consensus(band, cap)).fetchall()
    data = _context_frame([r[1:] for r in rows])
    data["group"] = [str(r[0]) for r in rows]
    with _CONTEXT_LOCK:
        _CONTEXT_CACHE[key] = data
        while len(_CONTEXT_CACHE) > CONTEXT_CACHE_SIZE:
            _CONTEXT_CACHE.popitem(last=False)
    return key, data


# --- context, pre-aggregated (what the review chart draws) ------------------------------------------

CONTEXT_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
SUMMARY_COLUMNS: tuple[str, ...] = ("metric", "group", "q05", "q25", "median", "q75", "q95", "n", "value", "where")


def _position_text(value: float, sorted_groups: Mapping[str, np.ndarray]) -> str:
    """'above 62% of Pass; above 20% of Fail': the share of each labelled group below VALUE."""
    parts = []
    for name in CAUTION_ORDER[::-1]:
        vals = sorted_groups.get(name)
        if vals is not None and vals.size:
            below = int(np.searchsorted(vals, value, side="left"))
            parts.append(f"above {100.0 * below / vals.size:.0f}% of {name}")
    return "; ".join(parts)


def _group_rows(metric: str, sorted_groups: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    rows = []
    for name in CAUTION_ORDER[::-1]:  # Pass, SemiPass, Fail
        vals = sorted_groups.get(name)
        if vals is None or not vals.size:
            continue
        q05, q25, q50, q75, q95 = np.quantile(vals, CONTEXT_QUANTILES)
        rows.append(
            {
                "metric": metric,
                "group": name,
                "q05": q05,
                "q25": q25,
                "median": q50,
                "q75": q75,
                "q95": q95,
                "n": int(vals.size),
                "value": np.nan,
                "where": None,
            }
        )
    return rows


def _this_rows(metric: str, values: Sequence[float], sorted_groups: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    return [
        {
            "metric": metric,
            "group": "this EB",
            "q05": np.nan,
            "q25": np.nan,
            "median": np.nan,
            "q75": np.nan,
            "q95": np.nan,
            "n": np.nan,
            "value": float(v),
            "where": _position_text(float(v), sorted_groups),
        }
        for v in list(values)[:1]
    ]


def summarise_context(long: pd.DataFrame) -> pd.DataFrame:
    """context() output (metric, value, group) -> per metric, each labelled group's quantiles and this EB's place.

    Returns DataFrame[metric, group, q05, q25, median, q75, q95, n, value, where]: one row per labelled group
    with values (quantiles, n) and one "this EB" row (value, where = its position among the groups), metrics in
    their order of appearance. Pure; the chart draws this instead of thousands of points.
    """
    if long is None or long.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    d = long.dropna(subset=["value"])
    rows: list[dict[str, Any]] = []
    for metric in dict.fromkeys(d["metric"].astype(str)):
        part = d[d["metric"].astype(str) == metric]
        groups = {
            name: np.sort(part.loc[part["group"] == name, "value"].to_numpy(dtype=float)) for name in CAUTION_ORDER
        }
        this = part.loc[part["group"] == "this EB", "value"].to_numpy(dtype=float)
        rows += _group_rows(metric, groups) + _this_rows(metric, this, groups)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


_SUMMARY_CACHE: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()


def context_summary(
    *,
    session: Session,
    eb_id: int,
    metrics: Sequence[str] = DEFAULT_CONTEXT_METRICS,
    cap_per_class: int = CONTEXT_CAP_PER_CLASS,
    same_band: bool = False,
) -> pd.DataFrame:
    """summarise_context(context(...)) at the cost of one EB row: the labelled groups' sorted values and
    quantiles are kept per database state, so each EB adds only its own values and their positions.

    Same rules as context(): the EB under review never counts in a labelled group (when it is in the sample,
    its groups are summarised without it) and its own label is never shown.
    """
    unknown = [m for m in metrics if m not in CONTEXT_METRICS]
    if unknown:
        raise ValueError(
            f"unknown context metric(s) {', '.join(map(repr, unknown))}; expected {', '.join(CONTEXT_METRICS)}"
        )
    conn = session.connection()
    this_rows = conn.execute(
        text(f"SELECT {_CONTEXT_SELECT} FROM execution_block e WHERE e.id = :eb"), {"eb": int(eb_id)}
    ).fetchall()
    if not this_rows:
        raise EBNotFound(f"no EB with id {eb_id}")
    this = _context_frame(this_rows)
    band = int(this["band"].iloc[0]) if same_band and this["band"].notna().all() else None
    key, labelled = _labelled_sample_keyed(session, cap=int(cap_per_class), band=band)
    skey = (key, tuple(metrics))
    with _CONTEXT_LOCK:
        cached = _SUMMARY_CACHE.get(skey)
    if cached is None:
        sorted_values = {
            m: {
                g: np.sort(labelled.loc[labelled["group"] == g, m].dropna().to_numpy(dtype=float))
                for g in CAUTION_ORDER
            }
            for m in metrics
        }
        ids = labelled["eb_id"].to_numpy(dtype=np.int64)
        cached = {
            "sorted": sorted_values,
            "ids": set(ids.tolist()),
            "rows": {m: _group_rows(m, sorted_values[m]) for m in metrics},
        }
        with _CONTEXT_LOCK:
            _SUMMARY_CACHE[skey] = cached
            while len(_SUMMARY_CACHE) > CONTEXT_CACHE_SIZE:
                _SUMMARY_CACHE.popitem(last=False)
    if int(eb_id) in cached["ids"]:
        # The EB under review is in the labelled sample (an overlap or gold review): leave it out.
        others = labelled[labelled["eb_id"] != int(eb_id)]
        groups_of = {
            m: {g: np.sort(others.loc[others["group"] == g, m].dropna().to_numpy(dtype=float)) for g in CAUTION_ORDER}
            for m in metrics
        }
        group_rows = {m: _group_rows(m, groups_of[m]) for m in metrics}
    else:
        groups_of, group_rows = cached["sorted"], cached["rows"]
    rows: list[dict[str, Any]] = []
    for m in metrics:
        own = this[m].replace([np.inf, -np.inf], np.nan).dropna().to_numpy(dtype=float)
        rows += group_rows[m] + _this_rows(m, own, groups_of[m])
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
