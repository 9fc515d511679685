"""What the review page checks about one EB, in one place: detail summaries, derived header values, warnings.

view.eb_header (the page) and the `show` command both call evaluate(): the header values and the list
of warnings (field, level, text) an AoD sees come from here and nowhere else. The thresholds themselves
live in limits.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from qa0_label.review import limits

DETAIL_COLUMNS: tuple[str, ...] = (
    "antenna",
    "spw",
    "scan",
    "freq_ghz",
    "tsys_k",
    "amplitude",
    "phase_deg",
    "bp_ripple_db",
    "flagged",
)
"""EBDetail columns evaluate() reads."""


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


PHASE_JUMP_SIGNIFICANCE = 5.0
"""A step must be this many times the scatter of the antenna's scan phases about the means on each side: a
slow atmospheric wander (consecutive scans correlated) moves the halves apart too, but smoothly."""


def phase_jumps(details: pd.DataFrame, min_jump_deg: float = limits.PHASE_JUMP_DEG) -> dict[str, float]:
    """Antenna -> size (deg) of a lasting phase step between scans, for steps above MIN_JUMP_DEG.

    DETAILS: antenna, scan, phase_deg (and spw, flagged). Per antenna x spw and scan the unflagged phases are
    averaged on the circle (each spw has its own instrumental offset), the array's common phase of each scan
    is removed, and the step is the largest difference between the mean phase before and after a scan
    boundary with at least two scans on each side (so a single noisy scan is no jump) that is also
    PHASE_JUMP_SIGNIFICANCE times the scatter within the two sides (so a slow wander is no jump). An
    antenna's step is the median over its spws: a jump of the antenna shows in all of them.
    """
    phase = pd.to_numeric(details["phase_deg"], errors="coerce").to_numpy(dtype=float)
    ok = ~np.isnan(phase)
    if "flagged" in details:
        ok &= ~details["flagged"].to_numpy(dtype=bool)
    ant_codes, ant_names = pd.factorize(details["antenna"].to_numpy()[ok], sort=True)
    spw = details["spw"].to_numpy()[ok] if "spw" in details else np.zeros(int(ok.sum()))
    spw_codes, spw_names = pd.factorize(spw, sort=True)
    scan_codes, scan_names = pd.factorize(details["scan"].to_numpy()[ok], sort=True)
    n_ant, n_scan, n_spw = len(ant_names), len(scan_names), max(len(spw_names), 1)
    if n_scan < 4 or n_ant < 3:
        return {}
    rad = np.radians(phase[ok])
    series = ant_codes * n_spw + spw_codes
    n_series = n_ant * n_spw
    cell = series * n_scan + scan_codes
    size = n_series * n_scan
    count = np.bincount(cell, minlength=size).reshape(n_series, n_scan)
    zsum = (np.bincount(cell, np.cos(rad), size) + 1j * np.bincount(cell, np.sin(rad), size)).reshape(n_series, n_scan)
    have = count > 0
    unit = np.where(have, zsum / np.maximum(np.abs(zsum), 1e-12), 0.0)  # series x scan mean direction
    # Remove the array's common phase of each scan and spw (atmosphere, calibration) before looking for steps.
    by_spw = unit.reshape(n_ant, n_spw, n_scan)
    common = by_spw.sum(axis=0)
    common = common / np.where(np.abs(common) > 0, np.abs(common), 1.0)
    filled = (by_spw * np.conj(common)[None, :, :]).reshape(n_series, n_scan)
    csum, ccount = np.cumsum(filled, axis=1), np.cumsum(have, axis=1)
    total, tcount = csum[:, -1:], ccount[:, -1:]
    # Split after scan position k-1: mean phase before vs after, both sides with >= 2 scans.
    before, nb = csum[:, :-1], ccount[:, :-1]
    after = total - before
    na: np.ndarray = tcount - nb
    step = np.abs(np.degrees(np.angle(after * np.conj(before))))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Circular standard deviation of each side: sqrt(-2 ln R), R = mean resultant length.
        r_b = np.clip(np.abs(before) / np.maximum(nb, 1), 1e-6, 1.0)
        r_a = np.clip(np.abs(after) / np.maximum(na, 1), 1e-6, 1.0)
        spread = np.degrees(np.sqrt(-2.0 * np.log(np.minimum(r_b, r_a))))
    valid = (nb >= 2) & (na >= 2) & (step > PHASE_JUMP_SIGNIFICANCE * spread)
    best = np.where(valid, step, 0.0).max(axis=1).reshape(n_ant, n_spw)
    per_ant = np.median(best, axis=1)
    out = {str(a): round(float(b), 1) for a, b in zip(ant_names, per_ant) if b > min_jump_deg}
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


def _finite(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def evaluate(head: dict[str, Any], det: pd.DataFrame) -> dict[str, Any]:
    """Add the derived header values and the warnings to HEAD (an EB row as view.eb_header reads it) in place.

    DET holds the EB's detail rows (DETAIL_COLUMNS). Adds: freq_ghz when missing (spw mean, else band
    centre), pwv_limit_mm, tsys_expected_k, tsys_vs_expected, phase_rms_warn_deg, phase_rms_bad_deg,
    flux_deviation_sigma, n_spw, n_scans, n_detail_antennas, the detail summaries (tsys_outliers,
    tsys_spikes, amplitude_outliers, phase_jumps, bp_ripple), usable_antennas (n_antennas less the
    amplitude and Tsys outliers; None without detail rows), and the warnings three ways: warning_list
    [{field, level, text}] (page order), warnings {field: text} and warning_levels {field: level}.
    """
    band = head.get("band")
    if head.get("freq_ghz") is None:
        spw_freq = pd.to_numeric(det["freq_ghz"], errors="coerce").dropna() if "freq_ghz" in det else pd.Series()
        if not spw_freq.empty:
            head["freq_ghz"] = float(spw_freq.mean())
        elif band in limits.BAND_EDGES_GHZ:
            head["freq_ghz"] = limits.band_center_ghz(band)
    # The limit at the EB's own tuning: the same number the PWV warning uses.
    head["pwv_limit_mm"] = (
        limits.pwv_limit_mm(band, head["freq_ghz"]) if band in limits.ACCEPTABLE_ZENITH_OPACITY else None
    )
    pwv, el, tsys = _finite(head.get("pwv_mm")), _finite(head.get("elevation_deg")), _finite(head.get("tsys_median_k"))
    expected = None
    if band in limits.RECEIVER_TEMP_K and pwv is not None and el is not None:
        expected = round(limits.expected_tsys_k(band, pwv, el, head.get("freq_ghz")), 1)
    head["tsys_expected_k"] = expected
    head["tsys_vs_expected"] = round(tsys / expected, 2) if tsys is not None and expected else None
    warn_ph, bad_ph = limits.phase_rms_limits_deg(band, head.get("array"), head.get("freq_ghz"))
    head["phase_rms_warn_deg"], head["phase_rms_bad_deg"] = round(warn_ph, 1), round(bad_ph, 1)
    head["flux_deviation_sigma"] = limits.flux_deviation_sigma(
        head.get("flux_jy"), head.get("flux_err_jy"), head.get("expected_flux_jy"), head.get("expected_flux_err_jy")
    )
    head["n_spw"] = int(det["spw"].nunique()) if "spw" in det else 0
    head["n_scans"] = int(det["scan"].nunique()) if "scan" in det else 0
    head["n_detail_antennas"] = int(det["antenna"].nunique()) if "antenna" in det else 0
    empty = det.empty
    head["tsys_outliers"] = {} if empty else tsys_outliers(det)
    head["tsys_spikes"] = {} if empty else tsys_spikes(det)
    head["amplitude_outliers"] = {} if empty else amplitude_outliers(det)
    head["phase_jumps"] = {} if empty else phase_jumps(det)
    head["bp_ripple"] = {} if empty else bandpass_ripple(det)
    # The antennas left once the dead / mispointed and Tsys-outlier ones are flagged (the antenna rule's count).
    flagged = set(head["amplitude_outliers"]) | set(head["tsys_outliers"])
    n_ant = head.get("n_antennas")
    head["usable_antennas"] = None if n_ant is None or empty else max(int(n_ant) - len(flagged), 0)
    problems = limits.find_problems(head)
    head["warning_list"] = [{"field": p.field, "level": p.level, "text": p.message} for p in problems]
    head["warnings"] = {p.field: p.message for p in problems}
    head["warning_levels"] = {p.field: p.level for p in problems}
    return head


HIDDEN_FROM_SHOW: tuple[str, ...] = ("warnings", "warning_levels", "warning_list")


def header_json(head: dict[str, Any]) -> dict[str, Any]:
    """The header as the `show` command prints it: JSON-ready values (times as ISO 8601 UTC, NaN as null, dict
    keys as text) and "warnings" = the page's warning list [{field, level, text}] in the page's order."""
    out: dict[str, Any] = {k: _plain(v) for k, v in head.items() if k not in HIDDEN_FROM_SHOW}
    out["warnings"] = [dict(w) for w in head.get("warning_list", [])]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
