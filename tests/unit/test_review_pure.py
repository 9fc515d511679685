"""Pure parts of the review data: power-law fit, consensus rule, detail summaries (no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa0_label.review import checks
from qa0_label.review import view as review

FREQS = np.array([90.5, 92.5, 102.5, 104.5])


def test_power_law_fit_recovers_index_and_reference_flux() -> None:
    flux = 4.0 * (FREQS / 97.5) ** -0.7
    s0, alpha, alpha_err, nu0 = review.fit_power_law(FREQS, flux, 0.01 * flux, freq0_ghz=97.5)
    assert (s0, alpha, nu0) == (pytest.approx(4.0), pytest.approx(-0.7), 97.5)
    assert alpha_err is not None and 0 < alpha_err < 0.2


def test_power_law_error_grows_with_scatter_beyond_the_error_bars() -> None:
    rng = np.random.default_rng(3)
    flux = 4.0 * (FREQS / 97.5) ** -0.7
    noisy = flux * (1 + 0.05 * rng.standard_normal(4))
    _, _, tight, _ = review.fit_power_law(FREQS, flux * (1 + 0.001 * rng.standard_normal(4)), 0.01 * flux)
    _, _, loose, _ = review.fit_power_law(FREQS, noisy, 0.01 * flux)
    assert loose is not None and tight is not None and loose > 3 * tight


def test_power_law_fit_needs_two_positive_points() -> None:
    with pytest.raises(ValueError):
        review.fit_power_law([100.0, 100.0], [1.0, 1.1])
    with pytest.raises(ValueError):
        review.fit_power_law([90.0, 100.0], [1.0, -1.0])
    s0, alpha, err, _ = review.fit_power_law([90.0, 100.0, 110.0], [1.0, 0.0, 0.8])
    assert err is None and alpha < 0  # the zero flux is ignored, two points remain, no error bars given


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-1e6, 1e6) | st.just(float("nan"))), max_size=60))
def test_group_median_matches_numpy(pairs: list[tuple[int, float]]) -> None:
    codes = np.array([p[0] for p in pairs], dtype=np.int64)
    values = np.array([p[1] for p in pairs], dtype=float)
    got_codes, med = checks._group_median(codes, values)
    for c, m in zip(got_codes, med):
        vals = values[(codes == c) & ~np.isnan(values)]
        assert m == pytest.approx(float(np.median(vals)))
    assert set(got_codes) == {int(c) for c, v in zip(codes, values) if not np.isnan(v)}


def _details(n_ant: int = 10, n_scan: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(n_ant):
        for spw in range(4):
            for scan in range(1, n_scan + 1):
                rows.append(
                    {
                        "antenna": f"DA{41 + a}",
                        "spw": spw,
                        "scan": scan,
                        "tsys_k": 60.0 * (1 + 0.1 * spw) * (1 + 0.03 * rng.standard_normal()),
                        "amplitude": 5.0 * (1 - 0.02 * spw) * (1 + 0.02 * rng.standard_normal()),
                        "phase_deg": 8.0 * rng.standard_normal(),
                        "bp_ripple_db": 0.5 + 0.1 * rng.standard_normal(),
                        "flagged": False,
                    }
                )
    return pd.DataFrame(rows)


def test_clean_details_give_no_findings() -> None:
    d = _details()
    assert review.tsys_outliers(d) == {} and review.tsys_spikes(d) == {}
    assert review.amplitude_outliers(d) == {} and review.phase_jumps(d) == {}
    assert all(v < 1 for v in review.bandpass_ripple(d).values())


def test_each_detail_fault_is_found_and_named() -> None:
    d = _details()
    d.loc[d["antenna"] == "DA43", "tsys_k"] *= 2.2
    d.loc[d["scan"] == 4, "tsys_k"] *= 1.9
    d.loc[d["antenna"] == "DA45", "amplitude"] *= 0.01
    d.loc[(d["antenna"] == "DA47") & (d["scan"] >= 4), "phase_deg"] += 120.0
    d.loc[d["spw"] == 1, "bp_ripple_db"] = 4.0
    assert list(review.tsys_outliers(d)) == ["DA43"]
    assert review.tsys_outliers(d)["DA43"] == pytest.approx(2.2, rel=0.1)
    assert list(review.tsys_spikes(d)) == [4]
    assert list(review.amplitude_outliers(d)) == ["DA45"]
    assert list(review.phase_jumps(d)) == ["DA47"] and review.phase_jumps(d)["DA47"] == pytest.approx(120, abs=15)
    assert review.bandpass_ripple(d)[1] == pytest.approx(4.0)


def test_phase_jump_across_the_wrap_and_a_single_bad_scan_is_no_jump() -> None:
    d = _details()
    d.loc[d["antenna"] == "DA42", "phase_deg"] += 170.0  # constant offset: no step at all
    d.loc[(d["antenna"] == "DA44") & (d["scan"] == 3), "phase_deg"] += 150.0  # one scan only
    assert review.phase_jumps(d) == {}


def test_flagged_rows_do_not_count_for_ripple_or_jumps() -> None:
    d = _details()
    bad = (d["antenna"] == "DA47") & (d["scan"] >= 4)
    d.loc[bad, "phase_deg"] += 120.0
    d.loc[bad, "flagged"] = True
    d.loc[d["spw"] == 2, "bp_ripple_db"] = np.where(d.loc[d["spw"] == 2, "antenna"] == "DA41", 9.0, 0.5)
    d.loc[(d["spw"] == 2) & (d["antenna"] != "DA41"), "flagged"] = True
    assert review.phase_jumps(d) == {}
    assert review.bandpass_ripple(d)[2] == pytest.approx(9.0)  # only DA41's rows are left in spw 2


def test_summaries_of_tiny_or_empty_details_are_empty() -> None:
    empty = _details().iloc[0:0]
    for fn in (
        review.tsys_outliers,
        review.tsys_spikes,
        review.amplitude_outliers,
        review.phase_jumps,
        review.bandpass_ripple,
    ):
        assert fn(empty) == {}
    two = _details(n_ant=2)
    assert review.tsys_outliers(two) == {} and review.phase_jumps(two) == {}
