"""Features from hand-made EB and detail frames: each fault an AoD looks for moves its feature."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from qa0_label.learning import features as F

FREQS = (91.5, 93.5, 101.5, 103.5)


def _eb(eb_id: int, **over: object) -> dict:
    row = {
        "eb_id": eb_id,
        "source": "J1256-0547",
        "band": 3,
        "array": "7m",
        "start_time": datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(days=3 * eb_id),
        "n_antennas": 10,
        "pwv_mm": 1.0,
        "elevation_deg": 60.0,
        "tsys_median_k": 70.0,
        "phase_rms_deg": 5.0,
        "flagged_fraction": 0.0,
        "exec_fraction": 1.0,
        "freq_ghz": 97.5,
        "flux_jy": 10.0,
        "flux_err_jy": 0.2,
        "spectral_index": -0.6,
        "spectral_index_err": 0.05,
        "expected_flux_jy": 10.0,
        "expected_flux_err_jy": 0.3,
        "duration_s": 600.0,
        "extra": None,
    }
    row.update(over)
    return row


def _details(
    eb_id: int,
    *,
    dead: int = 0,
    noisy: int = 0,
    spike_scan: int | None = None,
    jump: bool = False,
    ripple_spw: int | None = None,
    spw_bias: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """10 antennas x 4 spw x 6 scans of a 10 Jy, alpha -0.6 source, with the requested faults."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(10):
        for s, nu in enumerate(FREQS):
            for k in range(6):
                amp = 10.0 * (nu / 97.5) ** -0.6 * (1 + rng.normal(0, 0.01))
                if s == 3:
                    amp *= spw_bias
                tsys = 70.0 * (1 + rng.normal(0, 0.02))
                phase = rng.normal(0, 3.0)
                if a < dead:
                    amp *= 0.01
                    phase = rng.uniform(-180, 180)
                if dead <= a < dead + noisy:
                    tsys *= 3.0
                if spike_scan is not None and k == spike_scan:
                    tsys *= 3.0
                if jump and a == 9 and k >= 3:
                    phase += 120.0
                rip = 6.0 if ripple_spw == s else 0.3
                rows.append((eb_id, f"DA{41 + a}", s, k + 1, nu, tsys, amp, phase, rip, False))
    return pd.DataFrame(
        rows,
        columns=[
            "eb_id",
            "antenna",
            "spw",
            "scan",
            "freq_ghz",
            "tsys_k",
            "amplitude",
            "phase_deg",
            "bp_ripple_db",
            "flagged",
        ],
    )


def _frame(faults: dict[int, dict], ebs: dict[int, dict] | None = None) -> pd.DataFrame:
    ids = sorted(faults)
    eb_rows = pd.DataFrame([_eb(i, **(ebs or {}).get(i, {})) for i in ids])
    details = pd.concat([_details(i, seed=i, **faults[i]) for i in ids], ignore_index=True)
    return F.features_from_frames(eb_rows, details)


def test_columns_are_fixed_and_index_is_eb_id() -> None:
    feats = _frame({1: {}, 2: {}})
    assert list(feats.columns) == F.feature_names()
    assert feats.index.name == "eb_id" and feats.index.tolist() == [1, 2]
    assert feats.dtypes.map(lambda d: d == np.dtype(float)).all()


def test_dead_and_noisy_antennas_are_counted_as_shares() -> None:
    feats = _frame({1: {}, 2: {"dead": 2}, 3: {"noisy": 3}})
    assert feats.loc[1, "dead_antennas"] == 0 and feats.loc[2, "dead_antennas"] == 2
    assert feats.loc[2, "dead_frac"] == pytest.approx(0.2)
    assert feats.loc[3, "tsys_outlier_antennas"] == 3 and feats.loc[3, "tsys_outlier_frac"] == pytest.approx(0.3)
    assert feats.loc[3, "tsys_max_ratio"] > 2.5 > feats.loc[1, "tsys_max_ratio"]
    # Dead and noisy antennas leave fewer good ones.
    assert feats.loc[2, "good_antennas_frac"] < feats.loc[1, "good_antennas_frac"]


def test_tsys_spike_phase_jump_ripple_and_spw_scatter() -> None:
    feats = _frame({1: {}, 2: {"spike_scan": 2}, 3: {"jump": True}, 4: {"ripple_spw": 1}, 5: {"spw_bias": 0.8}})
    assert feats.loc[2, "tsys_spike_ratio"] > 2.0 > 1.2 > feats.loc[1, "tsys_spike_ratio"]
    assert feats.loc[3, "phase_jump_score"] > 10 * max(feats.loc[1, "phase_jump_score"], 1e-3)
    assert feats.loc[4, "bp_ripple_worst_db"] == pytest.approx(6.0)
    assert feats.loc[1, "bp_ripple_worst_db"] < 1.0
    assert feats.loc[1, "spw_powerlaw_scatter_pct"] < 2.0
    assert feats.loc[5, "spw_powerlaw_scatter_pct"] > 5.0
    assert feats.loc[1, "spw_alpha_fit"] == pytest.approx(-0.6, abs=0.1)


def test_weather_elevation_antennas_and_execution() -> None:
    feats = _frame(
        {1: {}, 2: {}, 3: {}, 4: {}},
        {2: {"pwv_mm": 12.0}, 3: {"elevation_deg": 15.0, "n_antennas": 4, "array": "12m"}, 4: {"exec_fraction": 0.25}},
    )
    assert feats.loc[2, "pwv_over_limit"] > 1.0 > feats.loc[1, "pwv_over_limit"]
    assert feats.loc[2, "tau_over_limit"] > feats.loc[1, "tau_over_limit"]
    assert feats.loc[3, "airmass"] > 3.5 and feats.loc[3, "n_antennas_frac"] < 0.1
    assert feats.loc[3, "array_12m"] == 1.0 and feats.loc[1, "array_12m"] == 0.0
    assert feats.loc[4, "exec_fraction"] == 0.25
    assert feats.loc[4, "n_limits_exceeded"] >= 1 and feats.loc[1, "n_limits_exceeded"] == 0
    assert feats.loc[2, "worst_limit_ratio"] > 1.0 > feats.loc[1, "worst_limit_ratio"]


def test_flux_jump_against_catalogue_history_and_neighbours() -> None:
    # Ten EBs of one source; EB 3 is 40 % bright alone (instrument), EBs 7-10 all brighter (a real flare).
    over: dict[int, dict] = {i: {} for i in range(1, 11)}
    over[3] = {"flux_jy": 14.0}
    for i in (7, 8, 9, 10):
        over[i] = {"flux_jy": 13.0, "expected_flux_jy": 10.0}
    feats = _frame({i: {} for i in range(1, 11)}, over)
    assert feats.loc[3, "flux_vs_expected_sigma"] > 5
    assert feats.loc[3, "abs_flux_vs_history_sigma"] > 3
    assert feats.loc[3, "abs_flux_vs_neighbours_log"] > 0.25
    # The flare is off the catalogue too, but its neighbours agree with it.
    assert feats.loc[9, "abs_flux_vs_expected_log"] > 0.2
    assert feats.loc[9, "abs_flux_vs_neighbours_log"] < 0.05


def test_missing_values_and_no_details_stay_nan() -> None:
    ebs = pd.DataFrame([_eb(1, pwv_mm=None, flux_jy=None), _eb(2)])
    feats = F.features_from_frames(ebs, None)
    assert np.isnan(feats.loc[1, "pwv_over_limit"]) and np.isnan(feats.loc[1, "flux_vs_expected_sigma"])
    assert np.isnan(feats.loc[2, "dead_frac"])
    assert np.isfinite(feats.loc[2, "pwv_over_limit"])


def test_extra_numeric_columns_become_features() -> None:
    ebs = pd.DataFrame([_eb(1, extra={"wind_ms": 7.5, "note": "gusty"}), _eb(2, extra='{"wind_ms": 3}'), _eb(3)])
    feats = F.features_from_frames(ebs, None)
    assert feats["extra_wind_ms"].tolist()[:2] == [7.5, 3.0] and np.isnan(feats.loc[3, "extra_wind_ms"])
    assert "extra_note" not in feats


def test_simulator_frames_are_accepted_and_faults_show() -> None:
    from qa0_label.sim import simulate

    batch = simulate.generate(n=40, seed=3)
    feats = F.features_from_frames(batch.ebs, batch.details)
    assert len(feats) == 40 and list(feats.columns) == F.feature_names()
    assert feats["det_n_antennas"].notna().all()
    aborted = batch.ebs["exec_fraction"].to_numpy() < 0.9
    np.testing.assert_allclose(feats["exec_fraction"].to_numpy(), batch.ebs["exec_fraction"].to_numpy())
    if aborted.any():
        assert (feats.loc[aborted, "n_limits_exceeded"] >= 0).all()
