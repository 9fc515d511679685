"""Label efficiency of a query strategy against random order, replayed on fully labelled data.

For every seed: split the data into a pool and a held-out test set (stratified); start both runs from the
same small random labelled set; then, a batch at a time, retrain the estimator we ship on the labels so far,
evaluate macro-F1 on the held-out set, and add the next batch chosen by the strategy (or in random order).
`labels needed` is the first label count at which macro-F1 reaches 98 % of what the same estimator reaches
trained on the whole pool and is still there one batch later. label_efficiency = median over seeds of (random's labels needed) / (the
strategy's labels needed).

Datasets: ``qa0-sim`` (simulate.generate + features.features_from_frames, labels = the simulator's reference
QA0) and scikit-learn's bundled ``breast_cancer``, ``wine`` and ``digits`` (no download).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, recall_score
from sklearn.model_selection import train_test_split

from qa0_label.learning import learner as lrn
from qa0_label.learning import strategies as strat

Progress = Callable[[float, str], None]

DATASETS: tuple[str, ...] = ("qa0-sim", "breast_cancer", "wine", "digits")
TARGET_SHARE = 0.98
"""A run has 'reached' the full-pool model once its macro-F1 is at least this share of it."""
QA0_SIM_N = 5000
QA0_SIM_SEED = 2024


@dataclass(frozen=True)
class Plan:
    """How one dataset is replayed."""

    n_initial: int
    batch: int
    max_iter: int
    estimator: str
    test_size: float = 0.25


PLANS: dict[str, Plan] = {
    # qa0-sim mirrors the product: retrain every 25 labels (settings.auto_retrain_every).
    # qa0-sim replays the model we ship (ordinal, monotone gradient boosting). The scikit-learn datasets check
    # that the strategies carry over to other data; they use a random forest, whose vote shares give graded
    # probabilities from few labels (estimator="multiclass" replays them with plain gradient boosting).
    "qa0-sim": Plan(n_initial=25, batch=25, max_iter=100, estimator="ordinal"),
    "breast_cancer": Plan(n_initial=10, batch=5, max_iter=60, estimator="forest"),
    "wine": Plan(n_initial=6, batch=3, max_iter=60, estimator="forest"),
    "digits": Plan(n_initial=20, batch=10, max_iter=40, estimator="forest"),
}


@lru_cache(maxsize=4)
def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(X, y, class names) of a benchmark dataset; qa0-sim labels are the reference QA0 values."""
    if name == "qa0-sim":
        from qa0_label.learning.features import features_from_frames
        from qa0_label.sim.simulate import generate

        batch = generate(n=QA0_SIM_N, seed=QA0_SIM_SEED)
        X = features_from_frames(batch.ebs, batch.details)
        truth = batch.outcomes.set_index("eb")["value"]
        y = truth.reindex(X.index).to_numpy(dtype=object)
        return X.to_numpy(dtype=float), y, tuple(str(c) for c in X.columns)
    from sklearn import datasets

    loaders = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine, "digits": datasets.load_digits}
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    data = loaders[name]()
    return (
        np.asarray(data.data, dtype=float),
        np.asarray(data.target),
        tuple(str(c) for c in getattr(data, "feature_names", [])),
    )


def _fit_eval(
    X: np.ndarray,
    y: np.ndarray,
    idx: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    classes: np.ndarray,
    *,
    max_iter: int,
    seed: int,
    fail_label: Any,
    names: tuple[str, ...] | None,
    kind: str,
) -> tuple[Any, float, float | None]:
    yl = y[idx]
    if len(set(yl.tolist())) < 2:
        # One class so far: the model predicts it everywhere.
        pred = np.full(len(y_test), yl[0], dtype=y_test.dtype)
        model = None
    else:
        model = lrn.make_estimator(
            random_state=seed, max_iter=max_iter, n_samples=len(idx), feature_names=names, kind=kind
        )
        model.fit(X[idx], yl)
        pred = model.predict(X_test)
    f1 = float(f1_score(y_test, pred, labels=classes, average="macro", zero_division=0))
    fail = None
    if fail_label is not None and (y_test == fail_label).any():
        fail = float(recall_score(y_test, pred, labels=[fail_label], average="macro", zero_division=0))
    return model, f1, fail


def _proba(model: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    out = np.full((X.shape[0], len(classes)), 1.0 / len(classes))
    if model is None or X.shape[0] == 0:
        return out
    p = model.predict_proba(X)
    out[:] = 0.0
    for j, c in enumerate(model.classes_):
        out[:, int(np.flatnonzero(classes == c)[0])] = p[:, j]
    return out


def _evaluate(
    X: np.ndarray,
    y: np.ndarray,
    labelled: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    classes: np.ndarray,
    *,
    plan: Plan,
    seed: int,
    fail_label: Any,
    names: tuple[str, ...] | None,
) -> tuple[Any, tuple[int, float, float | None, float | None]]:
    """Fit on the labelled rows; (model, (n labels, held-out macro-F1, held-out Fail recall, pool Fails caught))."""
    idx = np.flatnonzero(labelled)
    model, f1, fail = _fit_eval(
        X,
        y,
        idx,
        X_test,
        y_test,
        classes,
        max_iter=plan.max_iter,
        seed=seed,
        fail_label=fail_label,
        names=names,
        kind=plan.estimator,
    )
    pool_fail = None
    if fail_label is not None and (y == fail_label).any():
        # Fails the system knows about: the labelled ones plus those the model flags among the rest.
        unl = np.flatnonzero(~labelled)
        flagged = np.zeros(y.shape[0], dtype=bool)
        if model is not None and unl.size:
            flagged[unl] = model.predict(X[unl]) == fail_label
        caught = (labelled | flagged) & (y == fail_label)
        pool_fail = float(caught.sum() / (y == fail_label).sum())
    return model, (int(idx.size), f1, fail, pool_fail)


def _replay(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    classes: np.ndarray,
    init: np.ndarray,
    *,
    strategy: str,
    plan: Plan,
    target: float,
    seed: int,
    fail_label: Any,
    stop_at: int,
    names: tuple[str, ...] | None,
) -> dict[str, Any]:
    """Labelling with a strategy: retrain every batch; stops at the target once at least stop_at labels are in."""
    rng = np.random.default_rng(seed + 7919)
    n = X.shape[0]
    labelled = np.zeros(n, dtype=bool)
    labelled[init] = True
    curve = []
    needed: int | None = None
    candidate: int | None = None
    while True:
        model, point = _evaluate(
            X, y, labelled, X_test, y_test, classes, plan=plan, seed=seed, fail_label=fail_label, names=names
        )
        curve.append(point)
        unl = np.flatnonzero(~labelled)
        if needed is None:
            # Reached = at the target now and still at it one batch later (one lucky test split is not enough).
            if point[1] >= target:
                if candidate is not None or unl.size == 0:
                    needed = candidate if candidate is not None else point[0]
                else:
                    candidate = point[0]
            else:
                candidate = None
        if (needed is not None and point[0] >= stop_at) or unl.size == 0:
            break
        k = min(plan.batch, unl.size)
        proba = _proba(model, X[unl], classes)
        labelled[unl[strat.rank(strategy, proba, X[unl], k, rng)]] = True
    return {"needed": needed if needed is not None else int(labelled.sum()), "curve": curve}


def _replay_random(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    classes: np.ndarray,
    init: np.ndarray,
    *,
    plan: Plan,
    target: float,
    seed: int,
    fail_label: Any,
    stop_at: int,
    names: tuple[str, ...] | None,
) -> dict[str, Any]:
    """Labelling in random order. The order does not depend on the model, so instead of retraining every
    batch the curve is evaluated every batch up to stop_at, then on a geometric grid until the target is
    reached, and the crossing is refined by bisection to one batch."""
    rng = np.random.default_rng(seed + 7919)
    n = X.shape[0]
    first = np.zeros(n, dtype=bool)
    first[init] = True
    order = np.concatenate([np.flatnonzero(first), rng.permutation(np.flatnonzero(~first))])
    points: dict[int, tuple[int, float, float | None, float | None]] = {}

    def at(m: int) -> tuple[int, float, float | None, float | None]:
        m = int(min(max(m, init.size), n))
        if m not in points:
            labelled = np.zeros(n, dtype=bool)
            labelled[order[:m]] = True
            points[m] = _evaluate(
                X, y, labelled, X_test, y_test, classes, plan=plan, seed=seed, fail_label=fail_label, names=names
            )[1]
        return points[m]

    def reached(m: int) -> bool:
        # At the target here and one batch later, as in the strategy's replay.
        return at(m)[1] >= target and (m >= n or at(m + plan.batch)[1] >= target)

    m = init.size
    below = None
    while True:
        if reached(m):
            break
        below = m
        if m >= n:
            break
        m = m + plan.batch if m < stop_at else int(min(n, max(m + plan.batch, round(m * 1.15))))
    hi = m
    lo = below
    while lo is not None and hi - lo > plan.batch:
        mid = lo + max(1, (hi - lo) // 2 // plan.batch) * plan.batch
        if mid >= hi:
            break
        if reached(mid):
            hi = mid
        else:
            lo = mid
    for m in range(init.size, min(stop_at, n) + 1, plan.batch):
        at(m)
    return {"needed": hi, "curve": [points[k] for k in sorted(points)]}


def _at(curve: list[tuple[int, float, float | None, float | None]], n: int, col: int) -> float | None:
    """The curve's value in column col at the last point with at most n labels."""
    best = None
    for point in curve:
        if point[0] <= n:
            best = point[col]
    return best


def run_benchmark(
    *, dataset: str, strategy: str, seeds: int = 10, progress: Progress | None = None, estimator: str | None = None
) -> dict[str, Any]:
    """Replay labelling with the strategy and with random order on a labelled dataset; label efficiency + curves.

    estimator overrides the dataset's default model kind (learner.make_estimator: ordinal, multiclass, forest).
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if strategy not in strat.STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(strat.strategy_names())}")
    if seeds < 1:
        raise ValueError("seeds must be at least 1")
    t0 = time.perf_counter()
    say = progress or (lambda _f, _m: None)
    say(0.0, f"loading {dataset}")
    X_all, y_all, feature_names = load_dataset(dataset)
    names = feature_names if dataset == "qa0-sim" else None
    plan = PLANS[dataset]
    if estimator is not None:
        if estimator == "ordinal" and dataset != "qa0-sim":
            raise ValueError("the ordinal estimator needs QA0 labels (dataset qa0-sim)")
        plan = replace(plan, estimator=estimator)
    classes = np.unique(y_all)
    fail_label = "Fail" if dataset == "qa0-sim" else None
    per_seed = []
    with lrn.fit_thread_limit(0):
        for s in range(seeds):
            X, X_test, y, y_test = train_test_split(
                X_all, y_all, test_size=plan.test_size, stratify=y_all, random_state=s
            )
            pool = X.shape[0]
            _, full_f1, full_fail = _fit_eval(
                X,
                y,
                np.arange(pool),
                X_test,
                y_test,
                classes,
                max_iter=plan.max_iter,
                seed=s,
                fail_label=fail_label,
                names=names,
                kind=plan.estimator,
            )
            target = TARGET_SHARE * full_f1
            rng = np.random.default_rng(s)
            init = rng.choice(pool, size=min(plan.n_initial, pool), replace=False)
            stop_at = int(np.ceil(0.10 * pool)) if fail_label is not None else 0
            say(s / seeds, f"seed {s + 1}/{seeds}: {strategy}")
            runs = {
                strategy: _replay(
                    X,
                    y,
                    X_test,
                    y_test,
                    classes,
                    init,
                    strategy=strategy,
                    plan=plan,
                    target=target,
                    seed=s,
                    fail_label=fail_label,
                    stop_at=stop_at,
                    names=names,
                )
            }
            say((s + 0.5) / seeds, f"seed {s + 1}/{seeds}: random order")
            runs["random"] = _replay_random(
                X,
                y,
                X_test,
                y_test,
                classes,
                init,
                plan=plan,
                target=target,
                seed=s,
                fail_label=fail_label,
                stop_at=stop_at,
                names=names,
            )
            row: dict[str, Any] = {
                "seed": s,
                "pool": pool,
                "full_pool_macro_f1": full_f1,
                "target_macro_f1": target,
                "strategy_labels_needed": runs[strategy]["needed"],
                "random_labels_needed": runs["random"]["needed"],
                "efficiency": runs["random"]["needed"] / runs[strategy]["needed"],
                "curve_strategy": runs[strategy]["curve"],
                "curve_random": runs["random"]["curve"],
            }
            if fail_label is not None:
                row["full_pool_fail_recall"] = full_fail
                for pct in (5, 10):
                    at = int(np.floor(pct / 100 * pool))
                    row[f"fail_recall_at_{pct}pct"] = _at(runs[strategy]["curve"], at, 2)
                    row[f"random_fail_recall_at_{pct}pct"] = _at(runs["random"]["curve"], at, 2)
                    row[f"pool_fail_caught_at_{pct}pct"] = _at(runs[strategy]["curve"], at, 3)
                    row[f"random_pool_fail_caught_at_{pct}pct"] = _at(runs["random"]["curve"], at, 3)
            per_seed.append(row)
            say((s + 1) / seeds, f"seed {s + 1}/{seeds}: efficiency {row['efficiency']:.2f}")

    def med(key: str) -> float | None:
        vals = [r[key] for r in per_seed if r.get(key) is not None]
        return float(np.median(vals)) if vals else None

    result: dict[str, Any] = {
        "dataset": dataset,
        "strategy": strategy,
        "seeds": seeds,
        "pool": int(per_seed[0]["pool"]),
        "batch": plan.batch,
        "n_initial": plan.n_initial,
        "estimator": {
            "ordinal": f"MonotoneOrdinalClassifier(max_iter={plan.max_iter}, class_weight=balanced)",
            "multiclass": f"HistGradientBoostingClassifier(max_iter={plan.max_iter}, class_weight=balanced)",
            "forest": "RandomForestClassifier(n_estimators=100, class_weight=balanced)",
        }[plan.estimator],
        "label_efficiency": med("efficiency"),
        "efficiency_per_seed": [round(r["efficiency"], 3) for r in per_seed],
        "strategy_labels_needed_median": med("strategy_labels_needed"),
        "random_labels_needed_median": med("random_labels_needed"),
        "full_pool_macro_f1_median": med("full_pool_macro_f1"),
    }
    if fail_label is not None:
        for key in (
            "full_pool_fail_recall",
            "fail_recall_at_5pct",
            "fail_recall_at_10pct",
            "random_fail_recall_at_5pct",
            "random_fail_recall_at_10pct",
            "pool_fail_caught_at_5pct",
            "pool_fail_caught_at_10pct",
            "random_pool_fail_caught_at_5pct",
            "random_pool_fail_caught_at_10pct",
        ):
            result[key] = med(key)
    result["curves"] = [
        {"seed": r["seed"], "strategy": r["curve_strategy"], "random": r["curve_random"]} for r in per_seed
    ]
    result["seconds"] = round(time.perf_counter() - t0, 1)
    say(1.0, f"{dataset}: label efficiency {result['label_efficiency']:.2f}")
    return result


# --- large synthetic pools for the speed benchmarks ------------------------------------------------


def synthetic_pool(engine: Any, *, n: int, n_labels: int, seed: int = 0, aods: int = 4) -> dict[str, Any]:
    """Bulk-insert n EB rows (no detail rows) and n_labels labels from `aods` AoDs, fast enough for 100k EBs.

    The simulator with its ~1,500 detail rows per EB would need hours and gigabytes for 100k EBs; the speed
    benchmarks of `next` and `retrain` only need EB rows whose QA0 follows from their columns.
    """
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import func, insert
    from sqlalchemy import select as sa_select

    from qa0_label.review.limits import REFERENCE_FREQ_GHZ
    from qa0_label.store.db import bulk_insert, session_scope
    from qa0_label.store.models import ExecutionBlock, Labeler, table_of

    rng = np.random.default_rng(seed)
    sources = [f"J{h:02d}{m:02d}-{d:02d}{s:02d}" for h, m, d, s in rng.integers(0, 24, (40, 4))]
    bands = np.array([3, 4, 6, 7])
    band = rng.choice(bands, n, p=[0.45, 0.12, 0.2, 0.23])
    is12 = rng.random(n) < 0.55
    n_ant = np.where(is12, rng.integers(40, 51, n), rng.integers(9, 13, n))
    few = rng.random(n) < 0.02
    n_ant = np.where(few, np.maximum(3, (n_ant * rng.uniform(0.2, 0.8, n)).astype(int)), n_ant)
    execf = np.where(rng.random(n) < 0.03, rng.uniform(0.15, 0.9, n).round(3), 1.0)
    pwv = np.exp(rng.normal(0.0, 0.6, n)).round(3)
    el = rng.uniform(20, 85, n).round(2)
    phase = (rng.gamma(2.0, 4.0, n) * np.where(rng.random(n) < 0.02, 6.0, 1.0)).round(2)
    freq = np.array([REFERENCE_FREQ_GHZ[int(b)] for b in bands])[np.searchsorted(bands, band)]
    expected = rng.uniform(0.8, 15.0, n).round(4)
    off = np.where(rng.random(n) < 0.03, rng.choice([-1, 1], n) * rng.uniform(0.1, 0.5, n), rng.normal(0, 0.03, n))
    flux = (expected * np.exp(off)).round(4)
    bad = (n_ant < np.where(is12, 16, 4)) | (execf < 0.3) | (np.abs(off) > 0.3) | (phase > 60)
    meh = (n_ant < np.where(is12, 30, 7)) | (execf < 0.7) | (np.abs(off) > 0.12) | (phase > 35)
    truth = np.where(bad, "Fail", np.where(meh, "SemiPass", "Pass"))
    t0 = datetime(2023, 1, 1, tzinfo=timezone.utc)
    starts = [t0 + timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 2 * 365 * 24 * 60, n))]
    with session_scope(engine, write=True) as s:
        conn = s.connection()
        sqlite = conn.dialect.name == "sqlite"

        def when(t: datetime) -> Any:
            return t.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else t

        first = int(conn.execute(sa_select(func.coalesce(func.max(ExecutionBlock.id), 0))).scalar() or 0)
        cols = [
            "uid",
            "source",
            "band",
            "array",
            "start_time",
            "n_antennas",
            "pwv_mm",
            "elevation_deg",
            "exec_fraction",
            "phase_rms_deg",
            "tsys_median_k",
            "flagged_fraction",
            "freq_ghz",
            "flux_jy",
            "flux_err_jy",
            "expected_flux_jy",
            "expected_flux_err_jy",
            "spectral_index",
            "spectral_index_err",
            "imported_at",
        ]
        src = rng.integers(0, len(sources), n)
        alpha = rng.normal(-0.6, 0.1, n).round(3)
        rows = [
            (
                f"uid://A002/Xb{seed:x}{first + i:x}/X{i:x}",
                sources[src[i]],
                int(band[i]),
                "12m" if is12[i] else "7m",
                when(starts[i]),
                int(n_ant[i]),
                float(pwv[i]),
                float(el[i]),
                float(execf[i]),
                float(phase[i]),
                float(60 + 40 * (band[i] - 3)),
                0.01,
                float(freq[i]),
                float(flux[i]),
                float(0.02 * flux[i]),
                float(expected[i]),
                float(0.05 * expected[i]),
                float(alpha[i]),
                0.05,
                when(starts[i]),
            )
            for i in range(n)
        ]
        for start in range(0, n, 20_000):
            bulk_insert(conn, "execution_block", cols, rows[start : start + 20_000])
        eb_id = table_of(ExecutionBlock).c.id
        ids = np.asarray([int(r[0]) for r in conn.execute(sa_select(eb_id).where(eb_id > first).order_by(eb_id))])
        created = datetime.now(timezone.utc)
        now = when(created)
        lab_ids = []
        for a in range(aods):
            name = f"bench-aod-{seed}-{a}"
            new = conn.execute(insert(Labeler).values(name=name, role="aod", active=True, created_at=created))
            key = new.inserted_primary_key
            assert key is not None  # an INSERT of one row
            lab_ids.append(int(key[0]))
        chosen = rng.choice(n, size=min(n_labels, n), replace=False)
        label_rows = [
            (int(ids[i]), lab_ids[j % aods], str(truth[i]), now, "review", f"bench-{seed}-{first}-{i}")
            for j, i in enumerate(chosen)
        ]
        bulk_insert(
            conn, "label", ["eb_id", "labeler_id", "value", "created_at", "kind", "client_event_id"], label_rows
        )
    shares = {v: float((truth == v).mean()) for v in ("Pass", "SemiPass", "Fail")}
    return {"n_ebs": n, "n_labels": len(label_rows), "labelers": lab_ids, "shares": shares}
