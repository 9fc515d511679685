"""The simulator: determinism, physical realism, fault -> reference outcome, simulated AoDs (no database)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from qa0_label.sim import simulate as sim
from qa0_label.store.models import ExecutionBlock


@pytest.fixture(scope="module")
def big() -> sim.SimulatedBatch:
    """About 2,000 EBs: enough of every fault for share and fault checks."""
    return sim.generate(n=2000, seed=11)


@pytest.fixture(scope="module")
def per_antenna(big: sim.SimulatedBatch) -> pd.DataFrame:
    """Per EB x antenna medians of the detail rows."""
    d = big.details
    return (
        d.groupby(["eb", "antenna"], observed=True)
        .agg(amp=("amplitude", "median"), tsys=("tsys_k", "median"))
        .reset_index()
    )


def _decisive(reasons: pd.Series, fault: str) -> pd.Series:
    label = sim.FAULTS[fault]
    return reasons.map(lambda r: any(p.startswith(label + ":") for p in r.split("; ")))


# --- determinism and shape ---------------------------------------------------------------------------


def test_same_seed_gives_identical_data() -> None:
    a = sim.generate(n=120, seed=3)
    b = sim.generate(n=120, seed=3)
    pd.testing.assert_frame_equal(a.ebs, b.ebs)
    # Column by column: assert_frame_equal is needlessly slow on a few hundred thousand rows.
    assert list(a.details.columns) == list(b.details.columns) and len(a.details) == len(b.details)
    for col in a.details.columns:
        assert a.details[col].dtype == b.details[col].dtype, col
        assert np.array_equal(np.asarray(a.details[col]), np.asarray(b.details[col])), col
    pd.testing.assert_frame_equal(a.outcomes, b.outcomes)
    pd.testing.assert_frame_equal(a.severity, b.severity)


def test_different_seed_or_offset_gives_different_data() -> None:
    a = sim.generate(n=120, seed=3)
    b = sim.generate(n=120, seed=4)
    c = sim.generate(n=120, seed=3, first_index=120)
    assert not set(a.ebs["uid"]) & set(b.ebs["uid"])
    assert not set(a.ebs["uid"]) & set(c.ebs["uid"])
    assert not np.allclose(a.ebs["pwv_mm"].to_numpy(), b.ebs["pwv_mm"].to_numpy())
    assert list(c.ebs.index) == list(range(120, 240))


def test_columns_are_the_model_fields_and_hide_the_reference() -> None:
    batch = sim.generate(n=30, seed=1)
    assert list(batch.ebs.columns) == [c for c in ExecutionBlock.model_fields if c != "id"]
    assert list(batch.details.columns) == list(sim.DETAIL_COLUMNS)
    assert list(batch.outcomes.columns) == ["eb", "value", "reasons"]
    assert set(batch.outcomes["value"]) <= {"Pass", "SemiPass", "Fail"}
    assert not {"value", "reasons", "qa0", "outcome"} & set(batch.ebs.columns)
    assert batch.ebs["start_time"].dt.tz is not None


def test_zero_ebs_is_an_empty_batch() -> None:
    batch = sim.generate(n=0, seed=1)
    assert batch.ebs.empty and batch.details.empty and batch.outcomes.empty


def test_identifiers_look_like_alma(big: sim.SimulatedBatch) -> None:
    ebs = big.ebs
    assert ebs["uid"].str.fullmatch(r"uid://A002/X[0-9a-f]{7}/X[0-9a-f]{3,5}").all()
    assert ebs["uid"].is_unique
    assert ebs["project"].str.fullmatch(r"20\d\d\.1\.0000[12]\.CSV").all()
    pattern = re.compile(r"J\d{4}[+-]\d{4}_[ab]_(\d\d)_(TM1|7M)")
    for sb, band, array in zip(ebs["sb_name"], ebs["band"], ebs["array"]):
        m = pattern.fullmatch(sb)
        assert m and int(m.group(1)) == band and (m.group(2) == "TM1") == (array == "12m")
    assert ebs["source"].isin([s[0] for s in sim.GRID_SOURCES]).all()
    start = ebs["start_time"]
    assert start.min() >= pd.Timestamp("2023-01-01", tz="UTC") and start.max() < pd.Timestamp("2025-01-02", tz="UTC")
    assert (start.dt.month != 2).all()  # February shutdown
    assert (ebs["imported_at"] > start).all()


def test_parse_j_name() -> None:
    ra, dec = sim.parse_j_name("J1256-0547")
    assert ra == pytest.approx(12 + 56 / 60) and dec == pytest.approx(-(5 + 47 / 60))
    assert sim.parse_j_name("J0319+4130")[1] == pytest.approx(41.5)
    with pytest.raises(ValueError):
        sim.parse_j_name("3C279")


# --- realism -----------------------------------------------------------------------------------------


def test_spw_frequencies_inside_band_edges(big: sim.SimulatedBatch) -> None:
    spw = big.details.groupby(["eb", "spw"])["freq_ghz"].agg(["min", "max"]).reset_index()
    assert (spw["min"] == spw["max"]).all()  # one frequency per spw
    spw = spw.join(big.ebs[["band", "freq_ghz"]], on="eb")
    lo = spw["band"].map(lambda b: sim.BAND_EDGES_GHZ[b][0])
    hi = spw["band"].map(lambda b: sim.BAND_EDGES_GHZ[b][1])
    # The spw centre is at least half a 2 GHz window inside the edge.
    assert ((spw["min"] - 1.0 >= lo) & (spw["min"] + 1.0 <= hi)).all()
    assert (spw.groupby("eb")["spw"].nunique() == 4).all()
    assert big.ebs["band"].value_counts(normalize=True)[[3, 4, 6, 7]].sum() > 0.85


def test_elevation_respects_declination(big: sim.SimulatedBatch) -> None:
    dec = big.ebs["source"].map(lambda s: sim.parse_j_name(s)[1])
    el = big.ebs["elevation_deg"]
    assert (el <= sim.max_elevation_deg(dec.to_numpy()) + 0.005).all()  # stored to 0.01 deg
    assert el.min() >= 13.0
    assert (el >= 20.0).mean() > 0.97
    # 3C84 (dec +41.5) never rises above ~25.5 deg at the site.
    assert el[big.ebs["source"] == "J0319+4130"].max() <= 25.6


def test_pwv_follows_the_site_and_the_scheduler(big: sim.SimulatedBatch) -> None:
    ebs = big.ebs
    assert 0.8 <= ebs["pwv_mm"].median() <= 1.6
    assert ebs["pwv_mm"].min() > 0.05
    by_band = ebs.groupby("band")["pwv_mm"].median()
    assert by_band[7] < by_band[3]  # high frequencies get the dry nights


def test_tsys_grows_with_band(big: sim.SimulatedBatch) -> None:
    clean = big.ebs[big.outcomes.set_index("eb")["value"] == "Pass"]
    med = clean.groupby("band")["tsys_median_k"].median()
    assert 40 <= med[3] <= 120
    assert med[3] < med[6] < med[7]


def test_antenna_counts_and_names_per_array(big: sim.SimulatedBatch) -> None:
    pairs = big.details[["eb", "antenna"]].drop_duplicates()
    pairs = pairs.assign(antenna=pairs["antenna"].astype(str)).join(big.ebs["array"], on="eb")
    ebs = big.ebs
    assert (pairs.groupby("eb").size().reindex(ebs.index) == ebs["n_antennas"]).all()
    twelve, seven = ebs[ebs["array"] == "12m"], ebs[ebs["array"] == "7m"]
    names12 = pairs.loc[pairs["array"] == "12m", "antenna"]
    names7 = pairs.loc[pairs["array"] == "7m", "antenna"]
    assert names12.str.fullmatch(r"DA(4[1-9]|5\d|6[0-5])|DV(0[1-9]|1\d|2[0-5])|PM0[1-4]").all()
    assert names7.str.fullmatch(r"CM(0[1-9]|1[0-2])").all()
    few = _decisive(big.outcomes.set_index("eb")["reasons"], "few_antennas") | big.outcomes.set_index("eb")[
        "reasons"
    ].str.contains("minor too few antennas")
    normal12 = twelve.loc[~few.reindex(twelve.index), "n_antennas"]
    normal7 = seven.loc[~few.reindex(seven.index), "n_antennas"]
    assert normal12.between(40, 50).mean() > 0.97 and normal7.between(10, 12).mean() > 0.97


def test_detail_rows_per_eb(big: sim.SimulatedBatch) -> None:
    d = big.details
    rows = d.groupby("eb").size()
    scans = d.groupby("eb")["scan"].nunique()
    ebs = big.ebs
    assert (rows == 4 * ebs["n_antennas"] * scans).all()
    complete = ebs["exec_fraction"].ge(0.85) & (
        ((ebs["array"] == "12m") & ebs["n_antennas"].between(40, 50))
        | ((ebs["array"] == "7m") & ebs["n_antennas"].between(10, 12))
    )
    assert complete.mean() > 0.9
    assert rows[complete].between(1000, 3000).all()
    assert 1250 <= rows.mean() <= 1550
    assert rows.max() <= 3000


def test_eb_summary_matches_detail_rows(big: sim.SimulatedBatch) -> None:
    d = big.details
    ok = d[~d["flagged"]]
    ebs = big.ebs
    np.testing.assert_allclose(ok.groupby("eb")["tsys_k"].median().reindex(ebs.index), ebs["tsys_median_k"], atol=0.011)
    # Phase RMS about each antenna x spw's circular mean (the instrumental offsets removed).
    rad = np.radians(ok["phase_deg"].to_numpy())
    keys = [ok["eb"], ok["antenna"].astype(str), ok["spw"]]
    mean = np.arctan2(
        pd.Series(np.sin(rad), index=ok.index).groupby(keys).transform("mean"),
        pd.Series(np.cos(rad), index=ok.index).groupby(keys).transform("mean"),
    )
    dev = np.degrees(np.angle(np.exp(1j * (rad - mean))))
    rms = np.sqrt(pd.Series(dev**2, index=ok.index).groupby(ok["eb"]).mean()).reindex(ebs.index)
    np.testing.assert_allclose(rms, ebs["phase_rms_deg"], atol=0.05)
    np.testing.assert_allclose(d.groupby("eb")["flagged"].mean().reindex(ebs.index), ebs["flagged_fraction"], atol=1e-5)
    # The EB flux is a power-law fit to the per-spw means: an unweighted fit lands close to it.
    spw = ok.groupby(["eb", "spw"]).agg(f=("freq_ghz", "first"), s=("amplitude", "mean")).reset_index()
    spw["x"] = np.log(spw["f"] / ebs.loc[spw["eb"], "freq_ghz"].to_numpy())
    spw["y"] = np.log(spw["s"])
    spw["xx"], spw["xy"] = spw["x"] ** 2, spw["x"] * spw["y"]
    m = spw.groupby("eb")[["x", "y", "xx", "xy"]].mean().reindex(ebs.index)
    slope = (m["xy"] - m["x"] * m["y"]) / (m["xx"] - m["x"] ** 2)
    fit = pd.DataFrame({"flux": np.exp(m["y"] - slope * m["x"]), "alpha": slope})
    ratio = fit["flux"] / ebs["flux_jy"]
    assert ratio.between(0.97, 1.03).mean() > 0.97
    close = (fit["alpha"] - ebs["spectral_index"]).abs() <= 3 * ebs["spectral_index_err"] + 0.05
    assert close.mean() > 0.95
    assert (ebs["flux_err_jy"] >= 0.02 * ebs["flux_jy"] - 1e-3).all()


def test_fluxes_follow_the_catalogue(big: sim.SimulatedBatch) -> None:
    ebs = big.ebs[big.outcomes.set_index("eb")["value"] == "Pass"]
    b3 = ebs[(ebs["band"] == 3) & (ebs["source"] == "J1256-0547")]
    assert len(b3) > 5
    assert b3["flux_jy"].between(13.6 / 2, 13.6 * 2).all()
    assert -0.9 <= ebs["spectral_index"].median() <= -0.3
    dev = np.log(ebs["flux_jy"] / ebs["expected_flux_jy"]).abs()
    assert dev.median() < 0.08


# --- faults produce their reference outcome ----------------------------------------------------------


def test_reference_follows_max_severity(big: sim.SimulatedBatch) -> None:
    sev = big.severity
    expected = np.where(sev["s_max"] >= 2, "Fail", np.where(sev["s_max"] >= 1, "SemiPass", "Pass"))
    assert (big.outcomes["value"].to_numpy() == expected).all()
    reasons = big.outcomes["reasons"]
    nonpass = big.outcomes["value"] != "Pass"
    assert (reasons[nonpass].str.len() > 0).all()
    assert not reasons[~nonpass].map(lambda r: any(p.split(":")[0] in sim.FAULTS.values() for p in r.split("; "))).any()


def test_reference_shares_at_n_2000(big: sim.SimulatedBatch) -> None:
    shares = big.outcomes["value"].value_counts(normalize=True)
    assert 0.75 <= shares["Pass"] <= 0.90
    assert 0.06 <= shares["SemiPass"] <= 0.16
    assert 0.03 <= shares["Fail"] <= 0.11


def test_dead_antennas_in_the_data_decide_the_outcome(big: sim.SimulatedBatch, per_antenna: pd.DataFrame) -> None:
    pa = per_antenna.copy()
    pa["ratio"] = pa["amp"] / pa.groupby("eb")["amp"].transform("median")
    dead = pa[pa["ratio"] < 0.1].groupby("eb").size()
    # The first dead antenna is flagged and costs nothing; the others count by share of the array.
    frac = ((dead - 1) / big.ebs["n_antennas"]).dropna()
    out = big.outcomes.set_index("eb")
    assert (frac >= 0.075).sum() >= 5
    assert (out.loc[frac[frac >= 0.075].index, "value"] != "Pass").all()
    assert (out.loc[frac[frac >= 0.21].index, "value"] == "Fail").all()
    assert _decisive(out.loc[frac[frac >= 0.075].index, "reasons"], "dead_antenna").all()


def test_an_isolated_bad_antenna_is_flagged_not_downgraded(big: sim.SimulatedBatch) -> None:
    out, sev = big.outcomes.set_index("eb"), big.severity
    for fault in ("dead_antenna", "noisy_antenna"):
        single = out["reasons"].str.contains(rf"minor {sim.FAULTS[fault]}: \w+ .*\(1/\d+\), flagged")
        assert single.sum() >= 5, fault
        # Nothing else wrong: the EB passes, and the reason still names the antenna.
        alone = single & (sev.drop(columns=[fault, "s_max", "flare"]).max(axis=1) < 1.0)
        assert alone.sum() >= 3 and (out.loc[alone, "value"] == "Pass").all(), fault


def test_noisy_antennas_in_the_data_decide_the_outcome(big: sim.SimulatedBatch, per_antenna: pd.DataFrame) -> None:
    pa = per_antenna.copy()
    pa["ratio"] = pa["tsys"] / pa.groupby("eb")["tsys"].transform("median")
    noisy = pa[pa["ratio"] > 1.8].groupby("eb").size()
    frac = (noisy - 1) / big.ebs.loc[noisy.index, "n_antennas"]
    out = big.outcomes.set_index("eb")
    hit = frac[frac >= 0.075].index
    assert len(hit) >= 5
    assert (out.loc[hit, "value"] != "Pass").all()
    assert _decisive(out.loc[hit, "reasons"], "noisy_antenna").all()


def test_tsys_spike_scan_is_a_minor_reason_not_a_downgrade(big: sim.SimulatedBatch) -> None:
    d = big.details
    per_scan = d.groupby(["eb", "scan"])["tsys_k"].median()
    ratio = (per_scan / per_scan.groupby(level="eb").transform("median")).groupby(level="eb").max()
    out, sev = big.outcomes.set_index("eb"), big.severity
    hit = ratio[ratio >= 2.1].index
    assert len(hit) >= 5
    assert out.loc[hit, "reasons"].str.contains("minor Tsys spike: scan \\d+ x[\\d.]+, scan flagged").all()
    # The spiking scan is flagged in practice: alone it never makes the EB SemiPass.
    assert (sev.loc[hit, "tsys_spike"] < 1.0).all()
    alone = sev.loc[hit].drop(columns=["tsys_spike", "s_max", "flare"]).max(axis=1) < 1.0
    assert alone.sum() >= 3 and (out.loc[alone[alone].index, "value"] == "Pass").all()


def test_phase_jump_is_visible_in_the_named_antenna(big: sim.SimulatedBatch) -> None:
    out = big.outcomes.set_index("eb")
    jumps = out[out["reasons"].str.contains("minor phase jump: ") & (big.severity["phase_jump"] >= 0.5)]
    assert len(jumps) >= 5
    # One antenna's jump is flagged from that scan on: never a downgrade on its own.
    assert not _decisive(out["reasons"], "phase_jump").any()
    d = big.details
    errors = []
    for eb, reasons in jumps["reasons"].items():
        m = re.search(r"minor phase jump: (\w+) jumps ([+-]\d+) deg at scan (\d+), antenna flagged", reasons)
        assert m, reasons
        ant, jump, scan = m.group(1), float(m.group(2)), int(m.group(3))
        assert abs(jump) >= 60
        rows = d[(d["eb"] == eb) & (d["antenna"] == ant)]
        z = np.exp(1j * np.radians(rows["phase_deg"].to_numpy()))
        after = np.angle(z[rows["scan"].to_numpy() >= scan].mean(), deg=True)
        before = np.angle(z[rows["scan"].to_numpy() < scan].mean(), deg=True)
        errors.append(abs((after - before - jump + 180) % 360 - 180))
    # Atmospheric phase noise blurs the step in high bands; it is still plainly there.
    assert np.median(errors) < 15 and np.mean(np.array(errors) < 45) >= 0.85


def test_few_antennas_aborted_pwv_and_elevation_decide_the_outcome(big: sim.SimulatedBatch) -> None:
    ebs, out = big.ebs, big.outcomes.set_index("eb")
    few12 = ebs[(ebs["array"] == "12m") & (ebs["n_antennas"] < 29.5)].index
    few7 = ebs[(ebs["array"] == "7m") & (ebs["n_antennas"] <= 6)].index
    aborted = ebs[ebs["exec_fraction"] < 0.74].index
    early = ebs[ebs["exec_fraction"] < 0.44].index
    tau_ratio = sim.tau_zenith(ebs["freq_ghz"], ebs["pwv_mm"]) / ebs["band"].map(sim.TAU_LIMIT)
    wet = ebs[tau_ratio >= 1.32].index
    low = ebs[ebs["elevation_deg"] < 16.8].index
    for idx, fault in (
        (few12, "few_antennas"),
        (few7, "few_antennas"),
        (aborted, "aborted"),
        (wet, "high_pwv"),
        (low, "low_elevation"),
    ):
        assert len(idx) >= 3, fault
        assert (out.loc[idx, "value"] != "Pass").all(), fault
        assert _decisive(out.loc[idx, "reasons"], fault).all(), fault
    assert (out.loc[early, "value"] == "Fail").all()
    # Aborted EBs really have fewer scans than planned.
    scans = big.details.groupby("eb")["scan"].agg(["nunique", "max"])
    assert (scans.loc[aborted, "nunique"] < scans.loc[aborted, "max"] / 0.95).all() or (
        ebs.loc[aborted, "duration_s"].median() < ebs["duration_s"].median()
    )


def test_bandpass_ripple_decides_the_outcome(big: sim.SimulatedBatch) -> None:
    med = big.details.groupby(["eb", "spw"])["bp_ripple_db"].median().groupby(level="eb").max()
    out = big.outcomes.set_index("eb")
    hit = med[med > 3.3].index
    assert len(hit) >= 5
    assert (out.loc[hit, "value"] != "Pass").all()
    assert _decisive(out.loc[hit, "reasons"], "bandpass_ripple").all()
    assert med.median() < 1.0


def test_flux_offset_versus_real_flare(big: sim.SimulatedBatch) -> None:
    ebs, out = big.ebs, big.outcomes.set_index("eb")
    dev = np.log(ebs["flux_jy"] / ebs["expected_flux_jy"]).abs()
    inst = out[_decisive(out["reasons"], "flux_offset")].index
    assert len(inst) >= 10
    assert dev[inst].median() > 0.15
    flare_only = out[
        out["reasons"].str.contains("note: real flare")
        & ~out["reasons"].str.contains("|".join(f"(?:^|; ){re.escape(v)}:" for v in sim.FAULTS.values()))
    ].index
    assert len(flare_only) >= 5
    assert (out.loc[flare_only, "value"] == "Pass").all()
    assert dev[flare_only].median() > 0.1
    # A real flare keeps a normal, clean spectrum; a pointing loss steepens it.
    assert ebs.loc[flare_only, "spectral_index"].median() > ebs.loc[inst, "spectral_index"].median()


def test_phase_instability_shows_in_phase_rms(big: sim.SimulatedBatch) -> None:
    out = big.outcomes.set_index("eb")
    bad = out[_decisive(out["reasons"], "phase_instability")].index
    assert len(bad) >= 3
    assert (big.ebs.loc[bad, "phase_rms_deg"] > 20).all()
    assert big.ebs["phase_rms_deg"].median() < 10


# --- simulated AoDs ----------------------------------------------------------------------------------


def test_aod_labels_count_overlap_and_timing(big: sim.SimulatedBatch) -> None:
    labels = sim.simulate_aod_labels(
        ebs=big.ebs, severity=big.severity, outcomes=big.outcomes, aods=4, labeled=900, seed=2
    )
    assert len(labels) == 900
    assert not labels.duplicated(["eb", "aod"]).any()
    per_eb = labels.groupby("eb").size()
    assert 0.15 <= (per_eb >= 2).mean() <= 0.35
    assert set(labels["labeler"]) == {p.name for p in sim.aod_profiles(4)}
    end = pd.DatetimeIndex(big.ebs.loc[labels["eb"], "start_time"]) + pd.to_timedelta(
        big.ebs.loc[labels["eb"], "duration_s"].to_numpy(), unit="s"
    )
    assert (pd.DatetimeIndex(labels["created_at"]) > end).all()
    assert 50 <= labels["seconds_on_eb"].median() <= 150
    assert labels["value"].isin(["Pass", "SemiPass", "Fail"]).all()
    ref = big.outcomes.set_index("eb").loc[labels["eb"], "value"].to_numpy()
    agree = (labels["value"].to_numpy() == ref).mean()
    assert 0.85 <= agree < 0.99


def test_strict_aod_is_stricter_than_lenient(big: sim.SimulatedBatch) -> None:
    n = 1000
    ebs, sev = big.ebs.iloc[:n], big.severity.iloc[:n]
    labels = sim.simulate_aod_labels(ebs=ebs, severity=sev, aods=2, labeled=2 * n, seed=9)
    strict, lenient = (labels[labels["aod"] == i].set_index("eb")["value"] for i in (0, 1))
    assert (strict != "Pass").sum() > (lenient != "Pass").sum() + 10
    ref = big.outcomes.set_index("eb").loc[ebs.index, "value"]
    for who in (strict, lenient):
        agree = (who.reindex(ref.index) == ref).mean()
        assert 0.85 <= agree < 0.995


def test_aod_labels_refuse_impossible_requests(big: sim.SimulatedBatch) -> None:
    ebs, sev = big.ebs.iloc[:10], big.severity.iloc[:10]
    with pytest.raises(ValueError):
        sim.simulate_aod_labels(ebs=ebs, severity=sev, aods=2, labeled=21, seed=1)
    with pytest.raises(ValueError):
        sim.simulate_aod_labels(ebs=ebs, severity=sev, aods=0, labeled=1, seed=1)
    assert sim.simulate_aod_labels(ebs=ebs, severity=sev, aods=2, labeled=0, seed=1).empty
    assert len(sim.simulate_aod_labels(ebs=ebs, severity=sev, aods=2, labeled=20, seed=1)) == 20


def test_aod_profiles_are_stable_people() -> None:
    profiles = sim.aod_profiles(14)
    assert len({p.name for p in profiles}) == 14
    assert profiles[0].bias < 0 < profiles[1].bias
    assert all(re.fullmatch(r"[^\W\d_][\w\-]+ [^\W\d_][\w\-]+( \d+)?", p.name) for p in profiles)
    assert sim.aod_profiles(4) == profiles[:4]
