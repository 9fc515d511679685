"""Active-learning benchmark: an oracle replays the app's own loop beside random order and plain modAL (two ways).

For every seed the labelled table is split (stratified) into a pool and a held-out test set, and four arms
label the pool 20 at a time (the shipped ``Settings.auto_retrain_every``):

- ``app``: the code users run. A temporary SQLite database holds every EB; an oracle AoD asks
  ``assign.next_for`` (shipped routing shares and default strategy, cold start included) and records the true
  value with ``labels.record_label``; every 20 labels the shipped ``training.retrain`` runs (model choice by
  cross-validation, queues ranked by modAL). The served model is the newest done run: its stored scores of
  the test EBs are what is evaluated. Test EBs sit in the database (their features are computed with the
  whole table, as the pool's are) but are leased to a held-out labeller for the whole replay, so no pick
  can hand one out. With one oracle there is no second AoD: an overlap or gold pick finds nothing and falls
  through to the strategy queue, exactly as it does in the app for a lone AoD; random picks are spent as
  shipped.
- ``random``: the pool in a seeded random order, the same retrain model (``fitting.fit_served_model``) fitted
  on the first n labels at every batch.
- ``modal``: plain modAL as a site would run it without the app: RandomForestClassifier(200 trees) +
  ``modAL.uncertainty.margin_sampling``, 20 per query, rebuilt each round from the same first 20 random labels
  as ``random``, learning from the table's own numeric columns only (``datasets.own_columns``: for the
  simulated EBs the EB row's numeric fields as an export of the EB table gives them, no detail aggregates, no
  derived features; for the scikit-learn tables and a CSV its numeric columns, i.e. its ``extra_x_`` columns).
- ``modal_same_features``: the same plain modAL on the app's own feature matrix (``features.build_features``,
  what ``app`` and ``random`` learn from). Reported beside ``modal`` so the baseline is never weakened
  silently: ``modal`` answers "is the app better than what a site has without it", ``modal_same_features``
  "is the app's loop better than plain modAL given the same features".

Every arm is evaluated on the same test set at every 20 labels with the same rules: macro-F1 (over the
table's classes) and Fail recall. Before a model exists (fewer than the shipped minimum of labels, or one
class) the prediction is the most common value labelled so far. Figures per arm and seed: the area under
macro-F1 vs labels up to the budget (normalised to 0-1), macro-F1 at the budget, the labels needed to reach
98 % of the full-pool macro-F1 (the retrain's model on the whole pool) and still be there one batch later,
and Fail recall with 10 % of the pool labelled. Nothing is written outside the temporary directory.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, recall_score
from sklearn.model_selection import train_test_split

from qa0_label.bench.datasets import (
    DATASETS,
    SIMULATED,
    BenchInputError,
    Table,
    import_table,
    own_columns,
    simulate_table,
    sklearn_table,
)
from qa0_label.config import Settings
from qa0_label.store.models import LABEL_VALUES

Progress = Callable[[float, str], None]
Point = tuple[int, float, "float | None"]
Stop = Callable[[list[Point]], bool]

__all__ = ["DATASETS", "BUDGETS", "BenchInputError", "run_benchmark"]

BUDGETS: dict[str, int] = {"qa0-sim": 200, "qa0-sim-rule": 200, "breast_cancer": 100, "wine": 60, "digits": 200}
"""Labels each arm may spend for the AUC and F1-at-budget figures (the issue's budgets; digits and CSV: 200)."""
DEFAULT_BUDGET = 200
TARGET_SHARE = 0.98
HORIZON_FACTOR = 5
"""Labels-to-98 % is scanned up to this many times the budget (or the whole pool); an arm stops once it is settled."""
TEST_SHARE = 0.25
MODAL_TREES = 200
ARMS = ("app", "random", "modal", "modal_same_features")


# --- evaluation ----------------------------------------------------------------------------------------


def _constant(values: list[str] | np.ndarray) -> str | None:
    """The most common value labelled so far (ties: the more cautious value), None before any label."""
    counts = Counter(str(v) for v in values)
    if not counts:
        return None
    top = max(counts.values())
    return [v for v in reversed(LABEL_VALUES) if counts.get(v) == top][0]


def _score(pred: np.ndarray | None, y_test: np.ndarray, classes: list[str]) -> tuple[float, float | None]:
    """(macro-F1, Fail recall) of a prediction; no prediction at all scores 0."""
    if pred is None:
        return 0.0, 0.0 if "Fail" in classes else None
    pred = np.asarray(pred, dtype=object).astype(str)
    f1 = float(f1_score(y_test, pred, labels=classes, average="macro", zero_division=0))
    fail = None
    if "Fail" in classes and (y_test == "Fail").any():
        fail = float(recall_score(y_test, pred, labels=["Fail"], average="macro", zero_division=0))
    return f1, fail


def figures(curve: list[Point], *, budget: int, batch: int, target: float, ten_pct: int) -> dict[str, Any]:
    """AUC (0-1) of macro-F1 vs labels up to budget, F1 at budget, labels to target, Fail recall at 10 %."""
    upto = [p for p in curve if p[0] <= budget]
    ns = np.asarray([p[0] for p in upto], dtype=float)
    f1 = np.asarray([p[1] for p in upto], dtype=float)
    if len(upto) >= 2:
        auc = float(np.trapezoid(f1, ns) / (ns[-1] - ns[0]))
    else:
        auc = float(f1[0]) if len(upto) else 0.0
    needed = reached_at(curve, target)
    at_ten = [p for p in curve if p[0] <= ten_pct]
    return {
        "auc": round(auc, 4),
        "f1_at_budget": round(float(f1[-1]), 4) if len(upto) else None,
        "labels_to_98": needed,
        "fail_recall_at_10pct": (None if not at_ten or at_ten[-1][2] is None else round(float(at_ten[-1][2]), 4)),
    }


def reached_at(curve: list[Point], target: float, *, confirmed: bool = False) -> int | None:
    """Labels at the first point at the target and still at it one batch later (one lucky batch is not enough).

    The curve's last point has no batch after it: it counts unless ``confirmed`` asks for the batch after.
    """
    for i, p in enumerate(curve):
        last = i + 1 == len(curve)
        if p[1] >= target and ((last and not confirmed) or (not last and curve[i + 1][1] >= target)):
            return int(p[0])
    return None


def settled(curve: list[Point], *, past: int, target: float) -> bool:
    """Whether an arm can stop: past the budget and 10 % of the pool, and its labels-to-98 % confirmed.

    The same rule for every arm. Scanning on would change none of its figures: the AUC and F1 at budget stop at
    the budget, Fail recall at 10 % of the pool, and labels-to-98 % is the first point that stays at the target.
    """
    return bool(curve) and curve[-1][0] >= past and reached_at(curve, target, confirmed=True) is not None


# --- the arms ------------------------------------------------------------------------------------------


class _Replay:
    """One seed's data: the app's feature matrix, the table's own columns, the split and the rules the arms share."""

    def __init__(
        self, X: np.ndarray, y: np.ndarray, columns: list[str], pool: np.ndarray, test: np.ndarray, X_own: np.ndarray
    ) -> None:
        self.X, self.y, self.columns, self.pool, self.test = X, y, columns, pool, test
        self.X_own = X_own
        self.classes = [c for c in LABEL_VALUES if c in set(y.tolist())]
        self.y_test = y[test].astype(str)

    def model_prediction(self, idx: np.ndarray, version: int, settings: Settings) -> np.ndarray | None:
        """The retrain's model on these labels, predicting the test set (the constant rule when it would refuse)."""
        from qa0_label.learning.fitting import fit_served_model

        yl = self.y[idx]
        if len(idx) < settings.min_labels_to_train or len(set(yl.tolist())) < 2:
            c = _constant(yl)
            return None if c is None else np.full(len(self.test), c, dtype=object)
        learner, _ = fit_served_model(self.X[idx], yl, feature_names=self.columns, random_state=version)
        return learner.predict(self.X[self.test])


def _random_arm(r: _Replay, seed: int, horizon: int, batch: int, settings: Settings, stop: Stop) -> list[Point]:
    order = np.random.default_rng(seed).permutation(r.pool)
    curve: list[Point] = []
    for n in range(batch, horizon + 1, batch):
        pred = r.model_prediction(order[:n], n // batch, settings)
        curve.append((n, *_score(pred, r.y_test, r.classes)))
        if stop(curve):
            break
    return curve


def _never(_curve: list[Point]) -> bool:
    return False


def _modal_arm(r: _Replay, X: np.ndarray, seed: int, horizon: int, batch: int, stop: Stop = _never) -> list[Point]:
    """Plain modAL as its documentation shows it on matrix X: a random forest, margin sampling, rebuilt every round."""
    from modAL.models import ActiveLearner
    from modAL.uncertainty import margin_sampling
    from sklearn.ensemble import RandomForestClassifier

    labelled = list(np.random.default_rng(seed).permutation(r.pool)[:batch])
    curve = []
    while True:
        idx = np.asarray(labelled)
        learner = ActiveLearner(
            estimator=RandomForestClassifier(n_estimators=MODAL_TREES, random_state=seed, n_jobs=1),
            query_strategy=margin_sampling,
            X_training=X[idx],
            y_training=r.y[idx].astype(str),
        )
        curve.append((len(idx), *_score(learner.predict(X[r.test]), r.y_test, r.classes)))
        if len(idx) + batch > horizon or stop(curve):
            return curve
        unl = np.setdiff1d(r.pool, idx)
        q, _ = learner.query(X[unl], n_instances=min(batch, len(unl)))
        labelled.extend(int(i) for i in unl[np.asarray(q, dtype=int)])


def _hold_out(engine: Any, test_ids: list[int]) -> None:
    """Lease the test EBs to a held-out labeller for a century: no pick can hand one out."""
    from datetime import timedelta

    from qa0_label.store import db, labels
    from qa0_label.store.models import Lease, utcnow

    with db.session_scope(engine, write=True) as s:
        holder = labels.get_or_create_labeler(session=s, name="held-out test set")
        now = utcnow()
        far = now + timedelta(days=365 * 100)
        s.add_all(
            Lease(eb_id=e, labeler_id=int(holder.id or 0), reason="held-out", created_at=now, expires_at=far)
            for e in test_ids
        )


def _served_prediction(conn: Any, test_ids: list[int], given: list[str]) -> np.ndarray | None:
    """What the app predicts for the test EBs now: the serving run's stored scores, else the constant rule."""
    from sqlalchemy import select

    from qa0_label.store import runs
    from qa0_label.store.models import ModelRun, Score, table_of

    score = table_of(Score).c
    # The served model: the app's one rule for which run serves (store.runs).
    run = conn.execute(runs.serving_select(table_of(ModelRun).c.id)).scalar()
    if run is None:
        return np.full(len(test_ids), _constant(given), dtype=object) if given else None
    stored = select(score.eb_id, score.p_pass, score.p_semipass, score.p_fail).where(score.run_id == run)
    rows = dict((int(e), np.argmax(p)) for e, *p in conn.execute(stored))
    return np.asarray([LABEL_VALUES[rows[e]] for e in test_ids], dtype=object)


def _app_arm(
    r: _Replay,
    *,
    template: Any,
    workdir: Path,
    seed: int,
    eb_ids: np.ndarray,
    horizon: int,
    settings: Settings,
    strategy: str | None,
    say: Progress,
    stop: Stop = _never,
) -> tuple[list[Point], dict[str, int]]:
    """The oracle through next_for / record_label / retrain on a copy of the template database."""
    from qa0_label.learning import training
    from qa0_label.queue import assign
    from qa0_label.store import db, labels

    path = workdir / f"seed{seed}.sqlite"
    db.backup_sqlite(template, path)
    url = f"sqlite:///{path}"
    settings = replace(settings, database_url=url, model_dir=workdir / f"models{seed}")
    engine = db.get_engine(url)
    truth = {int(e): str(v) for e, v in zip(eb_ids, r.y)}
    test_ids = [int(e) for e in eb_ids[r.test]]
    try:
        _hold_out(engine, test_ids)
        random.seed(seed)  # the random route's seek point
        name = f"oracle-{seed}"
        curve: list[Point] = []
        routes: Counter[str] = Counter()
        given: list[str] = []
        while len(given) < horizon:
            pick = assign.next_for(engine=engine, labeler=name, strategy=strategy, settings=settings)
            if pick is None:
                break
            routes[str(pick["strategy"])] += 1
            value = truth[int(pick["eb_id"])]
            with db.session_scope(engine, write=True) as s:
                labels.record_label(session=s, eb_id=int(pick["eb_id"]), labeler=name, value=value)
            given.append(value)
            if len(given) % settings.auto_retrain_every:
                continue
            try:
                training.retrain(engine=engine, settings=settings, trigger="auto")
            except training.RetrainRefused:
                pass  # one class (or too few labels): the app stays in cold start, and so does the replay
            with engine.connect() as conn:
                pred = _served_prediction(conn, test_ids, given)
            curve.append((len(given), *_score(pred, r.y_test, r.classes)))
            say(len(given) / horizon, f"app {len(given)}/{horizon} labels")
            if stop(curve):
                break
        return curve, dict(routes)
    finally:
        engine.dispose()
        db._engines.pop(url, None)


# --- the benchmark -------------------------------------------------------------------------------------


def _median(values: list[Any]) -> float | None:
    vals = [math.inf if v is None else float(v) for v in values]
    if not vals:
        return None
    m = float(np.median(vals))
    return None if math.isinf(m) else m


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


FIGURES = ("auc", "f1_at_budget", "labels_to_98", "fail_recall_at_10pct")


def _at_least(arm: dict[str, list[Any]]) -> list[float]:
    """Per seed, labels-to-98 % or, where the target was not reached, the horizon scanned (a lower bound)."""
    return [
        float(v) if v is not None else float(curve[-1][0]) if curve else math.inf
        for v, curve in zip(arm["labels_to_98"], arm.get("curves") or [[] for _ in arm["labels_to_98"]])
    ]


def _summary(arms: dict[str, dict[str, list[Any]]], full_pool_f1: list[float]) -> dict[str, Any]:
    """Medians per arm and figure, the issue's ratios of medians, and what no arm could exceed."""
    medians = {a: {key: _median(arms[a][key]) for key in FIGURES} for a in arms}
    app_98 = medians["app"]["labels_to_98"]
    random_auc = medians["random"]["auc"]
    full = _median(list(full_pool_f1))
    return {
        "ratios": {
            "auc_app_over_random": _ratio(medians["app"]["auc"], random_auc),
            "auc_app_over_modal": _ratio(medians["app"]["auc"], medians["modal"]["auc"]),
            "auc_app_over_modal_same_features": _ratio(medians["app"]["auc"], medians["modal_same_features"]["auc"]),
            "labels_to_98_random_over_app": _ratio(medians["random"]["labels_to_98"], app_98),
            # Where random order never reached the target, its horizon stands in: the ratio is at least this.
            "labels_to_98_random_over_app_at_least": _ratio(_median(_at_least(arms["random"])), app_98),
        },
        "ceilings": {
            # An app whose model matched the full-pool model from its first batch would read this AUC ratio;
            # a perfect one (macro-F1 1 from the first batch) this: the most any loop can show over random order.
            "auc_full_pool_over_random": _ratio(full, random_auc),
            "auc_perfect_over_random": _ratio(1.0, random_auc),
        },
        "medians": medians,
    }


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from runs of the same dataset and budget on disjoint seeds (e.g. seeds 1-4 and 5-8 side by side)."""
    first = parts[0]
    if any(p["dataset"] != first["dataset"] or p["budget"] != first["budget"] for p in parts):
        raise ValueError("only runs of the same dataset and budget can be merged")
    seeds = [s for p in parts for s in p["seed_values"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the runs share seeds: {sorted(seeds)}")
    arms = {a: {k: [v for p in parts for v in p["arms"][a][k]] for k in first["arms"][a]} for a in first["arms"]}
    out = dict(first)
    for key in ("full_pool_f1", "full_pool_fail_recall", "app_picks"):
        out[key] = [v for p in parts for v in p.get(key, [None] * len(p["seed_values"]))]
    out.update(arms=arms, seeds=len(seeds), seed_values=seeds, **_summary(arms, out["full_pool_f1"]))
    out["seconds"] = round(sum(p["seconds"] for p in parts), 1)
    return out


@dataclass(frozen=True)
class _Loaded:
    """A dataset in the template database: EB ids, values, the app's features and the table's own columns."""

    name: str
    eb_ids: np.ndarray
    y: np.ndarray
    X: np.ndarray
    columns: list[str]
    X_own: np.ndarray
    own: list[str]


def _resolve(dataset: str | None, table: Table | None, seeds: int, strategy: str | None) -> Table | None:
    """The table to import (None for a simulated dataset); BenchInputError for anything the run cannot use."""
    from qa0_label.learning import strategies as strat

    if seeds < 1:
        raise BenchInputError("--seeds must be at least 1")
    if strategy is not None and strategy not in strat.STRATEGIES:
        raise BenchInputError(f"unknown strategy {strategy!r}; expected one of {', '.join(strat.strategy_names())}")
    if table is not None:
        return table
    if dataset not in DATASETS:
        raise BenchInputError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)} or --csv PATH")
    return None if dataset in SIMULATED else sklearn_table(dataset)


def _load(template: Any, name: str, table: Table | None) -> _Loaded:
    """Simulate or import the dataset into the template database and build the matrices every seed shares."""
    from qa0_label.learning import features as feats
    from qa0_label.store import db

    if table is None:
        eb_ids, y = simulate_table(template, rule=name == "qa0-sim-rule")
    else:
        eb_ids, y = import_table(template, table), table.y
    feats.ensure_detail_cache(engine=template)
    with db.session_scope(template) as s:
        frame = feats.build_features(session=s)
    # The retrain's own column rule: columns empty over the whole table carry nothing.
    columns = [c for c in frame.columns if frame[c].notna().any()]
    X = frame.reindex(eb_ids)[columns].to_numpy(dtype=float)
    X_own, own = own_columns(template, eb_ids)
    if not own:
        raise BenchInputError(f"{name}: the table has no numeric column that varies; nothing to learn from")
    y = np.asarray(y, dtype=object).astype(str)
    return _Loaded(name, eb_ids, y, X, columns, X_own, own)


def _horizon(horizon: int | None, *, budget: int, pool_n: int, ten_pct: int, batch: int) -> int:
    """Labels each arm may scan: five times the budget by default, past 10 % of the pool, at most the pool."""
    if horizon is None:
        # Labels-to-98 % is scanned up to five times the budget (random order needs that on QA0-like data;
        # twice the budget left it unmeasured) and past 10 % of the pool for Fail recall.
        horizon = HORIZON_FACTOR * budget
    horizon = min(max(horizon, budget, ten_pct + batch), pool_n) // batch * batch
    if budget > horizon:
        raise BenchInputError(f"--budget {budget} is more than the pool of {pool_n} rows allows")
    return horizon


@dataclass(frozen=True)
class _Plan:
    """What every seed of one run shares: the budget, the batch, the horizon, 10 % of the pool, the settings."""

    budget: int
    batch: int
    horizon: int
    ten_pct: int
    settings: Settings
    strategy: str | None


def _run_seed(
    data: _Loaded, plan: _Plan, seed: int, *, template: Any, workdir: Path, step: Progress
) -> tuple[dict[str, dict[str, Any]], float, float | None, dict[str, int]]:
    """One seed: the split, the full-pool model, the four arms. (per-arm figures, full-pool F1, its Fail recall,
    the app's picks per route)."""
    n = len(data.y)
    pool, test = train_test_split(np.arange(n), test_size=TEST_SHARE, stratify=data.y, random_state=seed)
    r = _Replay(data.X, data.y, data.columns, np.sort(pool), np.sort(test), data.X_own)
    step(0.0, "full-pool model")
    f_full, fail_full = _score(r.model_prediction(r.pool, 0, plan.settings), r.y_test, r.classes)
    target = TARGET_SHARE * f_full

    def stop(curve: list[Point]) -> bool:
        return settled(curve, past=max(plan.budget, plan.ten_pct), target=target)

    curves: dict[str, list[Point]] = {}
    curves["app"], used = _app_arm(
        r,
        template=template,
        workdir=workdir,
        seed=seed,
        eb_ids=data.eb_ids,
        horizon=plan.horizon,
        settings=plan.settings,
        strategy=plan.strategy,
        say=lambda f, m: step(0.6 * f, m),
        stop=stop,
    )
    step(0.6, "random order")
    curves["random"] = _random_arm(r, seed, plan.horizon, plan.batch, plan.settings, stop)
    step(0.75, "plain modAL on the table's own columns")
    curves["modal"] = _modal_arm(r, r.X_own, seed, plan.horizon, plan.batch, stop)
    step(0.85, "plain modAL on the app's features")
    curves["modal_same_features"] = _modal_arm(r, r.X, seed, plan.horizon, plan.batch, stop)
    rows = {}
    for arm in ARMS:
        row = figures(curves[arm], budget=plan.budget, batch=plan.batch, target=target, ten_pct=plan.ten_pct)
        row["curve"] = [[p[0], round(p[1], 4), None if p[2] is None else round(p[2], 4)] for p in curves[arm]]
        rows[arm] = row
    step(1.0, "done")
    return rows, f_full, fail_full, used


def run_benchmark(
    *,
    dataset: str | None = None,
    table: Table | None = None,
    seeds: int = 8,
    budget: int | None = None,
    strategy: str | None = None,
    progress: Progress | None = None,
    first_seed: int = 1,
    horizon: int | None = None,
) -> dict[str, Any]:
    """Replay the app's loop, random order and plain modAL on a dataset (or a user's Table); figures and ratios."""
    from qa0_label.learning import strategies as strat
    from qa0_label.store import db

    table = _resolve(dataset, table, seeds, strategy)
    name = table.name if table is not None else str(dataset)
    # `is None`, not `or`: a budget of 0 is a mistake to refuse, not a request for the default.
    budget = int(BUDGETS.get(name, DEFAULT_BUDGET) if budget is None else budget)
    if budget < 1:
        raise BenchInputError("--budget must be positive")
    if horizon is not None and horizon < 1:
        raise BenchInputError("--horizon must be positive")
    if first_seed < 0:
        raise BenchInputError("--first-seed must not be negative")  # scikit-learn's seeds are 0 .. 2**32-1
    settings = Settings()
    batch = int(settings.auto_retrain_every)
    say = progress or (lambda _f, _m: None)
    seed_values = list(range(first_seed, first_seed + seeds))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qa0-bench-al-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'template.sqlite'}"
        template = db.get_engine(url)
        try:
            say(0.0, f"{name}: loading the table into a temporary database")
            data = _load(template, name, table)
            n = len(data.y)
            pool_n = n - int(math.ceil(TEST_SHARE * n))
            ten_pct = int(math.ceil(0.10 * pool_n))
            horizon = _horizon(horizon, budget=budget, pool_n=pool_n, ten_pct=ten_pct, batch=batch)
            plan = _Plan(budget, batch, horizon, ten_pct, settings, strategy)
            per_seed: dict[str, list[dict[str, Any]]] = {a: [] for a in ARMS}
            full_f1: list[float] = []
            full_fail: list[float | None] = []
            routes: list[dict[str, int]] = []
            for k, seed in enumerate(seed_values):

                def step(f: float, msg: str, _k: int = k, _s: int = seed) -> None:
                    say((_k + f) / seeds, f"{name} seed {_s} ({_k + 1}/{seeds}): {msg}")

                rows, f_full, fail_full, used = _run_seed(
                    data, plan, seed, template=template, workdir=workdir, step=step
                )
                for arm in ARMS:
                    per_seed[arm].append(rows[arm])
                full_f1.append(round(f_full, 4))
                full_fail.append(None if fail_full is None else round(fail_full, 4))
                routes.append(used)
        finally:
            template.dispose()
            db._engines.pop(url, None)
    arms = {a: {key: [row[key] for row in per_seed[a]] for key in FIGURES} for a in ARMS}
    for a in ARMS:
        arms[a]["curves"] = [row["curve"] for row in per_seed[a]]
    result: dict[str, Any] = {
        "dataset": name,
        "seeds": seeds,
        "budget": budget,
        "arms": arms,
        **_summary(arms, full_f1),
        "seed_values": seed_values,
        "pool": pool_n,
        "test": n - pool_n,
        "batch": batch,
        "horizon": horizon,
        "full_pool_f1": full_f1,
        "full_pool_fail_recall": full_fail,
        "app_picks": routes,
        "strategy": strategy or strat.DEFAULT_STRATEGY,
        "modal_columns": data.own,
        "seconds": round(time.perf_counter() - t0, 1),
        "load": round(os.getloadavg()[0], 2),
    }
    say(
        1.0,
        f"{name}: AUC app/random {result['ratios']['auc_app_over_random']}, app/modAL {result['ratios']['auc_app_over_modal']}",
    )
    return result
