"""Why the model thinks so: per-EB contributions of each feature, in words an AoD uses.

Attribution: SHAP's TreeExplainer on the tree ensembles inside the served model, with ``approximate=True``:
the exact path contributions of each tree (Saabas; "treeinterpreter"): every split on an EB's decision path
credits its feature with the change of the tree's expected output, so the contributions plus the base value add
up exactly to the model's raw output for that EB (tests check this). Exact TreeSHAP (Shapley values) measured
0.15 ms per EB and model output here, i.e. 15 s for a 100k pool, over the `predict --json` budget on its own;
path contributions cost 0.012 ms.

What is explained is the model's "worse than" output: for the ordinal model (one binary model per threshold)
the log-odds of "not Pass" (towards SemiPass or Fail) and of "Fail"; for a plain multi-class tree model the
Pass column with its sign flipped (towards not-Pass) and the Fail column. Positive = pushes towards Fail or
SemiPass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa0_label.review import limits

TOP_N = 3
MIN_CONTRIBUTION = 0.2
"""Contributions below this (log-odds of the explained output) are not worth a sentence."""


def _inner(model: Any) -> tuple[Any, Callable[[np.ndarray], np.ndarray]]:
    """(the final classifier, the transform that turns raw features into its input) of a learner or pipeline."""
    est = getattr(model, "estimator", model)  # a modAL ActiveLearner wraps the pipeline
    if hasattr(est, "steps") and len(est.steps) == 1:
        return est.steps[-1][1], (lambda X: np.asarray(X, dtype=float))
    if hasattr(est, "steps"):
        head = est[:-1]
        return est.steps[-1][1], (lambda X: np.asarray(head.transform(X), dtype=float))
    return est, (lambda X: np.asarray(X, dtype=float))


def _tree_explainer(model: Any) -> Any:
    import shap

    return shap.TreeExplainer(model)


def contributions(model: Any, X: np.ndarray, *, only: set[str] | None = None) -> dict[str, np.ndarray]:
    """{"not_pass": (n, f), "fail": (n, f)} per-feature contributions towards those outcomes (missing if unknown).

    only: compute just these outputs. Raises TypeError when the model holds no tree ensemble SHAP can read.
    """
    clf, transform = _inner(model)
    Xt = transform(np.asarray(X, dtype=float))
    out: dict[str, np.ndarray] = {}
    order = getattr(clf, "present_order_", None)
    if order is not None and hasattr(clf, "estimators_"):
        # MonotoneOrdinalClassifier: estimator k says "worse than order[k + 1]".
        order = [str(v) for v in order]
        for k, est in enumerate(clf.estimators_):
            worse_than = order[k + 1]
            key = "not_pass" if worse_than == "Pass" else ("fail" if order[k] == "Fail" and k == 0 else None)
            if key is None or (only is not None and key not in only):
                continue
            out[key] = np.asarray(_explainer(est).shap_values(Xt, approximate=True), dtype=float)
        return out
    try:
        sv = np.asarray(_explainer(clf).shap_values(Xt, approximate=True), dtype=float)
    except Exception as exc:  # noqa: BLE001 - anything SHAP cannot read
        raise TypeError(f"cannot explain {type(clf).__name__}: {exc}") from exc
    classes = [str(c) for c in getattr(clf, "classes_", [])]
    if sv.ndim == 3:
        if "Pass" in classes:
            out["not_pass"] = -sv[:, :, classes.index("Pass")]
        if "Fail" in classes:
            out["fail"] = sv[:, :, classes.index("Fail")]
    elif sv.ndim == 2 and len(classes) == 2:
        # A binary model's output is its second class.
        out["not_pass"] = -sv if classes[1] == "Pass" else sv
    return out


_explainers: dict[int, Any] = {}


def _explainer(est: Any) -> Any:
    # Building one costs ~20 ms (it copies the trees): one per fitted estimator object in this process.
    key = id(est)
    hit = _explainers.get(key)
    if hit is None or hit[0] is not est:
        if len(_explainers) > 16:
            _explainers.clear()
        hit = _explainers[key] = (est, _tree_explainer(est))
    return hit[1]


def target_for(proba: np.ndarray) -> np.ndarray:
    """Which output explains each EB: "fail" where Fail is the most probable value, else "not_pass"."""
    proba = np.asarray(proba, dtype=float)
    return np.where(proba.argmax(axis=1) == 2, "fail", "not_pass")


def top_reasons(
    model: Any,
    X: np.ndarray,
    features: Sequence[str],
    proba: np.ndarray,
    *,
    n: int = TOP_N,
    chunk: int = 20_000,
) -> list[list[dict[str, Any]]]:
    """Per EB, the n features pushing it hardest towards Fail or SemiPass, each with a sentence for an AoD."""
    X = np.asarray(X, dtype=float)
    names = [str(f) for f in features]
    band_col = names.index("band") if "band" in names else None
    targets = target_for(proba)
    out: list[list[dict[str, Any]]] = []
    for start in range(0, len(X), chunk):
        part = X[start : start + chunk]
        tgt = targets[start : start + chunk]
        fail_rows = np.flatnonzero(tgt == "fail")
        contrib = contributions(model, part, only={"not_pass"})
        if "not_pass" not in contrib:
            out.extend([] for _ in range(len(part)))
            continue
        C = contrib["not_pass"]
        towards = np.full(len(part), "SemiPass or Fail", dtype=object)
        if len(fail_rows):
            fail = contributions(model, part[fail_rows], only={"fail"}).get("fail")
            if fail is not None:
                C = C.copy()
                C[fail_rows] = fail
                towards[fail_rows] = "Fail"
        k = min(n, C.shape[1])
        # The k largest per row without sorting every row (100k EBs x ~50 features).
        top = np.argpartition(-C, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(C, top, axis=1)
        order = np.argsort(-vals, axis=1)
        top, vals = np.take_along_axis(top, order, axis=1), np.take_along_axis(vals, order, axis=1)
        keep = vals > _min_contribution(model)
        rows_with = np.flatnonzero(keep[:, 0])
        reasons: list[list[dict[str, Any]]] = [[] for _ in range(len(part))]
        # Python floats and ints once per chunk: the per-reason work below is the cost at 100k EBs.
        top_l, vals_l, keep_l = top.tolist(), vals.tolist(), keep.tolist()
        for i in rows_with.tolist():
            row = part[i]
            band = row[band_col] if band_col is not None else None
            towards_i = towards[i]
            these = []
            for j, w_, ok in zip(top_l[i], vals_l[i], keep_l[i]):
                if not ok:
                    break
                v = float(row[j])
                finite = math.isfinite(v)
                name = names[j]
                these.append(
                    {
                        "feature": name,
                        "value": round(v, 4) if finite else None,
                        "towards": towards_i,
                        "weight": round(w_, 3),
                        "text": _sentence(name, v, band) if finite else f"{LABELS.get(name, name)}: not measured",
                    }
                )
            reasons[i] = these
        out.extend(reasons)
    return out


def _min_contribution(model: Any) -> float:
    # Gradient boosting explains log-odds; a forest explains probabilities (a tenth of the scale).
    clf, _ = _inner(model)
    margin = hasattr(clf, "present_order_") or type(clf).__name__.startswith("HistGradientBoosting")
    return MIN_CONTRIBUTION if margin else MIN_CONTRIBUTION / 10


def global_importance(
    model: Any, X: np.ndarray, features: Sequence[str], *, sample: int = 3000, seed: int = 0
) -> list[dict[str, Any]]:
    """Most relevant parameters overall: mean |contribution| towards not-Pass, and which way a higher value pushes."""
    X = np.asarray(X, dtype=float)
    if len(X) > sample:
        X = X[np.random.default_rng(seed).choice(len(X), sample, replace=False)]
    c = contributions(model, X).get("not_pass")
    if c is None or len(X) == 0:
        return []
    rows = []
    for j, name in enumerate(features):
        col, phi = X[:, j], c[:, j]
        ok = np.isfinite(col)
        strength = float(np.mean(np.abs(phi)))
        direction = 0.0
        if ok.sum() > 2 and np.std(col[ok]) > 0 and np.std(phi[ok]) > 0:
            direction = float(np.corrcoef(col[ok], phi[ok])[0, 1])
        rows.append(
            {
                "feature": str(name),
                "label": LABELS.get(str(name), str(name)),
                "importance": round(strength, 4),
                "direction": "higher is worse"
                if direction > 0.1
                else "higher is better"
                if direction < -0.1
                else "mixed",
                "correlation": round(direction, 3) if math.isfinite(direction) else 0.0,
            }
        )
    return sorted(rows, key=lambda r: -r["importance"])


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, 4) if math.isfinite(f) else None


LABELS: dict[str, str] = {
    "pwv_over_limit": "PWV vs the band's limit",
    "tau_over_limit": "opacity vs the band's limit",
    "pwv_mm": "PWV",
    "elevation_deg": "elevation",
    "airmass": "airmass",
    "n_antennas": "antennas",
    "n_antennas_frac": "antennas vs the array's usual",
    "good_antennas_frac": "good antennas vs the array's usual",
    "dead_antennas": "dead antennas",
    "dead_frac": "share of dead antennas",
    "tsys_outlier_antennas": "antennas with high Tsys",
    "tsys_outlier_frac": "share of antennas with high Tsys",
    "tsys_max_ratio": "worst antenna Tsys vs median",
    "tsys_spike_ratio": "Tsys spike in one scan",
    "tsys_over_expected": "Tsys vs expected",
    "tsys_median_k": "median Tsys",
    "phase_rms_deg": "phase RMS",
    "phase_jump_score": "phase jump",
    "flagged_fraction": "flagged data",
    "det_flag_frac": "flagged detail rows",
    "exec_fraction": "execution fraction",
    "bp_ripple_worst_db": "bandpass ripple (worst spw)",
    "bp_ripple_max_db": "bandpass ripple (peak)",
    "abs_flux_vs_neighbours_log": "flux vs the source's neighbouring EBs",
    "flux_vs_neighbours_log": "flux vs the source's neighbouring EBs",
    "abs_flux_vs_history_sigma": "flux vs the source's history",
    "flux_vs_history_log": "flux vs the source's history",
    "abs_flux_vs_expected_log": "flux vs catalogue",
    "flux_vs_expected_log": "flux vs catalogue",
    "flux_vs_expected_sigma": "flux vs catalogue (sigma)",
    "spw_powerlaw_scatter_pct": "spw fluxes off a power law",
    "abs_alpha_vs_source": "spectral index vs the source's usual",
    "alpha_vs_source": "spectral index vs the source's usual",
    "amp_ant_scatter": "amplitude scatter between antennas",
    "amp_min_ratio": "weakest antenna amplitude",
    "scan_amp_spike": "amplitude jump in one scan",
    "scan_amp_min_ratio": "weakest scan amplitude",
    "spw_amp_min_ratio": "weakest spw amplitude",
    "worst_limit_ratio": "worst AoD limit",
    "n_limits_exceeded": "AoD limits crossed",
    "flux_snr": "flux S/N",
    "spectral_index_err": "spectral index error",
}


def _band_limit(band: Any) -> str:
    b = _num(band)
    return f"the Band {int(b)} limit" if b is not None else "the band's limit"


_TSYS = f"{limits.TSYS_OUTLIER_RATIO:g}x median"
TEMPLATES: dict[str, Callable[[float, Any], str]] = {
    "pwv_over_limit": lambda x, b: f"PWV {x:.1f}x {_band_limit(b)}",
    "tau_over_limit": lambda x, b: f"opacity {x:.1f}x {_band_limit(b)}",
    "pwv_mm": lambda x, b: f"PWV {x:.2f} mm",
    "elevation_deg": lambda x, b: f"elevation {x:.0f}°",
    "airmass": lambda x, b: f"airmass {x:.2f}",
    "n_antennas": lambda x, b: f"{x:.0f} antennas",
    "n_antennas_frac": lambda x, b: f"{x:.0%} of the array's usual antennas",
    "good_antennas_frac": lambda x, b: f"only {x:.0%} of the usual antennas are good",
    "dead_antennas": lambda x, b: f"{x:.0f} dead antennas (amplitude < 20% of the array median)",
    "dead_frac": lambda x, b: f"{x:.0%} of antennas dead",
    "tsys_outlier_antennas": lambda x, b: f"{x:.0f} antennas with Tsys > {_TSYS}",
    "tsys_outlier_frac": lambda x, b: f"{x:.0%} of antennas with Tsys > {_TSYS}",
    "tsys_max_ratio": lambda x, b: f"worst antenna Tsys {x:.1f}x the median",
    "tsys_spike_ratio": lambda x, b: f"Tsys spike {x:.1f}x the EB's median in one scan",
    "tsys_over_expected": lambda x, b: f"Tsys {x:.1f}x what band, PWV and elevation predict",
    "tsys_median_k": lambda x, b: f"median Tsys {x:.0f} K",
    "phase_rms_deg": lambda x, b: f"phase RMS {x:.0f}°",
    "phase_jump_score": lambda x, b: f"phase jump score {x:.2f}",
    "flagged_fraction": lambda x, b: f"{x:.0%} of the data flagged",
    "det_flag_frac": lambda x, b: f"{x:.0%} of detail rows flagged",
    "exec_fraction": lambda x, b: f"execution fraction {x:.2f}",
    "bp_ripple_worst_db": lambda x, b: f"bandpass ripple {x:.1f} dB in the worst spw",
    "bp_ripple_max_db": lambda x, b: f"bandpass ripple peak {x:.1f} dB",
    "abs_flux_vs_neighbours_log": lambda x, b: f"flux {math.exp(x):.2f}x off the source's neighbouring EBs",
    "flux_vs_neighbours_log": lambda x, b: f"flux {math.exp(x):.2f}x the source's neighbouring EBs",
    "flux_vs_history_log": lambda x, b: f"flux {math.exp(x):.2f}x the source's recent history",
    "abs_flux_vs_history_sigma": lambda x, b: f"flux {x:.1f} sigma off the source's recent history",
    "flux_vs_expected_log": lambda x, b: f"flux {math.exp(x):.2f}x the catalogue value",
    "abs_flux_vs_expected_log": lambda x, b: f"flux {math.exp(x):.2f}x off the catalogue value",
    "flux_vs_expected_sigma": lambda x, b: f"flux {x:+.1f} sigma from the catalogue",
    "spw_powerlaw_scatter_pct": lambda x, b: f"spw fluxes scatter {x:.0f}% around a power law",
    "abs_alpha_vs_source": lambda x, b: f"spectral index {x:.2f} off the source's usual",
    "alpha_vs_source": lambda x, b: f"spectral index {x:+.2f} from the source's usual",
    "amp_ant_scatter": lambda x, b: f"amplitude scatter between antennas {x:.0%}",
    "amp_min_ratio": lambda x, b: f"weakest antenna at {x:.0%} of the median amplitude",
    "scan_amp_spike": lambda x, b: f"amplitude jump {x:.2f} in one scan",
    "scan_amp_min_ratio": lambda x, b: f"weakest scan at {x:.0%} of the median amplitude",
    "spw_amp_min_ratio": lambda x, b: f"weakest spw at {x:.0%} of the median amplitude",
    "worst_limit_ratio": lambda x, b: f"worst AoD limit at {x:.1f}x its 'bad' level",
    "n_limits_exceeded": lambda x, b: f"{x:.0f} AoD limits crossed",
    "flux_snr": lambda x, b: f"flux S/N {x:.0f}",
    "spectral_index": lambda x, b: f"spectral index {x:+.2f}",
    "spectral_index_err": lambda x, b: f"spectral index error {x:.2f}",
    "det_n_antennas": lambda x, b: f"{x:.0f} antennas with data",
    "phase_spread_median": lambda x, b: f"median phase spread {x:.2f} per antenna",
    "spw_alpha_fit": lambda x, b: f"spectral index {x:+.2f} across the spws",
    "array_12m": lambda x, b: "12 m array" if x >= 0.5 else "7 m array",
}
"""Sentence per feature from its value (x) and the EB's band (b)."""


def _sentence(name: str, v: float, band: Any) -> str:
    fn = TEMPLATES.get(name)
    if fn is None:
        return f"{LABELS.get(name, name)} = {v:g}"
    try:
        return fn(v, band)
    except (OverflowError, ValueError):
        return f"{LABELS.get(name, name)} = {v:g}"


def describe(name: str, value: Any, row: dict[str, Any] | None = None) -> str:
    """One sentence for an AoD about a feature's value on this EB ("PWV 1.9x the Band 7 limit")."""
    v = _num(value)
    if v is None:
        return f"{LABELS.get(name, name)}: not measured"
    fn = TEMPLATES.get(name)
    if fn is None:
        return f"{LABELS.get(name, name)} = {v:g}"
    try:
        return fn(v, (row or {}).get("band"))
    except (OverflowError, ValueError):
        return f"{LABELS.get(name, name)} = {v:g}"


@functools.lru_cache(maxsize=4)
def _load_features(path: str, mtime: float) -> tuple[np.ndarray, dict[int, int]]:
    with np.load(path) as data:
        X, ids = np.asarray(data["X"], dtype=np.float32), np.asarray(data["eb_ids"], dtype=np.int64)
    return X, {int(e): i for i, e in enumerate(ids)}


def stored_features(path: str | Path) -> tuple[np.ndarray, dict[int, int]]:
    """A run's saved pool feature matrix and {eb_id: row} (cached per process while the file is unchanged)."""
    p = Path(path)
    return _load_features(str(p), p.stat().st_mtime)
