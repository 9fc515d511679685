"""The thresholds an AoD applies to an EB, in one place: band facts, weather and quality limits, and checks.

Numbers come from /work/shared/DOMAIN.md (public ALMA documentation and grid-survey analysis code). Where a
value is marked approx. it is a plausible operating limit, not an observatory rule; change it here and every
warning in the app follows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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

RECEIVER_TEMP_K: dict[int, float] = {3: 37.0, 4: 51.0, 5: 65.0, 6: 83.0, 7: 147.0, 8: 196.0, 9: 175.0, 10: 230.0}
"""Receiver noise temperature specifications (K); Bands 1-2 are not in the brief, so they are absent."""

T_ATM_K = 270.0
"""Physical temperature of the emitting atmosphere in the Tsys model (K)."""

# Zenith opacity tau(band, pwv) = dry + wet * pwv near the band centre at Chajnantor (approx., read off the
# ATM transmission curves). Band 5 sits on the 183 GHz water line, hence its large wet term.
ZENITH_OPACITY_DRY: dict[int, float] = {
    1: 0.02, 2: 0.05, 3: 0.03, 4: 0.03, 5: 0.04, 6: 0.016, 7: 0.02, 8: 0.05, 9: 0.1, 10: 0.15,
}
ZENITH_OPACITY_PER_MM: dict[int, float] = {
    1: 0.004, 2: 0.008, 3: 0.012, 4: 0.02, 5: 0.1, 6: 0.05, 7: 0.14, 8: 0.5, 9: 0.8, 10: 1.3,
}

ACCEPTABLE_ZENITH_OPACITY: dict[int, float] = {
    1: 0.1, 2: 0.1, 3: 0.1, 4: 0.1, 5: 0.2, 6: 0.2, 7: 0.25, 8: 0.4, 9: 0.5, 10: 0.6,
}
"""Largest zenith opacity the grid-survey analysis accepts per band (approx.)."""

# --- limits ----------------------------------------------------------------------------------------

ELEVATION_WARN_DEG = 40.0
"""Flux-scale references are preferred above this elevation."""
ELEVATION_BAD_DEG = 20.0
"""The scheduler does not observe below this elevation."""

MIN_ANTENNAS_WARN: dict[str, int] = {"12m": 40, "7m": 8}
"""Fewer antennas than this is unusual for the array (12 m: 40-50 typical; ACA has 12 dishes)."""
MIN_ANTENNAS_BAD = 5
"""Grid analysis drops EBs with fewer antennas than this."""

EXEC_FRACTION_WARN = 0.9
"""An EB that ran less than this share of its plan was probably aborted."""
EXEC_FRACTION_BAD = 0.5

FLUX_DEVIATION_WARN_SIGMA = 3.0
"""Measured flux this many combined sigma from the catalogue expectation deserves a look."""
FLUX_DEVIATION_BAD_SIGMA = 5.0
"""A jump of this size is more often an instrument problem than a real flare."""

PHASE_RMS_WARN_DEG = 30.0
"""Phase RMS after WVR correction above which coherence losses start to matter (approx.)."""
PHASE_RMS_BAD_DEG = 50.0

FLAGGED_FRACTION_WARN = 0.2
"""Share of flagged data above which the AoD should find out why (approx.)."""
FLAGGED_FRACTION_BAD = 0.4

TSYS_OUTLIER_RATIO = 1.5
"""An antenna whose median Tsys exceeds the array median by this factor is a Tsys outlier (approx.)."""

BANDPASS_RIPPLE_DB = 3.0
"""Amplitude variation across a spectral window above this (autocorrelations) is a SemiPass reason."""

SPECTRAL_INDEX_RANGE: tuple[float, float] = (-1.5, 0.5)
"""Grid quasars have alpha between about -0.2 and -0.9; outside this wider range the spws disagree."""

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


def zenith_opacity(band: int, pwv_mm: float) -> float:
    """Approximate zenith opacity near the band centre for a given precipitable water vapour."""
    band = int(band)
    return ZENITH_OPACITY_DRY[band] + ZENITH_OPACITY_PER_MM[band] * max(0.0, float(pwv_mm))


def pwv_limit_mm(band: int) -> float:
    """PWV (mm) above which the band's zenith opacity exceeds what grid analysis accepts."""
    band = int(band)
    if band not in ACCEPTABLE_ZENITH_OPACITY:
        raise KeyError(f"no PWV limit for band {band!r}")
    return (ACCEPTABLE_ZENITH_OPACITY[band] - ZENITH_OPACITY_DRY[band]) / ZENITH_OPACITY_PER_MM[band]


def airmass(elevation_deg: float) -> float:
    """Plane-parallel airmass 1/sin(el), capped at the horizon to stay finite."""
    return 1.0 / math.sin(math.radians(max(float(elevation_deg), 3.0)))


def expected_tsys_k(band: int, pwv_mm: float, elevation_deg: float) -> float:
    """System temperature from Tsys ~ (Trx + Tatm (1 - e^-tau A)) e^tau A (single sideband, approx.)."""
    tau = zenith_opacity(band, pwv_mm) * airmass(elevation_deg)
    return (RECEIVER_TEMP_K[int(band)] + T_ATM_K * (1.0 - math.exp(-tau))) * math.exp(tau)


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
    n_antennas, exec_fraction, flux_jy, flux_err_jy, expected_flux_jy, expected_flux_err_jy (or a ready
    flux_deviation_sigma), phase_rms_deg, flagged_fraction, spectral_index, tsys_outliers
    (dict antenna -> Tsys / array median), bp_ripple (dict spw -> worst ripple in dB).
    """
    found: list[Finding] = []
    band = _num(row, "band")
    band_i = int(band) if band is not None else None

    pwv = _num(row, "pwv_mm")
    if pwv is not None and band_i in ACCEPTABLE_ZENITH_OPACITY:
        limit = pwv_limit_mm(band_i)
        if pwv > limit:
            level: Level = "bad" if pwv > 1.5 * limit else "warn"
            found.append(
                Finding("pwv_mm", level, f"PWV {pwv:.2f} mm is above the {band_name(band_i)} limit of {limit:.2f} mm")
            )

    el = _num(row, "elevation_deg")
    if el is not None:
        if el < ELEVATION_BAD_DEG:
            found.append(Finding("elevation_deg", "bad", f"elevation {el:.1f} deg is below {ELEVATION_BAD_DEG:.0f} deg"))
        elif el < ELEVATION_WARN_DEG:
            found.append(
                Finding("elevation_deg", "warn", f"elevation {el:.1f} deg is below {ELEVATION_WARN_DEG:.0f} deg "
                        "(flux references prefer higher)")
            )

    n_ant = _num(row, "n_antennas")
    if n_ant is not None:
        array = str(row.get("array") or "12m")
        warn_at = MIN_ANTENNAS_WARN.get(array, MIN_ANTENNAS_WARN["12m"])
        if n_ant < MIN_ANTENNAS_BAD:
            found.append(Finding("n_antennas", "bad", f"only {n_ant:.0f} antennas (fewer than {MIN_ANTENNAS_BAD})"))
        elif n_ant < warn_at:
            found.append(
                Finding("n_antennas", "warn", f"{n_ant:.0f} antennas, fewer than the usual {warn_at} on the {array} array")
            )

    ef = _num(row, "exec_fraction")
    if ef is not None and ef < EXEC_FRACTION_WARN:
        level = "bad" if ef < EXEC_FRACTION_BAD else "warn"
        found.append(
            Finding("exec_fraction", level, f"execution fraction {ef:.2f} is below {EXEC_FRACTION_WARN:.2f} (aborted?)")
        )

    dev = _num(row, "flux_deviation_sigma")
    if dev is None:
        dev = flux_deviation_sigma(
            _num(row, "flux_jy"), _num(row, "flux_err_jy"), _num(row, "expected_flux_jy"), _num(row, "expected_flux_err_jy")
        )
    if dev is not None and abs(dev) > FLUX_DEVIATION_WARN_SIGMA:
        level = "bad" if abs(dev) > FLUX_DEVIATION_BAD_SIGMA else "warn"
        direction = "above" if dev > 0 else "below"
        found.append(
            Finding("flux_jy", level, f"flux is {abs(dev):.1f} sigma {direction} the catalogue expectation")
        )

    alpha = _num(row, "spectral_index")
    lo_a, hi_a = SPECTRAL_INDEX_RANGE
    if alpha is not None and not lo_a <= alpha <= hi_a:
        found.append(
            Finding("spectral_index", "warn", f"spectral index {alpha:+.2f} is outside {lo_a:+.1f}..{hi_a:+.1f} "
                    "(spectral windows disagree?)")
        )

    ph = _num(row, "phase_rms_deg")
    if ph is not None and ph > PHASE_RMS_WARN_DEG:
        level = "bad" if ph > PHASE_RMS_BAD_DEG else "warn"
        found.append(Finding("phase_rms_deg", level, f"phase RMS {ph:.0f} deg is above {PHASE_RMS_WARN_DEG:.0f} deg"))

    ff = _num(row, "flagged_fraction")
    if ff is not None and ff > FLAGGED_FRACTION_WARN:
        level = "bad" if ff > FLAGGED_FRACTION_BAD else "warn"
        found.append(
            Finding("flagged_fraction", level, f"{ff:.0%} of the data is flagged (above {FLAGGED_FRACTION_WARN:.0%})")
        )

    outliers = row.get("tsys_outliers") or {}
    if isinstance(outliers, Mapping) and outliers:
        worst = sorted(outliers.items(), key=lambda kv: -float(kv[1]))
        names = ", ".join(f"{ant} ({float(ratio):.1f}x)" for ant, ratio in worst[:6])
        more = f" and {len(worst) - 6} more" if len(worst) > 6 else ""
        found.append(Finding("tsys_median_k", "warn", f"Tsys outlier antennas: {names}{more}"))

    ripple = row.get("bp_ripple") or {}
    if isinstance(ripple, Mapping):
        bad_spws = sorted((int(s), float(db)) for s, db in ripple.items() if float(db) > BANDPASS_RIPPLE_DB)
        if bad_spws:
            spws = ", ".join(f"spw {s} ({db:.1f} dB)" for s, db in bad_spws)
            found.append(Finding("bp_ripple_db", "warn", f"bandpass ripple above {BANDPASS_RIPPLE_DB:.0f} dB in {spws}"))
    return found


def check_metrics(row: Mapping[str, Any]) -> dict[str, str]:
    """Field -> message for every metric of ROW that crosses a limit (see find_problems for the keys)."""
    return {f.field: f.message for f in find_problems(row)}
