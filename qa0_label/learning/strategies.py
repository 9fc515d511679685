"""Query strategies: which unlabelled EBs an AoD should review first.

Two kinds, both pure functions (no database, no model):

- score strategies map a probability array (n_samples x n_classes) to scores, higher = ask sooner;
- batch strategies map ``(proba, X, k, rng)`` to the indices of k samples in the order to ask them, so that
  the first picks handed to several AoDs working at once are not near-duplicates of each other.

``STRATEGIES`` is the registry the UI sidebar and ``assign.next_for`` use; ``rank`` turns any strategy into a
queue order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]
BatchFn = Callable[[np.ndarray, "np.ndarray | None", int, np.random.Generator], np.ndarray]


# --- score strategies --------------------------------------------------------------------------


def _as_proba(proba: np.ndarray) -> np.ndarray:
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"expected a 2-d probability array, got shape {p.shape}")
    # A row of NaN (no prediction) counts as "know nothing": uniform.
    bad = ~np.isfinite(p).all(axis=1)
    if bad.any():
        p = p.copy()
        p[bad] = 1.0 / max(p.shape[1], 1)
    return np.clip(p, 0.0, 1.0)


def margin_score(proba: np.ndarray) -> np.ndarray:
    """1 - (top probability - runner-up): 1 when the two likeliest classes tie."""
    p = _as_proba(proba)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy_score(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy of the prediction, normalised to [0, 1] by log(n_classes)."""
    p = _as_proba(proba)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1) / np.log(p.shape[1])


def least_confident_score(proba: np.ndarray) -> np.ndarray:
    """1 - the top probability."""
    p = _as_proba(proba)
    return 1.0 - p.max(axis=1) if p.shape[1] else np.zeros(p.shape[0])


# --- batch strategies --------------------------------------------------------------------------


def standardize(X: np.ndarray) -> np.ndarray:
    """Robust z-scores per column (median / scaled IQR), missing values at the centre (0)."""
    A = np.asarray(X, dtype=float)
    if A.ndim != 2 or A.shape[0] == 0:
        return np.zeros((A.shape[0] if A.ndim else 0, A.shape[1] if A.ndim == 2 else 0))
    A = np.where(np.isfinite(A), A, np.nan)
    keep = ~np.isnan(A).all(axis=0)
    A = A[:, keep]
    if A.shape[1] == 0:
        return np.zeros((A.shape[0], 0))
    med = np.nanmedian(A, axis=0)
    q75, q25 = np.nanpercentile(A, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    std = np.nanstd(A, axis=0)
    scale = np.where(scale > 1e-12, scale, std)
    scale = np.where(scale > 1e-12, scale, 1.0)
    Z = (A - med) / scale
    # Clip so that one wild value (a dead antenna's Tsys) does not dominate every distance.
    return np.clip(np.nan_to_num(Z, nan=0.0), -5.0, 5.0)


def weighted_kmeanspp(
    Z: np.ndarray, k: int, rng: np.random.Generator, weights: np.ndarray | None = None, first: int | None = None
) -> np.ndarray:
    """k-means++ seeding order: each next pick is drawn with probability ~ weight * squared distance to the picks."""
    n = Z.shape[0]
    k = int(min(max(k, 0), n))
    if k == 0:
        return np.zeros(0, dtype=int)
    w = np.ones(n) if weights is None else np.clip(np.asarray(weights, dtype=float), 0.0, None)
    if not np.isfinite(w).all() or w.sum() <= 0:
        w = np.ones(n)
    if first is None:
        first = int(rng.choice(n, p=w / w.sum()))
    picks = [first]
    d2 = ((Z - Z[first]) ** 2).sum(axis=1)
    taken = np.zeros(n, dtype=bool)
    taken[first] = True
    for _ in range(1, k):
        p = w * d2
        p[taken] = 0.0
        total = p.sum()
        if total <= 0 or not np.isfinite(total):
            # Everything left duplicates a pick: fall back to the highest weight among the rest.
            rest = np.flatnonzero(~taken)
            nxt = int(rest[np.argmax(w[rest])])
        else:
            nxt = int(rng.choice(n, p=p / total))
        picks.append(nxt)
        taken[nxt] = True
        d2 = np.minimum(d2, ((Z - Z[nxt]) ** 2).sum(axis=1))
    return np.asarray(picks, dtype=int)


def _candidates(scores: np.ndarray, k: int, factor: int = 10, floor: int = 2000) -> np.ndarray:
    # Diversity is only worth buying among EBs the model is unsure about: keep the top slice.
    m = int(min(scores.shape[0], max(factor * k, floor)))
    if m >= scores.shape[0]:
        return np.arange(scores.shape[0])
    return np.argpartition(-scores, m - 1)[:m]


def margin_kmeanspp_batch(proba: np.ndarray, X: np.ndarray | None, k: int, rng: np.random.Generator) -> np.ndarray:
    """Uncertainty-weighted k-means++ over the most uncertain EBs (margin^2 * distance^2 sampling)."""
    scores = margin_score(proba)
    n = scores.shape[0]
    k = int(min(max(k, 0), n))
    if k == 0:
        return np.zeros(0, dtype=int)
    if X is None:
        return np.argsort(-scores, kind="stable")[:k]
    cand = _candidates(scores, k)
    Z = standardize(np.asarray(X)[cand])
    w = scores[cand] ** 2 + 1e-9
    # Start from the single most uncertain EB so the first pick agrees with plain margin sampling.
    order = weighted_kmeanspp(Z, k, rng, weights=w, first=int(np.argmax(w)))
    return cand[order]


def ranked_batch(proba: np.ndarray, X: np.ndarray | None, k: int, rng: np.random.Generator) -> np.ndarray:
    """Ranked batch-mode (Cardoso et al. 2017): alpha * dissimilarity to picks + (1 - alpha) * uncertainty."""
    scores = least_confident_score(proba)
    n = scores.shape[0]
    k = int(min(max(k, 0), n))
    if k == 0:
        return np.zeros(0, dtype=int)
    if X is None:
        return np.argsort(-scores, kind="stable")[:k]
    cand = _candidates(scores, k)
    Z = standardize(np.asarray(X)[cand])
    s = scores[cand]
    m = cand.shape[0]
    # Tiny seeded jitter breaks exact ties without favouring low row numbers.
    s = s + rng.uniform(0, 1e-9, m)
    taken = np.zeros(m, dtype=bool)
    first = int(np.argmax(s))
    picks = [first]
    taken[first] = True
    min_d = np.sqrt(((Z - Z[first]) ** 2).sum(axis=1))
    # The paper's alpha = |U| / (|U| + |L|) is ~1 for a large pool (pure diversity); the candidate slice
    # already holds only unsure EBs, so an even split keeps uncertainty in play among them.
    alpha = 0.5
    for _ in range(1, k):
        sim = 1.0 / (1.0 + min_d)
        value = alpha * (1.0 - sim) + (1.0 - alpha) * s
        value[taken] = -np.inf
        nxt = int(np.argmax(value))
        picks.append(nxt)
        taken[nxt] = True
        min_d = np.minimum(min_d, np.sqrt(((Z - Z[nxt]) ** 2).sum(axis=1)))
    return cand[np.asarray(picks, dtype=int)]


def random_batch(proba: np.ndarray, X: np.ndarray | None, k: int, rng: np.random.Generator) -> np.ndarray:
    """k samples in random order (the baseline every strategy is measured against)."""
    n = np.asarray(proba).shape[0]
    return rng.permutation(n)[: int(min(max(k, 0), n))]


# --- registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """A named query strategy with the sentence shown to the AoD when it picks an EB."""

    name: str
    kind: Literal["score", "batch"]
    fn: Callable[..., np.ndarray]
    reason: str
    description: str
    score: ScoreFn | None = None  # a batch strategy's underlying uncertainty, used past its diverse head


def _by_score(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    # Random tie-break: equal scores must not fall back to table order (the first rows).
    tie = rng.random(len(scores))
    return np.lexsort((tie, -scores))[:k]


def rank(
    strategy: Strategy | str,
    proba: np.ndarray,
    X: np.ndarray | None,
    k: int,
    rng: np.random.Generator,
    *,
    diverse_head: int | None = None,
) -> np.ndarray:
    """Indices of the first k samples in the order this strategy would ask for them.

    diverse_head caps how many a batch strategy orders with its (costly) diversity algorithm; the rest of the
    k follow by the strategy's uncertainty score. A queue is consumed from the front, so diversity matters
    most there.
    """
    s = STRATEGIES[strategy] if isinstance(strategy, str) else strategy
    n = np.asarray(proba).shape[0]
    k = int(min(max(k, 0), n))
    if s.kind == "score":
        return _by_score(np.asarray(s.fn(proba), dtype=float), k, rng)
    if diverse_head is None or k <= diverse_head or s.score is None:
        return np.asarray(s.fn(proba, X, k, rng), dtype=int)
    head = np.asarray(s.fn(proba, X, diverse_head, rng), dtype=int)
    scores = np.asarray(s.score(proba), dtype=float).copy()
    scores[head] = -np.inf
    tail = _by_score(scores, k, rng)
    tail = tail[~np.isin(tail, head)][: k - head.size]
    return np.concatenate([head, tail])


STRATEGIES: dict[str, Strategy] = {
    "margin": Strategy(
        "margin",
        "score",
        margin_score,
        "margin: the model is least sure between its two likeliest values",
        "smallest gap between the two likeliest QA0 values",
    ),
    "entropy": Strategy(
        "entropy",
        "score",
        entropy_score,
        "entropy: the model's prediction is the most spread out",
        "highest entropy of the predicted QA0 distribution",
    ),
    "least-confident": Strategy(
        "least-confident",
        "score",
        least_confident_score,
        "least confident: the model's best guess is weakest",
        "lowest probability of the predicted QA0 value",
    ),
    "margin-diverse": Strategy(
        "margin-diverse",
        "batch",
        margin_kmeanspp_batch,
        "margin, diverse batch: the model is unsure, and unlike what others are reviewing",
        "uncertainty-weighted k-means++: unsure EBs that are far apart in feature space",
        margin_score,
    ),
    "ranked-batch": Strategy(
        "ranked-batch",
        "batch",
        ranked_batch,
        "ranked batch: unsure and unlike the EBs picked before it",
        "ranked batch-mode: uncertainty traded against similarity to earlier picks",
        least_confident_score,
    ),
    "random": Strategy("random", "batch", random_batch, "random pick", "uniformly random order (baseline)"),
}
"""Every strategy an AoD can choose, by name."""

DEFAULT_STRATEGY = "margin-diverse"
"""The strategy used when none is chosen (the winner of benchmarks/bench_al.py)."""

COLD_START = "cold-start"
"""Queue name for diversity picks made before a usable model exists (ScoreRank rows with run_id NULL)."""


def strategy_names() -> list[str]:
    """Strategy names for the sidebar, the default first."""
    return [DEFAULT_STRATEGY] + [n for n in STRATEGIES if n != DEFAULT_STRATEGY]


def stratified_diverse_order(X: np.ndarray, groups: Sequence[object], k: int, rng: np.random.Generator) -> np.ndarray:
    """Cold-start order: k-means++ within each group (band x source), groups taken in turn.

    The first picks therefore cover every group once before any group gets a second pick, and inside a group
    successive picks are far apart in standardised feature space.
    """
    Z = standardize(X)
    n = Z.shape[0]
    k = int(min(max(k, 0), n))
    if k == 0:
        return np.zeros(0, dtype=int)
    keys = np.asarray([str(g) for g in groups])
    uniq = np.unique(keys)
    rng.shuffle(uniq)
    per_group = int(np.ceil(k / max(len(uniq), 1))) + 1
    queues: list[np.ndarray] = []
    for g in uniq:
        members = np.flatnonzero(keys == g)
        order = weighted_kmeanspp(Z[members], min(per_group, members.size), rng)
        queues.append(members[order])
    out: list[int] = []
    depth = 0
    while len(out) < k:
        added = False
        for q in queues:
            if depth < q.size:
                out.append(int(q[depth]))
                added = True
                if len(out) == k:
                    break
        if not added:
            break
        depth += 1
    if len(out) < k:
        # Groups ran dry (their per-group quota): top up with the remaining rows in a random order.
        seen = set(out)
        rest = [i for i in rng.permutation(n) if i not in seen]
        out.extend(rest[: k - len(out)])
    return np.asarray(out, dtype=int)
