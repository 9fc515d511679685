"""generate(): realistic synthetic flux-calibrator EBs (vectorised numpy) with their hidden reference QA0.

One EB observes one grid quasar with the 12 m array (40-50 antennas) or the 7 m array (10-12), at a start
time in 2023-2024 (no February), in a band the scheduler would pick for the PWV, at an elevation that
follows from the declination and the hour angle. Detail rows (EBDetail) are antenna x spw x scan, about
1,400 per complete EB: ``amplitude`` (Jy) = source flux at the spw frequency x antenna gain x noise,
``phase_deg`` (offsets, drifts, atmospheric noise growing with distance from the reference antenna: see
phases.py), ``tsys_k`` (typical receivers + atmosphere: atmosphere.system_temperature), ``bp_ripple_db``
and ``flagged``. The EB summary columns are computed from the rounded detail rows as an archive would:
tsys_median_k (median of unflagged rows), phase_rms_deg (RMS about each antenna x spw's mean phase),
flagged_fraction, flux_jy / spectral_index (weighted power-law fit to the 4 spw means), flux_err_jy
(sqrt((accuracy S)^2 + stat^2) with the band's flux-scale accuracy), exec_fraction, elevation_deg at
mid-EB. Faults (reference.FAULTS) are injected independently; docs/domain-simulator.md lists where each
shows and the sources of every number.

generate() is a pipeline of named steps (PIPELINE) over one namespace of arrays: each step reads what the
earlier ones drew and adds its own, in a fixed order, so a seed gives the same batch every time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from qa0_label.review import limits
from qa0_label.sim import atmosphere as atm
from qa0_label.sim import phases, reference, sources
from qa0_label.sim.catalogue import (
    ANT_OBJ,
    ANTENNA_NAMES,
    ANTENNAS_7M,
    ANTENNAS_12M,
    GRID_SOURCES,
    SRC_DEC,
    SRC_NAME,
    SRC_RA,
    SRC_WEIGHT,
)
from qa0_label.store.models import ExecutionBlock

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
ANTENNA_TRUTH_COLUMNS: tuple[str, ...] = ("eb", "antenna", "radius_km", "wvr_on", "path_rms_um")


@dataclass
class SimulatedBatch:
    """Generated EBs (index = global EB index), detail rows, reference outcomes and latent severities.

    antennas is hidden truth the database never sees (eb, antenna, radius_km from the reference antenna,
    wvr_on, path_rms_um): what the fidelity benchmark checks the phases against.
    """

    ebs: pd.DataFrame
    details: pd.DataFrame
    outcomes: pd.DataFrame
    severity: pd.DataFrame
    antennas: pd.DataFrame | None = None


Step = Callable[[SimpleNamespace], None]


def generate(*, n: int, seed: int, first_index: int = 0) -> SimulatedBatch:
    """N realistic EBs with detail rows, reference outcomes and latent fault severities (pure, no DB)."""
    if n < 0:
        raise ValueError("n must not be negative")
    c = SimpleNamespace(
        rng=sources.rng(seed, first_index, 0x5EB), lc=sources.light_curves(seed), N=int(n), seed=int(seed)
    )
    c.gidx = first_index + np.arange(c.N, dtype=np.int64)
    c.fault = {k: c.rng.random(c.N) < p for k, p in reference.FAULT_PROB.items()}
    for step in PIPELINE:
        step(c)
    return _frames(c)


# --- what, when, in which weather ----------------------------------------------------------------------


def _observation(c: SimpleNamespace) -> None:
    """Source, array, day and PWV of each EB."""
    r, N = c.rng, c.N
    c.src = r.choice(len(GRID_SOURCES), size=N, p=SRC_WEIGHT)
    c.dec, c.ra = SRC_DEC[c.src], SRC_RA[c.src]
    c.is12 = r.random(N) < 0.55
    c.day = atm.ALLOWED_DAYS[r.integers(0, atm.ALLOWED_DAYS.size, N)]
    c.pwv = atm.sample_pwv(r, N, atm.DAY_OF_YEAR[c.day])


def _band_and_tuning(c: SimpleNamespace) -> None:
    """A band the scheduler would pick for the PWV (a wrong one for high-PWV faults), the LO and the 4 spws."""
    r, N, bands = c.rng, c.N, atm.BANDS
    std_lo = np.array([atm.STANDARD_LO_GHZ[b] for b in bands])
    tau_limit = np.array([atm.TAU_LIMIT[b] for b in bands])
    allowed = atm.tau_zenith(std_lo[None, :], c.pwv[:, None]) <= 0.9 * tau_limit[None, :]
    weights = np.array([atm.BAND_WEIGHT[b] for b in bands])[None, :] * allowed
    weights[weights.sum(axis=1) == 0, 0] = 1.0  # too wet for anything: Band 3 (PWV is capped below)
    weights[c.fault["high_pwv"]] = np.array([0.0, 0.25, 0.05, 0.3, 0.3, 0.1, 0.0, 0.0])
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    c.band_i = np.minimum((r.random(N)[:, None] > cdf).sum(axis=1), len(bands) - 1)
    c.band = np.array(bands)[c.band_i]
    lo_lo = np.array([atm.LO_RANGE[b][0] for b in bands])[c.band_i]
    lo_hi = np.array([atm.LO_RANGE[b][1] for b in bands])[c.band_i]
    c.standard = r.random(N) < 0.7
    c.lo = np.where(c.standard, std_lo[c.band_i], np.round(r.uniform(lo_lo, lo_hi), 3))
    inner = np.array([atm.IF_OFFSETS[b][0] for b in bands])[c.band_i]
    outer = np.array([atm.IF_OFFSETS[b][1] for b in bands])[c.band_i]
    c.spw_freq = np.stack([c.lo - outer, c.lo - inner, c.lo + inner, c.lo + outer], axis=1)
    c.limit = tau_limit[c.band_i]
    # Normal EBs ran within the band's opacity limit; high-PWV EBs were run (wrongly) above it.
    hp = c.fault["high_pwv"]
    pwv = np.where(hp, c.pwv, np.minimum(c.pwv, 0.97 * atm.pwv_for_tau(c.lo, c.limit)))
    q_target = r.uniform(1.05, 2.5, N)
    pwv = np.where(hp, np.clip(atm.pwv_for_tau(c.lo, c.limit * q_target), 0.3, 8.0), pwv)
    c.pwv = np.round(np.maximum(pwv, 0.1), 3)
    c.tau_lo = atm.tau_zenith(c.lo, c.pwv)
    c.tau_spw = atm.tau_zenith(c.spw_freq, c.pwv[:, None])


def _antenna_counts(c: SimpleNamespace) -> None:
    """Antennas per EB (fewer for the few-antennas fault) and the dead / noisy ones among them."""
    r, N, is12 = c.rng, c.N, c.is12
    n_ant = np.where(is12, r.integers(40, 51, N), r.integers(10, 13, N))
    n_few = np.where(is12, r.integers(14, 37, N), r.integers(3, 9, N))
    c.n_nominal = n_ant.copy()
    c.n_ant = np.where(c.fault["few_antennas"], n_few, n_ant)

    def count(p12: Sequence[float], p7: Sequence[float], flag: np.ndarray) -> np.ndarray:
        c12 = 1 + np.searchsorted(np.cumsum(p12) / np.sum(p12), r.random(N))
        c7 = 1 + np.searchsorted(np.cumsum(p7) / np.sum(p7), r.random(N))
        return np.where(flag, np.where(is12, c12, c7), 0)

    p12 = (0.3, 0.2, 0.14, 0.1, 0.08, 0.07, 0.06, 0.05, 0.0, 0.0)
    n_dead = np.minimum(count(p12, (0.5, 0.3, 0.2), c.fault["dead_antenna"]), c.n_ant - 3)
    n_noisy = np.minimum(count(p12, (0.5, 0.3, 0.2), c.fault["noisy_antenna"]), c.n_ant - n_dead - 2)
    c.n_dead, c.n_noisy = np.maximum(n_dead, 0), np.maximum(n_noisy, 0)


def _scans(c: SimpleNamespace) -> None:
    """Planned and executed scans (aborted EBs stop early or lose a block), their numbers and times."""
    r, N = c.rng, c.N
    # Scans so that a complete EB has 1,100-1,700 detail rows (mean ~1,400: keeps 10k EBs near 1 GB).
    c.n_plan = np.clip(np.round(r.uniform(1100, 1700, N) / (4 * c.n_nominal)), 4, 80).astype(np.int64)
    aborted = c.fault["aborted"]
    exec_target = r.uniform(0.15, 0.85, N)
    n_done = np.where(aborted, np.maximum(2, np.round(c.n_plan * exec_target)), c.n_plan).astype(np.int64)
    # Now and then a healthy EB loses its last scan (a harmless exec_fraction of ~0.9).
    lost_one = (~aborted) & (c.n_plan >= 8) & (r.random(N) < 0.05)
    c.n_done = np.where(lost_one, c.n_plan - 1, n_done)
    gap = c.n_plan - c.n_done
    middle_gap = aborted & (r.random(N) < 0.3) & (c.n_done >= 3)
    gap_start = np.where(middle_gap, 1 + (r.random(N) * (c.n_done - 1)).astype(np.int64), c.n_done)
    c.exec_fraction = np.round(c.n_done / c.n_plan, 3)
    c.interval = np.where(c.is12, r.uniform(95, 135, N), r.uniform(30, 40, N))
    overhead = r.uniform(90, 240, N)
    K = int(c.n_done.sum())
    c.scan_eb = np.repeat(np.arange(N), c.n_done)
    c.scan_start = np.concatenate([[0], np.cumsum(c.n_done)[:-1]]).astype(np.int64)
    c.scan_local = np.arange(K) - c.scan_start[c.scan_eb]
    c.scan_no = c.scan_local + 1 + np.where(c.scan_local >= gap_start[c.scan_eb], gap[c.scan_eb], 0)
    c.scan_time = np.round(overhead[c.scan_eb] + (c.scan_no - 1) * c.interval[c.scan_eb])
    last_no = c.n_done + np.where(gap_start < c.n_done, gap, 0)
    c.duration = np.round(overhead + last_no * c.interval + r.uniform(10, 40, N), 1)


def _sky(c: SimpleNamespace) -> None:
    """Hour angle, elevation (per EB and scan), start time matching the LST, and day or night."""
    r, N = c.rng, c.N
    ha_lim = np.minimum(atm.ha_for_elevation(c.dec, 22.0), 4.5)
    ha_mid = ha_lim * (2.0 * r.beta(2.0, 2.0, N) - 1.0)
    el_target = r.uniform(13.5, 19.5, N)
    ha_low = atm.ha_for_elevation(c.dec, el_target) * np.where(r.random(N) < 0.5, -1.0, 1.0)
    ha_mid = np.where(c.fault["low_elevation"], ha_low, ha_mid)
    c.elevation = atm.elevation(c.dec, ha_mid)
    ha_start = ha_mid - c.duration / 7200.0
    t_hours = atm.utc_hours(np.mod(c.ra + ha_start, 24.0), c.day)
    c.daytime = atm.is_daytime(t_hours + c.duration / 7200.0)
    c.start_s = np.round((c.day * 24.0 + t_hours) * 3600.0, 3)
    c.t_days = c.start_s / 86400.0
    se = c.scan_eb
    scan_el = atm.elevation(c.dec[se], ha_start[se] + (c.scan_time + 0.5 * c.interval[se]) / 3600.0)
    c.airmass_scan = 1.0 / np.sin(np.radians(np.maximum(scan_el, 5.0)))


# --- antennas and the detail grid ------------------------------------------------------------------------


def _antennas(c: SimpleNamespace) -> None:
    """Antenna names, which are dead / noisy / jump, their gains, pointing losses and positions."""
    r, N, n_ant = c.rng, c.N, c.n_ant
    A = int(n_ant.sum())
    c.ant_eb = np.repeat(np.arange(N), n_ant)
    c.ant_start = np.concatenate([[0], np.cumsum(n_ant)[:-1]]).astype(np.int64)
    c.ant_code = np.empty(A, dtype=np.int64)
    for mask, pool, offset in ((c.is12, len(ANTENNAS_12M), 0), (~c.is12, len(ANTENNAS_7M), len(ANTENNAS_12M))):
        m = int(mask.sum())
        if m == 0:
            continue
        keys = r.random((m, pool))
        kth = np.sort(keys, axis=1)[np.arange(m), n_ant[mask] - 1]
        c.ant_code[mask[c.ant_eb]] = np.nonzero(keys <= kth[:, None])[1] + offset
    c.rank = _ragged_rank(c.ant_eb, r)
    rank, eb = c.rank, c.ant_eb
    c.dead_ant = rank < c.n_dead[eb]
    c.noisy_ant = (rank >= c.n_dead[eb]) & (rank < (c.n_dead + c.n_noisy)[eb])
    c.jump_ant = c.fault["phase_jump"][eb] & (rank == (c.n_dead + c.n_noisy)[eb])
    c.dead_flagged = c.dead_ant & (r.random(A) < 0.5)
    c.preflag = (rank >= (c.n_dead + c.n_noisy + 2)[eb]) & (r.random(A) < 0.01)
    c.noisy_factor = np.where(c.noisy_ant, r.uniform(1.8, 4.0, A), 1.0)
    c.g_ant = 1.0 + r.normal(0.0, 1.0, A) * np.where(c.band[eb] >= 7, 0.04, 0.02)
    # Instrument flux offset: pointing/focus loss (low, antenna-dependent, grows as nu^2) or scale error.
    c.off_size = r.uniform(0.06, 0.55, N)
    c.off_low = c.fault["flux_offset"] & (r.random(N) < 0.75)
    off_high = c.fault["flux_offset"] & ~c.off_low
    mean_loss = 1.0 - np.exp(-c.off_size)
    c.loss_ant = np.where(c.off_low[eb], np.clip(mean_loss[eb] * r.uniform(0.3, 1.7, A), 0, 0.95), 0.0)
    # The real EB-to-EB amplitude-scale error (a share of the band's flux accuracy), plus the fault's.
    eb_scale = np.exp(r.normal(0.0, 1.0, N) * sources.EB_SCALE_SCATTER * sources.flux_accuracy(c.band))
    c.scale_eb = eb_scale * np.where(off_high, np.exp(c.off_size), 1.0)
    c.layout = phases.layout(r, c.is12, c.ant_eb)


def _spw_instrument(c: SimpleNamespace) -> None:
    """Per antenna x spw receiver temperature and gain, bandpass ripple, per-spw calibration systematics."""
    r, N, eb = c.rng, c.N, c.ant_eb
    A = eb.size
    trx = np.array([atm.TRX_K[b] for b in atm.BANDS])[c.band_i]
    c.trx = trx
    # Typical receivers scatter +-15 % around the band's typical value (limits.RECEIVER_TEMP_K).
    c.trx_as = trx[eb][:, None] * r.uniform(0.85, 1.15, (A, 4))
    c.g_as = 1.0 + r.normal(0.0, 0.01, (A, 4))
    ripple_base = np.abs(r.normal(0.35, 0.15, (A, 4)))
    c.rip_spw = r.integers(0, 4, N)
    rip_db = r.uniform(2.0, 8.0, N)
    rip_hit = c.fault["bandpass_ripple"][eb] & (r.random(A) < 0.85)
    c.ripple_as = ripple_base.copy()
    rows_hit = np.nonzero(rip_hit)[0]
    c.ripple_as[rows_hit, c.rip_spw[eb[rows_hit]]] = rip_db[eb[rows_hit]] * r.uniform(0.8, 1.2, rows_hit.size)
    # Per-spw calibration systematic (what makes in-band spectral indices noisy) and the ripple's bias.
    c.g_spw = 1.0 + r.normal(0.0, 1.0, (N, 4)) * np.where(c.band >= 7, 0.02, 0.01)[:, None]
    bias = 1.0 - 0.012 * rip_db * r.choice([-1, 1], N)
    c.g_spw[np.arange(N), c.rip_spw] *= np.where(c.fault["bandpass_ripple"], bias, 1.0)
    c.rip_sig = np.zeros((N, 4))
    c.rip_sig[np.arange(N), c.rip_spw] = np.where(c.fault["bandpass_ripple"], 0.004 * rip_db, 0.0)


def _scan_events(c: SimpleNamespace) -> None:
    """The Tsys-spike scan, the phase-jump scan and size, and the EB's atmospheric path RMS."""
    r, N = c.rng, c.N
    one_scan = np.maximum(c.n_done - 1, 1)
    c.spike_scan_local = np.minimum(1 + (r.random(N) * one_scan).astype(np.int64), c.n_done - 1)
    c.spike_r = r.uniform(1.4, 5.0, N)
    is_spike = c.fault["tsys_spike"][c.scan_eb] & (c.scan_local == c.spike_scan_local[c.scan_eb])
    c.spike_factor = np.where(is_spike, c.spike_r[c.scan_eb], 1.0)
    c.jump_deg = r.uniform(30.0, 175.0, N) * r.choice([-1.0, 1.0], N)
    c.jump_scan = np.minimum(1 + (r.random(N) * one_scan).astype(np.int64), c.n_done - 1)
    c.rms_1km = phases.path_rms_1km(r, c.daytime, c.pwv, c.fault["phase_instability"])
    c.path_rms_ant = phases.antenna_path_rms(c.layout, c.rms_1km, c.ant_eb)


def _grid(c: SimpleNamespace) -> None:
    """Index arrays of the (antenna x scan) rows, EB by EB, scan-major: row = ak * 4 + spw."""
    n_ak = c.n_ant * c.n_done
    AK = int(n_ak.sum())
    c.ak_eb = np.repeat(np.arange(c.N), n_ak)
    ak_start = np.concatenate([[0], np.cumsum(n_ak)[:-1]]).astype(np.int64)
    off = np.arange(AK, dtype=np.int64) - ak_start[c.ak_eb]
    na = c.n_ant[c.ak_eb]
    c.k = off // na
    c.ai = c.ant_start[c.ak_eb] + (off - c.k * na)
    c.ki = c.scan_start[c.ak_eb] + c.k
    c.n_ak = n_ak
    c.z = c.rng.standard_normal((3, AK, 4))  # tsys, amplitude and ripple noise


def _tsys(c: SimpleNamespace) -> None:
    """Tsys per row: the typical receiver through the slant opacity of each scan, noisy antennas and spikes."""
    ext_tau = c.tau_spw[c.scan_eb] * c.airmass_scan[:, None]  # (scans, 4)
    c.spike_ak = c.spike_factor[c.ki]
    fac = c.noisy_factor[c.ai] * np.where(c.spike_ak > 1.0, c.spike_ak * c.rng.uniform(0.9, 1.1, c.ai.size), 1.0)
    c.tsys = atm.system_temperature(c.trx_as[c.ai], ext_tau[c.ki]) * fac[:, None] * (1.0 + 0.015 * c.z[0])


def _amplitudes(c: SimpleNamespace) -> None:
    """Amplitude per row: the true flux at the spw x decorrelation x gains x noise; dead antennas ~1 %."""
    ai, eb = c.ai, c.ak_eb
    c.flux_spw = sources.true_flux(c.lc, c.src, c.t_days, c.spw_freq)  # (N, 4)
    eb_sigma_deg = phases.to_degrees(_eb_path_rms(c)[:, None], c.spw_freq)
    decor = np.exp(-0.5 * np.radians(0.5 * eb_sigma_deg) ** 2)  # within-scan decorrelation
    eb_gain = c.flux_spw * decor * c.g_spw * c.scale_eb[:, None]
    jump_here = c.jump_ant[ai] & (c.k == c.jump_scan[eb])
    ak_gain = c.g_ant[ai] * np.where(c.spike_ak > 1.0, 1.0 + 0.25 * (c.spike_ak - 1.0), 1.0)
    ak_gain *= np.where(jump_here, np.abs(np.cos(np.radians(c.jump_deg[eb]) / 2.0)), 1.0)
    # Noise grows with Tsys relative to what the band normally has (noisy antennas, spikes, wet air).
    sig_eb = np.where(c.band >= 7, 0.02, 0.01) / np.sqrt(1.6 * c.trx + 40.0)
    sig_ak = sig_eb[eb] * (1.0 + 2.0 * c.noisy_ant[ai]) * np.sqrt(c.spike_ak)
    c.rel_sigma = sig_ak[:, None] * np.sqrt(c.tsys) + c.rip_sig[eb]
    amp = eb_gain[eb] * c.g_as[ai] * ak_gain[:, None] * (1.0 + c.rel_sigma * c.z[1])
    loss = c.loss_ant[ai]
    if loss.any():
        amp *= 1.0 - loss[:, None] * ((c.spw_freq / c.lo[:, None]) ** 2)[eb]
    c.dead_ak = c.dead_ant[ai]
    if c.dead_ak.any():
        amp[c.dead_ak] = c.flux_spw[eb[c.dead_ak]] * np.abs(0.01 + 0.01 * c.z[1][c.dead_ak])
    c.amp = amp


def _eb_path_rms(c: SimpleNamespace) -> np.ndarray:
    """RMS over the EB's antennas of their residual path (um)."""
    sq = np.bincount(c.ant_eb, weights=c.path_rms_ant**2, minlength=c.N)
    return np.sqrt(sq / np.maximum(c.n_ant, 1))


def _phases(c: SimpleNamespace) -> None:
    """Phase per row: antenna x spw offset + drift + 360 f/c x residual path + thermal noise; jumps; dead."""
    r, ai, eb = c.rng, c.ai, c.ak_eb
    t_s = c.scan_time[c.ki]
    path = phases.path_series(r, c.path_rms_ant, ai, c.k, t_s, c.n_ant[eb])
    offset = r.uniform(-180.0, 180.0, (ai.max() + 1 if ai.size else 0, 4))
    phase = phases.to_degrees(path[:, None], c.spw_freq[eb]) + offset[ai]
    # Thermal phase noise: a bright calibrator's scan phase has SNR in the hundreds (well below the
    # amplitude scatter, which is mostly gain).
    phase += 0.3 * np.degrees(c.rel_sigma) * r.standard_normal(c.rel_sigma.shape)
    phase += np.where(c.jump_ant[ai] & (c.k >= c.jump_scan[eb]), c.jump_deg[eb], 0.0)[:, None]
    n_dead = int(c.dead_ak.sum())
    if n_dead:
        phase[c.dead_ak] = r.uniform(-180.0, 180.0, (n_dead, 4))
    c.phase = phases.wrap_deg(phase)


def _flags_and_rounding(c: SimpleNamespace) -> None:
    """Online flags (dead antennas, random pre-flags, shadowing of the 7 m array), then archive rounding."""
    r, ai, eb = c.rng, c.ai, c.ak_eb
    c.ripple = np.abs(c.ripple_as[ai] + 0.05 * c.z[2])
    del c.z
    ak_flag = r.random(ai.size) < 0.005
    shadow = c.fault["low_elevation"] & ~c.is12
    shadow_ak = shadow[eb] & (c.rank[ai] >= c.n_ant[eb] - 2) & (c.k % 3 != 0)
    c.flag_ak = c.dead_flagged[ai] | c.preflag[ai] | ak_flag | shadow_ak
    c.tsys = np.round(c.tsys, 1)
    c.amp = np.round(np.maximum(c.amp, 0.0), 4)
    c.phase = np.round(c.phase, 2)
    c.ripple = np.round(c.ripple, 2)


# --- EB summary, catalogue and reference ------------------------------------------------------------------


def _summary(c: SimpleNamespace) -> None:
    """EB columns from the rounded detail rows: flagged fraction, phase RMS, median Tsys, power-law flux fit."""
    N, eb, ok = c.N, c.ak_eb, ~c.flag_ak
    n_ok = 4.0 * np.bincount(eb, weights=ok, minlength=N)
    c.flagged_fraction = 1.0 - n_ok / np.maximum(4.0 * c.n_ak, 1.0)
    c.phase_rms = phases.rms_about_antenna_mean(c.phase, c.ai, eb, ok, N, c.ant_eb.size)
    c.tsys_median = _ragged_median(c.tsys, eb, ok, N)
    cnt = np.repeat(np.bincount(eb, weights=ok, minlength=N)[:, None], 4, axis=1)
    s1 = np.stack([np.bincount(eb, weights=ok * c.amp[:, j], minlength=N) for j in range(4)], axis=1)
    s2 = np.stack([np.bincount(eb, weights=ok * c.amp[:, j] ** 2, minlength=N) for j in range(4)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        var = np.maximum(s2 / cnt - mean**2, 0.0)
        # Scans of one antenna are correlated: the effective sample is about the antenna count.
        n_eff = np.maximum(cnt / c.n_done[:, None], 1.0)
        rel = np.hypot(np.sqrt(var / n_eff) / mean, 0.01)
        y = np.log(mean)
        w = np.where(np.isfinite(y) & (mean > 0), 1.0 / rel**2, 0.0)
    y = np.where(w > 0, y, 0.0)
    x = np.log(c.spw_freq / c.lo[:, None])
    Sw, Sx, Sy = w.sum(1), (w * x).sum(1), (w * y).sum(1)
    Sxx, Sxy = (w * x * x).sum(1), (w * x * y).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        det = Sw * Sxx - Sx**2
        alpha = (Sw * Sxy - Sx * Sy) / det
        c_fit = (Sxx * Sy - Sx * Sxy) / det
        chi2 = (w * (y - c_fit[:, None] - alpha[:, None] * x) ** 2).sum(1)
        scale = np.maximum(1.0, chi2 / np.maximum((w > 0).sum(1) - 2, 1))
        c.alpha_err = np.sqrt(Sw / det * scale)
        flux = np.exp(c_fit)
        flux_stat = flux * np.sqrt(Sxx / det * scale)
    c.good_fit = (w > 0).sum(1) >= 2
    c.alpha_fit = alpha
    c.flux = np.where(c.good_fit, flux, np.nan)
    # The band's flux-scale accuracy is the systematic part of the error (5 % B3-5 ... 10 % B7+).
    c.flux_err = np.hypot(sources.flux_accuracy(c.band) * c.flux, flux_stat)


def _catalogue(c: SimpleNamespace) -> None:
    """The catalogue's expected flux from the source's history before this EB."""
    c.expected, c.expected_err, c.flare_change = sources.catalogue_expectation(c.rng, c.lc, c.src, c.t_days, c.lo)


def _reference(c: SimpleNamespace) -> None:
    """Latent severities of every fault and the reference value."""
    N = c.N
    rip_med = pd.DataFrame(c.ripple_as).groupby(c.ant_eb).median().reindex(np.arange(N)).to_numpy()
    warn_bad = [limits.phase_rms_limits_deg(int(b), "12m" if t else "7m", float(f)) for b, t, f in _bands(c)]
    c.phase_bad = np.array([wb[1] for wb in warn_bad]) if N else np.zeros(0)
    c.phase_atm = phases.to_degrees(_eb_path_rms(c), c.lo)
    c.sev = reference.severities(
        pd.Index(c.gidx, name="eb"),
        {
            "n_ant": c.n_ant,
            "n_dead": c.n_dead,
            "n_noisy": c.n_noisy,
            "is12": c.is12,
            "spike_seen": np.where(c.fault["tsys_spike"], c.spike_r, 1.0),
            "jump_size": np.where(c.fault["phase_jump"], np.abs(c.jump_deg), 0.0),
            "exec_fraction": c.exec_fraction,
            "rip_med": np.nanmax(rip_med, axis=1) if N else np.zeros(0),
            "tau_ratio": c.tau_lo / c.limit,
            "elevation": c.elevation,
            "offset": np.where(c.fault["flux_offset"], c.off_size, 0.0),
            "phase_ratio": c.phase_atm / np.maximum(c.phase_bad, 1e-9),
            "flare": c.flare_change,
        },
    )
    c.value = reference.reference_value(c.sev["s_max"].to_numpy())
    c.rip_med = rip_med


def _reasons(c: SimpleNamespace) -> None:
    """The reference's readable reasons: deciding faults, minor ones (flagged antennas, scans), flares."""
    N, rip_med = c.N, c.rip_med
    names = ANT_OBJ[c.ant_code]
    noisy_x = pd.Series(c.noisy_factor).groupby(c.ant_eb).max().reindex(np.arange(N)).to_numpy()
    facts: dict[str, list[Any]] = {
        "dead": _names_by_eb(c.ant_eb, c.dead_ant, names, N),
        "noisy": _names_by_eb(c.ant_eb, c.noisy_ant, names, N),
        "noisy_x": [f"{v:.1f}x" for v in noisy_x],
        "jump": _names_by_eb(c.ant_eb, c.jump_ant, names, N),
    }
    c.reasons = reference.reasons(
        c.sev,
        facts,
        n_ant=c.n_ant,
        n_dead=c.n_dead,
        n_noisy=c.n_noisy,
        spike_scan=c.scan_no[c.scan_start + c.spike_scan_local],
        spike_r=c.spike_r,
        jump_deg=c.jump_deg,
        jump_scan=c.scan_no[c.scan_start + c.jump_scan],
        exec_fraction=c.exec_fraction,
        n_done=c.n_done,
        n_plan=c.n_plan,
        rip_spw=np.nanargmax(rip_med, axis=1) if N else np.zeros(0, dtype=np.int64),
        rip_med=np.nanmax(rip_med, axis=1) if N else np.zeros(0),
        pwv=c.pwv,
        band=c.band,
        array=np.where(c.is12, "12m", "7m"),
        tau=c.tau_lo,
        limit=c.limit,
        elevation=c.elevation,
        off_low=c.off_low,
        off_size=c.off_size,
        phase_atm=c.phase_atm,
        phase_bad=c.phase_bad,
        flare=c.flare_change,
    )


def _bands(c: SimpleNamespace) -> list[tuple[Any, Any, Any]]:
    return list(zip(c.band.tolist(), c.is12.tolist(), c.lo.tolist()))


PIPELINE: tuple[Step, ...] = (
    _observation,
    _band_and_tuning,
    _antenna_counts,
    _scans,
    _sky,
    _antennas,
    _spw_instrument,
    _scan_events,
    _grid,
    _tsys,
    _amplitudes,
    _phases,
    _flags_and_rounding,
    _summary,
    _catalogue,
    _reference,
    _reasons,
)
"""The steps of generate(), in order."""


# --- frames ---------------------------------------------------------------------------------------------


def _frames(c: SimpleNamespace) -> SimulatedBatch:
    """The batch's DataFrames: EB rows, detail rows, reference outcomes, severities, antenna truth."""
    N, gidx = c.N, c.gidx
    start = pd.to_datetime(atm.EPOCH) + pd.to_timedelta(np.round(c.start_s * 1e3).astype(np.int64), unit="ms")
    cycle = np.where(start.month >= 10, start.year, start.year - 1)
    project = np.char.add(cycle.astype(str), np.where(c.is12, ".1.00001.CSV", ".1.00002.CSV"))
    sb_name = [
        f"{SRC_NAME[sj]}_{'a' if st else 'b'}_{b:02d}_{'TM1' if t12 else '7M'}"
        for sj, st, b, t12 in zip(c.src, c.standard, c.band, c.is12)
    ]
    ebs = pd.DataFrame(
        {
            "uid": make_uids(seed=c.seed, index=gidx, day=c.day),
            "sb_name": sb_name,
            "project": project,
            "source": SRC_NAME[c.src],
            "band": c.band.astype(np.int64),
            "array": np.where(c.is12, "12m", "7m"),
            "start_time": start,
            "duration_s": c.duration,
            "n_antennas": c.n_ant.astype(np.int64),
            "pwv_mm": c.pwv,
            "elevation_deg": np.round(c.elevation, 2),
            "tsys_median_k": np.round(c.tsys_median, 2),
            "phase_rms_deg": np.round(c.phase_rms, 2),
            "flagged_fraction": np.round(c.flagged_fraction, 5),
            "exec_fraction": c.exec_fraction,
            "freq_ghz": np.round(c.lo, 4),
            "flux_jy": np.round(c.flux, 4),
            "flux_err_jy": np.round(c.flux_err, 4),
            "spectral_index": np.round(np.where(c.good_fit, c.alpha_fit, np.nan), 3),
            "spectral_index_err": np.round(np.where(c.good_fit, c.alpha_err, np.nan), 3),
            "expected_flux_jy": np.round(c.expected, 4),
            "expected_flux_err_jy": np.round(c.expected_err, 4),
            "extra": [None] * N,
            # The archive registers an EB when it ends.
            "imported_at": start + pd.to_timedelta(np.round(c.duration * 1e3).astype(np.int64), unit="ms"),
        },
        index=pd.Index(gidx, name="eb"),
    )[list(EB_COLUMNS)]
    ai, AK = c.ai, c.ai.size
    # One float block (no consolidation copy) plus the integer, categorical and boolean columns.
    block = np.empty((6, 4 * AK))
    block[0] = np.round(c.spw_freq, 4)[c.ak_eb].ravel()
    block[1] = np.repeat(c.scan_time[c.ki], 4)
    block[2], block[3], block[4], block[5] = c.tsys.ravel(), c.amp.ravel(), c.phase.ravel(), c.ripple.ravel()
    details = pd.DataFrame(
        block.T, columns=["freq_ghz", "time_s", "tsys_k", "amplitude", "phase_deg", "bp_ripple_db"], copy=False
    )
    details.insert(0, "eb", np.repeat(gidx[c.ak_eb], 4))
    details.insert(
        1, "antenna", pd.Categorical.from_codes(np.repeat(c.ant_code[ai], 4), categories=list(ANTENNA_NAMES))
    )
    details.insert(2, "spw", np.tile(np.arange(4, dtype=np.int64), AK))
    details.insert(3, "scan", np.repeat(c.scan_no[c.ki], 4).astype(np.int64))
    details["flagged"] = np.repeat(c.flag_ak, 4)
    outcomes = pd.DataFrame({"eb": gidx, "value": c.value, "reasons": c.reasons})
    antennas = pd.DataFrame(
        {
            "eb": gidx[c.ant_eb],
            "antenna": ANT_OBJ[c.ant_code],
            "radius_km": c.layout.radius_km,
            "wvr_on": c.layout.wvr_on,
            "path_rms_um": c.path_rms_ant,
        }
    )
    return SimulatedBatch(ebs=ebs, details=details, outcomes=outcomes, severity=c.sev, antennas=antennas)


# --- small vectorised helpers -----------------------------------------------------------------------------


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


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


def _ragged_rank(group: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Random rank 0..n-1 of each element within its (sorted, contiguous) group."""
    order = np.argsort(group + r.random(group.size), kind="stable")
    starts = np.searchsorted(group, group)
    rank = np.empty(group.size, dtype=np.int64)
    rank[order] = np.arange(group.size) - starts[order]
    return rank


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
