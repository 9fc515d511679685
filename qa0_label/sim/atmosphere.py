"""Site, bands, tunings and weather of the simulated EBs: PWV, opacity, elevation and system temperature.

The opacity curve, the band limits and the Tsys model live in review/limits.py (one copy), so the weather
the simulator draws and the warnings the review page raises agree. Sources of every number are in
docs/domain-simulator.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from numpy.random import Generator

from qa0_label.review import limits

LATITUDE_DEG = -23.02
LONGITUDE_DEG = -67.755
T_ATM_K = limits.T_ATM_K
T_SPILL_K = limits.T_SPILL_K
EPOCH = datetime(2023, 1, 1, tzinfo=timezone.utc)
SPAN_DAYS = 731
JD_EPOCH = 2459945.5  # Julian date of EPOCH

BANDS: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 9, 10)
BAND_EDGES_GHZ: dict[int, tuple[float, float]] = {b: limits.BAND_EDGES_GHZ[b] for b in BANDS}
TRX_K: dict[int, float] = {b: limits.RECEIVER_TEMP_K[b] for b in BANDS}
"""Typical (not specification) receiver temperatures; each antenna x spw draws within +-15 % of them."""
TAU_LIMIT: dict[int, float] = {b: limits.ACCEPTABLE_ZENITH_OPACITY[b] for b in BANDS}
BAND_WEIGHT: dict[int, float] = {3: 0.30, 4: 0.10, 5: 0.03, 6: 0.20, 7: 0.33, 8: 0.05, 9: 0.06, 10: 0.03}
"""Grid monitoring is mostly in Bands 3, 4, 6 and 7 (DOMAIN.md)."""
# Inner/outer IF offsets of the 4 basebands (GHz): LSB at LO - outer, LO - inner, USB at LO + inner, + outer.
IF_OFFSETS: dict[int, tuple[float, float]] = {
    3: (5.0, 7.0),
    4: (5.0, 7.0),
    5: (5.0, 7.0),
    6: (6.0, 8.0),
    7: (5.0, 7.0),
    8: (5.0, 7.0),
    9: (6.0, 8.0),
    10: (6.0, 8.0),
}
STANDARD_LO_GHZ: dict[int, float] = {b: limits.REFERENCE_FREQ_GHZ[b] for b in BANDS}
# Non-standard tunings stay in clean atmospheric windows (away from the 118, 183, 325, 380, 448 GHz lines).
LO_RANGE: dict[int, tuple[float, float]] = {
    3: (92.0, 107.0),
    4: (135.0, 155.0),
    5: (196.0, 203.0),
    6: (222.0, 262.0),
    7: (334.0, 356.0),
    8: (398.0, 418.0),
    9: (660.0, 690.0),
    10: (860.0, 885.0),
}
_TAU_NU = np.array(limits.OPACITY_FREQ_GHZ, dtype=float)
_TAU_DRY = np.array(limits.OPACITY_DRY, dtype=float)
_TAU_WET = np.array(limits.OPACITY_WET_PER_MM, dtype=float)
# PWV octiles of the site (mm) with plausible tails; sampled by interpolating log(PWV).
_PWV_Q = np.linspace(0.0, 1.0, 9)
_PWV_V = np.log(np.array([0.20, 0.472, 0.658, 0.913, 1.262, 1.796, 2.748, 5.186, 9.0]))

DAY_OF_YEAR = np.array([(EPOCH + timedelta(days=d)).timetuple().tm_yday for d in range(SPAN_DAYS)])
ALLOWED_DAYS = np.array([d for d in range(SPAN_DAYS) if (EPOCH + timedelta(days=d)).month != 2], dtype=np.int64)
"""Days the array observes: February is the maintenance shutdown."""


def tau_zenith(freq_ghz: np.ndarray | float, pwv_mm: np.ndarray | float) -> np.ndarray:
    """Zenith opacity at Chajnantor for a frequency (GHz) and PWV (mm)."""
    f = np.asarray(freq_ghz, dtype=float)
    return np.interp(f, _TAU_NU, _TAU_DRY) + np.interp(f, _TAU_NU, _TAU_WET) * np.asarray(pwv_mm, dtype=float)


def pwv_for_tau(freq: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """The PWV (mm) at which the zenith opacity at FREQ reaches TAU."""
    return (tau - np.interp(freq, _TAU_NU, _TAU_DRY)) / np.interp(freq, _TAU_NU, _TAU_WET)


def system_temperature(trx_k: np.ndarray, tau_slant: np.ndarray) -> np.ndarray:
    """Tsys = (Trx + Tspill + Tatm (1 - e^-tau A)) e^(tau A), the model limits.expected_tsys_k uses."""
    ext = np.exp(tau_slant)
    return (trx_k + T_SPILL_K + T_ATM_K * (1.0 - 1.0 / ext)) * ext


def max_elevation_deg(dec_deg: np.ndarray | float) -> np.ndarray:
    """Culmination elevation at the ALMA site: 90 - |dec - latitude|."""
    return 90.0 - np.abs(np.asarray(dec_deg, dtype=float) - LATITUDE_DEG)


def elevation(dec_deg: np.ndarray, ha_hours: np.ndarray) -> np.ndarray:
    """Elevation (deg) of a source at declination DEC_DEG and hour angle HA_HOURS."""
    lat, dec, ha = np.radians(LATITUDE_DEG), np.radians(dec_deg), np.radians(ha_hours * 15.0)
    s = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    return np.degrees(np.arcsin(np.clip(s, -1.0, 1.0)))


def ha_for_elevation(dec_deg: np.ndarray, el_deg: np.ndarray | float) -> np.ndarray:
    """Hour angle (h, >= 0) at which a source at DEC_DEG reaches EL_DEG (0 if it never gets that low)."""
    lat, dec = np.radians(LATITUDE_DEG), np.radians(dec_deg)
    c = (np.sin(np.radians(el_deg)) - np.sin(lat) * np.sin(dec)) / (np.cos(lat) * np.cos(dec))
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0))) / 15.0


def sample_pwv(rng: Generator, n: int, doy: np.ndarray) -> np.ndarray:
    """PWV (mm) from the site octiles, a little wetter in the Altiplanic summer."""
    pwv = np.exp(np.interp(rng.random(n), _PWV_Q, _PWV_V))
    # Altiplanic summer (Jan-Mar) is wetter, the austral winter drier; the median stays near the site's.
    pwv *= np.exp(0.3 * np.cos(2.0 * np.pi * (doy - 45.0) / 365.25))
    # Nothing observes in very wet weather: those draws become the moderate nights after the storm.
    return np.where(pwv > 6.0, pwv * rng.uniform(0.15, 0.8, n), pwv)


def utc_hours(lst_hours: np.ndarray, day: np.ndarray) -> np.ndarray:
    """UTC time of day (h) at which the local sidereal time is LST_HOURS on day DAY since EPOCH."""
    g0 = np.mod(18.697374558 + 24.06570982441908 * (JD_EPOCH - 2451545.0 + day), 24.0)
    return np.mod(lst_hours - LONGITUDE_DEG / 15.0 - g0, 24.0) / 1.00273790935


def is_daytime(utc_h: np.ndarray) -> np.ndarray:
    """Local daytime at the site (roughly 08-19 h local, UTC-4): the sun heats the ground and the phases suffer."""
    local = np.mod(utc_h - 4.0, 24.0)
    return (local >= 8.0) & (local < 19.0)
