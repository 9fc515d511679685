"""Auto-QA0 calibration (Learn-then-Test through MAPIE) on synthetic scores with a known error structure."""

from __future__ import annotations

import numpy as np
import pytest

from qa0_label.automation import calibrate as cal


def _scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated synthetic probabilities: the true value is drawn from each row's own distribution."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3.0, (n, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.asarray([rng.choice(cal.CLASSES, p=row) for row in p], dtype=object)
    return p, y


def test_auto_decisions_are_exactly_the_singleton_sets() -> None:
    p, _ = _scores(500, 0)
    for t in (0.001, 0.05, 0.2, 1 / 3):
        d = cal.decide(p, t)
        sets = cal.set_masks(p, t)
        assert ((d != None) == (sets.sum(axis=1) == 1)).all()  # noqa: E711
        single = d != None  # noqa: E711
        assert (d[single] == np.asarray(cal.CLASSES, dtype=object)[p[single].argmax(axis=1)]).all()
    assert (cal.decide(p, None) == None).all()  # noqa: E711


def test_guarantee_holds_over_many_calibration_draws() -> None:
    # Fresh calibration and test data per draw: the auto-decisions' true error must be <= alpha in >= 90%.
    alpha, ok, decided = 0.05, 0, 0
    for seed in range(20):
        p_cal, y_cal = _scores(1500, 100 + seed)
        t = cal.ltt_threshold(p_cal, y_cal, alpha=alpha, delta=0.1)
        p_test, y_test = _scores(20000, 900 + seed)
        d = cal.decide(p_test, t)
        auto = d != None  # noqa: E711
        if auto.any():
            decided += 1
        err = float((d[auto] != y_test[auto]).mean()) if auto.any() else 0.0
        ok += err <= alpha
    assert decided >= 18  # the method decides something, the check is not vacuous
    assert ok >= 18


def test_a_looser_alpha_never_decides_fewer() -> None:
    p, y = _scores(2000, 5)
    c = cal.calibrate(p, y, alpha=0.05, seed=1, pool_proba=p)
    cov = [r["coverage"] for r in c.curve]
    assert cov == sorted(cov)
    assert [r["alpha"] for r in c.curve][:3] == [0.005, 0.01, 0.015]
    assert cov[-1] > 0.3


def test_too_few_labels_decide_nothing_and_say_how_many() -> None:
    p, y = _scores(60, 1)
    c = cal.calibrate(p, y, alpha=0.02, seed=0, pool_proba=p)
    assert c.threshold is None
    need = cal.min_calibration_labels(0.02, 0.1)
    assert need == 114  # (1 - 0.02)^114 <= 0.1 < (1 - 0.02)^113
    assert "too few held-out labels" in (c.why_none or "") and str(need) in (c.why_none or "")
    assert (cal.decide(p, c.threshold) == None).all()  # noqa: E711


def test_noisy_labels_block_a_tight_alpha() -> None:
    # 5 % of the labels are wrong whatever the score: alpha 0.02 cannot be certified, a loose alpha can.
    p, y = _scores(3000, 2)
    rng = np.random.default_rng(3)
    flip = rng.random(len(y)) < 0.05
    y = y.copy()
    y[flip] = [cal.CLASSES[(cal.CLASSES.index(v) + 1) % 3] for v in y[flip]]
    assert cal.ltt_threshold(p, y, alpha=0.02) is None
    assert cal.ltt_threshold(p, y, alpha=0.2) is not None


def test_split_is_a_partition() -> None:
    a, b = cal.split(101, seed=4)
    assert len(a) == 71 and len(b) == 30
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(101))


@pytest.mark.parametrize("bad", [0, 0.5, -0.1, 1.2, "x", float("nan"), None])
def test_alpha_outside_the_open_interval_is_refused(bad: object) -> None:
    with pytest.raises(cal.AlphaError):
        cal.check_alpha(bad)  # type: ignore[arg-type]


def test_in_order_fixed_sequence_stops_at_the_first_failure() -> None:
    from mapie.risk_control import control_fwer

    p = np.array([0.01, 0.02, 0.5, 0.01])
    assert control_fwer(p, 0.1, fwer_method=cal.InOrder()).tolist() == [0, 1]


def test_error_interval_matches_statsmodels_clopper_pearson() -> None:
    from statsmodels.stats.proportion import proportion_confint

    from qa0_label.automation.calibrate import error_interval

    for k, n in ((0, 40), (3, 138), (11, 138), (50, 50), (1, 1)):
        low, high = error_interval(k, n)
        ref_low, ref_high = proportion_confint(k, n, alpha=0.05, method="beta")
        assert low == pytest.approx(ref_low, abs=1e-9) and high == pytest.approx(ref_high, abs=1e-9), (k, n)
    assert error_interval(0, 0) is None
