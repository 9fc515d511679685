"""EB rows (+ aggregates of the detail rows) -> the model's feature matrix, versioned.

Two entry points compute the same columns:
- ``build_features(session=..., eb_ids=...)``: from the database; the detail rows are reduced by SQL
  GROUP BY (per EB x antenna, EB x spw and EB x scan), so 100k EBs never mean a Python loop per EB;
- ``features_from_frames(ebs, details)``: the pure variant for DataFrames (the simulator's output in the
  benchmark), reducing the details with pandas groupby instead.
Both then share ``_assemble``, which only does vectorised pandas work. Missing values stay NaN (the
estimator routes them).

Each feature aims at something an AoD looks at (and that simulate.py injects as a fault):
dead antennas (near-zero amplitude / fully flagged) and Tsys outlier antennas as a share of the array; a
Tsys spike in one scan; one antenna's phase jump (circular spread of its phases against its siblings');
bandpass ripple of the worst spw; the scatter of the 4 spw fluxes around a power law; antenna-dependent
amplitude loss (pointing / focus); the flux against the catalogue expectation (sigma and log ratio), against
the same source's recent history in the band, and against the source's other EBs around the same date (a
real flare shows in all of them, an instrument problem in one); PWV and opacity against the band's limit;
elevation; antenna count against the array's usual; execution fraction; numeric ``extra`` columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Integer, Select, bindparam, case, delete, exists, func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from qa0_label.review import limits
from qa0_label.store import db
from qa0_label.store.db import bulk_rows
from qa0_label.store.models import EBDetail, EBDetailFeatures, ExecutionBlock, table_of

_DETAIL = table_of(EBDetail).c
_CACHE = table_of(EBDetailFeatures).c

FEATURE_VERSION = "3"
"""Bump whenever a feature's meaning changes: a model trained on another version is not reused (3: Tsys over the
typical-receiver expectation, phase RMS over the band/array limit, antennas over the SemiPass count)."""

NOMINAL_ANTENNAS: dict[str, float] = {"12m": 45.0, "7m": 10.5}
"""Usual antenna count per array: the antenna count is judged against it."""

EB_NUMERIC: tuple[str, ...] = (
    "band",
    "duration_s",
    "n_antennas",
    "pwv_mm",
    "elevation_deg",
    "tsys_median_k",
    "phase_rms_deg",
    "flagged_fraction",
    "exec_fraction",
    "freq_ghz",
    "flux_jy",
    "flux_err_jy",
    "spectral_index",
    "spectral_index_err",
    "expected_flux_jy",
    "expected_flux_err_jy",
)
"""ExecutionBlock numeric columns the features read."""

RAW_FEATURES: tuple[str, ...] = (
    "band",
    "n_antennas",
    "pwv_mm",
    "elevation_deg",
    "tsys_median_k",
    "phase_rms_deg",
    "flagged_fraction",
    "exec_fraction",
    "spectral_index",
    "spectral_index_err",
)
"""EB columns used as features unchanged."""

DETAIL_FEATURES: tuple[str, ...] = (
    "det_n_antennas",
    "det_flag_frac",
    "dead_antennas",
    "dead_frac",
    "tsys_outlier_antennas",
    "tsys_outlier_frac",
    "tsys_max_ratio",
    "amp_ant_scatter",
    "amp_min_ratio",
    "phase_jump_score",
    "phase_spread_median",
    "tsys_spike_ratio",
    "scan_amp_spike",
    "scan_amp_min_ratio",
    "bp_ripple_worst_db",
    "bp_ripple_max_db",
    "spw_alpha_fit",
    "spw_powerlaw_scatter_pct",
    "spw_amp_min_ratio",
)
"""The DERIVED_FEATURES that come from an EB's own detail rows only (cached per EB in eb_detail_features)."""

DERIVED_FEATURES: tuple[str, ...] = (
    "array_12m",
    "n_antennas_frac",
    "pwv_over_limit",
    "tau_over_limit",
    "airmass",
    "tsys_over_expected",
    "flux_snr",
    "flux_vs_expected_sigma",
    "flux_vs_expected_log",
    "abs_flux_vs_expected_log",
    "flux_vs_history_log",
    "abs_flux_vs_history_sigma",
    "flux_vs_neighbours_log",
    "abs_flux_vs_neighbours_log",
    "alpha_vs_source",
    "abs_alpha_vs_source",
    *DETAIL_FEATURES,
    "good_antennas_frac",
    "worst_limit_ratio",
    "n_limits_exceeded",
)
"""Computed columns, always present (NaN when their inputs are missing), in this order after RAW_FEATURES."""


HISTORY_WINDOW = 5
"""How many earlier EBs of the same source and band make its 'recent history'."""
NEIGHBOURS = 3
"""EBs of the same source on each side in time (any band) that show whether a flux change is the sky's."""
TSYS_OUTLIER_RATIO = limits.TSYS_OUTLIER_RATIO
DEAD_AMP_RATIO = 0.2
"""An antenna whose mean amplitude is below this share of the array median counts as dead."""


# --- detail aggregates -------------------------------------------------------------------------

ANT_COLUMNS = ["eb_id", "antenna", "n_rows", "n_flagged", "tsys_mean", "amp_mean", "cos_mean", "sin_mean"]
SPW_COLUMNS = ["eb_id", "spw", "freq_mean", "amp_mean", "ripple_mean", "ripple_max"]
SCAN_COLUMNS = ["eb_id", "scan", "tsys_mean", "amp_mean"]


def _avg_good(x: Any) -> Any:
    """AVG of X over unflagged rows (flagged ones become NULL, which AVG skips)."""
    return func.avg(case((_DETAIL.flagged, None), else_=x))


def _aggregates(key: Any, *values: Any) -> Select[Any]:
    """Per (EB, KEY) aggregates of the detail rows; run whole or with .where(eb_id IN ...)."""
    return sa_select(_DETAIL.eb_id, key, *values).group_by(_DETAIL.eb_id, key)


_PHASE, _AMP = func.radians(_DETAIL.phase_deg), _avg_good(_DETAIL.amplitude)
_N_FLAGGED = func.sum(case((_DETAIL.flagged, 1), else_=0))
_Q_ANT = _aggregates(_DETAIL.antenna, func.count(), _N_FLAGGED, _avg_good(_DETAIL.tsys_k), _AMP)
_Q_ANT = _Q_ANT.add_columns(_avg_good(func.cos(_PHASE)), _avg_good(func.sin(_PHASE)))
_RIPPLE = _DETAIL.bp_ripple_db
_Q_SPW = _aggregates(_DETAIL.spw, func.avg(_DETAIL.freq_ghz), _AMP, func.avg(_RIPPLE), func.max(_RIPPLE))
_Q_SCAN = _aggregates(_DETAIL.scan, _avg_good(_DETAIL.tsys_k), _AMP)
_EB_IDS = bindparam("eb_ids", type_=Integer(), expanding=True)
_Q_AGGREGATES = (_Q_ANT, _Q_SPW, _Q_SCAN)
_Q_AGGREGATES_OF = tuple(q.where(_DETAIL.eb_id.in_(_EB_IDS)) for q in _Q_AGGREGATES)


def _antenna_keys(antenna: pd.Series) -> np.ndarray:
    # Integer keys group an order of magnitude faster than millions of strings; only identity matters.
    if isinstance(antenna.dtype, pd.CategoricalDtype):
        return antenna.cat.codes.to_numpy()
    return pd.factorize(antenna)[0]


def _detail_aggregates_pandas(details: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if details is None or details.empty:
        return pd.DataFrame(columns=ANT_COLUMNS), pd.DataFrame(columns=SPW_COLUMNS), pd.DataFrame(columns=SCAN_COLUMNS)
    d = details.rename(columns={"eb": "eb_id"})
    flagged = d["flagged"].fillna(False).astype(bool).to_numpy() if "flagged" in d else np.zeros(len(d), bool)
    good = ~flagged

    def col(name: str) -> np.ndarray:
        return pd.to_numeric(d[name], errors="coerce").to_numpy(dtype=float) if name in d else np.full(len(d), np.nan)

    phase = np.radians(col("phase_deg"))
    work = pd.DataFrame(
        {
            "eb_id": d["eb_id"].to_numpy(),
            "antenna": _antenna_keys(d["antenna"]) if "antenna" in d else 0,
            "spw": d["spw"].to_numpy() if "spw" in d else 0,
            "scan": d["scan"].to_numpy() if "scan" in d else 0,
            "flag_i": flagged.astype(np.int64),
            "tsys_ok": np.where(good, col("tsys_k"), np.nan),
            "amp_ok": np.where(good, col("amplitude"), np.nan),
            "cos_ok": np.where(good, np.cos(phase), np.nan),
            "sin_ok": np.where(good, np.sin(phase), np.nan),
            "freq": col("freq_ghz"),
            "ripple": col("bp_ripple_db"),
        }
    )
    ant = (
        work.groupby(["eb_id", "antenna"], sort=False)
        .agg(
            n_rows=("flag_i", "size"),
            n_flagged=("flag_i", "sum"),
            tsys_mean=("tsys_ok", "mean"),
            amp_mean=("amp_ok", "mean"),
            cos_mean=("cos_ok", "mean"),
            sin_mean=("sin_ok", "mean"),
        )
        .reset_index()
    )
    spw = (
        work.groupby(["eb_id", "spw"], sort=False)
        .agg(
            freq_mean=("freq", "mean"),
            amp_mean=("amp_ok", "mean"),
            ripple_mean=("ripple", "mean"),
            ripple_max=("ripple", "max"),
        )
        .reset_index()
    )
    scan = (
        work.groupby(["eb_id", "scan"], sort=False)
        .agg(tsys_mean=("tsys_ok", "mean"), amp_mean=("amp_ok", "mean"))
        .reset_index()
    )
    return ant[ANT_COLUMNS], spw[SPW_COLUMNS], scan[SCAN_COLUMNS]


def _ensure_math(session: Session) -> None:
    # SQLite gained cos/sin/radians in 3.35 (when compiled in); register Python ones where they are missing.
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return
    try:
        conn.execute(sa_select(func.cos(func.radians(0.0)), func.sin(0.0))).fetchall()
    except Exception:  # noqa: BLE001 - any failure means "not built in"
        import math

        db.sqlite_functions(
            conn,
            {
                "cos": lambda x: None if x is None else math.cos(x),
                "sin": lambda x: None if x is None else math.sin(x),
                "radians": lambda x: None if x is None else math.radians(x),
            },
        )


def _detail_aggregates_sql(
    session: Session, eb_ids: Sequence[int] | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    _ensure_math(session)
    conn = session.connection()
    rows: list[list[tuple[object, ...]]] = [[], [], []]
    if eb_ids is None:
        for i, stmt in enumerate(_Q_AGGREGATES):
            rows[i] = list(conn.execute(stmt).fetchall())
    else:
        ids = sorted({int(i) for i in eb_ids})
        # Chunks keep the IN list under every backend's bound-parameter limit.
        for start in range(0, len(ids), 2000):
            chunk = ids[start : start + 2000]
            for i, stmt in enumerate(_Q_AGGREGATES_OF):
                rows[i] += conn.execute(stmt, {"eb_ids": chunk}).fetchall()
    frames = []
    for data, cols in zip(rows, (ANT_COLUMNS, SPW_COLUMNS, SCAN_COLUMNS)):
        frame = pd.DataFrame(data, columns=cols)
        for c in cols:
            if c != "antenna":
                frame[c] = pd.to_numeric(frame[c], errors="coerce")
        frames.append(frame)
    return frames[0], frames[1], frames[2]


# --- assembly ----------------------------------------------------------------------------------


def _antenna_features(ant: pd.DataFrame) -> pd.DataFrame:
    if ant.empty:
        return pd.DataFrame(index=pd.Index([], name="eb_id"))
    a = ant.copy()
    g = a.groupby("eb_id")
    a["amp_ratio"] = a["amp_mean"] / g["amp_mean"].transform("median")
    a["dead"] = ((a["n_flagged"] >= a["n_rows"]) | (a["amp_ratio"] < DEAD_AMP_RATIO)).astype(float)
    alive = a["dead"] < 0.5
    # Ratios against the live antennas only: dead ones have meaningless Tsys and phases.
    live = a[alive].copy()
    gl = live.groupby("eb_id")
    live["tsys_ratio"] = live["tsys_mean"] / gl["tsys_mean"].transform("median")
    live["tsys_outlier"] = (live["tsys_ratio"] > TSYS_OUTLIER_RATIO).astype(float)
    live["amp_ratio_live"] = live["amp_mean"] / gl["amp_mean"].transform("median")
    # Circular spread of an antenna's phases: 1 - |mean unit phasor|. A phase jump in one antenna splits its
    # phases into two clusters and raises its spread far above its siblings'.
    live["spread"] = 1.0 - np.hypot(live["cos_mean"], live["sin_mean"])
    gl = live.groupby("eb_id")
    n_ant = g["antenna"].size()
    dead = g["dead"].sum()
    out = pd.DataFrame(
        {
            "det_n_antennas": n_ant,
            "det_flag_frac": g["n_flagged"].sum() / g["n_rows"].sum(),
            "dead_antennas": dead,
            "dead_frac": dead / n_ant,
        }
    )
    live_stats = pd.DataFrame(
        {
            "tsys_outlier_antennas": gl["tsys_outlier"].sum(),
            "tsys_max_ratio": gl["tsys_ratio"].max(),
            "amp_ant_scatter": gl["amp_ratio_live"].std(),
            "amp_min_ratio": gl["amp_ratio_live"].min(),
            "phase_jump_score": gl["spread"].max() - gl["spread"].median(),
            "phase_spread_median": gl["spread"].median(),
        }
    )
    out = out.join(live_stats, how="left")
    out["tsys_outlier_frac"] = out["tsys_outlier_antennas"] / out["det_n_antennas"]
    return out


def _scan_features(scan: pd.DataFrame) -> pd.DataFrame:
    if scan.empty:
        return pd.DataFrame(index=pd.Index([], name="eb_id"))
    s = scan.copy()
    g = s.groupby("eb_id")
    s["tsys_r"] = s["tsys_mean"] / g["tsys_mean"].transform("median")
    s["amp_r"] = s["amp_mean"] / g["amp_mean"].transform("median")
    g = s.groupby("eb_id")
    return pd.DataFrame(
        {
            "tsys_spike_ratio": g["tsys_r"].max(),
            "scan_amp_spike": g["amp_r"].max(),
            "scan_amp_min_ratio": g["amp_r"].min(),
        }
    )


def _spw_features(spw: pd.DataFrame) -> pd.DataFrame:
    """Power-law fit ln S = a + alpha ln nu per EB over its spw fluxes, vectorised via groupby sums."""
    if spw.empty:
        return pd.DataFrame(index=pd.Index([], name="eb_id"))
    ripple = spw.groupby("eb_id").agg(bp_ripple_worst_db=("ripple_mean", "max"), bp_ripple_max_db=("ripple_max", "max"))
    s = spw[(spw["amp_mean"] > 0) & (spw["freq_mean"] > 0)].copy()
    if s.empty:
        return ripple
    s["x"] = np.log(s["freq_mean"])
    s["y"] = np.log(s["amp_mean"])
    g = s.groupby("eb_id")
    n = g["x"].size()
    s["dx"] = s["x"] - g["x"].transform("mean")
    s["dy"] = s["y"] - g["y"].transform("mean")
    s["dxx"], s["dxy"], s["dyy"] = s["dx"] ** 2, s["dx"] * s["dy"], s["dy"] ** 2
    g = s.groupby("eb_id")
    sxx, sxy, syy = g["dxx"].sum(), g["dxy"].sum(), g["dyy"].sum()
    alpha = sxy / sxx.where(sxx > 1e-12)
    resid_ss = (syy - alpha * sxy).clip(lower=0)
    dof = (n - 2).where(n > 2)
    s["fit"] = s["eb_id"].map(alpha) * s["dx"]
    s["resid"] = s["dy"] - s["fit"]
    out = pd.DataFrame(
        {
            "spw_alpha_fit": alpha,
            # RMS scatter of the spw fluxes around the fitted power law, in percent.
            "spw_powerlaw_scatter_pct": 100.0 * np.sqrt(resid_ss / dof),
            # The one spw furthest below the fit (a rippled or biased baseband).
            "spw_amp_min_ratio": np.exp(s.groupby("eb_id")["resid"].min()),
        }
    )
    return ripple.join(out, how="left")


def _neighbour_median(values: pd.Series, groups: list[pd.Series], k: int, *, both_sides: bool) -> pd.Series:
    """Median of the k previous (and, with both_sides, k next) values within each group, excluding self."""
    grouped = values.groupby(groups, sort=False)
    shifts = [grouped.shift(i) for i in range(1, k + 1)]
    if both_sides:
        shifts += [grouped.shift(-i) for i in range(1, k + 1)]
    stack = np.column_stack([s.to_numpy(dtype=float) for s in shifts])
    # Rows without any neighbour stay NaN; computing only the others avoids numpy's all-NaN warnings
    # without warnings.catch_warnings, which is not thread-safe (retrains can run in threads).
    med = np.full(len(stack), np.nan)
    std = np.full(len(stack), np.nan)
    some = (~np.isnan(stack)).any(axis=1)
    if some.any():
        med[some] = np.nanmedian(stack[some], axis=1)
        std[some] = np.nanstd(stack[some], axis=1)
    out = pd.Series(med, index=values.index)
    out.attrs["std"] = pd.Series(std, index=values.index)
    return out


def _flux_context(e: pd.DataFrame, r: pd.Series) -> pd.DataFrame:
    """Flux against the source's recent history in the band and against its neighbours in time.

    History: r = ln(flux / expected) against the previous HISTORY_WINDOW EBs of the source in the band.
    Neighbours: the flux brought to 100 GHz with the source's typical spectral index, against the median of
    its NEIGHBOURS EBs on each side in time (any band). A real flare brightens the neighbours too; an
    instrument problem shows in one EB only.
    """
    idx = e.index
    cols = ["flux_vs_history_log", "abs_flux_vs_history_sigma", "flux_vs_neighbours_log", "abs_flux_vs_neighbours_log"]
    if "source" not in e or "start_time" not in e or e["flux_jy"].isna().all():
        return pd.DataFrame(index=idx, columns=cols, dtype=float)
    source = e["source"].astype(str)
    alpha = e.groupby(source)["spectral_index"].transform("median").fillna(-0.6)
    flux = e["flux_jy"].where(e["flux_jy"] > 0)
    log100 = np.log(flux) + alpha * np.log(100.0 / e["freq_ghz"].where(e["freq_ghz"] > 0))
    frame = pd.DataFrame({"source": source, "band": e["band"], "t": e["start_time"], "r": r, "f": log100})
    frame = frame.sort_values(["source", "t"], kind="stable")
    near = _neighbour_median(frame["f"], [frame["source"]], NEIGHBOURS, both_sides=True)
    by_band = frame.sort_values(["source", "band", "t"], kind="stable")
    hist = _neighbour_median(by_band["r"], [by_band["source"], by_band["band"]], HISTORY_WINDOW, both_sides=False)
    hist_dev = by_band["r"] - hist
    # Floor the history's scatter at 5 %: a quiet history must not turn every wiggle into many sigma.
    hist_sig = np.sqrt(hist.attrs["std"] ** 2 + 0.05**2)
    out = pd.DataFrame(index=idx)
    out["flux_vs_history_log"] = hist_dev.reindex(idx)
    out["abs_flux_vs_history_sigma"] = (hist_dev / hist_sig).abs().reindex(idx)
    out["flux_vs_neighbours_log"] = (frame["f"] - near).reindex(idx)
    out["abs_flux_vs_neighbours_log"] = out["flux_vs_neighbours_log"].abs()
    return out


def _normalise_ebs(ebs: pd.DataFrame) -> pd.DataFrame:
    e = ebs.copy()
    if "eb_id" not in e.columns:
        if "id" in e.columns:
            e = e.rename(columns={"id": "eb_id"})
        else:
            # The simulator's frames carry the EB key as the index ("eb").
            e = e.reset_index().rename(columns={e.index.name or "index": "eb_id"})
    e = e.set_index("eb_id")
    e.index = e.index.astype(np.int64)
    for col in EB_NUMERIC:
        e[col] = pd.to_numeric(e[col], errors="coerce") if col in e else np.nan
    if "start_time" in e:
        e["start_time"] = pd.to_datetime(e["start_time"], utc=True, errors="coerce", format="ISO8601")
    return e


def _opacity(freq: pd.Series, pwv: pd.Series) -> pd.Series:
    f = freq.to_numpy(dtype=float)
    ok = np.isfinite(f)
    dry = np.where(ok, np.interp(np.where(ok, f, 0.0), limits.OPACITY_FREQ_GHZ, limits.OPACITY_DRY), np.nan)
    wet = np.where(ok, np.interp(np.where(ok, f, 0.0), limits.OPACITY_FREQ_GHZ, limits.OPACITY_WET_PER_MM), np.nan)
    return pd.Series(dry + wet * pwv.clip(lower=0).to_numpy(dtype=float), index=freq.index)


def detail_features(ant: pd.DataFrame, spw: pd.DataFrame, scan: pd.DataFrame) -> pd.DataFrame:
    """Detail aggregates -> the DETAIL_FEATURES of each EB that has detail rows (index eb_id).

    Each value depends on that EB's own detail rows only, which is what makes them cacheable per EB.
    """
    out = _antenna_features(ant).join(_scan_features(scan), how="outer").join(_spw_features(spw), how="outer")
    out = out.reindex(columns=list(DETAIL_FEATURES)).astype(float)
    out.index = out.index.astype(np.int64)
    out.index.name = "eb_id"
    return out


def _assemble(ebs: pd.DataFrame, det: pd.DataFrame) -> pd.DataFrame:
    """EB columns + per-EB detail features -> feature frame indexed by eb_id (vectorised only).

    Columns are collected in a dict and written once into one float array: joining frame after frame
    copied the whole matrix each time (a retrain of 100k EBs runs in the app's worker process, whose peak
    memory counts against the app's).
    """
    e = _normalise_ebs(ebs)
    idx = e.index
    f: dict[str, Any] = {col: e[col].astype(float) for col in RAW_FEATURES}

    array = e["array"].astype(str).str.lower() if "array" in e else pd.Series("", index=idx)
    f["array_12m"] = np.where(array == "12m", 1.0, np.where(array == "7m", 0.0, np.nan))
    nominal = array.map(NOMINAL_ANTENNAS).astype(float)
    f["n_antennas_frac"] = e["n_antennas"] / nominal

    band = e["band"]
    ref_freq = band.map(limits.REFERENCE_FREQ_GHZ).astype(float)
    freq = e["freq_ghz"].fillna(ref_freq)
    tau = _opacity(freq, e["pwv_mm"])
    tau_limit = band.map(limits.ACCEPTABLE_ZENITH_OPACITY).astype(float)
    f["tau_over_limit"] = tau / tau_limit
    # The limit at the EB's own tuning, the same number the review page shows (limits.py holds the one copy).
    pwv_limit = pd.Series(limits.pwv_limits_mm(band.to_numpy(), e["freq_ghz"].to_numpy()), index=idx)
    f["pwv_over_limit"] = e["pwv_mm"] / pwv_limit.where(pwv_limit > 0)
    el = e["elevation_deg"].clip(lower=3.0)
    am = 1.0 / np.sin(np.radians(el))
    f["airmass"] = am
    expected = limits.expected_tsys_array(band.to_numpy(), freq.to_numpy(), e["pwv_mm"].to_numpy(), el.to_numpy())
    f["tsys_over_expected"] = e["tsys_median_k"] / pd.Series(expected, index=idx)

    flux, err, exp_f = e["flux_jy"], e["flux_err_jy"], e["expected_flux_jy"]
    f["flux_snr"] = flux / err.where(err > 0)
    comb = np.sqrt(err.fillna(0) ** 2 + e["expected_flux_err_jy"].fillna(0) ** 2)
    f["flux_vs_expected_sigma"] = (flux - exp_f) / comb.where(comb > 0)
    ratio = flux / exp_f.where(exp_f > 0)
    r = pd.Series(np.log(ratio.where(ratio > 0)), index=idx)
    f["flux_vs_expected_log"] = r
    f["abs_flux_vs_expected_log"] = r.abs()
    for col, values in _flux_context(e, r).items():
        f[col] = values
    if "source" in e:
        src_alpha = e.groupby(e["source"].astype(str))["spectral_index"].transform("median")
        f["alpha_vs_source"] = e["spectral_index"] - src_alpha
        f["abs_alpha_vs_source"] = f["alpha_vs_source"].abs()

    det = det.reindex(idx)  # EBs without detail rows: NaN
    for col in det.columns:
        f[col] = det[col]
    for col, values in _limit_ratios(e, f).items():
        f[col] = values

    columns = [*RAW_FEATURES, *DERIVED_FEATURES]
    extra = _extra_features(e["extra"]) if "extra" in e else pd.DataFrame(index=idx)
    out = np.full((len(idx), len(columns) + len(extra.columns)), np.nan)
    for j, col in enumerate(columns):
        if col in f:
            out[:, j] = np.asarray(f[col], dtype=float)
    for j, col in enumerate(extra.columns, start=len(columns)):
        out[:, j] = extra[col].to_numpy(dtype=float)
    out[np.isinf(out)] = np.nan
    return pd.DataFrame(out, index=pd.Index(idx, name="eb_id"), columns=[*columns, *extra.columns], copy=False)


def _limit_ratios(e: pd.DataFrame, f: Mapping[str, Any]) -> pd.DataFrame:
    """Each AoD limit (limits.py) as value / 'bad' limit (>= 1 crosses it); the worst one and how many cross.

    Faults of different kinds then share one axis, so a model that saw a few failed EBs of one kind can
    suspect an EB that is far out on another.
    """
    nominal = pd.Series(NOMINAL_ANTENNAS).astype(float)
    array = e["array"].astype(str).str.lower() if "array" in e else pd.Series("", index=e.index)
    warn_ants = array.map({k: float(v) for k, v in limits.MIN_ANTENNAS_WARN.items()}).astype(float)
    good = (
        f["det_n_antennas"].fillna(e["n_antennas"])
        - f["dead_antennas"].fillna(0)
        - f["tsys_outlier_antennas"].fillna(0)
    )
    good = good.where(f["det_n_antennas"].notna(), e["n_antennas"])
    out = pd.DataFrame(index=e.index)
    out["good_antennas_frac"] = good / array.map(nominal).astype(float)
    err_rel = (
        np.sqrt(e["flux_err_jy"].fillna(0) ** 2 + e["expected_flux_err_jy"].fillna(0) ** 2) / e["flux_jy"]
    ).where(e["flux_jy"] > 0)
    ratios = pd.DataFrame(
        {
            "tau": f["tau_over_limit"] / limits.PWV_BAD_OPACITY_RATIO,
            "exec": (1.0 - e["exec_fraction"]) / (1.0 - limits.EXEC_FRACTION_BAD),
            "phase": e["phase_rms_deg"] / limits.phase_rms_bad_deg_array(e["band"], array, e["freq_ghz"]),
            "flag": e["flagged_fraction"] / limits.FLAGGED_FRACTION_BAD,
            "elev": limits.ELEVATION_BAD_DEG / e["elevation_deg"].where(e["elevation_deg"] > 0),
            "ants": warn_ants / good.where(good > 0),
            "flux": f["abs_flux_vs_neighbours_log"] / err_rel.where(err_rel > 0) / limits.FLUX_DEVIATION_BAD_SIGMA,
            "ripple": f["bp_ripple_worst_db"] / limits.BANDPASS_RIPPLE_DB,
        }
    )
    out["worst_limit_ratio"] = ratios.max(axis=1, skipna=True)
    out["n_limits_exceeded"] = (ratios >= 1.0).sum(axis=1).astype(float)
    return out


def _extra_features(extra: pd.Series) -> pd.DataFrame:
    """Numeric values of the `extra` JSON column as extra_<name> columns."""
    dicts = []
    for x in extra.tolist():
        if isinstance(x, str):
            try:
                x = json.loads(x)
            except ValueError:
                x = None
        dicts.append(x if isinstance(x, dict) else {})
    if not any(dicts):
        return pd.DataFrame(index=extra.index)
    frame = pd.DataFrame(dicts, index=extra.index)
    out = {}
    for col in frame.columns:
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.notna().any():
            out[f"extra_{col}"] = values.astype(float)
    return pd.DataFrame(out, index=extra.index)


# --- public API --------------------------------------------------------------------------------


def feature_names() -> list[str]:
    """The fixed feature columns (extra_<name> columns from imported data come after these)."""
    return [*RAW_FEATURES, *DERIVED_FEATURES]


def features_from_frames(ebs: pd.DataFrame, details: pd.DataFrame | None = None) -> pd.DataFrame:
    """Feature frame (index eb_id) from EB rows and detail rows held in DataFrames, no database needed.

    ebs: one row per EB keyed by an ``eb_id`` or ``id`` column, or by its index (simulate.generate's ``eb``);
    details: rows keyed by ``eb_id`` (or ``eb``) with the EBDetail columns.
    """
    return _assemble(ebs, detail_features(*_detail_aggregates_pandas(details)))


EB_FETCH_ROWS = 20_000
"""EB rows converted to columns at a time by load_eb_frame."""
_EB_COLS = ["eb_id", "source", "array", "start_time", "extra", *EB_NUMERIC]
_EB = table_of(ExecutionBlock).c
_EB_QUERY = sa_select(_EB.id, _EB.source, _EB.array, _EB.start_time, _EB.extra, *(_EB[c] for c in EB_NUMERIC)).order_by(
    _EB.id
)


def load_eb_frame(*, session: Session) -> pd.DataFrame:
    """The EB columns the features need, one row per EB."""
    # The DB-API cursor's plain tuples: SQLAlchemy Row objects cost twice the fetch at 100k+ EBs, and
    # pandas probes them attribute by attribute.
    # Fetched in chunks, each turned into typed columns at once: a million Python tuples held together
    # would double the peak memory of a retrain (the app's retrain worker must stay small).
    parts: list[pd.DataFrame] = []
    for rows in bulk_rows(session.connection(), _EB_QUERY, batch=EB_FETCH_ROWS):
        part = pd.DataFrame.from_records(rows, columns=_EB_COLS)
        del rows
        part["start_time"] = pd.to_datetime(part["start_time"], utc=True, errors="coerce", format="ISO8601")
        parts.append(part)
    if not parts:
        return pd.DataFrame({name: [] for name in _EB_COLS})
    return pd.concat(parts, ignore_index=True)


def build_features(*, session: Session, eb_ids: Sequence[int] | None = None, use_cache: bool = True) -> pd.DataFrame:
    """Feature frame (index eb_id) for the given EBs (all when None): EB rows + per-EB detail features.

    Detail features come from the eb_detail_features cache where it holds a valid row and from SQL
    aggregates of eb_detail for the rest (nothing is written here: ensure_detail_cache fills the cache).
    use_cache=False always aggregates (the reference the cache is tested against).
    """
    # Every EB row is read (cheap) because history and neighbour features need the source's other EBs.
    ebs = load_eb_frame(session=session)
    if use_cache:
        det = cached_detail_features(session=session, eb_ids=eb_ids)
        missing = sorted(set(detail_eb_ids(session=session, eb_ids=eb_ids)) - set(det.index.tolist()))
        if missing and det.empty and eb_ids is None:
            det = detail_features(*_detail_aggregates_sql(session, None))  # one GROUP BY beats IN lists
        elif missing:
            det = pd.concat([det, detail_features(*_detail_aggregates_sql(session, missing))])
    else:
        det = detail_features(*_detail_aggregates_sql(session, eb_ids))
    feats = _assemble(ebs, det)
    if eb_ids is not None:
        feats = feats.reindex(pd.Index([int(i) for i in eb_ids], name="eb_id"))
    return feats


# --- per-EB detail-feature cache (table eb_detail_features) --------------------------------------

CACHE_CHUNK_EBS = 500
"""EBs aggregated per cache-filling step (~700k detail rows): bounded memory, short write transactions."""


def _distinct_eb_stmt() -> Select[Any]:
    """The EB ids of eb_detail as a loose index scan: a recursive walk from one id to the next, one seek each."""
    walk = sa_select(func.min(_DETAIL.eb_id).label("e")).cte("walk", recursive=True)
    step = sa_select(func.min(_DETAIL.eb_id)).where(_DETAIL.eb_id > walk.c.e).scalar_subquery()
    walk = walk.union_all(sa_select(step).where(walk.c.e.is_not(None)))
    return sa_select(walk.c.e).where(walk.c.e.is_not(None))


_Q_DISTINCT_EBS = _distinct_eb_stmt()


def detail_eb_ids(*, session: Session, eb_ids: Sequence[int] | None = None) -> list[int]:
    """Ids of the EBs that have detail rows (among eb_ids when given), by index seeks only."""
    conn = session.connection()
    if eb_ids is None:
        # A loose index scan: one seek per EB instead of reading ten million index entries.
        return [int(r[0]) for r in conn.execute(_Q_DISTINCT_EBS)]
    out: list[int] = []
    ids = sorted({int(i) for i in eb_ids})
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        stmt = sa_select(_DETAIL.eb_id).distinct().where(_DETAIL.eb_id.in_(chunk))
        out += [int(r[0]) for r in conn.execute(stmt)]
    return sorted(out)


def _stale_by_insert(session: Session) -> set[int]:
    """SQLite: cached EBs that gained a detail row after their cache row (PostgreSQL's trigger drops those)."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return set()
    # The eb_detail index holds (eb_id, rowid): each probe is one seek.
    f, d = _CACHE, _DETAIL
    newer = exists().where(d.eb_id == f.eb_id, d.id > f.max_detail_id)
    return {int(r[0]) for r in conn.execute(sa_select(f.eb_id).where(newer))}


def cached_detail_features(*, session: Session, eb_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The valid cache rows (this FEATURE_VERSION, details unchanged since) as a DETAIL_FEATURES frame."""
    conn = session.connection()
    f = _CACHE
    rows = conn.execute(sa_select(f.eb_id, f.values_json).where(f.feature_version == FEATURE_VERSION)).fetchall()
    stale = _stale_by_insert(session) if rows else set()
    wanted = None if eb_ids is None else {int(i) for i in eb_ids}
    keep = [(int(e), v) for e, v in rows if int(e) not in stale and (wanted is None or int(e) in wanted)]
    if not keep:
        return pd.DataFrame(
            columns=list(DETAIL_FEATURES), index=pd.Index([], name="eb_id", dtype=np.int64), dtype=float
        )
    # One json.loads of a single array is much faster than thousands of small ones.
    values = json.loads("[" + ",".join(v for _, v in keep) + "]")
    frame = pd.DataFrame(values, columns=list(DETAIL_FEATURES), dtype=float)
    frame.index = pd.Index([e for e, _ in keep], name="eb_id", dtype=np.int64)
    return frame.astype(float)


def _json_row(values: np.ndarray) -> str:
    return json.dumps([None if not np.isfinite(v) else float(v) for v in values])


def detail_signatures(conn: Connection, eb_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(row count, newest row id) of each EB's detail rows: what a cache row was computed from."""
    d = _DETAIL
    stmt = sa_select(d.eb_id, func.count(), func.max(d.id)).where(d.eb_id.in_(list(eb_ids))).group_by(d.eb_id)
    return {int(e): (int(n), int(m)) for e, n, m in conn.execute(stmt)}


def store_detail_cache(
    conn: Connection, det: pd.DataFrame, signatures: dict[int, tuple[int, int]], *, verified: bool = False
) -> int:
    """Write cache rows for det's EBs, only where the EB's details still have the given signature.

    Call inside a write transaction; rows of EBs whose details changed meanwhile are skipped (they stay
    uncached and are aggregated again next time), so a concurrent re-import can never leave a stale row.
    verified=True: the signatures were read in this same transaction (the simulator's own rows).
    """
    ids = [int(e) for e in det.index if int(e) in signatures]
    if not ids:
        return 0
    now = _cache_time(conn)
    current = signatures if verified else detail_signatures(conn, ids)
    rows = []
    values = det.reindex(columns=list(DETAIL_FEATURES)).to_numpy(dtype=float)
    pos = {int(e): i for i, e in enumerate(det.index)}
    for e in ids:
        if current.get(e) != signatures[e]:
            continue
        n, m = signatures[e]
        rows.append((e, FEATURE_VERSION, n, m, _json_row(values[pos[e]]), now))
    if not rows:
        return 0
    from qa0_label.store.db import bulk_insert

    # Replaces rows of an older feature version (or a stale row the SQLite insert check found).
    conn.execute(delete(table_of(EBDetailFeatures)).where(_CACHE.eb_id.in_([r[0] for r in rows])))

    return bulk_insert(
        conn,
        "eb_detail_features",
        ["eb_id", "feature_version", "n_rows", "max_detail_id", "values_json", "computed_at"],
        rows,
    )


def _cache_time(conn: Connection) -> object:
    from qa0_label.store.models import utcnow

    now = utcnow()
    if conn.dialect.name == "sqlite":
        return now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return now.replace(tzinfo=None)


def ensure_detail_cache(
    *, engine: Engine, eb_ids: Sequence[int] | None = None, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Fill the cache for EBs with details but no valid cache row (missing, other version, details changed).

    Aggregation reads run outside any write lock; each chunk's rows are written in a short write
    transaction after re-checking the details did not change meanwhile. Returns counts for the report.
    """
    from qa0_label.store.db import session_scope

    with session_scope(engine) as s:
        have = set(cached_detail_features(session=s, eb_ids=eb_ids).index.tolist())
        todo = [e for e in detail_eb_ids(session=s, eb_ids=eb_ids) if e not in have]
    stored = 0
    for start in range(0, len(todo), CACHE_CHUNK_EBS):
        chunk = todo[start : start + CACHE_CHUNK_EBS]
        with session_scope(engine) as s:
            sig = detail_signatures(s.connection(), chunk)
            det = detail_features(*_detail_aggregates_sql(s, chunk))
        with session_scope(engine, write=True) as s:
            stored += store_detail_cache(s.connection(), det, sig)
        if progress:
            progress(min(start + CACHE_CHUNK_EBS, len(todo)), len(todo))
    return {"cached": len(have), "computed": len(todo), "stored": stored}
