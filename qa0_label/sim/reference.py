"""The hidden reference QA0: fault severities from their physical size, the outcome, and readable reasons.

Each fault's latent severity s (0 harmless, >= 1 SemiPass, >= 2 Fail) is a piecewise-linear function of
its size (SEVERITY_KNOTS). As in practice, an isolated antenna problem is flagged and the EB passes: one
dead or noisy antenna, one antenna's phase jump and one scan's Tsys spike are "minor" (0.3 <= s < 1, listed
in the reasons) and never decide the outcome alone; the antennas left after flagging count for the
antenna rule (12 m: < 30 SemiPass, < 16 Fail; 7 m: < 7 / < 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

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
    "dead_antenna": 0.035,
    "noisy_antenna": 0.030,
    "tsys_spike": 0.012,
    "phase_jump": 0.012,
    "few_antennas": 0.024,
    "aborted": 0.034,
    "bandpass_ripple": 0.022,
    "high_pwv": 0.028,
    "low_elevation": 0.012,
    "flux_offset": 0.055,
    "phase_instability": 0.015,
}
"""Independent per-EB injection probabilities (tuned for ~83 / 11 / 6 % reference shares)."""

SEVERITY_KNOTS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # (bad antennas - 1) / n_antennas: the first one is flagged and costs nothing.
    "dead_antenna": ((0.0, 0.07, 0.20, 1.0), (0.0, 1.0, 2.0, 6.0)),
    "noisy_antenna": ((0.0, 0.07, 0.20, 1.0), (0.0, 1.0, 2.0, 6.0)),
    "tsys_spike": ((1.0, 1.3, 2.0, 6.0), (0.0, 0.3, 0.5, 0.8)),  # Tsys ratio of the one scan: flagged, minor
    "phase_jump": ((0.0, 25.0, 60.0, 180.0), (0.0, 0.3, 0.5, 0.8)),  # |jump| deg of one antenna: flagged, minor
    "few_antennas_12m": ((0.0, 16.0, 30.0, 38.0), (6.0, 2.0, 1.0, 0.0)),  # usable antennas
    "few_antennas_7m": ((0.0, 4.0, 7.0, 9.0), (6.0, 2.0, 1.0, 0.0)),
    "aborted": ((0.0, 0.45, 0.75, 0.9, 1.0), (4.0, 2.0, 1.0, 0.0, 0.0)),  # exec_fraction
    "bandpass_ripple": ((0.0, 1.5, 3.0, 12.0), (0.0, 0.0, 1.0, 1.9)),  # dB, median of the worst spw
    "high_pwv": ((0.0, 1.0, 1.3, 1.9, 5.0), (0.0, 0.0, 1.0, 2.0, 6.0)),  # zenith tau / band limit
    "low_elevation": ((0.0, 10.0, 17.0, 20.0, 90.0), (5.0, 2.0, 1.0, 0.0, 0.0)),  # elevation deg
    "flux_offset": ((0.0, 0.04, 0.12, 0.30, 1.0), (0.0, 0.0, 1.0, 2.0, 5.0)),  # |ln scale error|
    # Array phase RMS at the LO / the band and array's 'bad' limit (limits.phase_rms_limits_deg).
    "phase_instability": ((0.0, 0.75, 1.0, 1.6, 5.0), (0.0, 0.0, 1.0, 2.0, 5.0)),
}
"""Piecewise-linear (x, severity) knots; severity >= 1 is SemiPass, >= 2 Fail."""

ISOLATED_SEVERITY = 0.4
"""Severity of one flagged bad antenna: worth a line in the reasons, never a downgrade."""

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


def antenna_severity(fault: str, n_bad: np.ndarray, n_ant: np.ndarray) -> np.ndarray:
    """Severity of N_BAD dead or noisy antennas out of N_ANT: one is flagged (minor), more count by share."""
    share = np.maximum(n_bad - 1, 0) / np.maximum(n_ant, 1)
    return np.where(n_bad > 0, np.maximum(ISOLATED_SEVERITY, severity(fault, share)), 0.0)


def severities(index: pd.Index, v: dict[str, np.ndarray]) -> pd.DataFrame:
    """The latent severity of every fault for each EB (columns FAULTS, then s_max and flare).

    V holds the physical sizes: n_ant, n_dead, n_noisy, is12, spike_seen, jump_size, exec_fraction,
    rip_med (worst spw), tau_ratio, elevation, offset, phase_ratio, flare.
    """
    sev = pd.DataFrame(index=index)
    sev["dead_antenna"] = antenna_severity("dead_antenna", v["n_dead"], v["n_ant"])
    sev["noisy_antenna"] = antenna_severity("noisy_antenna", v["n_noisy"], v["n_ant"])
    sev["tsys_spike"] = severity("tsys_spike", v["spike_seen"])
    sev["phase_jump"] = severity("phase_jump", v["jump_size"])
    usable = v["n_ant"] - v["n_dead"] - v["n_noisy"]
    sev["few_antennas"] = np.where(v["is12"], severity("few_antennas_12m", usable), severity("few_antennas_7m", usable))
    sev["aborted"] = severity("aborted", v["exec_fraction"])
    sev["bandpass_ripple"] = severity("bandpass_ripple", v["rip_med"])
    sev["high_pwv"] = severity("high_pwv", v["tau_ratio"])
    sev["low_elevation"] = severity("low_elevation", v["elevation"])
    sev["flux_offset"] = severity("flux_offset", v["offset"])
    sev["phase_instability"] = severity("phase_instability", v["phase_ratio"])
    sev["s_max"] = sev[list(FAULTS)].max(axis=1).to_numpy()
    sev["flare"] = np.round(v["flare"], 4)
    return sev


def _offset_text(low: bool, size: float) -> str:
    pct = 100 * (1 - math.exp(-size)) if low else 100 * (math.exp(size) - 1)
    return f"{'-' if low else '+'}{pct:.0f}% ({'pointing/focus loss' if low else 'amplitude scale error'})"


def reasons(sev: pd.DataFrame, facts: dict[str, list[Any]], **v: np.ndarray) -> list[str]:
    """Human-readable reasons per EB: deciding faults first, then minor ones, then a real-flare note."""
    details: dict[str, Callable[[int], str]] = {
        "dead_antenna": lambda i: (
            f"{', '.join(facts['dead'][i])} ({v['n_dead'][i]}/{v['n_ant'][i]})"
            + (", flagged" if v["n_dead"][i] == 1 else "")
        ),
        "noisy_antenna": lambda i: (
            f"{', '.join(facts['noisy'][i])} Tsys up to {facts['noisy_x'][i]} the median "
            f"({v['n_noisy'][i]}/{v['n_ant'][i]})" + (", flagged" if v["n_noisy"][i] == 1 else "")
        ),
        "tsys_spike": lambda i: f"scan {v['spike_scan'][i]} x{v['spike_r'][i]:.1f}, scan flagged",
        "phase_jump": lambda i: (
            f"{', '.join(facts['jump'][i])} jumps {v['jump_deg'][i]:+.0f} deg at scan {v['jump_scan'][i]}, "
            "antenna flagged from there"
        ),
        "few_antennas": lambda i: (
            f"{v['n_ant'][i] - v['n_dead'][i] - v['n_noisy'][i]} usable antennas"
            + (f" of {v['n_ant'][i]}" if v["n_dead"][i] + v["n_noisy"][i] else "")
        ),
        "aborted": lambda i: f"exec_fraction {v['exec_fraction'][i]:.2f} ({v['n_done'][i]}/{v['n_plan'][i]} scans)",
        "bandpass_ripple": lambda i: f"{v['rip_med'][i]:.1f} dB in spw {v['rip_spw'][i]}",
        "high_pwv": lambda i: (
            f"{v['pwv'][i]:.2f} mm in Band {v['band'][i]} (tau {v['tau'][i]:.2f} > {v['limit'][i]:.2f})"
        ),
        "low_elevation": lambda i: f"{v['elevation'][i]:.1f} deg",
        "flux_offset": lambda i: _offset_text(bool(v["off_low"][i]), float(v["off_size"][i])),
        "phase_instability": lambda i: (
            f"phase RMS {v['phase_atm'][i]:.0f} deg (Band {v['band'][i]} {v['array'][i]} limit "
            f"{v['phase_bad'][i]:.0f} deg)"
        ),
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
