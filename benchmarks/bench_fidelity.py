"""Scientific fidelity of the simulator and of the review page's warnings, over N simulated EBs.

Usage: python benchmarks/bench_fidelity.py [--n 5000] [--seed 0]
Prints every figure issue 16 names: median Tsys per band (elevation > 50 deg, PWV 0.5-1.5 mm) and Band 9
at 1 mm; the PWV limits per band at the standard tunings (and the water-line dips); the share of
reference-Pass EBs with any / any "bad" warning and of reference-Fail EBs with at least one; the phase
lag-1 autocorrelation across consecutive scans and phase RMS against distance from the reference antenna;
the 60-day scatter of grid-source fluxes in Band 3; flux errors per band; spectral indices against the
catalogue; and the reference class shares. The warnings are computed by review.checks.evaluate, the
function the review page (view.eb_header) and `show` use, on the same EB and detail columns.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa0_label.review import checks, limits  # noqa: E402
from qa0_label.sim import atmosphere as atm  # noqa: E402
from qa0_label.sim.catalogue import GRID_SOURCES  # noqa: E402
from qa0_label.sim.generate import SimulatedBatch, generate  # noqa: E402


def batches(n: int, seed: int, size: int = 1000) -> list[SimulatedBatch]:
    """The batches `simulate --n N --seed SEED` writes into an empty database."""
    return [generate(n=min(size, n - lo), seed=seed, first_index=lo) for lo in range(0, n, size)]


def tsys_figures(ebs: pd.DataFrame) -> None:
    """Median Tsys per band where the issue measures it, and Band 9 at 1 mm from the simulator's model."""
    sel = ebs[(ebs["elevation_deg"] > 50) & ebs["pwv_mm"].between(0.5, 1.5)]
    med = sel.groupby("band")["tsys_median_k"].agg(["median", "size"])
    print("median Tsys (K) at elevation > 50 deg and PWV 0.5-1.5 mm, all EBs:")
    for band, row in med.iterrows():
        print(f"  Band {band}: {row['median']:.0f} K ({int(row['size'])} EBs)")
    b9 = ebs[ebs["band"] == 9]
    print(f"  Band 9 EBs (any PWV, median {b9['pwv_mm'].median():.2f} mm): {b9['tsys_median_k'].median():.0f} K")
    r = np.random.default_rng(1)
    el = r.uniform(50, 85, 20000)
    freq = atm.STANDARD_LO_GHZ[9] + r.choice([-8.0, -6.0, 6.0, 8.0], el.size)
    trx = atm.TRX_K[9] * r.uniform(0.85, 1.15, el.size)
    model = atm.system_temperature(trx, atm.tau_zenith(freq, 1.0) / np.sin(np.radians(el)))
    print(f"  Band 9 at PWV 1.0 mm, elevation 50-85 deg (simulator's Tsys model): median {np.median(model):.0f} K")


def pwv_limit_figures() -> None:
    """PWV limits per band at the standard tunings, whether they are monotone, and the water-line dips."""
    lim = {b: limits.pwv_limit_mm(b) for b in range(3, 11)}
    print("PWV limit (mm) at the standard tuning: " + ", ".join(f"B{b} {v:.2f}" for b, v in lim.items()))
    values = list(lim.values())
    mono = all(a >= b for a, b in zip(values, values[1:]))
    print(f"  monotone non-increasing B3 -> B10: {'yes' if mono else 'NO'}")
    print(
        f"  water lines: B5 at 183.3 GHz {limits.pwv_limit_mm(5, 183.3):.2f} mm (vs {lim[5]:.2f} at 200 GHz); "
        f"B7 at 325 GHz {limits.pwv_limit_mm(7, 325.0):.2f} mm (vs {lim[7]:.2f} at 343.5 GHz)"
    )


def headers(batch: SimulatedBatch) -> list[dict]:
    """checks.evaluate on every EB of the batch (the page's header values and warnings)."""
    det = batch.details
    det = det.assign(antenna=det["antenna"].astype(str))
    cols = list(checks.DETAIL_COLUMNS)
    eb_codes = det["eb"].to_numpy()
    bounds = np.searchsorted(eb_codes, batch.ebs.index.to_numpy())
    ends = np.r_[bounds[1:], len(det)]
    sub = det[cols]
    out = []
    for (eb, row), lo, hi in zip(batch.ebs.iterrows(), bounds, ends):
        head = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        head["band"] = int(head["band"])
        head["n_antennas"] = int(head["n_antennas"])
        head["extra"] = {}
        out.append(checks.evaluate(head, sub.iloc[lo:hi]))
    return out


def warning_figures(all_batches: list[SimulatedBatch]) -> pd.DataFrame:
    """Share of reference-Pass EBs with any / any bad mark, reference-Fail EBs with one; per field."""
    rows = []
    for b in all_batches:
        values = b.outcomes.set_index("eb")["value"]
        for eb, head in zip(b.ebs.index, headers(b)):
            levels = [w["level"] for w in head["warning_list"]]
            rows.append(
                {
                    "eb": eb,
                    "value": values[eb],
                    "any": bool(levels),
                    "bad": "bad" in levels,
                    "fields": [w["field"] for w in head["warning_list"]],
                    "tsys_ratio": head["tsys_vs_expected"],
                }
            )
    w = pd.DataFrame(rows)
    print("warnings the review page shows (checks.evaluate):")
    for value in ("Pass", "SemiPass", "Fail"):
        part = w[w["value"] == value]
        print(
            f"  reference {value} ({len(part)} EBs): any mark {part['any'].mean():.1%}, "
            f"any 'bad' {part['bad'].mean():.1%}"
        )
    for value in ("Pass", "Fail"):
        part = w[w["value"] == value]
        counts = pd.Series([f for fs in part["fields"] for f in set(fs)]).value_counts() / max(len(part), 1)
        print(f"  fields marked on reference {value}: " + ", ".join(f"{k} {v:.1%}" for k, v in counts.items()))
    print(f"  Tsys / expected on reference Pass: median {w.loc[w['value'] == 'Pass', 'tsys_ratio'].median():.2f}")
    return w


def unmarked_fail_reasons(all_batches: list[SimulatedBatch], w: pd.DataFrame) -> None:
    """The deciding reason of reference-Fail EBs the page shows no mark on."""
    out = pd.concat([b.outcomes for b in all_batches]).set_index("eb")
    miss = w[(w["value"] == "Fail") & ~w["any"]]["eb"]
    if len(miss):
        first = out.loc[miss, "reasons"].str.split(";").str[0].str.split(":").str[0].value_counts()
        print("  unmarked Fail EBs by deciding reason: " + ", ".join(f"{k} {v}" for k, v in first.items()))


def _phase_dev(b: SimulatedBatch, good: pd.Index) -> pd.DataFrame:
    d = b.details
    d = d[d["eb"].isin(good) & ~d["flagged"]][["eb", "antenna", "spw", "scan", "freq_ghz", "phase_deg"]].copy()
    d["antenna"] = d["antenna"].astype(str)
    d = d.sort_values(["eb", "antenna", "spw", "scan"], kind="stable")
    rad = np.radians(d["phase_deg"].to_numpy())
    keys = [d["eb"], d["antenna"], d["spw"]]
    c = pd.Series(np.cos(rad), index=d.index).groupby(keys).transform("mean")
    s = pd.Series(np.sin(rad), index=d.index).groupby(keys).transform("mean")
    d["dev"] = np.degrees(np.angle(np.exp(1j * (rad - np.arctan2(s, c)))))
    return d


def _lag1(eb: np.ndarray, x: np.ndarray, same: np.ndarray) -> pd.Series:
    """Per EB: sum of products of consecutive deviations within a series over the sum of squares."""
    pair = pd.DataFrame({"eb": eb[1:][same], "xy": (x[1:] * x[:-1])[same]})
    sq = pd.Series(x * x).groupby(eb).sum()
    return pair.groupby("eb")["xy"].sum() / sq.reindex(pair["eb"].unique()).to_numpy()


def phase_figures(all_batches: list[SimulatedBatch]) -> None:
    """Lag-1 autocorrelation of each antenna's phase across consecutive scans (good EBs), RMS vs distance."""
    lag1, white, per_ant = [], [], []
    for b in all_batches:
        sev = b.severity
        good = b.ebs.index[(b.outcomes.set_index("eb")["value"] == "Pass").to_numpy() & (sev["s_max"] < 0.3).to_numpy()]
        d = _phase_dev(b, good)
        same = (d["eb"].to_numpy()[1:] == d["eb"].to_numpy()[:-1]) & (
            d["antenna"].to_numpy()[1:] == d["antenna"].to_numpy()[:-1]
        )
        same &= d["spw"].to_numpy()[1:] == d["spw"].to_numpy()[:-1]
        x = d["dev"].to_numpy()
        lag1.append(_lag1(d["eb"].to_numpy(), x, same))
        # The same statistic on the same series with their scans shuffled: what white noise reads (the mean
        # removed from a short series biases it below zero).
        series_id = np.r_[0, np.cumsum(~same)]
        order = np.lexsort((np.random.default_rng(0).random(x.size), series_id))
        white.append(_lag1(d["eb"].to_numpy(), x[order], same))
        um = d["dev"] / (360.0 * d["freq_ghz"] / 299_792.458)
        rms = (um**2).groupby([d["eb"], d["antenna"]]).mean() ** 0.5
        ant = b.antennas.set_index(["eb", "antenna"])
        joined = ant.join(rms.rename("rms_um"), how="inner").join(b.ebs["array"], on="eb")
        per_ant.append(joined[joined["array"] == "12m"])
    corr, shuffled = pd.concat(lag1), pd.concat(white)
    arrays = pd.concat([b.ebs["array"] for b in all_batches])
    by_array = corr.groupby(arrays.reindex(corr.index).to_numpy()).median()
    white_by_array = shuffled.groupby(arrays.reindex(shuffled.index).to_numpy()).median()
    print(
        f"phase lag-1 autocorrelation across consecutive scans (good EBs, per EB): median {corr.median():.2f} "
        f"(quartiles {corr.quantile(0.25):.2f} / {corr.quantile(0.75):.2f}, {len(corr)} EBs; "
        + ", ".join(f"{a} {v:.2f}" for a, v in by_array.items())
        + f"); scans shuffled (white noise, same series): {shuffled.median():.2f} ("
        + ", ".join(f"{a} {v:.2f}" for a, v in white_by_array.items())
        + ")"
    )
    a = pd.concat(per_ant)
    bins = [0.0, 0.05, 0.15, 0.4, 1.0, 3.0, 10.0]
    grouped = a.groupby(pd.cut(a["radius_km"], bins), observed=True)["rms_um"].median()
    print(
        "  12 m phase RMS (as path, um) vs distance from the reference antenna: "
        + ", ".join(f"{iv.left:g}-{iv.right:g} km {v:.0f}" for iv, v in grouped.items())
    )
    wvr = a.groupby("wvr_on")["rms_um"].median()
    print(f"  WVR on {wvr.get(True, float('nan')):.0f} um vs off {wvr.get(False, float('nan')):.0f} um (median)")


def flux_figures(ebs: pd.DataFrame) -> None:
    """60-day scatter of each grid source's Band 3 flux (reference Pass), flux errors, spectral indices."""
    alpha = {s[0]: s[3] for s in GRID_SOURCES}
    b3 = ebs[(ebs["band"] == 3) & (ebs["value"] == "Pass")].copy()
    b3["s975"] = b3["flux_jy"] * (97.5 / b3["freq_ghz"]) ** b3["source"].map(alpha)
    b3["bin"] = (b3["start_time"] - b3["start_time"].min()).dt.days // 60
    g = b3.groupby(["source", "bin"])["s975"]
    scatter = (g.std() / g.mean())[g.size() >= 4]
    print(
        f"60-day scatter of a grid source's Band 3 flux (reference Pass, 60-day bins with >= 4 EBs): median "
        f"{scatter.median():.1%} (quartiles {scatter.quantile(0.25):.1%} / {scatter.quantile(0.75):.1%}, "
        f"{len(scatter)} bins)"
    )
    rel = (ebs["flux_err_jy"] / ebs["flux_jy"]).groupby(ebs["band"]).median()
    print("median flux_err / flux per band: " + ", ".join(f"B{b} {v:.1%}" for b, v in rel.items()))
    ok = ebs[ebs["value"] == "Pass"]
    lvl = {}
    for band, nu in ((3, 97.5), (7, 343.5)):
        part = ok[ok["band"] == band]
        lvl[band] = (
            np.log(part["flux_jy"] * (nu / part["freq_ghz"]) ** part["source"].map(alpha))
            .groupby(part["source"])
            .median()
        )
    both = pd.concat(lvl, axis=1).dropna()
    measured = (both[7] - both[3]) / math.log(343.5 / 97.5)
    delta = measured - both.index.map(alpha)
    print(
        f"B3-B7 spectral index of each source (median fluxes) minus the catalogue's: median {delta.median():+.3f}, "
        f"|delta| median {delta.abs().median():.3f} over {len(delta)} sources"
    )
    inband = ok.groupby("band")["spectral_index"].median()
    print("median in-band spectral index (reference Pass): " + ", ".join(f"B{b} {v:+.2f}" for b, v in inband.items()))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    all_batches = batches(args.n, args.seed)
    ebs = pd.concat([b.ebs.join(b.outcomes.set_index("eb")) for b in all_batches])
    print(f"bench_fidelity --n {args.n} --seed {args.seed}")
    shares = ebs["value"].value_counts(normalize=True)
    print("reference shares: " + " / ".join(f"{v} {shares.get(v, 0.0):.1%}" for v in ("Pass", "SemiPass", "Fail")))
    tsys_figures(ebs)
    pwv_limit_figures()
    w = warning_figures(all_batches)
    unmarked_fail_reasons(all_batches, w)
    phase_figures(all_batches)
    flux_figures(ebs)
    print(
        f"({time.perf_counter() - t0:.0f} s; 1-minute load average before / after: {load:.2f} / "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
