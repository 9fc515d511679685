"""The simulator's physics rules (issue 16): typical Tsys, phases with structure, red-noise fluxes, flux errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qa0_label.review import limits
from qa0_label.sim import atmosphere as atm
from qa0_label.sim import phases, reference, sources
from qa0_label.sim.catalogue import GRID_SOURCES, SRC_ALPHA
from qa0_label.sim.generate import PIPELINE, SimulatedBatch, generate


@pytest.fixture(scope="module")
def batch() -> SimulatedBatch:
    return generate(n=1500, seed=5)


@pytest.fixture(scope="module")
def ebs(batch: SimulatedBatch) -> pd.DataFrame:
    return batch.ebs.join(batch.outcomes.set_index("eb"))


def test_generate_is_a_pipeline_of_named_steps() -> None:
    names = [step.__name__ for step in PIPELINE]
    assert len(names) == len(set(names)) >= 10
    assert names.index("_band_and_tuning") < names.index("_tsys") < names.index("_summary") < names.index("_reference")


def test_tsys_is_typical_not_specification(ebs: pd.DataFrame) -> None:
    sel = ebs[(ebs["elevation_deg"] > 50) & ebs["pwv_mm"].between(0.5, 1.5)]
    med = sel.groupby("band")["tsys_median_k"].median()
    assert 120 <= med[7] <= 180 and 80 <= med[6] <= 110 and 50 <= med[3] <= 70
    # The simulated median Tsys is what limits.expected_tsys_k predicts for the EB (one Tsys model).
    good = ebs[ebs["value"] == "Pass"]
    expected = limits.expected_tsys_array(good["band"], good["freq_ghz"], good["pwv_mm"], good["elevation_deg"])
    assert np.median(good["tsys_median_k"] / expected) == pytest.approx(1.0, abs=0.05)


def test_bands_are_scheduled_within_their_pwv_limit(ebs: pd.DataFrame, batch: SimulatedBatch) -> None:
    normal = ebs[batch.severity["high_pwv"].to_numpy() == 0]
    limit = limits.pwv_limits_mm(normal["band"], normal["freq_ghz"])
    assert (normal["pwv_mm"] <= limit + 1e-3).all()
    assert normal.groupby("band")["pwv_mm"].max()[9] < normal.groupby("band")["pwv_mm"].max()[3]


def test_phase_noise_grows_with_distance_and_is_worse_by_day_and_without_wvr() -> None:
    r = np.random.default_rng(0)
    is12 = np.ones(400, dtype=bool)
    ant_eb = np.repeat(np.arange(400), 40)
    lay = phases.layout(r, is12, ant_eb)
    rms = phases.antenna_path_rms(lay, np.full(400, 60.0), ant_eb)
    near, far = rms[lay.wvr_on & (lay.radius_km < 0.1)], rms[lay.wvr_on & (lay.radius_km > 1.0)]
    assert np.median(far) > 3 * np.median(near)
    assert 0.005 < (~lay.wvr_on).mean() < 0.04
    ratio = rms[~lay.wvr_on] / (60.0 * np.minimum(lay.radius_km[~lay.wvr_on], 3.0) ** 0.6)
    assert np.allclose(ratio, phases.WVR_OFF_FACTOR)
    day = phases.path_rms_1km(np.random.default_rng(1), np.ones(4000, bool), np.ones(4000), np.zeros(4000, bool))
    night = phases.path_rms_1km(np.random.default_rng(1), np.zeros(4000, bool), np.ones(4000), np.zeros(4000, bool))
    wet = phases.path_rms_1km(np.random.default_rng(1), np.zeros(4000, bool), np.full(4000, 3.0), np.zeros(4000, bool))
    assert np.median(day) > 1.5 * np.median(night) and np.median(wet) > 1.4 * np.median(night)


def test_consecutive_scans_of_an_antenna_are_correlated() -> None:
    r = np.random.default_rng(2)
    n_ant, n_scan = 30, 40
    k = np.repeat(np.arange(n_scan), n_ant)
    ai = np.tile(np.arange(n_ant), n_scan)
    path = phases.path_series(r, np.full(n_ant, 20.0), ai, k, k * 110.0, np.full(k.size, n_ant)).reshape(n_scan, -1)
    dev = path - path.mean(axis=0)
    lag1 = (dev[1:] * dev[:-1]).sum() / (dev**2).sum()
    assert lag1 > 0.6
    assert 10.0 < path.std() < 80.0  # the atmosphere (20 um) plus the slow instrumental drift over 73 min


def test_simulated_phases_have_offsets_and_structure(batch: SimulatedBatch) -> None:
    d = batch.details
    good = batch.severity.index[batch.severity["s_max"] < 0.3]
    d = d[d["eb"].isin(good) & ~d["flagged"]]
    # Instrumental offsets: an antenna's mean phase is anywhere on the circle, not near zero.
    means = d.groupby(["eb", d["antenna"].astype(str), "spw"])["phase_deg"].median()
    assert means.abs().median() > 45
    # The phase RMS of an EB grows with the array's extent (12 m far more than the 7 m array).
    e = batch.ebs.loc[good]
    assert (
        e.loc[e["array"] == "12m", "phase_rms_deg"].median() > 2 * e.loc[e["array"] == "7m", "phase_rms_deg"].median()
    )
    truth = batch.antennas
    assert truth is not None and set(truth.columns) >= {"radius_km", "wvr_on", "path_rms_um"}
    assert (
        truth.groupby(pd.cut(truth["radius_km"], [0, 0.1, 1, 20]), observed=True)["path_rms_um"]
        .median()
        .is_monotonic_increasing
    )


def test_damped_random_walk_is_red_noise() -> None:
    r = np.random.default_rng(3)
    x = sources.damped_random_walk(r, 200, 3000, np.full(200, 0.3), np.full(200, 100.0))
    assert x.std() == pytest.approx(0.3, rel=0.1)
    lag = (x[:, 10:] * x[:, :-10]).mean() / (x**2).mean()
    assert lag == pytest.approx(np.exp(-10 / 100), abs=0.05)


def test_grid_fluxes_vary_on_week_to_month_scales() -> None:
    lc = sources.light_curves(7)
    src = np.repeat(np.arange(len(GRID_SOURCES)), 60)
    t = np.tile(np.arange(0.0, 60.0), len(GRID_SOURCES)) + 200.0
    flux = sources.true_flux(lc, src, t, np.full(src.size, 97.5)).reshape(len(GRID_SOURCES), 60)
    scatter = flux.std(axis=1) / flux.mean(axis=1)
    assert 0.04 < np.median(scatter) < 0.25
    # The same seed gives every batch the same light curves.
    assert np.array_equal(sources.light_curves(7).log_flux, lc.log_flux)
    # Spectral indices are drawn around the catalogue's.
    assert np.abs(lc.alpha - SRC_ALPHA).max() < 0.25 and np.abs(lc.alpha - SRC_ALPHA).mean() < 0.08


def test_flux_errors_follow_the_band_accuracy(ebs: pd.DataFrame) -> None:
    rel = (ebs["flux_err_jy"] / ebs["flux_jy"]).groupby(ebs["band"]).median()
    assert rel[3] == pytest.approx(0.05, abs=0.005) and rel[7] == pytest.approx(0.10, abs=0.01)
    assert (ebs["flux_err_jy"] >= sources.flux_accuracy(ebs["band"]) * ebs["flux_jy"] - 1e-3).all()


def test_phase_instability_is_judged_against_the_band_and_array_limit() -> None:
    assert reference.severity("phase_instability", 0.7) == 0.0
    assert reference.severity("phase_instability", 1.0) == 1.0
    assert reference.severity("phase_instability", 1.6) == 2.0
    # One dead antenna is minor, five of 45 make the EB SemiPass.
    s = reference.antenna_severity("dead_antenna", np.array([0, 1, 5]), np.array([45, 45, 45]))
    assert s[0] == 0 and 0.3 <= s[1] < 1.0 and s[2] >= 1.0


def test_system_temperature_matches_limits() -> None:
    tsys = atm.system_temperature(np.array([atm.TRX_K[7]]), atm.tau_zenith(343.5, 1.0) / np.sin(np.radians(60.0)))
    assert tsys[0] == pytest.approx(limits.expected_tsys_k(7, 1.0, 60.0))
