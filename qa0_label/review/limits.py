"""The thresholds an AoD applies to an EB, in one place: band facts, weather and quality limits, and checks.

Numbers and their sources: docs/domain.md (public ALMA documentation and grid-survey analysis code). Where a
value is marked approx. it is a plausible operating limit, not an observatory rule; change it here and every
warning in the app follows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

# --- bands ---------------------------------------------------------------------------------------

BAND_EDGES_GHZ: dict[int, tuple[float, float]] = {
    1: (31.0, 45.0),
    2: (67.0, 90.0),
    3: (84.0, 116.0),
    4: (125.0, 163.0),
    5: (163.0, 211.0),
    6: (211.0, 275.0),
    7: (275.0, 373.0),
    8: (385.0, 500.0),
    9: (602.0, 720.0),
    10: (787.0, 950.0),
}
"""Receiver band edges (GHz)."""

RECEIVER_SPEC_K: dict[int, float] = {3: 37.0, 4: 51.0, 5: 65.0, 6: 83.0, 7: 147.0, 8: 196.0, 9: 175.0, 10: 230.0}
"""Receiver noise temperature SPECIFICATIONS (K, the maxima a receiver may have over 80 % of its band)."""

# Typical receivers are well below their specification. These are the values the ALMA sensitivity
# calculator / Technical Handbook work with (approx.: B3 ~35-45 K, B4 ~45-51 K, B5-B6 ~55 K, B7 ~75 K,
# B8 ~150 K); Bands 9 and 10 are double-sideband receivers, given here as the single-sideband-equivalent
# values that reproduce the Tsys AoDs see (B9 ~800-1,500 K near zenith at ~1 mm PWV). Together with
# T_SPILL_K they give the typical Tsys of docs/domain-simulator.md (B3 ~60 K, B6 ~80-110 K, B7 ~120-180 K).
RECEIVER_TEMP_K: dict[int, float] = {3: 38.0, 4: 45.0, 5: 55.0, 6: 55.0, 7: 75.0, 8: 150.0, 9: 150.0, 10: 200.0}
"""TYPICAL receiver noise temperatures (K) used for expected Tsys; Bands 1-2 are not in the brief."""

T_ATM_K = 270.0
"""Physical temperature of the emitting atmosphere in the Tsys model (K)."""

T_SPILL_K = 8.0
"""Spillover and optics noise added to the receiver's (K): ~3 % forward-efficiency loss onto ~270 K ground."""

# Zenith opacity tau(nu, pwv) = dry(nu) + wet(nu) * pwv at Chajnantor: a coarse piecewise-linear version of
# the ATM model (approx.; the 119, 183, 325, 380 and 448 GHz lines are the spikes). The simulator uses
# this same curve, so warnings and simulated weather agree.
OPACITY_FREQ_GHZ: tuple[float, ...] = (
    80,
    100,
    110,
    116,
    119,
    125,
    150,
    170,
    183,
    196,
    215,
    245,
    275,
    310,
    325,
    340,
    355,
    370,
    380,
    392,
    420,
    448,
    470,
    500,
    550,
    600,
    650,
    690,
    720,
    760,
    800,
    870,
    920,
    950,
)
OPACITY_DRY: tuple[float, ...] = (
    0.02,
    0.02,
    0.03,
    0.08,
    0.30,
    0.05,
    0.02,
    0.02,
    0.03,
    0.02,
    0.02,
    0.03,
    0.03,
    0.04,
    0.05,
    0.04,
    0.05,
    0.06,
    0.08,
    0.07,
    0.10,
    0.20,
    0.12,
    0.12,
    0.20,
    0.25,
    0.15,
    0.15,
    0.20,
    0.30,
    0.30,
    0.25,
    0.30,
    0.40,
)
OPACITY_WET_PER_MM: tuple[float, ...] = (
    0.008,
    0.012,
    0.016,
    0.020,
    0.022,
    0.025,
    0.035,
    0.10,
    1.5,
    0.12,
    0.05,
    0.055,
    0.07,
    0.10,
    0.50,
    0.12,
    0.15,
    0.25,
    2.0,
    0.40,
    0.35,
    2.0,
    0.60,
    0.55,
    1.5,
    1.2,
    0.90,
    1.0,
    1.3,
    2.0,
    1.6,
    1.2,
    1.6,
    2.0,
)

REFERENCE_FREQ_GHZ: dict[int, float] = {
    1: 40.0,
    2: 80.0,
    3: 97.5,
    4: 145.0,
    5: 200.0,
    6: 233.0,
    7: 343.5,
    8: 405.0,
    9: 679.0,
    10: 870.0,
}
"""Standard tuning (LO, GHz) per band: where a band's PWV limit is quoted when no frequency is given."""

PWV_LIMIT_AT_STANDARD_TUNING_MM: dict[int, float] = {
    1: 5.186,
    2: 5.186,
    3: 5.186,  # 7th PWV octile: Band 3 observes in almost any weather the array works in
    4: 2.748,  # 6th octile
    5: 1.796,  # 5th octile (200 GHz sits on the wing of the 183 GHz water line)
    6: 1.796,  # 5th octile
    7: 1.262,  # 4th octile
    8: 0.658,  # 2nd octile
    9: 0.472,  # 1st octile
    10: 0.472,  # 1st octile
}
"""Observatory practice (approx.): the PWV octile (DOMAIN's site octiles, the ones the ALMA sensitivity tools
use) up to which each band is scheduled, at its standard tuning. The acceptable zenith opacity of a band is
the opacity at this PWV and tuning; other tunings of the band get the PWV at which THEIR opacity reaches it,
so the limit follows the atmospheric transmission at the tuning (lower near the 183 and 325 GHz lines)."""


def _opacity_at(freq_ghz: float, pwv_mm: float) -> float:
    return float(
        np.interp(freq_ghz, OPACITY_FREQ_GHZ, OPACITY_DRY)
        + np.interp(freq_ghz, OPACITY_FREQ_GHZ, OPACITY_WET_PER_MM) * pwv_mm
    )


ACCEPTABLE_ZENITH_OPACITY: dict[int, float] = {
    b: _opacity_at(REFERENCE_FREQ_GHZ[b], pwv) for b, pwv in PWV_LIMIT_AT_STANDARD_TUNING_MM.items()
}
"""Largest zenith opacity accepted per band: B3 0.08, B4 0.12, B5-B6 ~0.12-0.21, B7 0.20, B8 0.33, B9 0.61,
B10 0.82 (the same order as the grid-survey analysis code's 0.1 / 0.2 / 0.25-0.5 / 0.6, approx.)."""

# --- limits ----------------------------------------------------------------------------------------

PWV_BAD_OPACITY_RATIO = 1.4
"""Zenith opacity this many times the acceptable one is a reason to downgrade, not just a warning (approx.)."""

ELEVATION_WARN_DEG = 22.0
"""Below this the airmass (> 2.7), shadowing (7 m) and pointing make a flux reference doubtful whatever the
weather. Between this and 40 deg (where references are preferred) only the slant opacity check warns."""
ELEVATION_BAD_DEG = 20.0
"""The scheduler does not observe below this elevation."""
SLANT_OPACITY_WARN_RATIO = 2.0
"""Opacity along the line of sight (zenith tau x airmass) above this multiple of the band's acceptable zenith
opacity: the band's limit weather seen at airmass 2 (30 deg). Where the airmass, not the zenith weather,
pushes the opacity past the band's limit, the elevation warns."""

MIN_ANTENNAS_WARN: dict[str, int] = {"12m": 30, "7m": 7}
"""Fewer antennas than this makes an EB SemiPass in practice (12 m: 40-50 typical; ACA has 12 dishes)."""
MIN_ANTENNAS_BAD: dict[str, int] = {"12m": 16, "7m": 4}
"""Fewer antennas than this fails the EB (grid analysis drops EBs with fewer than 5 of any array)."""

EXEC_FRACTION_WARN = 0.85
"""An EB that ran less than this share of its plan was probably aborted (losing the last of 8 scans is not)."""
EXEC_FRACTION_BAD = 0.5

FLUX_DEVIATION_WARN_SIGMA = 3.0
"""Measured flux this many combined sigma from the catalogue expectation deserves a look."""
FLUX_DEVIATION_BAD_SIGMA = 5.0
"""A jump of this size is more often an instrument problem than a real flare."""
FLUX_RATIO_WARN = 0.3
"""|ln(measured / expected flux)| above which the flux deserves a look however large its errors (-26 % / +35 %):
in Bands 7+ a 10 % flux-scale accuracy hides a pointing loss of a quarter or more from the sigma test (approx.)."""

PHASE_RMS_WARN_DEG = 30.0
"""Phase RMS after WVR correction above which coherence losses start to matter (13 %, approx.), any band."""
PHASE_RMS_BAD_DEG = 50.0
"""Phase RMS at which a third of the amplitude is lost to decorrelation, any band."""
PHASE_PATH_LIMIT_UM: dict[str, tuple[float, float]] = {"12m": (200.0, 350.0), "7m": (80.0, 150.0)}
"""(warn, bad) residual path-length RMS (micrometres) per array: unusual atmosphere for the baselines (the
7 m array's are <= 50 m, the 12 m's up to km, and the phase noise grows with baseline length). Converted
to degrees at the EB's frequency and capped by PHASE_RMS_WARN_DEG / PHASE_RMS_BAD_DEG (approx.)."""

TSYS_EXPECTED_WARN_RATIO = 1.5
"""Median Tsys this many times what the band's typical receiver, the PWV and the airmass predict (approx.)."""
TSYS_EXPECTED_BAD_RATIO = 2.5

FLAGGED_FRACTION_WARN = 0.2
"""Share of flagged data above which the AoD should find out why (approx.)."""
FLAGGED_FRACTION_BAD = 0.4

TSYS_OUTLIER_RATIO = 1.5
"""An antenna whose median Tsys exceeds the array median by this factor is a Tsys outlier (approx.)."""

TSYS_SPIKE_RATIO = 1.5
"""A scan whose median Tsys (all antennas) exceeds the EB's median scan by this factor is a Tsys spike (approx.)."""

AMPLITUDE_LOW_RATIO = 0.5
"""An antenna whose median amplitude is below this share of the array median is dead or mispointed (approx.)."""

PHASE_JUMP_DEG = 60.0
"""A lasting phase step of one antenna between scans larger than this is a SemiPass reason (approx.)."""

BANDPASS_RIPPLE_DB = 3.0
"""Amplitude variation across a spectral window above this (autocorrelations) is a SemiPass reason."""

SPECTRAL_INDEX_RANGE: tuple[float, float] = (-1.5, 0.5)
"""Grid quasars have alpha between about -0.2 and -0.9; outside this wider range the spws disagree."""

SPECTRAL_INDEX_SIGMA = 2.0
"""How many of its own standard errors the spectral index may stray outside SPECTRAL_INDEX_RANGE."""

CHECK_TITLES: dict[str, str] = {
    "pwv_mm": "PWV",
    "elevation_deg": "Elevation",
    "tsys_median_k": "Tsys vs expected",
    "n_antennas": "Antennas",
    "exec_fraction": "Execution fraction",
    "flux_jy": "Flux vs catalogue",
    "spectral_index": "Spectral index",
    "phase_rms_deg": "Phase RMS",
    "flagged_fraction": "Flagged data",
    "tsys_outliers": "Tsys outlier antennas",
    "tsys_spikes": "Tsys spike",
    "amplitude_outliers": "Low-amplitude antennas",
    "phase_jumps": "Phase jump",
    "bp_ripple_db": "Bandpass ripple",
}
"""Short display name of every key find_problems can report, in the order it checks them."""

Level = Literal["warn", "bad"]


@dataclass(frozen=True)
class Finding:
    """One metric outside its limit: which field, how bad, and a sentence for the AoD."""

    field: str
    level: Level
    message: str


# --- physics helpers -------------------------------------------------------------------------------


def band_name(band: int) -> str:
    """Human band name, e.g. 'Band 3'."""
    return f"Band {int(band)}"


def band_center_ghz(band: int) -> float:
    """Middle of the band (GHz); KeyError for a band ALMA does not have."""
    lo, hi = BAND_EDGES_GHZ[int(band)]
    return (lo + hi) / 2.0


def band_of_frequency(freq_ghz: float) -> int | None:
    """The band that covers FREQ_GHZ, or None in the gaps (newer Band 2 overlaps Band 3: Band 3 wins)."""
    for band in sorted(BAND_EDGES_GHZ, key=lambda b: (b != 3, b)):
        lo, hi = BAND_EDGES_GHZ[band]
        if lo <= freq_ghz <= hi:
            return band
    return None


def _opacity_terms(freq_ghz: float) -> tuple[float, float]:
    f = float(freq_ghz)
    return (
        float(np.interp(f, OPACITY_FREQ_GHZ, OPACITY_DRY)),
        float(np.interp(f, OPACITY_FREQ_GHZ, OPACITY_WET_PER_MM)),
    )


def zenith_opacity(freq_ghz: float, pwv_mm: float) -> float:
    """Approximate zenith opacity at a frequency (GHz) for a precipitable water vapour (mm)."""
    dry, wet = _opacity_terms(freq_ghz)
    return dry + wet * max(0.0, float(pwv_mm))


def pwv_limit_mm(band: int, freq_ghz: float | None = None) -> float:
    """PWV (mm) above which the zenith opacity at FREQ_GHZ (default: the band's standard tuning) exceeds
    what grid analysis accepts for the band; KeyError for an unknown band."""
    band = int(band)
    if band not in ACCEPTABLE_ZENITH_OPACITY:
        raise KeyError(f"no PWV limit for band {band!r}")
    dry, wet = _opacity_terms(freq_ghz if freq_ghz else REFERENCE_FREQ_GHZ[band])
    return max(0.0, (ACCEPTABLE_ZENITH_OPACITY[band] - dry) / wet)


def pwv_limits_mm(bands: Any, freqs_ghz: Any) -> np.ndarray:
    """Vectorised pwv_limit_mm: NaN for unknown bands; a missing frequency means the band's standard tuning."""
    band = pd.to_numeric(pd.Series(list(bands), dtype=object), errors="coerce").to_numpy(dtype=float)
    freq = pd.to_numeric(pd.Series(list(freqs_ghz), dtype=object), errors="coerce").to_numpy(dtype=float)
    ref = np.full(len(BAND_EDGES_GHZ) + 1, np.nan)
    acceptable = ref.copy()
    for b, f in REFERENCE_FREQ_GHZ.items():
        ref[b] = f
        acceptable[b] = ACCEPTABLE_ZENITH_OPACITY[b]
    idx = np.where(np.isfinite(band) & (band >= 1) & (band < len(ref)), band, 0).astype(np.int64)
    freq = np.where(np.isfinite(freq) & (freq > 0), freq, ref[idx])
    dry = np.interp(freq, OPACITY_FREQ_GHZ, OPACITY_DRY)
    wet = np.interp(freq, OPACITY_FREQ_GHZ, OPACITY_WET_PER_MM)
    return np.maximum((acceptable[idx] - dry) / wet, 0.0)


def airmass(elevation_deg: float) -> float:
    """Plane-parallel airmass 1/sin(el), capped at the horizon to stay finite."""
    return 1.0 / math.sin(math.radians(max(float(elevation_deg), 3.0)))


def expected_tsys_k(band: int, pwv_mm: float, elevation_deg: float, freq_ghz: float | None = None) -> float:
    """Typical system temperature (K): (Trx + Tspill + Tatm (1 - e^-tau A)) e^tau A at FREQ_GHZ (default: the
    band's standard tuning) with the band's typical receiver (single sideband, approx.); KeyError for bands
    without a receiver temperature."""
    freq = freq_ghz if freq_ghz and freq_ghz > 0 else REFERENCE_FREQ_GHZ[int(band)]
    out = expected_tsys_array([band], [freq], [pwv_mm], [elevation_deg])[0]
    if not math.isfinite(out):
        raise KeyError(f"no receiver temperature for band {band!r}")
    return float(out)


def expected_tsys_array(bands: Any, freqs_ghz: Any, pwv_mm: Any, elevation_deg: Any) -> np.ndarray:
    """Vectorised expected_tsys_k (the simulator draws around this, features and the page divide by it);
    NaN where the band has no receiver temperature or a number is missing."""
    band = pd.to_numeric(pd.Series(list(bands), dtype=object), errors="coerce").to_numpy(dtype=float)
    freq = pd.to_numeric(pd.Series(list(freqs_ghz), dtype=object), errors="coerce").to_numpy(dtype=float)
    pwv = pd.to_numeric(pd.Series(list(pwv_mm), dtype=object), errors="coerce").to_numpy(dtype=float)
    el = pd.to_numeric(pd.Series(list(elevation_deg), dtype=object), errors="coerce").to_numpy(dtype=float)
    trx = np.full(len(BAND_EDGES_GHZ) + 1, np.nan)
    ref = trx.copy()
    for b, t in RECEIVER_TEMP_K.items():
        trx[b], ref[b] = t, REFERENCE_FREQ_GHZ[b]
    idx = np.where(np.isfinite(band) & (band >= 1) & (band < len(trx)), band, 0).astype(np.int64)
    freq = np.where(np.isfinite(freq) & (freq > 0), freq, ref[idx])
    f = np.where(np.isfinite(freq), freq, 100.0)
    tau = np.interp(f, OPACITY_FREQ_GHZ, OPACITY_DRY) + np.interp(f, OPACITY_FREQ_GHZ, OPACITY_WET_PER_MM) * np.maximum(
        pwv, 0.0
    )
    ext = np.exp(tau / np.sin(np.radians(np.clip(el, 3.0, 90.0))))
    return (trx[idx] + T_SPILL_K + T_ATM_K * (1.0 - 1.0 / ext)) * ext


def phase_rms_limits_deg(band: int | None, array: str | None, freq_ghz: float | None = None) -> tuple[float, float]:
    """(warn, bad) phase RMS (deg) for this band and array: PHASE_PATH_LIMIT_UM at the frequency, capped by
    the coherence limits; without a usable band or frequency, the coherence limits alone."""
    freq = freq_ghz if freq_ghz and freq_ghz > 0 else REFERENCE_FREQ_GHZ.get(int(band)) if band is not None else None
    if not freq:
        return PHASE_RMS_WARN_DEG, PHASE_RMS_BAD_DEG
    warn_um, bad_um = PHASE_PATH_LIMIT_UM.get(str(array or "12m"), PHASE_PATH_LIMIT_UM["12m"])
    deg_per_um = 360.0 * float(freq) / 299_792.458  # one wavelength at freq (GHz) is 299,792/freq micrometres
    return min(PHASE_RMS_WARN_DEG, warn_um * deg_per_um), min(PHASE_RMS_BAD_DEG, bad_um * deg_per_um)


def phase_rms_bad_deg_array(bands: Any, arrays: Any, freqs_ghz: Any) -> np.ndarray:
    """Vectorised 'bad' value of phase_rms_limits_deg (the coherence limit where band and frequency are unknown)."""
    band = pd.to_numeric(pd.Series(list(bands), dtype=object), errors="coerce").to_numpy(dtype=float)
    freq = pd.to_numeric(pd.Series(list(freqs_ghz), dtype=object), errors="coerce").to_numpy(dtype=float)
    ref = np.full(len(BAND_EDGES_GHZ) + 1, np.nan)
    for b, f in REFERENCE_FREQ_GHZ.items():
        ref[b] = f
    idx = np.where(np.isfinite(band) & (band >= 1) & (band < len(ref)), band, 0).astype(np.int64)
    freq = np.where(np.isfinite(freq) & (freq > 0), freq, ref[idx])
    bad_um = np.array([PHASE_PATH_LIMIT_UM.get(str(a), PHASE_PATH_LIMIT_UM["12m"])[1] for a in arrays], dtype=float)
    out = np.minimum(PHASE_RMS_BAD_DEG, bad_um * 360.0 * freq / 299_792.458)
    return np.where(np.isfinite(out), out, PHASE_RMS_BAD_DEG)


def flux_deviation_sigma(
    flux_jy: float | None,
    flux_err_jy: float | None,
    expected_flux_jy: float | None,
    expected_flux_err_jy: float | None,
) -> float | None:
    """(measured - expected) / combined uncertainty; None when a number is missing or the error is zero."""
    if flux_jy is None or expected_flux_jy is None:
        return None
    err = math.hypot(float(flux_err_jy or 0.0), float(expected_flux_err_jy or 0.0))
    if not math.isfinite(err) or err <= 0.0:
        return None
    value = (float(flux_jy) - float(expected_flux_jy)) / err
    return value if math.isfinite(value) else None


# --- checks ----------------------------------------------------------------------------------------


def _num(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def find_problems(row: Mapping[str, Any]) -> list[Finding]:
    """Every metric of an EB that crosses a limit, worst first within the order of the review form.

    ROW keys (all optional, missing or None values are skipped): band, array, pwv_mm, elevation_deg,
    tsys_median_k (or a ready tsys_vs_expected), n_antennas, usable_antennas, exec_fraction, freq_ghz,
    flux_jy, flux_err_jy, expected_flux_jy, expected_flux_err_jy (or a ready flux_deviation_sigma), phase_rms_deg, flagged_fraction, spectral_index, and the detail summaries
    tsys_outliers {antenna: ratio}, tsys_spikes {scan: ratio}, amplitude_outliers {antenna: ratio},
    phase_jumps {antenna: deg}, bp_ripple {spw: dB}. Finding.field is the EB column for EB metrics (flux
    checks report "flux_jy") and the summary's key for detail checks.
    """
    found: list[Finding] = []
    band = _num(row, "band")
    band_i = int(band) if band is not None else None

    pwv = _num(row, "pwv_mm")
    if pwv is not None and band_i in ACCEPTABLE_ZENITH_OPACITY:
        freq = _num(row, "freq_ghz")
        freq = freq if freq is not None and freq > 0 else REFERENCE_FREQ_GHZ[band_i]
        limit = pwv_limit_mm(band_i, freq)
        ratio = zenith_opacity(freq, pwv) / ACCEPTABLE_ZENITH_OPACITY[band_i]
        if pwv > limit:
            level: Level = "bad" if ratio > PWV_BAD_OPACITY_RATIO else "warn"
            found.append(
                Finding(
                    "pwv_mm",
                    level,
                    f"PWV {pwv:.2f} mm is above the {band_name(band_i)} limit of {limit:.2f} mm "
                    f"at {freq:.0f} GHz (zenith opacity {ratio:.1f}x the acceptable)",
                )
            )

    el = _num(row, "elevation_deg")
    if el is not None:
        found += _elevation_findings(el, band_i, _num(row, "freq_ghz"), pwv)
    found += _tsys_findings(row, band_i, pwv, el)

    found += _antenna_findings(_num(row, "n_antennas"), _num(row, "usable_antennas"), str(row.get("array") or "12m"))

    ef = _num(row, "exec_fraction")
    if ef is not None and ef < EXEC_FRACTION_WARN:
        level = "bad" if ef < EXEC_FRACTION_BAD else "warn"
        found.append(
            Finding("exec_fraction", level, f"execution fraction {ef:.2f} is below {EXEC_FRACTION_WARN:.2f} (aborted?)")
        )

    dev = _num(row, "flux_deviation_sigma")
    if dev is None:
        dev = flux_deviation_sigma(
            _num(row, "flux_jy"),
            _num(row, "flux_err_jy"),
            _num(row, "expected_flux_jy"),
            _num(row, "expected_flux_err_jy"),
        )
    if dev is not None and abs(dev) > FLUX_DEVIATION_WARN_SIGMA:
        level = "bad" if abs(dev) > FLUX_DEVIATION_BAD_SIGMA else "warn"
        direction = "above" if dev > 0 else "below"
        found.append(Finding("flux_jy", level, f"flux is {abs(dev):.1f} sigma {direction} the catalogue expectation"))
    else:
        flux, expected = _num(row, "flux_jy"), _num(row, "expected_flux_jy")
        if flux is not None and expected is not None and flux > 0 and expected > 0:
            change = flux / expected - 1.0
            if abs(math.log(flux / expected)) > FLUX_RATIO_WARN:
                found.append(
                    Finding(
                        "flux_jy",
                        "warn",
                        f"flux is {abs(change):.0%} {'above' if change > 0 else 'below'} the catalogue expectation "
                        "(a flare, or pointing / amplitude scale?)",
                    )
                )

    alpha = _num(row, "spectral_index")
    lo_a, hi_a = SPECTRAL_INDEX_RANGE
    # A short lever arm (4 spws within one band) leaves alpha uncertain; only a significant excursion counts.
    slack = SPECTRAL_INDEX_SIGMA * (_num(row, "spectral_index_err") or 0.0)
    if alpha is not None and not lo_a - slack <= alpha <= hi_a + slack:
        found.append(
            Finding(
                "spectral_index",
                "warn",
                f"spectral index {alpha:+.2f} is outside {lo_a:+.1f}..{hi_a:+.1f} (spectral windows disagree?)",
            )
        )

    ph = _num(row, "phase_rms_deg")
    warn_ph, bad_ph = phase_rms_limits_deg(band_i, str(row.get("array") or "12m"), _num(row, "freq_ghz"))
    if ph is not None and ph > warn_ph:
        level = "bad" if ph > bad_ph else "warn"
        where = f" for {band_name(band_i)} on the {row.get('array') or '12m'} array" if band_i is not None else ""
        found.append(
            Finding(
                "phase_rms_deg",
                level,
                f"phase RMS {ph:.0f} deg is above {warn_ph:.0f} deg{where} (bad above {bad_ph:.0f})",
            )
        )

    ff = _num(row, "flagged_fraction")
    if ff is not None and ff > FLAGGED_FRACTION_WARN:
        level = "bad" if ff > FLAGGED_FRACTION_BAD else "warn"
        found.append(
            Finding("flagged_fraction", level, f"{ff:.0%} of the data is flagged (above {FLAGGED_FRACTION_WARN:.0%})")
        )

    found += _detail_findings(row)
    return found


def _elevation_findings(el: float, band: int | None, freq: float | None, pwv: float | None) -> list[Finding]:
    """Elevation only where it matters: below the scheduler's limit, very low, or where the airmass (not the
    zenith weather) pushes the line-of-sight opacity well past the band's limit."""
    if el < ELEVATION_BAD_DEG:
        return [Finding("elevation_deg", "bad", f"elevation {el:.1f} deg is below {ELEVATION_BAD_DEG:.0f} deg")]
    if el < ELEVATION_WARN_DEG:
        return [Finding("elevation_deg", "warn", f"elevation {el:.1f} deg is below {ELEVATION_WARN_DEG:.0f} deg")]
    if pwv is None or band not in ACCEPTABLE_ZENITH_OPACITY:
        return []
    f = freq if freq is not None and freq > 0 else REFERENCE_FREQ_GHZ[band]
    if pwv > pwv_limit_mm(band, f):
        return []  # the zenith weather itself is over the limit: the PWV check says so
    slant = zenith_opacity(f, pwv) * airmass(el)
    if slant <= SLANT_OPACITY_WARN_RATIO * ACCEPTABLE_ZENITH_OPACITY[band]:
        return []
    return [
        Finding(
            "elevation_deg",
            "warn",
            f"elevation {el:.1f} deg: line-of-sight opacity {slant:.2f} is "
            f"{slant / ACCEPTABLE_ZENITH_OPACITY[band]:.1f}x the {band_name(band)} zenith limit",
        )
    ]


def _antenna_findings(n_ant: float | None, usable: float | None, array: str) -> list[Finding]:
    """Antenna count against the array's SemiPass / Fail counts; the antennas left after flagging the dead and
    Tsys-outlier ones count, as in practice."""
    if n_ant is None:
        return []
    array = array if array in MIN_ANTENNAS_WARN else "12m"
    warn_at, bad_at = MIN_ANTENNAS_WARN[array], MIN_ANTENNAS_BAD[array]
    good = min(n_ant, usable) if usable is not None else n_ant
    what = f"{n_ant:.0f} antennas" + (f", {good:.0f} usable" if good < n_ant else "")
    if good < bad_at:
        return [Finding("n_antennas", "bad", f"{what}: fewer than {bad_at} fails a {array} EB")]
    if good < warn_at:
        return [Finding("n_antennas", "warn", f"{what}: fewer than the {warn_at} a {array} EB needs to pass")]
    return []


def _tsys_findings(row: Mapping[str, Any], band: int | None, pwv: float | None, el: float | None) -> list[Finding]:
    """Median Tsys against expected_tsys_k for the EB's band, tuning, PWV and elevation."""
    ratio = _num(row, "tsys_vs_expected")
    if ratio is None:
        tsys = _num(row, "tsys_median_k")
        if tsys is None or band not in RECEIVER_TEMP_K or pwv is None or el is None:
            return []
        ratio = tsys / expected_tsys_k(band, pwv, el, _num(row, "freq_ghz"))
    if ratio <= TSYS_EXPECTED_WARN_RATIO:
        return []
    level: Level = "bad" if ratio > TSYS_EXPECTED_BAD_RATIO else "warn"
    return [
        Finding(
            "tsys_median_k",
            level,
            f"median Tsys is {ratio:.1f}x what this band, PWV and elevation predict "
            f"(warn above {TSYS_EXPECTED_WARN_RATIO:.1f}x)",
        )
    ]


def _named(items: Mapping[Any, Any], fmt: str, limit: int = 6) -> str:
    pairs = list(items.items())
    text = ", ".join(fmt.format(k, float(v)) for k, v in pairs[:limit])
    return text + (f" and {len(pairs) - limit} more" if len(pairs) > limit else "")


def _detail_findings(row: Mapping[str, Any]) -> list[Finding]:
    """Warnings from the per-antenna / per-scan / per-spw summaries that review.eb_header computes."""
    found: list[Finding] = []
    outliers = row.get("tsys_outliers")
    if isinstance(outliers, Mapping) and outliers:
        found.append(Finding("tsys_outliers", "warn", "Tsys outlier antennas: " + _named(outliers, "{} ({:.1f}x)")))
    spikes = row.get("tsys_spikes")
    if isinstance(spikes, Mapping) and spikes:
        found.append(Finding("tsys_spikes", "warn", "Tsys spike in " + _named(spikes, "scan {} ({:.1f}x)")))
    amps = row.get("amplitude_outliers")
    if isinstance(amps, Mapping) and amps:
        found.append(
            Finding(
                "amplitude_outliers",
                "warn",
                "low-amplitude antennas (dead or mispointed?): " + _named(amps, "{} ({:.0%} of the array)"),
            )
        )
    jumps = row.get("phase_jumps")
    if isinstance(jumps, Mapping) and jumps:
        found.append(Finding("phase_jumps", "warn", "phase jump in " + _named(jumps, "{} ({:.0f} deg)")))
    ripple = row.get("bp_ripple")
    if isinstance(ripple, Mapping):
        bad = {k: v for k, v in ripple.items() if _finite(v) and float(v) > BANDPASS_RIPPLE_DB}
        if bad:
            found.append(
                Finding(
                    "bp_ripple_db",
                    "warn",
                    f"bandpass ripple above {BANDPASS_RIPPLE_DB:.0f} dB in "
                    + _named(dict(sorted(bad.items())), "spw {} ({:.1f} dB)"),
                )
            )
    return found


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def check_metrics(row: Mapping[str, Any]) -> dict[str, str]:
    """Field -> message for every metric of ROW that crosses a limit (see find_problems for the keys)."""
    return {f.field: f.message for f in find_problems(row)}
