"""Realistic synthetic flux-calibrator EBs (vectorised numpy), hidden reference QA0, simulated AoDs.

What an EB looks like
---------------------
One EB observes one grid quasar (real names, 97.5 / 343.5 GHz fluxes and spectral indices from DOMAIN.md;
declination and RA parsed from the J-name) with the 12 m array (40-50 antennas from DA41..DA65, DV01..DV25,
PM01..PM04, project ``YYYY.1.00001.CSV``, SB ``<source>_a_03_TM1``) or the 7 m array (10-12 of CM01..CM12,
project ``YYYY.1.00002.CSV``, SB ``..._7M``), at a start time between 2023-01-01 and 2024-12-31 (no February:
the observatory's maintenance shutdown), with uid ``uid://A002/X<hex>/X<hex>``. The tuning has 4 spectral
windows (``spw`` 0-3 in increasing frequency) inside the band edges; bands are mostly 3, 4, 6, 7. PWV follows
the site octiles (a little wetter in the Altiplanic summer) and the band is one the scheduler would pick
(zenith opacity under the band's limit). The elevation comes from the declination and an hour angle at
latitude -23.02 (never above 90-|dec+23.02|, normally above 22 deg) and the start time matches the LST.
Tsys = (Trx + Tatm (1 - exp(-tau A)) + Tspill) exp(tau A) per antenna/spw/scan. Each source has a slowly
varying light curve (a few sinusoids, 5-15 % over 60 days) plus occasional real flares that are stronger
at higher frequency. ``expected_flux_jy`` is the catalogue extrapolation: the light curve a few days BEFORE
the EB (the last catalogue point) plus catalogue noise, so it misses flares that started since.

Detail rows (EBDetail) are antenna x spw x scan, 1,000-1,800 (mean ~1,400) per complete EB with a normal
antenna count (fewer only when antennas are missing or the EB was aborted): ``amplitude`` (Jy) = the source flux at the
spw frequency x antenna gain x noise, ``phase_deg`` = residual WVR-corrected path noise (scales with
frequency), ``tsys_k``, ``bp_ripple_db`` (peak-to-peak autocorrelation variation across the spw, normally
< 1 dB) and ``flagged`` (online flags: ~1 % of antennas, ~0.5 % of antenna-scans).

EB summary columns are computed from the (rounded) detail rows: ``tsys_median_k`` = median tsys_k of the
unflagged rows; ``phase_rms_deg`` = RMS of phase_deg over unflagged rows; ``flagged_fraction`` = mean of
flagged; ``flux_jy`` / ``spectral_index`` = weighted power-law fit ln S = ln S0 + alpha ln(nu/freq_ghz)
to the 4 per-spw means of the unflagged amplitudes (``flux_jy`` is S0 at ``freq_ghz``, the LO);
``flux_err_jy`` = sqrt((0.02 S0)^2 + stat^2); ``spectral_index_err`` from the fit (scaled by the reduced
chi^2 when it exceeds 1); ``exec_fraction`` = executed / planned scans; ``elevation_deg`` at mid-EB.

Faults and where they show up (for features.py)
------------------------------------------------
Each fault is injected independently; its latent severity s (0 = harmless, >= 1 SemiPass, >= 2 Fail) is a
piecewise-linear function of its physical size (``SEVERITY_KNOTS``). Names are the keys of ``FAULTS``.

============== ===================================================== ==================================================
fault          where it shows                                        severity from (SemiPass / Fail at)
============== ===================================================== ==================================================
dead_antenna   details: one or more antennas with amplitude ~1 % of  dead antennas / n_antennas (7 % / 20 %): one dead
               the others and random phases; half of them also       antenna fails nothing in the 12 m array but is
               flagged; EB: flux_jy a little low, phase_rms_deg up,  SemiPass in the 7 m array
               flagged_fraction up
noisy_antenna  details: tsys_k of 1+ antennas 1.8-4x the median of   noisy antennas / n_antennas (7 % / 20 %)
               its siblings, amplitude scatter 3x; EB: tsys_median_k
               barely moves (use per-antenna ratios)
tsys_spike     details: every antenna's tsys_k in ONE scan x1.4-5,   ratio r of that scan (r 2 / never Fail)
               amplitudes of that scan scaled up by 0.25 (r-1)
phase_jump     details: one antenna's phase_deg steps by 30-175 deg  jump size (60 deg / never Fail)
               from one scan on; its amplitude drops in that scan;
               EB: phase_rms_deg up
few_antennas   EB: n_antennas 14-36 (12 m) or 3-8 (7 m); details:    n_antennas (12 m: 30 / 16; 7 m: 7 / 4)
               fewer antennas
aborted        EB: exec_fraction 0.15-0.85, shorter duration_s;      exec_fraction (0.7 / 0.3)
               details: fewer scans (truncated, or a block of scan
               numbers missing in the middle)
bandpass_ripple details: bp_ripple_db 2-8 dB in one spw for most     median ripple of the worst spw (3 dB / never Fail)
               antennas; that spw's amplitude biased and noisier
               (spectral_index off)
high_pwv       EB: pwv_mm too high for the band (zenith opacity at   tau / band limit (1.4 / 2.2)
               freq_ghz above the limit); details: tsys_k high,
               amplitudes noisier
low_elevation  EB: elevation_deg 13.5-19.5; details: tsys_k up       elevation (17 deg / 10 deg)
               (airmass); 7 m: shadowed antennas flagged in scans
flux_offset    EB: flux_jy 6-42 % off expected_flux_jy. Low (75 %):  |ln(true / measured scale)| (12 % / 30 %)
               pointing/focus loss, antenna-dependent amplitude
               scatter in the details and a steeper spectral_index;
               high (25 %): a uniform calibration scale error
phase_instability details and EB: phase_deg scatter 2.5-5x normal    atmospheric phase RMS at freq_ghz (45 / 80 deg);
               (also happens naturally in Bands 8-10); amplitudes     the natural tail contributes too
               lose a little to decorrelation
============== ===================================================== ==================================================

A REAL flare (no fault, reference Pass) also moves flux_jy away from expected_flux_jy, but cleanly: all
antennas and spws agree, the spectrum is normal or flatter, and other EBs of the same source around the same
date show the same brightening (an instrument problem shows in one EB only).

Reference QA0 (hidden, table reference_outcome only)
----------------------------------------------------
value = Fail if max severity >= 2, SemiPass if >= 1, else Pass. Hence Fail comes from many dead/noisy
antennas, too few antennas, an EB aborted early, PWV far over the band limit, very low elevation, a large
flux offset, or strong phase instability; SemiPass from the milder forms of those and from a Tsys spike,
a phase jump or bandpass ripple > 3 dB (which are never worse than SemiPass). ``reasons`` lists the
deciding faults ("<fault label>: <detail>"), then ``minor <fault label>: ...`` for faults with
0.3 <= s < 1, and ``note: real flare ...`` when the source itself changed by > 15 % since the catalogue
point. Shares come out at about 83 % Pass, 11 % SemiPass, 6 % Fail.

Simulated AoDs apply noisy thresholds (1 + bias, 2 + bias) to the same latent severities: AoD 0 is strict
(bias -0.35: borderline EBs go SemiPass/Fail and real flares are often SemiPassed), AoD 1 lenient
(+0.35), the others near neutral; each also slips to a neighbouring value now and then (~2 %).
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
from numpy.random import PCG64, Generator, SeedSequence
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from qa0_label.learning import features
from qa0_label.review import limits
from qa0_label.store import db
from qa0_label.store.models import LABEL_VALUES, ExecutionBlock

ProgressFn = Callable[[float, str], None]

# --- catalogue of grid sources ----------------------------------------------------------------------

# (name, alias, S(97.5 GHz) Jy, spectral index). The first 18 are the DOMAIN.md 60-day medians (alpha
# from the 97.5/343.5 GHz pair); the next 6 have the documented 97.5 GHz flux and an assumed alpha; the
# rest are real grid-source names with ILLUSTRATIVE fluxes (not catalogue values).
GRID_SOURCES: tuple[tuple[str, str, float, float], ...] = (
    ("J1256-0547", "3C279", 13.6, -0.55),
    ("J0319+4130", "3C84", 17.3, -0.68),
    ("J2253+1608", "3C454.3", 10.4, -0.68),
    ("J1229+0203", "3C273", 9.5, -0.92),
    ("J1924-2914", "", 5.8, -0.59),
    ("J0522-3627", "", 5.4, -0.24),
    ("J1058+0133", "", 4.6, -0.57),
    ("J0854+2006", "", 4.6, -0.47),
    ("J2258-2758", "", 3.8, -0.62),
    ("J0423-0120", "", 3.8, -0.52),
    ("J1427-4206", "", 3.7, -0.60),
    ("J1751+0939", "", 3.4, -0.46),
    ("J1337-1257", "", 3.4, -0.55),
    ("J1517-2422", "", 3.0, -0.32),
    ("J0538-4405", "", 2.4, -0.53),
    ("J0006-0623", "", 2.0, -0.66),
    ("J1107-4449", "", 1.5, -0.73),
    ("J1550+0527", "", 0.9, -0.81),
    ("J1733-1304", "NRAO530", 2.9, -0.55),
    ("J2056-4714", "", 1.7, -0.60),
    ("J2148+0657", "", 2.0, -0.50),
    ("J2232+1143", "", 3.6, -0.45),
    ("J1617-5848", "", 1.0, -0.70),
    ("J0750+1231", "", 1.0, -0.60),
    ("J0237+2848", "", 1.6, -0.55),
    ("J0238+1636", "", 1.1, -0.45),
    ("J0334-4008", "", 1.0, -0.60),
    ("J0457+2624", "", 0.8, -0.65),
    ("J0510+1800", "", 1.5, -0.50),
    ("J0519-4546", "", 1.2, -0.85),
    ("J1037-2934", "", 1.2, -0.55),
    ("J1146+3958", "", 1.0, -0.60),
    ("J1642+3948", "3C345", 2.5, -0.60),
    ("J1819-0258", "", 0.7, -0.70),
    ("J2025+3343", "", 1.5, -0.55),
    ("J1625-2527", "", 1.0, -0.60),
    ("J2157-6941", "", 1.5, -0.90),
    ("J2202+4216", "BL Lac", 3.0, -0.40),
)

_J_NAME = re.compile(r"^J(\d{2})(\d{2})([+-])(\d{2})(\d{2})$")


def parse_j_name(name: str) -> tuple[float, float]:
    """(RA in hours, declination in degrees) from a J2000 name such as J1256-0547."""
    m = _J_NAME.match(name)
    if m is None:
        raise ValueError(f"not a J-name: {name!r}")
    ra = int(m.group(1)) + int(m.group(2)) / 60.0
    dec = int(m.group(4)) + int(m.group(5)) / 60.0
    return ra, (-dec if m.group(3) == "-" else dec)


_SRC_NAME = np.array([s[0] for s in GRID_SOURCES], dtype=object)
_SRC_S0 = np.array([s[2] for s in GRID_SOURCES])
_SRC_ALPHA = np.array([s[3] for s in GRID_SOURCES])
_SRC_RA = np.array([parse_j_name(s[0])[0] for s in GRID_SOURCES])
_SRC_DEC = np.array([parse_j_name(s[0])[1] for s in GRID_SOURCES])
# The documented grid sources are observed about twice as often as the illustrative ones.
_SRC_WEIGHT = np.array([2.0 if i < 24 else 1.0 for i in range(len(GRID_SOURCES))])
_SRC_WEIGHT /= _SRC_WEIGHT.sum()

# --- site, bands, atmosphere -------------------------------------------------------------------------

LATITUDE_DEG = -23.02
LONGITUDE_DEG = -67.755
T_ATM_K = 270.0
T_SPILL_K = 12.0
EPOCH = datetime(2023, 1, 1, tzinfo=timezone.utc)
SPAN_DAYS = 731
_JD_EPOCH = 2459945.5  # Julian date of EPOCH

BANDS: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 9, 10)
# Band edges, receiver temperatures, the opacity curve and its limits live in limits.py (one copy).
BAND_EDGES_GHZ: dict[int, tuple[float, float]] = {b: limits.BAND_EDGES_GHZ[b] for b in BANDS}
TRX_K: dict[int, float] = {b: limits.RECEIVER_TEMP_K[b] for b in BANDS}
TAU_LIMIT: dict[int, float] = {b: limits.ACCEPTABLE_ZENITH_OPACITY[b] for b in BANDS}
BAND_WEIGHT: dict[int, float] = {3: 0.30, 4: 0.10, 5: 0.03, 6: 0.20, 7: 0.33, 8: 0.05, 9: 0.06, 10: 0.03}
# Inner/outer IF offsets of the 4 basebands (GHz): LSB at LO - outer, LO - inner, USB at LO + inner, + outer.
_IF_OFFSETS: dict[int, tuple[float, float]] = {
    3: (5.0, 7.0),
    4: (5.0, 7.0),
    5: (5.0, 7.0),
    6: (6.0, 8.0),
    7: (5.0, 7.0),
    8: (5.0, 7.0),
    9: (6.0, 8.0),
    10: (6.0, 8.0),
}
STANDARD_LO_GHZ: dict[int, float] = {3: 97.5, 4: 145.0, 5: 200.0, 6: 233.0, 7: 343.5, 8: 405.0, 9: 679.0, 10: 870.0}
# Non-standard tunings stay in clean atmospheric windows (away from the 118, 183, 325, 380, 448 GHz lines).
_LO_RANGE: dict[int, tuple[float, float]] = {
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

ANTENNAS_12M: tuple[str, ...] = tuple(
    [f"DA{i}" for i in range(41, 66)] + [f"DV{i:02d}" for i in range(1, 26)] + [f"PM{i:02d}" for i in range(1, 5)]
)
ANTENNAS_7M: tuple[str, ...] = tuple(f"CM{i:02d}" for i in range(1, 13))
ANTENNA_NAMES: tuple[str, ...] = ANTENNAS_12M + ANTENNAS_7M
_ANT_OBJ = np.array(ANTENNA_NAMES, dtype=object)

# --- faults and the reference rule -------------------------------------------------------------------

FAULTS: dict[str, str] = {
    "dead_antenna": "dead antenna",
    "noisy_antenna": "noisy antenna",
    "tsys_spike": "Tsys spike",
    "phase_jump": "phase jump",
    "few_antennas": "too few antennas",
    "aborted": "aborted / missing scans",
    "bandpass_ripple": "bandpass ripple",
    "high_pwv": "PWV too high for band",
    "low_elevation": "low elevation",
    "flux_offset": "flux off history",
    "phase_instability": "poor phase stability",
}
"""Fault key -> label used at the start of each reference reason."""

FAULT_PROB: dict[str, float] = {
    "dead_antenna": 0.025,
    "noisy_antenna": 0.022,
    "tsys_spike": 0.012,
    "phase_jump": 0.012,
    "few_antennas": 0.020,
    "aborted": 0.032,
    "bandpass_ripple": 0.013,
    "high_pwv": 0.025,
    "low_elevation": 0.012,
    "flux_offset": 0.050,
    "phase_instability": 0.015,
}
"""Independent per-EB injection probabilities (tuned for ~83 / 11 / 6 % reference shares)."""

SEVERITY_KNOTS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "dead_antenna": ((0.0, 0.07, 0.20, 1.0), (0.0, 1.0, 2.0, 6.0)),  # dead / n_antennas
    "noisy_antenna": ((0.0, 0.07, 0.20, 1.0), (0.0, 1.0, 2.0, 6.0)),  # noisy / n_antennas
    "tsys_spike": ((1.0, 1.3, 2.0, 6.0), (0.0, 0.0, 1.0, 1.8)),  # Tsys ratio in the spike scan
    "phase_jump": ((0.0, 25.0, 60.0, 180.0), (0.0, 0.0, 1.0, 1.8)),  # |jump| deg
    "few_antennas_12m": ((0.0, 16.0, 30.0, 38.0), (6.0, 2.0, 1.0, 0.0)),  # n_antennas
    "few_antennas_7m": ((0.0, 4.0, 7.0, 9.0), (6.0, 2.0, 1.0, 0.0)),
    "aborted": ((0.0, 0.45, 0.75, 0.9, 1.0), (4.0, 2.0, 1.0, 0.0, 0.0)),  # exec_fraction
    "bandpass_ripple": ((0.0, 1.5, 3.0, 12.0), (0.0, 0.0, 1.0, 1.9)),  # dB, median of the worst spw
    "high_pwv": ((0.0, 1.0, 1.3, 1.9, 5.0), (0.0, 0.0, 1.0, 2.0, 6.0)),  # zenith tau / band limit
    "low_elevation": ((0.0, 10.0, 17.0, 20.0, 90.0), (5.0, 2.0, 1.0, 0.0, 0.0)),  # elevation deg
    "flux_offset": ((0.0, 0.04, 0.12, 0.30, 1.0), (0.0, 0.0, 1.0, 2.0, 5.0)),  # |ln scale error|
    "phase_instability": ((0.0, 20.0, 35.0, 60.0, 180.0), (0.0, 0.0, 1.0, 2.0, 5.0)),  # deg at LO
}
"""Piecewise-linear (x, severity) knots; severity >= 1 is SemiPass, >= 2 Fail."""

FLARE_NOTE_THRESHOLD = 0.15
"""|ln(true flux now / at the catalogue point)| above which a reason notes a real flare."""


def severity(fault: str, x: np.ndarray | float) -> np.ndarray:
    """Latent severity of a fault of physical size x (see SEVERITY_KNOTS)."""
    xs, ss = SEVERITY_KNOTS[fault]
    return np.interp(np.asarray(x, dtype=float), xs, ss)


def reference_value(s_max: np.ndarray | float) -> np.ndarray:
    """The reference QA0 for a maximum severity: Fail >= 2, SemiPass >= 1, else Pass."""
    s = np.asarray(s_max, dtype=float)
    return np.where(s >= 2.0, "Fail", np.where(s >= 1.0, "SemiPass", "Pass")).astype(object)


# --- public data structures --------------------------------------------------------------------------

EB_COLUMNS: tuple[str, ...] = tuple(c for c in ExecutionBlock.model_fields if c != "id")
DETAIL_COLUMNS: tuple[str, ...] = (
    "eb",
    "antenna",
    "spw",
    "scan",
    "freq_ghz",
    "time_s",
    "tsys_k",
    "amplitude",
    "phase_deg",
    "bp_ripple_db",
    "flagged",
)


@dataclass
class SimulatedBatch:
    """Generated EBs (index = global EB index), detail rows, reference outcomes and latent severities."""

    ebs: pd.DataFrame
    details: pd.DataFrame
    outcomes: pd.DataFrame
    severity: pd.DataFrame


@dataclass(frozen=True)
class AodProfile:
    """A simulated Astronomer on Duty: name, threshold bias, decision noise, slip rate, speed."""

    name: str
    bias: float
    noise: float
    slip: float
    speed: float
    flare_suspicion: float


_AOD_NAMES: tuple[str, ...] = (
    "Valentina Rojas",
    "Kenji Tanaka",
    "Amara Okafor",
    "Lukas Brandt",
    "Sofía Herrera",
    "Pierre Dubois",
    "Ananya Iyer",
    "Tomás Cárdenas",
    "Mei-Ling Chen",
    "Oluwaseun Adeyemi",
    "Hannah Lindqvist",
    "Diego Fuentes",
)
LEAD_NAME = "Carolina Méndez"
"""The demo team lead (role lead, gives no labels)."""


def aod_profiles(k: int) -> list[AodProfile]:
    """K simulated AoDs: the first is strict, the second lenient, the rest near neutral (deterministic)."""
    out: list[AodProfile] = []
    for i in range(k):
        name = _AOD_NAMES[i % len(_AOD_NAMES)]
        if i >= len(_AOD_NAMES):
            name = f"{name} {i // len(_AOD_NAMES) + 1}"
        if i == 0:
            bias, noise, flare = -0.35, 0.12, 0.6
        elif i == 1:
            bias, noise, flare = 0.35, 0.12, 0.1
        else:
            # A fixed small spread so that "neutral" AoDs still differ a little from each other.
            bias, noise, flare = (-0.08, 0.05, 0.12, -0.03, 0.08)[i % 5], 0.2, 0.3
        speed = (1.3, 0.8, 1.0, 1.1, 0.9)[i % 5]
        out.append(AodProfile(name=name, bias=bias, noise=noise, slip=0.02, speed=speed, flare_suspicion=flare))
    return out


# --- small vectorised helpers ------------------------------------------------------------------------


def _rng(*keys: int) -> Generator:
    return Generator(PCG64(SeedSequence([int(k) & 0xFFFFFFFF for k in keys])))


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def tau_zenith(freq_ghz: np.ndarray | float, pwv_mm: np.ndarray | float) -> np.ndarray:
    """Zenith opacity at Chajnantor for a frequency (GHz) and PWV (mm)."""
    f = np.asarray(freq_ghz, dtype=float)
    return np.interp(f, _TAU_NU, _TAU_DRY) + np.interp(f, _TAU_NU, _TAU_WET) * np.asarray(pwv_mm, dtype=float)


def _pwv_for_tau(freq: np.ndarray, tau: np.ndarray) -> np.ndarray:
    return (tau - np.interp(freq, _TAU_NU, _TAU_DRY)) / np.interp(freq, _TAU_NU, _TAU_WET)


def max_elevation_deg(dec_deg: np.ndarray | float) -> np.ndarray:
    """Culmination elevation at the ALMA site: 90 - |dec - latitude|."""
    return 90.0 - np.abs(np.asarray(dec_deg, dtype=float) - LATITUDE_DEG)


def _elevation(dec_deg: np.ndarray, ha_hours: np.ndarray) -> np.ndarray:
    lat, dec, ha = np.radians(LATITUDE_DEG), np.radians(dec_deg), np.radians(ha_hours * 15.0)
    s = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    return np.degrees(np.arcsin(np.clip(s, -1.0, 1.0)))


def _ha_for_elevation(dec_deg: np.ndarray, el_deg: np.ndarray | float) -> np.ndarray:
    lat, dec = np.radians(LATITUDE_DEG), np.radians(dec_deg)
    c = (np.sin(np.radians(el_deg)) - np.sin(lat) * np.sin(dec)) / (np.cos(lat) * np.cos(dec))
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0))) / 15.0


def _sample_pwv(rng: Generator, n: int, doy: np.ndarray) -> np.ndarray:
    pwv = np.exp(np.interp(rng.random(n), _PWV_Q, _PWV_V))
    # Altiplanic summer (Jan-Mar) is wetter, the austral winter drier; the median stays near the site's.
    pwv *= np.exp(0.3 * np.cos(2.0 * np.pi * (doy - 45.0) / 365.25))
    # Nothing observes in very wet weather: those draws become the moderate nights after the storm.
    return np.where(pwv > 6.0, pwv * rng.uniform(0.15, 0.8, n), pwv)


def _ragged_rank(group: np.ndarray, rng: Generator) -> np.ndarray:
    """Random rank 0..n-1 of each element within its (sorted, contiguous) group."""
    order = np.argsort(group + rng.random(group.size), kind="stable")
    starts = np.searchsorted(group, group)
    rank = np.empty(group.size, dtype=np.int64)
    rank[order] = np.arange(group.size) - starts[order]
    return rank


_DAY_OF_YEAR = np.array([(EPOCH + timedelta(days=d)).timetuple().tm_yday for d in range(SPAN_DAYS)])
_ALLOWED_DAYS = np.array([d for d in range(SPAN_DAYS) if (EPOCH + timedelta(days=d)).month != 2], dtype=np.int64)


# --- light curves ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LightCurves:
    amp: np.ndarray  # (n_src, 3) log-amplitudes of the slow components
    period: np.ndarray  # (n_src, 3) days
    phase: np.ndarray  # (n_src, 3) radians
    alpha_amp: np.ndarray  # (n_src,)
    flare_t0: np.ndarray  # (n_src, 4) days; NaN = no flare in this slot
    flare_amp: np.ndarray  # (n_src, 4) fractional brightening at 97.5 GHz
    flare_rise: np.ndarray  # (n_src, 4) days
    flare_decay: np.ndarray  # (n_src, 4) days


def _light_curves(seed: int) -> _LightCurves:
    rng = _rng(seed, 0x11C)
    n = len(GRID_SOURCES)
    var = rng.uniform(0.05, 0.15, n)  # 60-day scatter of each source
    period = rng.uniform(80.0, 700.0, (n, 3))
    amp = var[:, None] * rng.uniform(0.6, 1.2, (n, 3)) * period / 200.0
    n_flares = np.minimum(rng.poisson(1.5, n), 4)
    t0 = rng.uniform(-60.0, SPAN_DAYS, (n, 4))
    t0[np.arange(4)[None, :] >= n_flares[:, None]] = np.nan
    return _LightCurves(
        amp=amp,
        period=period,
        phase=rng.uniform(0, 2 * np.pi, (n, 3)),
        alpha_amp=rng.uniform(0.02, 0.08, n),
        flare_t0=t0,
        flare_amp=rng.uniform(0.2, 0.7, (n, 4)),
        flare_rise=rng.uniform(4.0, 15.0, (n, 4)),
        flare_decay=rng.uniform(20.0, 80.0, (n, 4)),
    )


def _true_flux(lc: _LightCurves, src: np.ndarray, t_days: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """True flux density (Jy) of sources src at times t_days and frequencies nu (GHz, shape (N,) or (N,k))."""
    nu = np.asarray(nu, dtype=float)
    t = t_days[:, None]
    slow = (lc.amp[src] * np.sin(2 * np.pi * t / lc.period[src] + lc.phase[src])).sum(axis=1)
    alpha = _SRC_ALPHA[src] + lc.alpha_amp[src] * np.sin(2 * np.pi * t_days / 400.0 + lc.phase[src, 0])
    dt = t - lc.flare_t0[src]
    with np.errstate(invalid="ignore", over="ignore"):
        shape = np.where(dt < 0, np.exp(dt / lc.flare_rise[src]), np.exp(-dt / lc.flare_decay[src]))
    flare = np.nansum(lc.flare_amp[src] * shape, axis=1)
    base = _SRC_S0[src] * np.exp(slow)
    if nu.ndim == 2:
        ratio = nu / 97.5
        quiescent = base[:, None] * ratio ** alpha[:, None]
        # Flares are stronger at higher frequency (they flatten the spectrum).
        return quiescent * (1.0 + flare[:, None] * ratio**0.3)
    ratio = nu / 97.5
    return base * ratio**alpha * (1.0 + flare * ratio**0.3)


# --- generation --------------------------------------------------------------------------------------


def generate(*, n: int, seed: int, first_index: int = 0) -> SimulatedBatch:
    """N realistic EBs with detail rows, reference outcomes and latent fault severities (pure, no DB)."""
    if n < 0:
        raise ValueError("n must not be negative")
    rng = _rng(seed, first_index, 0x5EB)
    lc = _light_curves(seed)
    N = int(n)
    gidx = first_index + np.arange(N, dtype=np.int64)
    fault = {k: rng.random(N) < p for k, p in FAULT_PROB.items()}

    # --- what, when, where --------------------------------------------------------------------------
    src = rng.choice(len(GRID_SOURCES), size=N, p=_SRC_WEIGHT)
    dec, ra = _SRC_DEC[src], _SRC_RA[src]
    is12 = rng.random(N) < 0.55
    day = _ALLOWED_DAYS[rng.integers(0, _ALLOWED_DAYS.size, N)]
    doy = _DAY_OF_YEAR[day]
    pwv = _sample_pwv(rng, N, doy)

    band_arr = np.array(BANDS)
    std_lo = np.array([STANDARD_LO_GHZ[b] for b in BANDS])
    limits = np.array([TAU_LIMIT[b] for b in BANDS])
    allowed = tau_zenith(std_lo[None, :], pwv[:, None]) <= 0.9 * limits[None, :]
    weights = np.array([BAND_WEIGHT[b] for b in BANDS])[None, :] * allowed
    weights[weights.sum(axis=1) == 0, 0] = 1.0  # too wet for anything: Band 3 (PWV is capped below)
    hp_w = np.array([0.0, 0.25, 0.05, 0.3, 0.3, 0.1, 0.0, 0.0])
    weights[fault["high_pwv"]] = hp_w
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    band_i = np.minimum((rng.random(N)[:, None] > cdf).sum(axis=1), len(BANDS) - 1)
    band = band_arr[band_i]

    lo_lo = np.array([_LO_RANGE[b][0] for b in BANDS])[band_i]
    lo_hi = np.array([_LO_RANGE[b][1] for b in BANDS])[band_i]
    standard = rng.random(N) < 0.7
    lo = np.where(standard, std_lo[band_i], np.round(rng.uniform(lo_lo, lo_hi), 3))
    inner = np.array([_IF_OFFSETS[b][0] for b in BANDS])[band_i]
    outer = np.array([_IF_OFFSETS[b][1] for b in BANDS])[band_i]
    spw_freq = np.stack([lo - outer, lo - inner, lo + inner, lo + outer], axis=1)
    limit = limits[band_i]
    # Normal EBs ran within the band's opacity limit; high-PWV EBs were run (wrongly) above it.
    pwv = np.where(fault["high_pwv"], pwv, np.minimum(pwv, 0.97 * _pwv_for_tau(lo, limit)))
    q_target = rng.uniform(1.05, 2.5, N)
    pwv = np.where(fault["high_pwv"], np.clip(_pwv_for_tau(lo, limit * q_target), 0.3, 8.0), pwv)
    pwv = np.round(np.maximum(pwv, 0.1), 3)
    tau_lo = tau_zenith(lo, pwv)
    tau_spw = tau_zenith(spw_freq, pwv[:, None])

    # --- antennas and scans -------------------------------------------------------------------------
    n_ant = np.where(is12, rng.integers(40, 51, N), rng.integers(10, 13, N))
    n_ant_few = np.where(is12, rng.integers(14, 37, N), rng.integers(3, 9, N))
    n_nominal = n_ant.copy()
    n_ant = np.where(fault["few_antennas"], n_ant_few, n_ant)
    # Scans so that a complete EB has 1,100-1,700 detail rows (mean ~1,400: keeps 10k EBs near 1 GB).
    n_plan = np.clip(np.round(rng.uniform(1100, 1700, N) / (4 * n_nominal)), 4, 80).astype(np.int64)
    exec_target = rng.uniform(0.15, 0.85, N)
    n_done = np.where(fault["aborted"], np.maximum(2, np.round(n_plan * exec_target)), n_plan).astype(np.int64)
    # Now and then a healthy EB loses its last scan (a harmless exec_fraction of ~0.9).
    lost_one = (~fault["aborted"]) & (n_plan >= 8) & (rng.random(N) < 0.05)
    n_done = np.where(lost_one, n_plan - 1, n_done)
    gap = n_plan - n_done
    middle_gap = fault["aborted"] & (rng.random(N) < 0.3) & (n_done >= 3)
    gap_start = np.where(middle_gap, 1 + (rng.random(N) * (n_done - 1)).astype(np.int64), n_done)
    exec_fraction = np.round(n_done / n_plan, 3)
    interval = np.where(is12, rng.uniform(95, 135, N), rng.uniform(30, 40, N))
    overhead = rng.uniform(90, 240, N)

    # Scans (flat): number, time since start.
    K = int(n_done.sum())
    scan_eb = np.repeat(np.arange(N), n_done)
    scan_start = np.concatenate([[0], np.cumsum(n_done)[:-1]]).astype(np.int64)
    scan_local = np.arange(K) - scan_start[scan_eb]
    scan_no = scan_local + 1 + np.where(scan_local >= gap_start[scan_eb], gap[scan_eb], 0)
    scan_time = np.round(overhead[scan_eb] + (scan_no - 1) * interval[scan_eb])
    last_no = n_done + np.where(gap_start < n_done, gap, 0)
    duration = np.round(overhead + last_no * interval + rng.uniform(10, 40, N), 1)

    # --- elevation and time of day ------------------------------------------------------------------
    ha_lim = np.minimum(_ha_for_elevation(dec, 22.0), 4.5)
    ha_mid = ha_lim * (2.0 * rng.beta(2.0, 2.0, N) - 1.0)
    el_target = rng.uniform(13.5, 19.5, N)
    ha_low = _ha_for_elevation(dec, el_target) * np.where(rng.random(N) < 0.5, -1.0, 1.0)
    ha_mid = np.where(fault["low_elevation"], ha_low, ha_mid)
    elevation = _elevation(dec, ha_mid)
    ha_start = ha_mid - duration / 7200.0
    lst = np.mod(ra + ha_start, 24.0)
    g0 = np.mod(18.697374558 + 24.06570982441908 * (_JD_EPOCH - 2451545.0 + day), 24.0)
    t_hours = np.mod(lst - LONGITUDE_DEG / 15.0 - g0, 24.0) / 1.00273790935
    start_s = np.round((day * 24.0 + t_hours) * 3600.0, 3)
    t_days = start_s / 86400.0
    scan_el = _elevation(dec[scan_eb], ha_start[scan_eb] + (scan_time + 0.5 * interval[scan_eb]) / 3600.0)
    airmass_scan = 1.0 / np.sin(np.radians(np.maximum(scan_el, 5.0)))

    # --- per antenna ---------------------------------------------------------------------------------
    A = int(n_ant.sum())
    ant_eb = np.repeat(np.arange(N), n_ant)
    ant_start = np.concatenate([[0], np.cumsum(n_ant)[:-1]]).astype(np.int64)
    ant_code = np.empty(A, dtype=np.int64)
    for mask, pool, offset in ((is12, len(ANTENNAS_12M), 0), (~is12, len(ANTENNAS_7M), len(ANTENNAS_12M))):
        m = int(mask.sum())
        if m == 0:
            continue
        keys = rng.random((m, pool))
        kth = np.sort(keys, axis=1)[np.arange(m), n_ant[mask] - 1]
        ant_code[mask[ant_eb]] = np.nonzero(keys <= kth[:, None])[1] + offset
    rank = _ragged_rank(ant_eb, rng)

    def _count(p12: Sequence[float], p7: Sequence[float], flag: np.ndarray) -> np.ndarray:
        c12 = 1 + np.searchsorted(np.cumsum(p12) / np.sum(p12), rng.random(N))
        c7 = 1 + np.searchsorted(np.cumsum(p7) / np.sum(p7), rng.random(N))
        return np.where(flag, np.where(is12, c12, c7), 0)

    p12 = (0.4, 0.2, 0.12, 0.09, 0.07, 0.05, 0.04, 0.03, 0.0, 0.0)
    n_dead = np.minimum(_count(p12, (0.7, 0.3), fault["dead_antenna"]), n_ant - 3)
    n_noisy = np.minimum(_count(p12, (0.7, 0.3), fault["noisy_antenna"]), n_ant - n_dead - 2)
    n_dead, n_noisy = np.maximum(n_dead, 0), np.maximum(n_noisy, 0)
    r_eb = rank
    dead_ant = r_eb < n_dead[ant_eb]
    noisy_ant = (r_eb >= n_dead[ant_eb]) & (r_eb < (n_dead + n_noisy)[ant_eb])
    jump_ant = fault["phase_jump"][ant_eb] & (r_eb == (n_dead + n_noisy)[ant_eb])
    dead_flagged = dead_ant & (rng.random(A) < 0.5)
    preflag = (r_eb >= (n_dead + n_noisy + 2)[ant_eb]) & (rng.random(A) < 0.01)
    noisy_factor = np.where(noisy_ant, rng.uniform(1.8, 4.0, A), 1.0)
    g_ant = 1.0 + rng.normal(0.0, 1.0, A) * np.where(band[ant_eb] >= 7, 0.04, 0.02)

    # Instrument flux offset: pointing/focus loss (low, antenna-dependent, grows as nu^2) or scale error.
    off_size = rng.uniform(0.06, 0.55, N)
    off_low = fault["flux_offset"] & (rng.random(N) < 0.75)
    off_high = fault["flux_offset"] & ~off_low
    mean_loss = 1.0 - np.exp(-off_size)
    loss_ant = np.where(off_low[ant_eb], np.clip(mean_loss[ant_eb] * rng.uniform(0.3, 1.7, A), 0, 0.95), 0.0)
    scale_eb = np.where(off_high, np.exp(off_size), 1.0)

    # --- per antenna x spw ---------------------------------------------------------------------------
    trx = np.array([TRX_K[b] for b in BANDS])[band_i]
    trx_as = trx[ant_eb][:, None] * rng.uniform(0.7, 1.1, (A, 4))
    g_as = 1.0 + rng.normal(0.0, 0.01, (A, 4))
    ripple_base = np.abs(rng.normal(0.35, 0.15, (A, 4)))
    rip_spw = rng.integers(0, 4, N)
    rip_db = rng.uniform(2.0, 8.0, N)
    rip_hit = fault["bandpass_ripple"][ant_eb] & (rng.random(A) < 0.85)
    ripple_as = ripple_base.copy()
    rows_hit = np.nonzero(rip_hit)[0]
    ripple_as[rows_hit, rip_spw[ant_eb[rows_hit]]] = rip_db[ant_eb[rows_hit]] * rng.uniform(0.8, 1.2, rows_hit.size)
    # Per-spw calibration systematic (what makes in-band spectral indices noisy) and the ripple's bias.
    g_spw = 1.0 + rng.normal(0.0, 1.0, (N, 4)) * np.where(band >= 7, 0.02, 0.01)[:, None]
    g_spw[np.arange(N), rip_spw] *= np.where(
        fault["bandpass_ripple"], 1.0 - 0.012 * rip_db * rng.choice([-1, 1], N), 1.0
    )

    # --- per scan and per antenna x scan -------------------------------------------------------------
    spike_scan_local = np.minimum(1 + (rng.random(N) * np.maximum(n_done - 1, 1)).astype(np.int64), n_done - 1)
    spike_r = rng.uniform(1.4, 5.0, N)
    is_spike_scan = fault["tsys_spike"][scan_eb] & (scan_local == spike_scan_local[scan_eb])
    spike_factor = np.where(is_spike_scan, spike_r[scan_eb], 1.0)
    path_rms = rng.lognormal(np.log(28.0), 0.45, N) * np.where(
        fault["phase_instability"], rng.uniform(3.0, 7.0, N), 1.0
    )
    jump_deg = rng.uniform(30.0, 175.0, N) * rng.choice([-1.0, 1.0], N)
    jump_scan = np.minimum(1 + (rng.random(N) * np.maximum(n_done - 1, 1)).astype(np.int64), n_done - 1)
    shadow = fault["low_elevation"] & ~is12
    # Opacity terms per scan x spw: Tsys = Trx * e^(tau A) + (Tatm (1 - e^(-tau A)) + Tspill) e^(tau A).
    ext_k = np.exp(tau_spw[scan_eb] * airmass_scan[:, None])
    add_k = (T_ATM_K * (1.0 - 1.0 / ext_k) + T_SPILL_K) * ext_k

    # Detail rows form an (antenna x scan) x spw grid, EB by EB, scan-major: row = ak * 4 + spw.
    n_ak = n_ant * n_done
    AK = int(n_ak.sum())
    ak_eb = np.repeat(np.arange(N), n_ak)
    ak_start = np.concatenate([[0], np.cumsum(n_ak)[:-1]]).astype(np.int64)
    off = np.arange(AK, dtype=np.int64) - ak_start[ak_eb]
    na = n_ant[ak_eb]
    k = off // na
    ai = ant_start[ak_eb] + (off - k * na)
    ki = scan_start[ak_eb] + k
    del off, na
    z = rng.standard_normal((4, AK, 4))  # tsys, amplitude, phase and ripple noise

    spike_ak = spike_factor[ki]
    fac_ak = noisy_factor[ai] * np.where(spike_ak > 1.0, spike_ak * rng.uniform(0.9, 1.1, AK), 1.0)
    tsys = (trx_as[ai] * ext_k[ki] + add_k[ki]) * fac_ak[:, None] * (1.0 + 0.015 * z[0])

    flux_spw = _true_flux(lc, src, t_days, spw_freq)  # (N, 4)
    phase_sigma_rad = np.radians(1.2e-3 * path_rms[:, None] * spw_freq)
    decor = np.exp(-0.5 * (0.5 * phase_sigma_rad) ** 2)  # within-scan decorrelation
    eb_gain = flux_spw * decor * g_spw * scale_eb[:, None]  # (N, 4)
    jump_here = jump_ant[ai] & (k == jump_scan[ak_eb])
    ak_gain = g_ant[ai] * np.where(spike_ak > 1.0, 1.0 + 0.25 * (spike_ak - 1.0), 1.0)
    ak_gain *= np.where(jump_here, np.abs(np.cos(np.radians(jump_deg[ak_eb]) / 2.0)), 1.0)
    loss = loss_ant[ai]
    ratio2 = (spw_freq / lo[:, None]) ** 2
    # Noise grows with Tsys relative to what the band normally has (noisy antennas, spikes, wet air).
    sig_eb = np.where(band >= 7, 0.02, 0.01) / np.sqrt(1.6 * trx + 40.0)
    sig_ak = sig_eb[ak_eb] * (1.0 + 2.0 * noisy_ant[ai]) * np.sqrt(spike_ak)
    rip_sig = np.zeros((N, 4))
    rip_sig[np.arange(N), rip_spw] = np.where(fault["bandpass_ripple"], 0.004 * rip_db, 0.0)
    sigma = sig_ak[:, None] * np.sqrt(tsys) + rip_sig[ak_eb]
    amp = eb_gain[ak_eb] * g_as[ai] * ak_gain[:, None] * (1.0 + sigma * z[1])
    if loss.any():
        amp *= 1.0 - loss[:, None] * ratio2[ak_eb]
    dead_ak = dead_ant[ai]
    n_dead_ak = int(dead_ak.sum())
    if n_dead_ak:
        amp[dead_ak] = flux_spw[ak_eb[dead_ak]] * np.abs(0.01 + 0.01 * z[1][dead_ak])

    phase = (1.2e-3 * path_rms[ak_eb] * rng.standard_normal(AK))[:, None] * spw_freq[ak_eb] + z[2]
    phase += np.where(jump_ant[ai] & (k >= jump_scan[ak_eb]), jump_deg[ak_eb], 0.0)[:, None]
    if n_dead_ak:
        phase[dead_ak] = rng.uniform(-180.0, 180.0, (n_dead_ak, 4))
    phase = np.mod(phase + 180.0, 360.0) - 180.0

    ripple = np.abs(ripple_as[ai] + 0.05 * z[3])
    del z
    ak_flag = rng.random(AK) < 0.005
    shadow_ak = shadow[ak_eb] & (rank[ai] >= n_ant[ak_eb] - 2) & (k % 3 != 0)
    flag_ak = dead_flagged[ai] | preflag[ai] | ak_flag | shadow_ak

    # Rounded as an archive would store them; the EB summary is computed from these rounded values.
    tsys = np.round(tsys, 1)
    amp = np.round(np.maximum(amp, 0.0), 4)
    phase = np.round(phase, 2)
    ripple = np.round(ripple, 2)

    # --- EB summary from the detail rows ---------------------------------------------------------------
    ok_ak = ~flag_ak
    n_ok = 4.0 * np.bincount(ak_eb, weights=ok_ak, minlength=N)
    flagged_fraction = 1.0 - n_ok / np.maximum(4.0 * n_ak, 1.0)
    phase_rms = np.sqrt(np.bincount(ak_eb, weights=ok_ak * (phase**2).sum(axis=1), minlength=N) / np.maximum(n_ok, 1))
    tsys_median = _ragged_median(tsys, ak_eb, ok_ak, N)
    cnt = np.repeat(np.bincount(ak_eb, weights=ok_ak, minlength=N)[:, None], 4, axis=1)
    s1 = np.stack([np.bincount(ak_eb, weights=ok_ak * amp[:, j], minlength=N) for j in range(4)], axis=1)
    s2 = np.stack([np.bincount(ak_eb, weights=ok_ak * amp[:, j] ** 2, minlength=N) for j in range(4)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        var = np.maximum(s2 / cnt - mean**2, 0.0)
        # Scans of one antenna are correlated: the effective sample is about the antenna count.
        n_eff = np.maximum(cnt / n_done[:, None], 1.0)
        rel = np.hypot(np.sqrt(var / n_eff) / mean, 0.01)
        y = np.log(mean)
        w = np.where(np.isfinite(y) & (mean > 0), 1.0 / rel**2, 0.0)
    y = np.where(w > 0, y, 0.0)
    x = np.log(spw_freq / lo[:, None])
    Sw, Sx, Sy = w.sum(1), (w * x).sum(1), (w * y).sum(1)
    Sxx, Sxy = (w * x * x).sum(1), (w * x * y).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        det = Sw * Sxx - Sx**2
        alpha_fit = (Sw * Sxy - Sx * Sy) / det
        c_fit = (Sxx * Sy - Sx * Sxy) / det
        chi2 = (w * (y - c_fit[:, None] - alpha_fit[:, None] * x) ** 2).sum(1)
        scale = np.maximum(1.0, chi2 / np.maximum((w > 0).sum(1) - 2, 1))
        alpha_err = np.sqrt(Sw / det * scale)
        flux = np.exp(c_fit)
        flux_stat = flux * np.sqrt(Sxx / det * scale)
    good_fit = (w > 0).sum(1) >= 2
    flux = np.where(good_fit, flux, np.nan)
    flux_err = np.hypot(0.02 * flux, flux_stat)

    # Catalogue extrapolation from the source's history before this EB.
    lag = np.minimum(1.0 + rng.exponential(6.0, N), 45.0)
    cat_frac = np.where(lo < 200, 0.03, np.where(lo < 400, 0.05, 0.08))
    true_now = _true_flux(lc, src, t_days, lo)
    true_then = _true_flux(lc, src, t_days - lag, lo)
    expected = true_then * np.exp(rng.normal(0.0, 1.0, N) * cat_frac)
    expected_err = expected * np.hypot(cat_frac, 0.003 * lag)
    flare_change = np.log(true_now / true_then)

    # --- severities and the reference ----------------------------------------------------------------
    rip_med = pd.DataFrame(ripple_as).groupby(ant_eb).median().reindex(np.arange(N)).to_numpy()
    spike_seen = np.where(fault["tsys_spike"], spike_r, 1.0)
    sev = pd.DataFrame(index=pd.Index(gidx, name="eb"))
    sev["dead_antenna"] = severity("dead_antenna", n_dead / n_ant)
    sev["noisy_antenna"] = severity("noisy_antenna", n_noisy / n_ant)
    sev["tsys_spike"] = severity("tsys_spike", spike_seen)
    sev["phase_jump"] = severity("phase_jump", np.where(fault["phase_jump"], np.abs(jump_deg), 0.0))
    sev["few_antennas"] = np.where(is12, severity("few_antennas_12m", n_ant), severity("few_antennas_7m", n_ant))
    sev["aborted"] = severity("aborted", exec_fraction)
    sev["bandpass_ripple"] = severity("bandpass_ripple", np.nanmax(rip_med, axis=1))
    sev["high_pwv"] = severity("high_pwv", tau_lo / limit)
    sev["low_elevation"] = severity("low_elevation", elevation)
    sev["flux_offset"] = severity("flux_offset", np.where(fault["flux_offset"], off_size, 0.0))
    sev["phase_instability"] = severity("phase_instability", 1.2e-3 * path_rms * lo)
    s_max = sev[list(FAULTS)].max(axis=1).to_numpy()
    sev["s_max"] = s_max
    sev["flare"] = np.round(flare_change, 4)
    value = reference_value(s_max)

    names = _ANT_OBJ[ant_code]
    facts = {
        "dead": _names_by_eb(ant_eb, dead_ant, names, N),
        "noisy": _names_by_eb(ant_eb, noisy_ant, names, N),
        "noisy_x": [
            f"{v:.1f}x" for v in pd.Series(noisy_factor).groupby(ant_eb).max().reindex(np.arange(N)).to_numpy()
        ],
        "jump": _names_by_eb(ant_eb, jump_ant, names, N),
    }
    reasons = _reasons(
        sev,
        facts,
        n_ant=n_ant,
        n_dead=n_dead,
        n_noisy=n_noisy,
        spike_scan=scan_no[scan_start + spike_scan_local],
        spike_r=spike_r,
        jump_deg=jump_deg,
        jump_scan=scan_no[scan_start + jump_scan],
        exec_fraction=exec_fraction,
        n_done=n_done,
        n_plan=n_plan,
        rip_spw=np.nanargmax(rip_med, axis=1),
        rip_med=np.nanmax(rip_med, axis=1),
        pwv=pwv,
        band=band,
        tau=tau_lo,
        limit=limit,
        elevation=elevation,
        off_low=off_low,
        off_size=off_size,
        phase_atm=1.2e-3 * path_rms * lo,
        flare=flare_change,
    )

    # --- frames ------------------------------------------------------------------------------------------
    start = pd.to_datetime(EPOCH) + pd.to_timedelta(np.round(start_s * 1e3).astype(np.int64), unit="ms")
    cycle = np.where(start.month >= 10, start.year, start.year - 1)
    project = np.char.add(cycle.astype(str), np.where(is12, ".1.00001.CSV", ".1.00002.CSV"))
    sb_name = [
        f"{_SRC_NAME[sj]}_{'a' if st else 'b'}_{b:02d}_{'TM1' if t12 else '7M'}"
        for sj, st, b, t12 in zip(src, standard, band, is12)
    ]
    ebs = pd.DataFrame(
        {
            "uid": make_uids(seed=seed, index=gidx, day=day),
            "sb_name": sb_name,
            "project": project,
            "source": _SRC_NAME[src],
            "band": band.astype(np.int64),
            "array": np.where(is12, "12m", "7m"),
            "start_time": start,
            "duration_s": duration,
            "n_antennas": n_ant.astype(np.int64),
            "pwv_mm": pwv,
            "elevation_deg": np.round(elevation, 2),
            "tsys_median_k": np.round(tsys_median, 2),
            "phase_rms_deg": np.round(phase_rms, 2),
            "flagged_fraction": np.round(flagged_fraction, 5),
            "exec_fraction": exec_fraction,
            "freq_ghz": np.round(lo, 4),
            "flux_jy": np.round(flux, 4),
            "flux_err_jy": np.round(flux_err, 4),
            "spectral_index": np.round(np.where(good_fit, alpha_fit, np.nan), 3),
            "spectral_index_err": np.round(np.where(good_fit, alpha_err, np.nan), 3),
            "expected_flux_jy": np.round(expected, 4),
            "expected_flux_err_jy": np.round(expected_err, 4),
            "extra": [None] * N,
            # The archive registers an EB when it ends.
            "imported_at": start + pd.to_timedelta(np.round(duration * 1e3).astype(np.int64), unit="ms"),
        },
        index=pd.Index(gidx, name="eb"),
    )
    ebs = ebs[list(EB_COLUMNS)]
    # One float block (no consolidation copy) plus the integer, categorical and boolean columns.
    block = np.empty((6, 4 * AK))
    block[0] = np.round(spw_freq, 4)[ak_eb].ravel()
    block[1] = np.repeat(scan_time[ki], 4)
    block[2], block[3], block[4], block[5] = tsys.ravel(), amp.ravel(), phase.ravel(), ripple.ravel()
    details = pd.DataFrame(
        block.T, columns=["freq_ghz", "time_s", "tsys_k", "amplitude", "phase_deg", "bp_ripple_db"], copy=False
    )
    details.insert(0, "eb", np.repeat(gidx[ak_eb], 4))
    details.insert(1, "antenna", pd.Categorical.from_codes(np.repeat(ant_code[ai], 4), categories=list(ANTENNA_NAMES)))
    details.insert(2, "spw", np.tile(np.arange(4, dtype=np.int64), AK))
    details.insert(3, "scan", np.repeat(scan_no[ki], 4).astype(np.int64))
    details["flagged"] = np.repeat(flag_ak, 4)
    outcomes = pd.DataFrame({"eb": gidx, "value": value, "reasons": reasons})
    return SimulatedBatch(ebs=ebs, details=details, outcomes=outcomes, severity=sev)


def _ragged_median(values: np.ndarray, group: np.ndarray, ok: np.ndarray, n: int) -> np.ndarray:
    """Median of the ok rows of values (AK x 4) per group (sorted group ids 0..n-1); NaN for empty groups."""
    big = float(np.ceil(np.nanmax(values))) + 1.0 if values.size else 1.0
    g = np.repeat(group, values.shape[1]).astype(np.float64)
    v = np.where(np.repeat(ok, values.shape[1]), values.ravel(), big)
    # Flagged rows sort to the end of their group, so each group's ok rows come first.
    ordered = np.sort(g * (2.0 * big) + v)
    starts = np.searchsorted(g, np.arange(n))
    cnt = np.bincount(group, weights=ok, minlength=n).astype(np.int64) * values.shape[1]
    lo_i = starts + np.maximum(cnt - 1, 0) // 2
    hi_i = starts + cnt // 2
    base = np.arange(n) * (2.0 * big)
    safe = np.minimum(ordered.size - 1, np.maximum(lo_i, 0)), np.minimum(ordered.size - 1, np.maximum(hi_i, 0))
    med = 0.5 * ((ordered[safe[0]] - base) + (ordered[safe[1]] - base)) if ordered.size else np.zeros(n)
    return np.where(cnt > 0, med, np.nan)


def _names_by_eb(ant_eb: np.ndarray, mask: np.ndarray, names: np.ndarray, n: int) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(n)]
    for i in np.nonzero(mask)[0]:
        out[int(ant_eb[i])].append(str(names[i]))
    return out


def _reasons(sev: pd.DataFrame, facts: dict[str, list[Any]], **v: np.ndarray) -> list[str]:
    """Human-readable reasons per EB: deciding faults first, then minor ones, then a real-flare note."""
    details: dict[str, Callable[[int], str]] = {
        "dead_antenna": lambda i: f"{', '.join(facts['dead'][i])} ({v['n_dead'][i]}/{v['n_ant'][i]})",
        "noisy_antenna": lambda i: (
            f"{', '.join(facts['noisy'][i])} Tsys up to {facts['noisy_x'][i]} the median "
            f"({v['n_noisy'][i]}/{v['n_ant'][i]})"
        ),
        "tsys_spike": lambda i: f"scan {v['spike_scan'][i]} x{v['spike_r'][i]:.1f}",
        "phase_jump": lambda i: (
            f"{', '.join(facts['jump'][i])} jumps {v['jump_deg'][i]:+.0f} deg at scan {v['jump_scan'][i]}"
        ),
        "few_antennas": lambda i: f"{v['n_ant'][i]} antennas",
        "aborted": lambda i: f"exec_fraction {v['exec_fraction'][i]:.2f} ({v['n_done'][i]}/{v['n_plan'][i]} scans)",
        "bandpass_ripple": lambda i: f"{v['rip_med'][i]:.1f} dB in spw {v['rip_spw'][i]}",
        "high_pwv": lambda i: (
            f"{v['pwv'][i]:.2f} mm in Band {v['band'][i]} (tau {v['tau'][i]:.2f} > {v['limit'][i]:.2f})"
        ),
        "low_elevation": lambda i: f"{v['elevation'][i]:.1f} deg",
        "flux_offset": lambda i: (
            f"{'-' if v['off_low'][i] else '+'}{100 * (1 - math.exp(-v['off_size'][i])) if v['off_low'][i] else 100 * (math.exp(v['off_size'][i]) - 1):.0f}% "
            f"({'pointing/focus loss' if v['off_low'][i] else 'amplitude scale error'})"
        ),
        "phase_instability": lambda i: f"phase RMS {v['phase_atm'][i]:.0f} deg",
    }
    keys = list(FAULTS)
    mat = sev[keys].to_numpy()
    out: list[str] = []
    for i in range(mat.shape[0]):
        row = mat[i]
        parts: list[str] = []
        order = np.argsort(-row, kind="stable")
        for j in order:
            if row[j] >= 1.0:
                parts.append(f"{FAULTS[keys[j]]}: {details[keys[j]](i)}")
        for j in order:
            if 0.3 <= row[j] < 1.0:
                parts.append(f"minor {FAULTS[keys[j]]}: {details[keys[j]](i)}")
        if abs(v["flare"][i]) > FLARE_NOTE_THRESHOLD:
            parts.append(f"note: real flare, source {math.exp(v['flare'][i]) - 1:+.0%} since the catalogue point")
        out.append("; ".join(parts))
    return out


def make_uids(*, seed: int, index: np.ndarray, day: np.ndarray, attempt: int = 0) -> list[str]:
    """Archive-style uids uid://A002/X<hex>/X<hex>: the middle part grows with the date, the last is hashed."""
    key = _splitmix(
        _splitmix(np.full(np.shape(index), seed & 0xFFFFFFFFFFFF, dtype=np.uint64))
        ^ np.asarray(index, dtype=np.uint64)
        ^ np.uint64(attempt * 0x5851F42D)
    )
    middle = 0x10A0000 + np.asarray(day, dtype=np.int64) * 0x1C0 + (key % np.uint64(0x1C0)).astype(np.int64)
    last = 0x100 + ((key >> np.uint64(16)) % np.uint64(0xFFE00)).astype(np.int64)
    return [f"uid://A002/X{m:x}/X{t:x}" for m, t in zip(middle.tolist(), last.tolist())]


# --- simulated AoDs ----------------------------------------------------------------------------------

_COMMENTS: dict[str, str] = {
    "dead_antenna": "Dead antenna(s), amplitudes near zero{detail}.",
    "noisy_antenna": "Tsys far above the other antennas{detail}.",
    "tsys_spike": "Tsys spike in one scan{detail}.",
    "phase_jump": "Phase jump in one antenna{detail}.",
    "few_antennas": "Too few antennas{detail}.",
    "aborted": "Aborted, scans missing{detail}.",
    "bandpass_ripple": "Bandpass ripple above 3 dB{detail}.",
    "high_pwv": "PWV too high for the band{detail}.",
    "low_elevation": "Source too low{detail}.",
    "flux_offset": "Flux far from the catalogue, instrument suspected{detail}.",
    "phase_instability": "Poor phase stability{detail}.",
}


def simulate_aod_labels(
    *,
    ebs: pd.DataFrame,
    severity: pd.DataFrame,
    outcomes: pd.DataFrame | None = None,
    aods: int,
    labeled: int,
    seed: int,
) -> pd.DataFrame:
    """Exactly LABELED review events by AODS simulated AoDs on these EBs (pure; index of ebs = EB key).

    About a quarter of the labelled EBs get a second AoD's (blind) label. Columns: eb, aod (0-based, see
    aod_profiles), labeler, value, comment, seconds_on_eb, created_at (after the EB ended).
    """
    cols = ["eb", "aod", "labeler", "value", "comment", "seconds_on_eb", "created_at"]
    if labeled <= 0:
        return pd.DataFrame(columns=cols)
    if aods <= 0:
        raise ValueError("labels need at least one simulated AoD")
    n = len(ebs)
    if labeled > n * aods:
        raise ValueError(f"{labeled} labels cannot come from {aods} AoDs on {n} EBs (at most {n * aods})")
    rng = _rng(seed, int(ebs.index.min()) if n else 0, 0xA0D)
    profiles = aod_profiles(aods)
    # How many AoDs label each chosen EB: ~25 % of them twice (more only when labels outnumber EBs).
    primary = min(n, labeled if aods == 1 else math.ceil(labeled / 1.25))
    chosen = rng.permutation(n)[:primary]
    per_eb = np.ones(primary, dtype=np.int64)
    extra = labeled - primary
    while extra > 0:
        room = np.nonzero(per_eb < aods)[0]
        take = rng.permutation(room)[: min(extra, room.size)]
        per_eb[take] += 1
        extra -= take.size
    eb_pos = np.repeat(chosen, per_eb)
    slot = np.arange(eb_pos.size) - np.repeat(np.cumsum(per_eb) - per_eb, per_eb)
    who_order = np.argsort(rng.random((primary, aods)), axis=1)
    aod = who_order[np.repeat(np.arange(primary), per_eb), slot]

    keys = list(FAULTS)
    sev = severity[keys].to_numpy()[eb_pos]
    bias = np.array([p.bias for p in profiles])[aod]
    noise = np.array([p.noise for p in profiles])[aod]
    perceived = sev * np.exp(rng.normal(0.0, 1.0, sev.shape) * noise[:, None])
    s_seen = perceived.max(axis=1) + rng.normal(0.0, 1.0, eb_pos.size) * noise * 0.5
    top = np.array(keys, dtype=object)[perceived.argmax(axis=1)]
    idx = np.where(s_seen >= 2.0 + bias, 0, np.where(s_seen >= 1.0 + bias, 1, 2))  # 0 Fail, 1 SemiPass, 2 Pass
    flare = np.abs(severity["flare"].to_numpy()[eb_pos]) > FLARE_NOTE_THRESHOLD
    suspicious = flare & (rng.random(eb_pos.size) < np.array([p.flare_suspicion for p in profiles])[aod])
    idx = np.where(suspicious & (idx == 2), 1, idx)
    slip = rng.random(eb_pos.size) < np.array([p.slip for p in profiles])[aod]
    step = np.where(idx == 0, 1, np.where(idx == 2, -1, rng.choice([-1, 1], eb_pos.size)))
    idx = np.where(slip, idx + step, idx)
    value = np.array(["Fail", "SemiPass", "Pass"], dtype=object)[idx]

    speed = np.array([p.speed for p in profiles])[aod]
    secs = rng.lognormal(np.log(80.0), 0.5, eb_pos.size) * speed * np.where(idx == 2, 1.0, 1.6)
    secs = np.round(np.clip(secs, 5.0, 1800.0), 1)
    end = pd.DatetimeIndex(ebs["start_time"])[eb_pos] + pd.to_timedelta(ebs["duration_s"].to_numpy()[eb_pos], unit="s")
    delay_min = rng.lognormal(np.log(20.0), 0.8, eb_pos.size) + np.where(
        slot > 0, rng.lognormal(np.log(360.0), 1.0, eb_pos.size), 0.0
    )
    created = end + pd.to_timedelta(np.round(delay_min * 60.0, 3), unit="s")

    reasons = outcomes.set_index("eb")["reasons"] if outcomes is not None else None
    comments: list[str | None] = []
    say_pass = rng.random(eb_pos.size) < 0.4
    for i in range(eb_pos.size):
        if value[i] == "Pass":
            comments.append("No severe issue was found." if say_pass[i] else None)
            continue
        if flare[i] and sev[i].max() < 1.0:
            comments.append("Flux well off the catalogue; is it real? SemiPass until confirmed.")
            continue
        if sev[i].max() < 0.3:
            comments.append("Something looks odd in the amplitudes; marked to be safe.")
            continue
        detail = ""
        if reasons is not None:
            label = FAULTS[top[i]]
            found = [p for p in str(reasons.get(ebs.index[eb_pos[i]], "")).split("; ") if label in p]
            detail = f": {found[0].split(': ', 1)[-1]}" if found else ""
        comments.append(_COMMENTS[top[i]].format(detail=detail))
    frame = pd.DataFrame(
        {
            "eb": ebs.index.to_numpy()[eb_pos],
            "aod": aod.astype(np.int64),
            "labeler": [profiles[j].name for j in aod],
            "value": value,
            "comment": comments,
            "seconds_on_eb": secs,
            "created_at": created,
        }
    )
    return frame.sort_values("created_at", kind="stable", ignore_index=True)


# --- database ----------------------------------------------------------------------------------------

CHUNK_EBS = 1000
DEMO_EBS = 3000
DEMO_LABELS = 400
DEMO_AODS = 4
DEMO_SEED = 20240601
_DEMO_KEY = "demo_seeded"


def _sql_times(conn: Connection, values: pd.Series | pd.DatetimeIndex) -> list[Any]:
    """Times as the ORM stores them: naive-UTC text on SQLite, aware datetimes elsewhere."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    idx = idx.tz_convert("UTC")
    if conn.dialect.name == "sqlite":
        return list(idx.strftime("%Y-%m-%d %H:%M:%S.%f"))
    return list(idx.to_pydatetime())


def _clean(values: np.ndarray) -> list[Any]:
    """Python values for the DB-API, NaN -> NULL."""
    out = values.tolist()
    if values.dtype.kind == "f" and np.isnan(values).any():
        return [None if (isinstance(x, float) and math.isnan(x)) else x for x in out]
    return out


DETAIL_DB_COLUMNS: tuple[str, ...] = (
    "eb_id",
    "antenna",
    "spw",
    "scan",
    "freq_ghz",
    "time_s",
    "tsys_k",
    "amplitude",
    "phase_deg",
    "bp_ripple_db",
    "flagged",
)
_ROWS_PER_STATEMENT = 500
_ROWS_PER_PART = 100_000


@dataclass
class _Part:
    """Detail rows ready for the database: SQLite multi-row parameter lists, column 0 = EB position."""

    full: list[list[Any]]  # each inner list holds _ROWS_PER_STATEMENT rows
    rest: list[Any]  # the remaining rows, flattened
    n_rows: int


def _detail_parts(details: pd.DataFrame, positions: np.ndarray) -> Iterator[_Part]:
    """Convert detail rows to Python parameter lists, a part at a time (bounded memory)."""
    arrays = [
        positions,
        _ANT_OBJ[details["antenna"].cat.codes.to_numpy()],
        details["spw"].to_numpy(),
        details["scan"].to_numpy(),
        *(details[c].to_numpy() for c in DETAIL_DB_COLUMNS[4:-1]),
        # 0/1 rather than bool: sqlite3 binds exact ints directly but looks bools up in its adapter table.
        details["flagged"].to_numpy().astype(np.int64),
    ]
    ncol = len(arrays)
    n = len(details)
    for lo in range(0, n, _ROWS_PER_PART):
        hi = min(n, lo + _ROWS_PER_PART)
        obj = np.empty((hi - lo, ncol), dtype=object)
        for j, arr in enumerate(arrays):
            obj[:, j] = arr[lo:hi]  # numpy hands out plain Python int/float/bool/str objects
        full = (hi - lo) // _ROWS_PER_STATEMENT * _ROWS_PER_STATEMENT
        yield _Part(
            full=obj[:full].reshape(-1, ncol * _ROWS_PER_STATEMENT).tolist() if full else [],
            rest=obj[full:].ravel().tolist(),
            n_rows=hi - lo,
        )


def _insert_part(conn: Connection, part: _Part, ids: np.ndarray) -> None:
    """Insert one part on SQLite with many rows per statement (executemany of single rows costs ~2x).

    Column 0 holds the EB's position in its batch; ids are the database ids in batch order. When they are
    consecutive (always, inside our write transaction) the id is base + position, computed by SQLite.
    """
    ncol = len(DETAIL_DB_COLUMNS)
    base = int(ids[0]) if ids.size else 0
    consecutive = bool(ids.size) and bool(np.all(ids == base + np.arange(ids.size)))
    first = f"(? + {base}" if consecutive else "(?"
    one = first + ", ?" * (ncol - 1) + ")"
    head = f"INSERT INTO eb_detail ({', '.join(DETAIL_DB_COLUMNS)}) VALUES "
    if not consecutive:
        id_list = ids.tolist()
        for group in part.full:
            group[0::ncol] = [id_list[p] for p in group[0::ncol]]
        part.rest[0::ncol] = [id_list[p] for p in part.rest[0::ncol]]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if part.full:
            cursor.executemany(head + ", ".join([one] * _ROWS_PER_STATEMENT), part.full)
        if part.rest:
            cursor.execute(head + ", ".join([one] * (len(part.rest) // ncol)), part.rest)
    finally:
        cursor.close()


def _unique_uids(conn: Connection, ebs: pd.DataFrame, seed: int) -> list[str]:
    """The batch's uids, re-derived deterministically where one is already taken (or repeats in the batch)."""
    uids = ebs["uid"].tolist()
    day = ((ebs["start_time"] - pd.Timestamp(EPOCH)).dt.days).to_numpy()
    index = ebs.index.to_numpy()
    stmt = text("SELECT uid FROM execution_block WHERE uid IN :uids").bindparams(bindparam("uids", expanding=True))
    for attempt in range(1, 50):
        taken = {r[0] for r in conn.execute(stmt, {"uids": uids})}
        seen: set[str] = set()
        bad = []
        for i, u in enumerate(uids):
            if u in taken or u in seen:
                bad.append(i)
            seen.add(u)
        if not bad:
            return uids
        fresh = make_uids(seed=seed, index=index[bad], day=day[bad], attempt=attempt)
        for i, u in zip(bad, fresh):
            uids[i] = u
    raise RuntimeError("could not find unused uids")


def _insert_ebs(conn: Connection, ebs: pd.DataFrame, seed: int) -> np.ndarray:
    """Insert the EB rows (uids made unique first); returns their database ids in batch order."""
    ebs = ebs.copy()
    ebs["uid"] = _unique_uids(conn, ebs, seed)
    cols = [c for c in EB_COLUMNS if c != "extra"]
    arrays: list[list[Any]] = []
    for c in cols:
        if c in ("start_time", "imported_at"):
            arrays.append(_sql_times(conn, ebs[c]))
        elif ebs[c].dtype.kind == "f":
            arrays.append(_clean(ebs[c].to_numpy()))
        else:
            arrays.append(ebs[c].tolist())
    # Quoted: "array" is a reserved word in PostgreSQL.
    db.bulk_insert(conn, "execution_block", list(cols), list(zip(*arrays)))
    stmt = text("SELECT id, uid FROM execution_block WHERE uid IN :uids").bindparams(bindparam("uids", expanding=True))
    id_of = {u: i for i, u in conn.execute(stmt, {"uids": ebs["uid"].tolist()})}
    return np.array([id_of[u] for u in ebs["uid"]], dtype=np.int64)


def _insert_outcomes(conn: Connection, outcomes: pd.DataFrame, ids: np.ndarray) -> None:
    db.bulk_insert(
        conn,
        "reference_outcome",
        ["eb_id", "value", "reasons"],
        list(zip(ids.tolist(), outcomes["value"].tolist(), outcomes["reasons"].tolist())),
    )


def write_batch(*, conn: Connection, batch: SimulatedBatch, seed: int = 0) -> np.ndarray:
    """Insert one generated batch (EBs, details, outcomes) on an open connection; returns the EB ids."""
    ids = _insert_ebs(conn, batch.ebs, seed)
    pos = pd.Index(batch.ebs.index).get_indexer(batch.details["eb"].to_numpy())
    if conn.dialect.name == "sqlite":
        for part in _detail_parts(batch.details, pos):
            _insert_part(conn, part, ids)
    else:
        d = batch.details
        cols = [ids[pos], _ANT_OBJ[d["antenna"].cat.codes.to_numpy()]] + [
            d[c].to_numpy() for c in DETAIL_DB_COLUMNS[2:]
        ]
        rows = list(zip(*[c.tolist() for c in cols]))
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if hasattr(cursor, "copy"):
                # psycopg 3: COPY is ~50x faster than executemany for a million rows.
                with cursor.copy(f"COPY eb_detail ({', '.join(DETAIL_DB_COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                db.bulk_insert(conn, "eb_detail", DETAIL_DB_COLUMNS, rows)
        finally:
            cursor.close()
    _insert_outcomes(conn, batch.outcomes, ids)
    return ids


def _count_ebs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM execution_block")).scalar_one())


def _write_labels(engine: Engine, frame: pd.DataFrame, id_of_eb: dict[int, int], aods: int) -> int:
    """Create the simulated AoDs and bulk-insert their review events in one transaction."""
    from qa0_label.store.labels import get_or_create_labeler

    with db.session_scope(engine, write=True) as session:
        ids = {
            i: int(get_or_create_labeler(session=session, name=p.name, role="aod").id or 0)
            for i, p in enumerate(aod_profiles(aods))
        }
        if frame.empty:
            return 0
        conn = session.connection()
        eb_ids = [id_of_eb[int(e)] for e in frame["eb"]]
        lab_ids = [ids[int(a)] for a in frame["aod"]]
        # Unique per (EB, labeler): a re-run can never collide with an earlier simulated label.
        client = [f"sim-{e}-{a}" for e, a in zip(eb_ids, lab_ids)]
        rows = list(
            zip(
                eb_ids,
                lab_ids,
                frame["value"].tolist(),
                frame["comment"].tolist(),
                frame["seconds_on_eb"].tolist(),
                _sql_times(conn, frame["created_at"]),
                ["review"] * len(frame),
                client,
            )
        )
        return db.bulk_insert(
            conn,
            "label",
            ["eb_id", "labeler_id", "value", "comment", "seconds_on_eb", "created_at", "kind", "client_event_id"],
            rows,
        )


_DONE = object()


def _store_cache(conn: Connection, batch: SimulatedBatch, ids: np.ndarray, det: pd.DataFrame | None) -> None:
    """Cache rows of the batch's detail features (inside the batch's transaction, so they match its rows)."""
    if det is None or det.empty:
        return
    id_of = dict(zip(batch.ebs.index.tolist(), ids.tolist()))
    det = det.set_axis(pd.Index([id_of[int(e)] for e in det.index], name="eb_id"))
    sig = features.detail_signatures(conn, det.index.tolist())
    features.store_detail_cache(conn, det, sig, verified=True)


def _write_sqlite_batch(
    conn: Connection, batch: SimulatedBatch, q: queue.Queue[Any], seed: int, det: pd.DataFrame | None = None
) -> np.ndarray:
    """One SQLite transaction: the batch's EBs, then its detail parts as the producer hands them over."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    # The parents are inserted a moment earlier in the same transaction; checking the foreign key of each
    # of ~1.5 million detail rows against them costs ~8 % of the write. PRAGMA only works outside BEGIN.
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with conn.begin():
            ids = _insert_ebs(conn, batch.ebs, seed)
            while True:
                kind, part, _ = q.get()
                if kind == "part":
                    _insert_part(conn, part, ids)
                    continue
                if kind == "error":
                    raise part
                break  # "end"
            _insert_outcomes(conn, batch.outcomes, ids)
            _store_cache(conn, batch, ids, det)
    finally:
        raw.execute("PRAGMA foreign_keys=ON")
    return ids


def _generate_light(seed: int, first: int, size: int) -> SimulatedBatch:
    """A batch without detail rows (runs in a worker process: only the small frames travel back)."""
    batch = generate(n=size, seed=seed, first_index=first)
    return replace(batch, details=batch.details.iloc[:0])


def _batches(seed: int, first: int, n: int, details_for: int, stop: threading.Event) -> Iterator[SimulatedBatch]:
    """The generated batches in order; detail rows only for the first DETAILS_FOR EBs.

    Batches whose EBs keep no details are generated in worker processes (the numpy work for the detail
    grid is the cost even when the rows are dropped), so a million EB rows take minutes, not half an hour.
    """
    done = 0
    while done < n and done < details_for and not stop.is_set():
        size = min(CHUNK_EBS, n - done)
        batch = generate(n=size, seed=seed, first_index=first + done)
        keep = details_for - done
        if keep < size:
            d = batch.details
            batch = replace(batch, details=d[d["eb"].to_numpy() < first + done + keep])
        yield batch
        done += size
    if done >= n or stop.is_set():
        return
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor

    workers = max(1, min(LIGHT_WORKERS, (n - done + CHUNK_EBS - 1) // CHUNK_EBS))
    # spawn, not fork: this runs in a thread of a process that may hold locks (numpy, SQLite, logging).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: list[Future[SimulatedBatch]] = []
        while (done < n or pending) and not stop.is_set():
            while done < n and len(pending) < 2 * workers:
                size = min(CHUNK_EBS, n - done)
                pending.append(pool.submit(_generate_light, seed, first + done, size))
                done += size
            yield pending.pop(0).result()
        for f in pending:
            f.cancel()


LIGHT_WORKERS = 2
"""Worker processes generating batches whose detail rows are dropped (simulate with details_for < n)."""


def _producer(
    out: queue.Queue[Any], stop: threading.Event, seed: int, first: int, n: int, sqlite: bool, details_for: int
) -> None:
    """Generate batches (and, for SQLite, their parameter lists) ahead of the writer."""

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        for batch in _batches(seed, first, n, details_for, stop):
            counts = batch.details.groupby("eb", sort=False).size().to_numpy()
            details = batch.details
            pos = pd.Index(batch.ebs.index).get_indexer(details["eb"].to_numpy())
            light = replace(batch, details=details.iloc[:0]) if sqlite else batch
            # The detail-feature cache rows, computed here from the frame (no SQL pass over the new rows).
            det = features.detail_features(*features._detail_aggregates_pandas(details)) if len(details) else None
            if not put(("batch", light, (counts, det))):
                return
            if sqlite:
                del batch, light
                for part in _detail_parts(details, pos):
                    if not put(("part", part, None)):
                        return
            if not put(("end", None, None)):
                return
    except BaseException as exc:  # handed to the writer, which re-raises it
        put(("error", exc, None))
    finally:
        put((_DONE, None, None))


def simulate(
    *,
    engine: Engine,
    n: int,
    seed: int = 0,
    aods: int = 0,
    labeled: int = 0,
    details_for: int | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Add N simulated EBs (+ details, reference outcomes) and LABELED labels from AODS simulated AoDs.

    Each batch of CHUNK_EBS EBs is one transaction; a background thread generates the next batch while
    this one is written. Global EB indices continue from the number of EBs already in the table, so a
    second run with the same seed appends new EBs (uids are checked and re-derived if taken).
    details_for=M keeps detail rows for the first M new EBs only (big pools: ~1,400 rows per EB would make
    a million EBs a 100 GB database); the simulated AoDs then label EBs that have details, as real AoDs
    review EBs with their plots, unless the labels need more EBs than that.
    """
    if n < 0 or aods < 0 or labeled < 0 or (details_for is not None and details_for < 0):
        raise ValueError("n, aods, labeled and details_for must not be negative")
    details_for = n if details_for is None else min(details_for, n)
    if labeled and not aods:
        raise ValueError("labels need at least one simulated AoD (aods > 0)")
    if labeled > n * aods:
        raise ValueError(f"{labeled} labels cannot come from {aods} AoDs on {n} new EBs (at most {n * aods})")
    t0 = time.perf_counter()
    existing = _count_ebs(engine)
    sqlite = db.is_sqlite(engine)
    counts: list[np.ndarray] = []
    keep_ebs: list[pd.DataFrame] = []
    keep_sev: list[pd.DataFrame] = []
    keep_out: list[pd.DataFrame] = []
    id_of_eb: dict[int, int] = {}
    if progress:
        progress(0.0, f"simulating {n} EBs")
    q: queue.Queue[Any] = queue.Queue(maxsize=4)
    stop = threading.Event()
    worker = threading.Thread(target=_producer, args=(q, stop, seed, existing, n, sqlite, details_for), daemon=True)
    worker.start()
    written = 0
    try:
        while True:
            kind, batch, info = q.get()
            if kind is _DONE:
                break
            if kind == "error":
                raise batch
            assert kind == "batch"
            extra, det = info
            with db.writer(engine).connect() as conn:
                if sqlite:
                    ids = _write_sqlite_batch(conn, batch, q, seed, det)
                else:
                    with conn.begin():
                        ids = write_batch(conn=conn, batch=batch, seed=seed)
                        _store_cache(conn, batch, ids, det)
                    kind, _, _ = q.get()  # "end"
            id_of_eb.update(zip(batch.ebs.index.tolist(), ids.tolist()))
            counts.append(extra)
            if labeled:
                # Labels go to EBs with details when those can carry them all (see the docstring).
                mine = batch.ebs.index.to_numpy() < existing + (details_for if labeled <= details_for * aods else n)
                keep_ebs.append(batch.ebs.loc[mine, ["start_time", "duration_s"]])
                keep_sev.append(batch.severity.loc[mine])
            keep_out.append(batch.outcomes[["eb", "value", "reasons"]] if labeled else batch.outcomes[["eb", "value"]])
            written += len(batch.ebs)
            if progress:
                progress(written / max(n, 1) * (0.97 if labeled else 1.0), f"{written}/{n} EBs written")
    finally:
        stop.set()
        worker.join(timeout=30)
    n_labels = 0
    if aods:
        frame = pd.DataFrame()
        if labeled:
            frame = simulate_aod_labels(
                ebs=pd.concat(keep_ebs),
                severity=pd.concat(keep_sev),
                outcomes=pd.concat(keep_out, ignore_index=True),
                aods=aods,
                labeled=labeled,
                seed=seed,
            )
        n_labels = _write_labels(engine, frame, id_of_eb, aods)
    per_eb = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    values = pd.concat(keep_out, ignore_index=True)["value"] if keep_out else pd.Series([], dtype=object)
    shares = {v: (round(float((values == v).mean()), 4) if len(values) else 0.0) for v in LABEL_VALUES}
    summary = {
        "n_ebs": int(written),
        "n_ebs_with_details": int(per_eb.size),
        "n_detail_rows": int(per_eb.sum()),
        "detail_rows_per_eb": {
            "mean": round(float(per_eb.mean()), 1) if per_eb.size else 0.0,
            "min": int(per_eb.min()) if per_eb.size else 0,
            "max": int(per_eb.max()) if per_eb.size else 0,
        },
        "n_labels": int(n_labels),
        "reference_shares": shares,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if progress:
        progress(1.0, f"{written} EBs, {n_labels} labels")
    return summary


def seed_demo_if_empty(*, engine: Engine, progress: ProgressFn | None = None) -> bool:
    """Seed an empty database with ~3,000 demo EBs, ~400 labels by 4 AoDs and a team lead; True if seeded."""
    from qa0_label.store.labels import get_or_create_labeler

    now = datetime.now(timezone.utc)
    try:
        with db.writer(engine).begin() as conn:
            if conn.execute(text("SELECT COUNT(*) FROM execution_block")).scalar_one():
                return False
            claim = conn.execute(text("SELECT value FROM meta WHERE key = :k"), {"k": _DEMO_KEY}).first()
            if claim is not None:
                # Another process is seeding right now; a claim older than 15 minutes is from a crash.
                try:
                    started = datetime.fromisoformat(claim[0])
                except ValueError:
                    started = now - timedelta(hours=1)
                if now - started < timedelta(minutes=15):
                    return False
                conn.execute(text("UPDATE meta SET value = :v WHERE key = :k"), {"k": _DEMO_KEY, "v": now.isoformat()})
            else:
                conn.execute(
                    text("INSERT INTO meta (key, value) VALUES (:k, :v)"), {"k": _DEMO_KEY, "v": now.isoformat()}
                )
    except IntegrityError:
        return False  # the other process claimed it first
    try:
        simulate(engine=engine, n=DEMO_EBS, seed=DEMO_SEED, aods=DEMO_AODS, labeled=DEMO_LABELS, progress=progress)
        with db.session_scope(engine, write=True) as session:
            get_or_create_labeler(session=session, name=LEAD_NAME, role="lead")
    except BaseException:
        # Let the next start try again instead of leaving a half-claimed, empty database.
        with db.writer(engine).begin() as conn:
            if not conn.execute(text("SELECT COUNT(*) FROM execution_block")).scalar_one():
                conn.execute(text("DELETE FROM meta WHERE key = :k"), {"k": _DEMO_KEY})
        raise
    return True


__all__ = [
    "FAULTS",
    "SEVERITY_KNOTS",
    "SimulatedBatch",
    "AodProfile",
    "aod_profiles",
    "generate",
    "simulate",
    "simulate_aod_labels",
    "seed_demo_if_empty",
    "write_batch",
    "make_uids",
    "parse_j_name",
    "tau_zenith",
    "severity",
    "reference_value",
    "max_elevation_deg",
    "LEAD_NAME",
]
