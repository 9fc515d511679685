"""Selective prediction with a finite-sample guarantee: which EBs the model may decide alone at error rate alpha.

The model's prediction set for an EB is S_t = {values whose probability >= t} (the threshold sets of split
conformal prediction's LAC score). The EB is auto-decided only when S_t holds a single value, and that value is
the decision. The threshold t is chosen by Learn-then-Test (Angelopoulos et al. 2021), conformal risk control's
high-probability form, through MAPIE's ``MultiClassificationLTTController``: with probability >= 1 - delta over
the calibration labels, the error rate *among auto-decided EBs* is <= alpha. Plain split-conformal coverage
(P(y in S) >= 1 - alpha, marginally and on average over calibration sets) would not give that: its misses pile
up on the singletons, so the error of the auto-decisions could be alpha / coverage, and in about half of all
calibration draws above it.

Calibration uses cross-fitted (out-of-fold) probabilities of the labelled EBs: each came from a model that did not
train on that EB. A random share of them (CALIBRATION_SHARE) calibrates; the rest is kept back for the held-out
check the Model page shows (the empirical error of auto-decisions on consensus labels calibration did not use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mapie.risk_control import FWERProcedure, MultiClassificationLTTController, abstention_rate
from mapie.risk_control.risks import BinaryRisk
from numpy.typing import NDArray

CLASSES: tuple[str, ...] = ("Pass", "SemiPass", "Fail")
"""Column order of every probability array here (the same as learning.learner.CLASSES)."""

DEFAULT_ALPHA = 0.02
DEFAULT_DELTA = 0.10
"""The guarantee holds with probability >= 1 - delta over the calibration draw (0.9: 18 of 20 splits)."""
CALIBRATION_SHARE = 0.7
"""Share of the held-out labelled EBs that calibrate; the rest is the held-out check."""
ALPHA_GRID: tuple[float, ...] = tuple(round(0.005 * k, 3) for k in range(1, 21))
"""The coverage-vs-error curve: alpha 0.005, 0.010, ..., 0.100."""
THRESHOLDS: NDArray[np.float64] = np.geomspace(1e-4, 1.0 / 3.0, 96)
"""Candidate set thresholds t, most cautious first. With t <= 1/3 every set holds the most probable value, and
it is a singleton exactly when the second most probable value is below t."""


class AlphaError(ValueError):
    """An alpha outside (0, 0.5)."""


def check_alpha(alpha: float | str) -> float:
    """alpha as a float in (0, 0.5), else AlphaError."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise AlphaError(f"alpha must be a number in (0, 0.5), got {alpha!r}") from None
    if not (0.0 < a < 0.5) or not math.isfinite(a):
        raise AlphaError(f"alpha must be in (0, 0.5) (exclusive), got {alpha}")
    return a


def min_calibration_labels(alpha: float, delta: float = DEFAULT_DELTA) -> int:
    """Fewest decided calibration EBs a test starts with: enough to certify alpha with no error among them.

    Never fewer than for DEFAULT_ALPHA (114 at delta 0.1): with a loose alpha, the (1 - alpha)^n <= delta bound
    alone would start the fixed sequence on a dozen EBs, where one unlucky label stops it.
    """

    def zero_error(a: float) -> int:
        return int(math.ceil(math.log(delta) / math.log1p(-a)))

    return max(zero_error(alpha), zero_error(min(alpha, DEFAULT_ALPHA)))


def min_labelled(alpha: float, delta: float = DEFAULT_DELTA, share: float = CALIBRATION_SHARE) -> int:
    """Fewest labelled EBs whose calibration share reaches min_calibration_labels (if the model were sure of all)."""
    return int(math.ceil(min_calibration_labels(alpha, delta) / share))


def set_masks(proba: NDArray[np.float64], t: float) -> NDArray[np.bool_]:
    """Prediction sets at threshold t as a boolean (n, 3) mask in CLASSES order (never empty for t <= 1/3)."""
    proba = np.asarray(proba, dtype=float)
    mask = proba >= t
    top = proba.argmax(axis=1)
    mask[np.arange(len(proba)), top] = True
    return mask


def decide(proba: NDArray[np.float64], t: float | None) -> NDArray[np.object_]:
    """The auto-decision per EB at threshold t: the single value of its set, else None (needs an AoD)."""
    proba = np.asarray(proba, dtype=float)
    out = np.full(len(proba), None, dtype=object)
    if t is None or len(proba) == 0:
        return out
    mask = set_masks(proba, t)
    single = mask.sum(axis=1) == 1
    out[single] = np.asarray(CLASSES, dtype=object)[proba[single].argmax(axis=1)]
    return out


def _selective_predict(proba: NDArray[np.float64], t: float) -> NDArray[np.object_]:
    # MAPIE's convention for an abstention is NaN in the prediction array.
    d = decide(proba, float(t))
    return np.where(d == None, np.nan, d).astype(object)  # noqa: E711 - elementwise comparison


def _wrong(y_true: NDArray[Any], y_pred: NDArray[Any]) -> NDArray[np.bool_]:
    return np.asarray(y_pred.ravel() != y_true.ravel(), dtype=bool)


def _decided(y_true: NDArray[Any], y_pred: NDArray[Any]) -> NDArray[np.bool_]:
    return np.asarray(y_pred.ravel() == y_pred.ravel(), dtype=bool)  # False only for NaN (an abstention)


SELECTIVE_ERROR = BinaryRisk(risk_occurrence=_wrong, risk_condition=_decided, higher_is_better=False)
"""Error rate among the auto-decided EBs (a conditional risk; MAPIE tests it on the decided ones only)."""


class InOrder(FWERProcedure):
    """Fixed-sequence testing in the order given, from N_STARTS starting points, each at level delta / N_STARTS.

    Each start walks towards looser thresholds and stops at its first failure (Bauer 1991; MAPIE's
    FWERFixedSequenceTesting does the same, but MAPIE reorders the thresholds by the direction the calibration
    risk happens to move in, an order read from the data being tested). Our order is fixed a priori: a smaller
    t decides fewer, surer EBs. Several starts keep one noisy early test (few EBs decided) from stopping all.
    """

    def __init__(self, n_starts: int = 1) -> None:
        self.n_starts = n_starts

    def run(self, p_values: NDArray[Any], delta: float) -> NDArray[np.int_]:
        """Indices of the thresholds certified at family-wise level delta."""
        p = np.asarray(p_values, dtype=float)
        k = max(1, min(self.n_starts, len(p)))
        level = delta / k
        valid: set[int] = set()
        for start in (i * len(p) // k for i in range(k)):
            j = start
            while j < len(p) and p[j] <= level:
                valid.add(j)
                j += 1
        return np.asarray(sorted(valid), dtype=np.int_)

    # The step-wise interface of FWERProcedure is not used: run() above is the whole procedure.
    def _init_state(self, n_lambdas: int, delta: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def _select_next_hypothesis(self, p_values: NDArray[Any]) -> int | None:  # pragma: no cover
        raise NotImplementedError

    def _local_significance_levels(self) -> NDArray[Any]:  # pragma: no cover
        raise NotImplementedError

    def _update_on_reject(self, hypothesis_index: int) -> None:  # pragma: no cover
        raise NotImplementedError


N_STARTS = 1


def ltt_threshold(
    proba: NDArray[np.float64],
    y: NDArray[Any],
    *,
    alpha: float,
    delta: float = DEFAULT_DELTA,
    n_starts: int = N_STARTS,
) -> float | None:
    """The largest set threshold t whose auto-decisions' error is <= alpha with probability >= 1 - delta (LTT)."""
    y = np.asarray(y, dtype=object)
    proba = np.asarray(proba, dtype=float)
    # A threshold that decides fewer EBs than could ever certify alpha is a certain failure, and fixed-sequence
    # testing stops at its first failure: start the sequence where enough EBs are decided. This reads the
    # probabilities only, never the labels, so the order is still fixed before the labels are looked at.
    second = np.sort(proba, axis=1)[:, -2] if len(y) else np.zeros(0)
    decided = (second[None, :] < THRESHOLDS[:, None]).sum(axis=1)
    grid = THRESHOLDS[decided >= min_calibration_labels(alpha, delta / n_starts)]
    if len(y) == 0 or len(grid) == 0:
        return None
    controller = MultiClassificationLTTController(
        predict_function=_selective_predict,
        risks=[SELECTIVE_ERROR],
        target_level=[float(alpha)],
        confidence_level=1.0 - float(delta),
        best_predict_param_choice=abstention_rate,  # among the certified thresholds, decide the most EBs
        list_predict_params=grid.reshape(-1, 1),  # 2-D: predict_function gets t, returns the decisions
        classes=np.asarray(CLASSES, dtype=object),
        fwer_method=InOrder(n_starts),
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MAPIE warns when no threshold is certified; we report it ourselves
        controller.calibrate(np.asarray(proba, dtype=float), y)
    best = controller.best_predict_param
    if best is None:
        return None
    return float(best[0] if isinstance(best, tuple) else best)


def error_interval(n_wrong: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Exact (Clopper-Pearson) interval of an error rate seen as N_WRONG of N; None when N is 0.

    The held-out check is a sample of a few hundred EBs: a lead reading "8 % at alpha 5 %" needs to see how
    far a sample that size can wander from the true rate.
    """
    from scipy.stats import beta

    if n <= 0:
        return None
    tail = (1.0 - level) / 2.0
    low = 0.0 if n_wrong == 0 else float(beta.ppf(tail, n_wrong, n - n_wrong + 1))
    high = 1.0 if n_wrong == n else float(beta.ppf(1.0 - tail, n_wrong + 1, n - n_wrong))
    return low, high


def _error_stats(decisions: NDArray[np.object_], y: NDArray[Any]) -> dict[str, Any]:
    auto = decisions != None  # noqa: E711
    n_auto = int(auto.sum())
    wrong = auto & (decisions != np.asarray(y, dtype=object))
    per_class = {}
    for c in CLASSES:
        as_c = decisions == c
        per_class[c] = {"n_auto": int(as_c.sum()), "n_wrong": int((as_c & wrong).sum())}
    return {
        "n": int(len(y)),
        "n_auto": n_auto,
        "n_wrong": int(wrong.sum()),
        "error": (float(wrong.sum()) / n_auto) if n_auto else None,
        "error_interval": error_interval(int(wrong.sum()), n_auto),
        "coverage": (n_auto / len(y)) if len(y) else 0.0,
        "per_class": per_class,
    }


@dataclass
class Calibration:
    """One calibration: the split, the certified threshold per alpha, and the held-out check of each."""

    alpha: float
    delta: float
    n_labelled: int
    cal_index: NDArray[np.int64]
    check_index: NDArray[np.int64]
    threshold: float | None
    curve: list[dict[str, Any]] = field(default_factory=list)
    check: dict[str, Any] = field(default_factory=dict)
    why_none: str | None = None


def split(n: int, *, seed: int, share: float = CALIBRATION_SHARE) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """A random (calibration, check) partition of range(n)."""
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * share))
    return np.sort(order[:k]), np.sort(order[k:])


def why_nothing(alpha: float, delta: float, n_cal: int) -> str:
    """Why no EB is auto-decided: too few held-out labels, or none of the thresholds could be certified."""
    need = min_calibration_labels(alpha, delta)
    if n_cal < need:
        return (
            f"too few held-out labels to calibrate: alpha {alpha:g} needs at least {need} calibration labels "
            f"(about {min_labelled(alpha, delta)} labelled EBs, of which {CALIBRATION_SHARE:.0%} calibrate) "
            f"and there are {n_cal}"
        )
    return (
        f"no threshold could be certified at alpha {alpha:g}: among the {n_cal} calibration labels, the EBs the "
        f"model is surest of still disagree with the consensus too often (at least {need} sure EBs with "
        "an error rate well below alpha are needed); more labels or a lower-noise consensus will help"
    )


def calibrate(
    oof_proba: NDArray[np.float64],
    y: NDArray[Any],
    *,
    alpha: float = DEFAULT_ALPHA,
    delta: float = DEFAULT_DELTA,
    seed: int = 0,
    share: float = CALIBRATION_SHARE,
    alphas: tuple[float, ...] = ALPHA_GRID,
    pool_proba: NDArray[np.float64] | None = None,
) -> Calibration:
    """Certify a threshold for alpha (and every alpha of the curve) on a random share of the held-out labels.

    oof_proba: out-of-fold probabilities of the labelled EBs (CLASSES order); y: their consensus values;
    pool_proba: the served model's probabilities over the unlabelled pool, for the coverage of each alpha.
    """
    alpha = check_alpha(alpha)
    oof_proba = np.asarray(oof_proba, dtype=float)
    y = np.asarray(y, dtype=object)
    cal, check = split(len(y), seed=seed, share=share)
    out = Calibration(alpha=alpha, delta=delta, n_labelled=len(y), cal_index=cal, check_index=check, threshold=None)
    wanted = sorted(set(alphas) | {alpha})
    for a in wanted:
        t = ltt_threshold(oof_proba[cal], y[cal], alpha=a, delta=delta) if len(cal) else None
        held = _error_stats(decide(oof_proba[check], t), y[check])
        row: dict[str, Any] = {
            "alpha": a,
            "threshold": t,
            "check_error": held["error"],
            "check_auto": held["n_auto"],
            "check_wrong": held["n_wrong"],
        }
        if pool_proba is not None:
            row.update(pool_counts(decide(pool_proba, t)))
        out.curve.append(row)
        if a == alpha:
            out.threshold, out.check = t, held
    if out.threshold is None:
        out.why_none = why_nothing(alpha, delta, len(cal))
    return out


def pool_counts(decisions: NDArray[np.object_]) -> dict[str, Any]:
    """Auto-Pass / auto-SemiPass / auto-Fail / needs-an-AoD counts and the auto-decided share."""
    n = len(decisions)
    counts = {f"auto_{c}": int((decisions == c).sum()) for c in CLASSES}
    auto = sum(counts.values())
    return {**counts, "needs_aod": n - auto, "pool": n, "coverage": (auto / n) if n else 0.0}
