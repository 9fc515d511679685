"""AoD limits: band facts, the PWV rule from zenith opacity, and which metrics raise which warnings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qa0_label.review import limits

GOOD_ROW = {
    "band": 3,
    "array": "12m",
    "freq_ghz": 97.5,
    "pwv_mm": 1.0,
    "elevation_deg": 60.0,
    "n_antennas": 45,
    "exec_fraction": 1.0,
    "flux_jy": 10.0,
    "flux_err_jy": 0.3,
    "expected_flux_jy": 10.2,
    "expected_flux_err_jy": 0.4,
    "phase_rms_deg": 10.0,
    "flagged_fraction": 0.02,
    "spectral_index": -0.6,
    "spectral_index_err": 0.1,
}


def test_band_edges_and_receivers_follow_the_domain_brief() -> None:
    assert limits.BAND_EDGES_GHZ[3] == (84.0, 116.0) and limits.BAND_EDGES_GHZ[7] == (275.0, 373.0)
    assert limits.RECEIVER_SPEC_K[6] == 83.0 and limits.RECEIVER_SPEC_K[10] == 230.0
    # Expected Tsys uses typical receivers: not above the specification maxima, far below them in Bands 6-7.
    assert all(limits.RECEIVER_TEMP_K[b] <= 1.05 * limits.RECEIVER_SPEC_K[b] for b in range(3, 11))
    assert limits.RECEIVER_TEMP_K[6] < 0.7 * 83.0 and limits.RECEIVER_TEMP_K[7] < 0.6 * 147.0
    assert limits.band_center_ghz(3) == 100.0 and limits.band_name(7) == "Band 7"
    assert limits.band_of_frequency(97.5) == 3 and limits.band_of_frequency(343.5) == 7
    assert limits.band_of_frequency(120.0) is None


@pytest.mark.parametrize("band", sorted(limits.ACCEPTABLE_ZENITH_OPACITY))
def test_pwv_limit_is_where_the_opacity_reaches_the_acceptable_value(band: int) -> None:
    freq = limits.REFERENCE_FREQ_GHZ[band]
    pwv = limits.pwv_limit_mm(band)
    assert pwv > 0
    assert limits.zenith_opacity(freq, pwv) == pytest.approx(limits.ACCEPTABLE_ZENITH_OPACITY[band])


def test_pwv_limits_tighten_with_frequency_and_around_water_lines() -> None:
    lim = [limits.pwv_limit_mm(b) for b in range(3, 11)]
    # Monotone non-increasing from Band 3 to Band 10 at the standard tunings, as observatory practice.
    assert all(a >= b for a, b in zip(lim, lim[1:])) and lim[0] > 2 * lim[3] > 4 * lim[-1]
    assert 2.7 <= lim[0] and 1.75 <= lim[3] <= 2.7 and 0.9 <= lim[4] <= 1.3 and 0.4 <= lim[-1] <= 0.55
    # Tunings near the water lines tolerate far less water than the standard tunings of their bands.
    assert limits.pwv_limit_mm(5, 183.3) < 0.5 * limits.pwv_limit_mm(5, 200.0)
    assert limits.pwv_limit_mm(7, 327.0) < limits.pwv_limit_mm(7, 343.5)
    with pytest.raises(KeyError):
        limits.pwv_limit_mm(11)


def test_vectorised_pwv_limits_agree_and_tolerate_junk() -> None:
    out = limits.pwv_limits_mm([3, 7, None, "x", 42, 7], [None, 343.5, 100.0, None, None, float("nan")])
    assert out[0] == pytest.approx(limits.pwv_limit_mm(3))
    assert out[1] == pytest.approx(limits.pwv_limit_mm(7, 343.5))
    assert np.isnan(out[2:5]).all()
    assert out[5] == pytest.approx(limits.pwv_limit_mm(7))


def test_expected_tsys_grows_with_water_airmass_and_band() -> None:
    base = limits.expected_tsys_k(7, 1.0, 60.0)
    assert limits.expected_tsys_k(7, 2.0, 60.0) > base
    assert limits.expected_tsys_k(7, 1.0, 25.0) > base
    assert limits.expected_tsys_k(3, 1.0, 60.0) < base
    assert limits.expected_tsys_k(3, 0.0, 90.0) > limits.RECEIVER_TEMP_K[3]
    # Typical values near zenith at ~1 mm PWV (docs/domain-simulator.md).
    assert 55 <= limits.expected_tsys_k(3, 1.0, 70.0) <= 80
    assert 80 <= limits.expected_tsys_k(6, 1.0, 70.0) <= 110
    assert 120 <= limits.expected_tsys_k(7, 1.0, 70.0) <= 180
    assert 800 <= limits.expected_tsys_k(9, 1.0, 70.0) <= 1500
    vec = limits.expected_tsys_array([7, 3, None], [343.5, None, 100.0], [1.0, 1.0, 1.0], [60.0, 60.0, 60.0])
    assert vec[0] == pytest.approx(limits.expected_tsys_k(7, 1.0, 60.0)) and np.isnan(vec[2])
    with pytest.raises(KeyError):
        limits.expected_tsys_k(2, 1.0, 60.0)


def test_phase_rms_limits_depend_on_band_and_array() -> None:
    b3_12, b3_7 = limits.phase_rms_limits_deg(3, "12m"), limits.phase_rms_limits_deg(3, "7m")
    b7_12 = limits.phase_rms_limits_deg(7, "12m")
    assert b3_7[0] < b3_12[0] < b7_12[0] and b3_12[1] < b7_12[1]
    # High bands are capped by coherence (30 / 50 deg) whatever the path.
    assert limits.phase_rms_limits_deg(9, "12m") == (limits.PHASE_RMS_WARN_DEG, limits.PHASE_RMS_BAD_DEG)
    assert limits.phase_rms_limits_deg(None, None) == (limits.PHASE_RMS_WARN_DEG, limits.PHASE_RMS_BAD_DEG)
    vec = limits.phase_rms_bad_deg_array([3, 7, None], ["12m", "7m", "12m"], [None, None, None])
    assert vec[0] == pytest.approx(b3_12[1]) and vec[1] == pytest.approx(limits.phase_rms_limits_deg(7, "7m")[1])
    assert vec[2] == limits.PHASE_RMS_BAD_DEG


def test_flux_deviation_in_combined_sigma() -> None:
    assert limits.flux_deviation_sigma(10.0, 0.3, 9.0, 0.4) == pytest.approx(2.0)
    assert limits.flux_deviation_sigma(9.0, 0.3, 10.0, 0.4) == pytest.approx(-2.0)
    assert limits.flux_deviation_sigma(10.0, 0.0, 9.0, 0.0) is None
    assert limits.flux_deviation_sigma(None, 0.3, 9.0, 0.4) is None


def test_a_good_eb_raises_nothing() -> None:
    assert limits.check_metrics(GOOD_ROW) == {}
    assert limits.check_metrics({}) == {}


@pytest.mark.parametrize(
    "change,field,level",
    [
        ({"pwv_mm": 6.0}, "pwv_mm", "warn"),
        ({"pwv_mm": 12.0}, "pwv_mm", "bad"),
        ({"elevation_deg": 21.9}, "elevation_deg", "warn"),
        ({"elevation_deg": 19.9}, "elevation_deg", "bad"),
        ({"n_antennas": 29}, "n_antennas", "warn"),  # 12 m: < 30 is SemiPass in practice
        ({"n_antennas": 15}, "n_antennas", "bad"),  # < 16 fails
        ({"exec_fraction": 0.84}, "exec_fraction", "warn"),
        ({"exec_fraction": 0.4}, "exec_fraction", "bad"),
        ({"flux_jy": 12.0}, "flux_jy", "warn"),  # (12 - 10.2) / 0.5 = 3.6 sigma
        ({"flux_jy": 7.0}, "flux_jy", "bad"),
        ({"phase_rms_deg": 24.0}, "phase_rms_deg", "warn"),  # Band 3, 12 m: 200 um of path
        ({"phase_rms_deg": 42.0}, "phase_rms_deg", "bad"),
        ({"tsys_median_k": 100.0}, "tsys_median_k", "warn"),  # ~1.6x the expected ~62 K
        ({"tsys_median_k": 200.0}, "tsys_median_k", "bad"),
        ({"flux_jy": 7.2, "flux_err_jy": 2.0}, "flux_jy", "warn"),  # 1.4 sigma, but 29 % low (|ln| > 0.3)
        ({"flagged_fraction": 0.25}, "flagged_fraction", "warn"),
        ({"flagged_fraction": 0.5}, "flagged_fraction", "bad"),
        ({"spectral_index": 1.2}, "spectral_index", "warn"),
    ],
)
def test_each_limit_fires_alone_with_its_level(change: dict, field: str, level: str) -> None:
    found = limits.find_problems({**GOOD_ROW, **change})
    assert [(f.field, f.level) for f in found] == [(field, level)]


@pytest.mark.parametrize(
    "change",
    [
        {"elevation_deg": 22.0},
        {"elevation_deg": 30.0},  # no longer a warning on its own: good weather, the airmass does not matter
        {"n_antennas": 30},
        {"exec_fraction": 0.85},
        {"phase_rms_deg": 23.0},
        {"tsys_median_k": 85.0},
        {"flagged_fraction": 0.2},
        {"pwv_mm": 5.1},
        {"spectral_index": 0.65},
    ],  # 0.65 is within 2 sigma of +0.5
)
def test_values_at_the_limit_are_accepted(change: dict) -> None:
    assert limits.check_metrics({**GOOD_ROW, **change}) == {}


def test_antenna_limit_depends_on_the_array() -> None:
    aca = {**GOOD_ROW, "array": "7m", "phase_rms_deg": 5.0}
    assert limits.check_metrics({**aca, "n_antennas": 7}) == {}
    assert limits.find_problems({**aca, "n_antennas": 6})[0].level == "warn"
    assert limits.find_problems({**aca, "n_antennas": 3})[0].level == "bad"
    # The 7 m array's short baselines keep phases steady: 10 deg in Band 3 is unusual there, not on the 12 m.
    assert limits.find_problems({**aca, "phase_rms_deg": 10.0})[0].field == "phase_rms_deg"
    # 20 antennas are fine for nobody on the 12 m array but would be a full ACA.
    assert limits.find_problems({**GOOD_ROW, "n_antennas": 20})[0].level == "warn"


def test_antennas_left_after_flagging_count() -> None:
    # 33 antennas of which 4 are dead or Tsys outliers: 29 usable, SemiPass in practice.
    found = limits.find_problems({**GOOD_ROW, "n_antennas": 33, "usable_antennas": 29})
    assert [(f.field, f.level) for f in found] == [("n_antennas", "warn")] and "29 usable" in found[0].message
    assert limits.find_problems({**GOOD_ROW, "n_antennas": 33, "usable_antennas": 15})[0].level == "bad"
    assert limits.check_metrics({**GOOD_ROW, "n_antennas": 45, "usable_antennas": 44}) == {}


def test_elevation_warns_only_where_the_airmass_matters() -> None:
    # 30 deg in Band 3 at 1 mm: the line-of-sight opacity is tiny, no mark.
    assert limits.check_metrics({**GOOD_ROW, "elevation_deg": 30.0}) == {}
    # Band 9 near its PWV limit at 30 deg: the slant opacity is twice the band's zenith limit.
    row = {**GOOD_ROW, "band": 9, "freq_ghz": 679.0, "pwv_mm": 0.45, "elevation_deg": 28.0, "phase_rms_deg": 5.0}
    found = limits.find_problems(row)
    assert [(f.field, f.level) for f in found] == [("elevation_deg", "warn")] and "opacity" in found[0].message
    assert limits.check_metrics({**row, "elevation_deg": 70.0}) == {}


def test_pwv_is_judged_at_the_eb_frequency() -> None:
    row = {**GOOD_ROW, "band": 7, "freq_ghz": 343.5, "pwv_mm": 1.1}
    assert limits.check_metrics(row) == {}
    assert "pwv_mm" in limits.check_metrics({**row, "freq_ghz": 327.0})


def test_garbage_values_are_skipped_not_raised() -> None:
    row = {
        **GOOD_ROW,
        "pwv_mm": "wet",
        "elevation_deg": float("nan"),
        "n_antennas": None,
        "exec_fraction": math.inf,
        "band": "B?",
        "tsys_outliers": "DV01",
        "bp_ripple": {0: "x"},
    }
    assert limits.check_metrics(row) == {}


def test_detail_summaries_become_named_warnings() -> None:
    row = {
        **GOOD_ROW,
        "tsys_outliers": {"DV05": 2.4, "DA44": 1.9},
        "tsys_spikes": {3: 2.2},
        "amplitude_outliers": {"PM02": 0.01},
        "phase_jumps": {"DA50": 95.0},
        "bp_ripple": {0: 0.6, 1: 0.7, 2: 4.5, 3: 0.5},
    }
    w = limits.check_metrics(row)
    assert set(w) == {"tsys_outliers", "tsys_spikes", "amplitude_outliers", "phase_jumps", "bp_ripple_db"}
    assert "DV05 (2.4x)" in w["tsys_outliers"] and "DA44" in w["tsys_outliers"]
    assert "scan 3" in w["tsys_spikes"] and "PM02" in w["amplitude_outliers"] and "DA50" in w["phase_jumps"]
    assert "spw 2 (4.5 dB)" in w["bp_ripple_db"] and "spw 1" not in w["bp_ripple_db"]


def test_long_lists_are_shortened() -> None:
    many = {f"DA{40 + i}": 2.0 + i / 100 for i in range(10)}
    msg = limits.check_metrics({"tsys_outliers": many})["tsys_outliers"]
    assert msg.endswith("and 4 more") and msg.count("x)") == 6


def test_every_reported_key_has_a_display_title() -> None:
    row = {
        **GOOD_ROW,
        "pwv_mm": 20.0,
        "elevation_deg": 10.0,
        "tsys_median_k": 5000.0,
        "n_antennas": 3,
        "exec_fraction": 0.1,
        "flux_jy": 1.0,
        "spectral_index": 3.0,
        "phase_rms_deg": 90.0,
        "flagged_fraction": 0.9,
        "tsys_outliers": {"A": 3.0},
        "tsys_spikes": {1: 3.0},
        "amplitude_outliers": {"A": 0.0},
        "phase_jumps": {"A": 90.0},
        "bp_ripple": {0: 9.0},
    }
    keys = [f.field for f in limits.find_problems(row)]
    assert keys == list(limits.CHECK_TITLES)
