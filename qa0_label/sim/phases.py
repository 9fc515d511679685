"""Antenna phases as an AoD sees them on the flux calibrator: offsets, drifts and atmospheric phase noise.

Each antenna's phase (relative to the reference antenna at the array centre) is
    phase = instrumental offset (per antenna x spw, constant) + a slow instrumental drift over the EB
          + 360 f / c x residual atmospheric path + thermal noise.
The residual path (after the water-vapour radiometer correction) has an RMS that grows with the antenna's
distance r from the reference as (r / 1 km)^0.6 up to an outer scale of 3 km (Kolmogorov turbulence in a
thick screen: structure function ~ b^(5/3) short of the outer scale, so RMS ~ b^(5/6), flattened to ~b^0.6
by the WVR correction; approx.). Its level at 1 km is lognormal around 60 um at night and ~1.7x by day,
and grows with PWV. In time it is 85 % a slow component (correlation time ~20 min, so consecutive scans of
one antenna are correlated) and 15 % scan-to-scan noise. An antenna whose WVR is off (~2 %) keeps the
uncorrected path, ~3x larger. Sources: docs/domain-simulator.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.random import Generator

C_UM_GHZ = 299_792.458
"""Speed of light in um x GHz: one wavelength at f GHz is C_UM_GHZ / f micrometres."""

CONFIG_MAX_BASELINE_KM: tuple[float, ...] = (0.16, 0.31, 0.50, 0.78, 1.4, 2.5, 3.6, 8.5, 13.9, 16.2)
"""Longest baselines of the 12 m configurations C-1 .. C-10 (ALMA Proposer's Guide, approx.)."""
CONFIG_WEIGHT: tuple[float, ...] = (0.12, 0.12, 0.14, 0.14, 0.14, 0.12, 0.09, 0.06, 0.04, 0.03)
ACA_MAX_BASELINE_KM = 0.045
"""The 7 m array's baselines are 9-45 m."""

PATH_RMS_1KM_UM = 60.0
"""Median residual path RMS (um) at 1 km from the reference antenna, at night, ~1 mm PWV, WVR on (approx.)."""
DAY_FACTOR = 1.7
PWV_EXPONENT = 0.4
BASELINE_EXPONENT = 0.6
OUTER_SCALE_KM = 3.0
SLOW_SHARE = 0.85
"""Share of the path variance in the slow component (the rest changes from scan to scan)."""
SLOW_TIME_S = 1200.0
WVR_OFF_PROB = 0.02
WVR_OFF_FACTOR = 3.0
DRIFT_UM = 50.0
"""RMS instrumental path drift (um) over an hour: antenna-position and delay errors projected on a source that
moves ~15 deg an hour (0.1-0.3 mm errors), and electronics drifts (approx.)."""


@dataclass(frozen=True)
class Layout:
    """Where each antenna stands: the EB's longest baseline and each antenna's distance from the reference."""

    max_baseline_km: np.ndarray  # (N,)
    radius_km: np.ndarray  # (A,)
    wvr_on: np.ndarray  # (A,) bool


def layout(r: Generator, is12: np.ndarray, ant_eb: np.ndarray) -> Layout:
    """Draw each EB's configuration and each antenna's distance from the array centre (centrally concentrated)."""
    n, a = is12.size, ant_eb.size
    config = r.choice(len(CONFIG_MAX_BASELINE_KM), size=n, p=np.array(CONFIG_WEIGHT) / sum(CONFIG_WEIGHT))
    lmax = np.where(is12, np.array(CONFIG_MAX_BASELINE_KM)[config], ACA_MAX_BASELINE_KM)
    # Antennas crowd towards the centre: the distance goes as u^1.5 of the half-length.
    floor = np.where(is12, 0.015, 0.009)
    radius = np.maximum(0.5 * lmax[ant_eb] * r.random(a) ** 1.5, floor[ant_eb])
    return Layout(max_baseline_km=lmax, radius_km=radius, wvr_on=r.random(a) >= WVR_OFF_PROB)


def path_rms_1km(r: Generator, day: np.ndarray, pwv: np.ndarray, unstable: np.ndarray) -> np.ndarray:
    """Residual path RMS (um) at 1 km of each EB: lognormal, worse by day, at high PWV and in unstable weather."""
    base = r.lognormal(np.log(PATH_RMS_1KM_UM), 0.45, day.size)
    base *= np.where(day, DAY_FACTOR, 1.0) * np.maximum(pwv, 0.1) ** PWV_EXPONENT
    return base * np.where(unstable, r.uniform(3.0, 7.0, day.size), 1.0)


def antenna_path_rms(lay: Layout, rms_1km: np.ndarray, ant_eb: np.ndarray) -> np.ndarray:
    """Residual path RMS (um) of each antenna: the structure-function growth with distance, WVR off x3."""
    scale = (np.minimum(lay.radius_km, OUTER_SCALE_KM) / 1.0) ** BASELINE_EXPONENT
    return rms_1km[ant_eb] * scale * np.where(lay.wvr_on, 1.0, WVR_OFF_FACTOR)


def path_series(
    r: Generator, sigma_ai: np.ndarray, ai: np.ndarray, k: np.ndarray, t_s: np.ndarray, n_ant_row: np.ndarray
) -> np.ndarray:
    """Residual path (um) per antenna x scan row: slow AR(1) in scan time plus scan-to-scan noise plus drift.

    Rows are scan-major within each EB (row - n_ant is the same antenna's previous scan), AI the antenna of
    each row, K its scan position, T_S its time (s), N_ANT_ROW the EB's antenna count.
    """
    ak = ai.size
    slow = r.standard_normal(ak)
    order = np.argsort(k, kind="stable")
    bounds = np.searchsorted(k[order], np.arange(int(k.max()) + 2 if ak else 1))
    for j in range(1, bounds.size - 1):  # at most ~80 scans: a short loop over vectorised steps
        rows = order[bounds[j] : bounds[j + 1]]
        prev = rows - n_ant_row[rows]
        rho = np.exp(-np.maximum(t_s[rows] - t_s[prev], 1.0) / SLOW_TIME_S)
        slow[rows] = rho * slow[prev] + np.sqrt(1.0 - rho * rho) * slow[rows]
    fast = r.standard_normal(ak)
    drift_rate = r.normal(0.0, DRIFT_UM / 3600.0, int(ai.max()) + 1 if ak else 0)
    sig = sigma_ai[ai]
    return sig * (np.sqrt(SLOW_SHARE) * slow + np.sqrt(1.0 - SLOW_SHARE) * fast) + drift_rate[ai] * t_s


def to_degrees(path_um: np.ndarray, freq_ghz: np.ndarray) -> np.ndarray:
    """Phase (deg) of a path (um) at a frequency (GHz)."""
    return path_um * 360.0 * freq_ghz / C_UM_GHZ


def wrap_deg(phase: np.ndarray) -> np.ndarray:
    """Wrap to [-180, 180)."""
    return np.mod(phase + 180.0, 360.0) - 180.0


def rms_about_antenna_mean(
    phase: np.ndarray, ai: np.ndarray, ak_eb: np.ndarray, ok: np.ndarray, n_eb: int, n_antennas: int
) -> np.ndarray:
    """EB phase RMS (deg): each antenna x spw's phases about their circular mean (offsets removed), over ok rows."""
    rad = np.radians(phase)
    group = (ai[:, None] * 4 + np.arange(4)[None, :]).ravel()
    w = np.repeat(ok, 4).astype(float)
    size = 4 * n_antennas
    c = np.bincount(group, weights=w * np.cos(rad).ravel(), minlength=size)
    s = np.bincount(group, weights=w * np.sin(rad).ravel(), minlength=size)
    mean = np.arctan2(s, c)
    dev = wrap_deg(phase - np.degrees(mean[group]).reshape(-1, 4))
    n_ok = 4.0 * np.bincount(ak_eb, weights=ok, minlength=n_eb)
    return np.sqrt(np.bincount(ak_eb, weights=ok * (dev**2).sum(axis=1), minlength=n_eb) / np.maximum(n_ok, 1))
