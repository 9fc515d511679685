"""How the grid quasars really behave: red-noise light curves, flares, spectral indices and flux errors.

Each source's log flux is a damped random walk (an Ornstein-Uhlenbeck process, the usual red-noise model
of blazar light curves: power ~ f^-2 above 1/(2 pi tau)) on a daily grid, with a long-term scatter of
0.20-0.50 in ln S (a factor ~2 over years, DOMAIN.md) and a damping time of 60-300 days, so the flux
moves 10-30 % over weeks to months. Flares (a fast rise and slower decay, 20-70 %) come on top, a little
stronger at higher frequency. The spectral index of each source is drawn around its catalogue value
(scatter 0.05) and wanders by a few hundredths; the light curve is deterministic in the seed, so every
batch of one simulation sees the same sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence

from qa0_label.sim.atmosphere import SPAN_DAYS
from qa0_label.sim.catalogue import GRID_SOURCES, SRC_ALPHA, SRC_S0

GRID_MARGIN_DAYS = 120
"""The light curves start this long before the first EB (the catalogue point of an early EB lies before it)."""

FLUX_SCALE_ACCURACY: dict[int, float] = {3: 0.05, 4: 0.05, 5: 0.05, 6: 0.075, 7: 0.10, 8: 0.10, 9: 0.15, 10: 0.15}
"""Relative flux-scale accuracy per band, the systematic term of flux_err_jy: ~5 % in Bands 3-5 and ~10 %
from Band 7 up (ALMA flux-calibration accuracy, DOMAIN.md); Band 6 between, Bands 9-10 worse (approx.)."""

DRIFT_PER_SQRT_DAY = 0.035
"""Typical red-noise drift of ln S per sqrt(day) (sigma sqrt(2 / tau) of the sources' light curves)."""

EB_SCALE_SCATTER = 0.5
"""The real EB-to-EB amplitude-scale error, as a share of FLUX_SCALE_ACCURACY (the rest is systematic)."""


def rng(*keys: int) -> Generator:
    """A generator seeded by integer keys (each batch and purpose gets its own stream)."""
    return Generator(PCG64(SeedSequence([int(k) & 0xFFFFFFFF for k in keys])))


@dataclass(frozen=True)
class LightCurves:
    """Daily ln-flux offsets (red noise) and flare parameters of every grid source for one seed."""

    log_flux: np.ndarray  # (n_src, n_days) ln(S / S_catalogue) on days -GRID_MARGIN_DAYS ..
    alpha: np.ndarray  # (n_src,) the source's own mean spectral index
    alpha_amp: np.ndarray  # (n_src,) slow wander of the index
    alpha_phase: np.ndarray  # (n_src,)
    flare_t0: np.ndarray  # (n_src, 4) days; NaN = no flare in this slot
    flare_amp: np.ndarray  # (n_src, 4) fractional brightening at 97.5 GHz
    flare_rise: np.ndarray  # (n_src, 4) days
    flare_decay: np.ndarray  # (n_src, 4) days


def damped_random_walk(r: Generator, n_src: int, n_days: int, sigma: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """(n_src, n_days) stationary Ornstein-Uhlenbeck series with long-term scatter SIGMA and damping TAU (days)."""
    a = np.exp(-1.0 / tau)
    step = sigma * np.sqrt(1.0 - a * a)
    z = r.standard_normal((n_src, n_days))
    out = np.empty((n_src, n_days))
    out[:, 0] = sigma * z[:, 0]
    for d in range(1, n_days):  # ~850 vectorised steps over the sources: a millisecond or two
        out[:, d] = a * out[:, d - 1] + step * z[:, d]
    return out


def light_curves(seed: int) -> LightCurves:
    """The light curves of every grid source for SEED (the same in every batch of a simulation)."""
    r = rng(seed, 0x11C)
    n = len(GRID_SOURCES)
    n_days = SPAN_DAYS + GRID_MARGIN_DAYS + 2
    sigma = r.uniform(0.20, 0.50, n)  # long-term scatter of ln S
    tau = r.uniform(60.0, 300.0, n)  # damping time (days)
    log_flux = damped_random_walk(r, n, n_days, sigma, tau)
    # The catalogue's value is the source's mean level: centre each curve on it.
    log_flux -= log_flux.mean(axis=1, keepdims=True)
    n_flares = np.minimum(r.poisson(1.2, n), 4)
    t0 = r.uniform(-60.0, SPAN_DAYS, (n, 4))
    t0[np.arange(4)[None, :] >= n_flares[:, None]] = np.nan
    return LightCurves(
        log_flux=log_flux,
        alpha=SRC_ALPHA + r.normal(0.0, 0.05, n),
        alpha_amp=r.uniform(0.01, 0.04, n),
        alpha_phase=r.uniform(0, 2 * np.pi, n),
        flare_t0=t0,
        flare_amp=r.uniform(0.2, 0.7, (n, 4)),
        flare_rise=r.uniform(4.0, 15.0, (n, 4)),
        flare_decay=r.uniform(20.0, 80.0, (n, 4)),
    )


def _log_flux_at(lc: LightCurves, src: np.ndarray, t_days: np.ndarray) -> np.ndarray:
    """Linear interpolation of the daily red-noise curve at fractional days."""
    x = np.clip(t_days + GRID_MARGIN_DAYS, 0.0, lc.log_flux.shape[1] - 1.001)
    i = x.astype(np.int64)
    w = x - i
    return (1.0 - w) * lc.log_flux[src, i] + w * lc.log_flux[src, i + 1]


def true_flux(lc: LightCurves, src: np.ndarray, t_days: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """True flux density (Jy) of sources SRC at times T_DAYS and frequencies NU (GHz, shape (N,) or (N, k))."""
    nu = np.asarray(nu, dtype=float)
    alpha = lc.alpha[src] + lc.alpha_amp[src] * np.sin(2 * np.pi * t_days / 400.0 + lc.alpha_phase[src])
    dt = t_days[:, None] - lc.flare_t0[src]
    with np.errstate(invalid="ignore", over="ignore"):
        shape = np.where(dt < 0, np.exp(dt / lc.flare_rise[src]), np.exp(-dt / lc.flare_decay[src]))
    flare = np.nansum(lc.flare_amp[src] * shape, axis=1)
    base = SRC_S0[src] * np.exp(_log_flux_at(lc, src, t_days))
    if nu.ndim == 2:
        ratio = nu / 97.5
        # Flares are a little stronger at higher frequency (they flatten the spectrum while they last).
        return base[:, None] * ratio ** alpha[:, None] * (1.0 + flare[:, None] * ratio**0.15)
    ratio = nu / 97.5
    return base * ratio**alpha * (1.0 + flare * ratio**0.15)


def flux_accuracy(band: np.ndarray) -> np.ndarray:
    """FLUX_SCALE_ACCURACY of each band in BAND."""
    table = np.zeros(11)
    for b, v in FLUX_SCALE_ACCURACY.items():
        table[b] = v
    return table[np.asarray(band, dtype=np.int64)]


def catalogue_expectation(
    r: Generator, lc: LightCurves, src: np.ndarray, t_days: np.ndarray, lo: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expected flux, its error, ln(true now / true then)): the catalogue's extrapolation to the EB's date and
    frequency, from its last measurement a few days to weeks BEFORE the EB (so it misses flares since)."""
    n = src.size
    lag = np.minimum(1.0 + r.exponential(6.0, n), 45.0)
    cat_frac = np.where(lo < 200, 0.03, np.where(lo < 400, 0.05, 0.08))
    true_now = true_flux(lc, src, t_days, lo)
    true_then = true_flux(lc, src, t_days - lag, lo)
    expected = true_then * np.exp(r.normal(0.0, 1.0, n) * cat_frac)
    # The catalogue's error grows with the time since its last point: a red-noise source drifts ~ sqrt(lag)
    # (0.035 per sqrt(day) is the typical sigma sqrt(2 / tau) of the light curves above).
    expected_err = expected * np.hypot(cat_frac, DRIFT_PER_SQRT_DAY * np.sqrt(lag))
    return expected, expected_err, np.log(true_now / true_then)
