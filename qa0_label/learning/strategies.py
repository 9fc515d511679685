"""Query strategies: which unlabelled EBs an AoD should review first, asked through modAL.

Every strategy is a modAL query strategy: a function ``(classifier, X, n_instances, **kwargs) -> (indices,
utility)`` that ``ActiveLearner.query`` calls. Where modAL has the strategy, it does the work:
``modAL.uncertainty.margin_sampling`` / ``entropy_sampling`` / ``uncertainty_sampling`` choose the EBs and
modAL's ``classifier_margin`` / ``classifier_entropy`` / ``classifier_uncertainty`` order them; the ranked
batch is ``modAL.batch.ranked_batch``. Ours (same signature) only where modAL has nothing: the
uncertainty-weighted k-means++ batch (the default), random order, and the tie-break.

A queue is an order, not a set: modAL's selection functions return the top n unordered (``argpartition``), so
``rank`` asks modAL for the top k and orders them by modAL's own utility, most informative first. EBs of
equal utility (a young forest gives many) are ordered by diversity (k-means++ in standardised feature
space), never by table order.

``STRATEGIES`` is the registry the UI sidebar and ``assign.next_for`` use; ``rank`` turns any strategy into a
queue order for a fitted learner.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from modAL.batch import ranked_batch as modal_ranked_batch
from modAL.uncertainty import (
    classifier_entropy,
    classifier_margin,
    classifier_uncertainty,
    entropy_sampling,
    margin_sampling,
    uncertainty_sampling,
)

QueryFn = Callable[..., tuple[np.ndarray, np.ndarray]]


def standardizer(X: np.ndarray, *, sample: int = 5_000) -> Callable[[np.ndarray], np.ndarray]:
    """A robust scaling fitted on X (median / scaled IQR per column, from at most `sample` rows), as a function.

    Columns that are empty in X are dropped, missing values land at the centre (0) and z-scores are clipped to
    +-5 so that one wild value (a dead antenna's Tsys) does not dominate every distance.
    """
    A = np.asarray(X, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"expected a 2-d feature matrix, got shape {A.shape}")
    A = np.where(np.isfinite(A), A, np.nan)
    if A.shape[0] > sample:
        A = A[np.random.default_rng(0).choice(A.shape[0], sample, replace=False)]
    keep = ~np.isnan(A).all(axis=0) if A.shape[0] else np.zeros(A.shape[1], dtype=bool)
    A = A[:, keep]
    if A.shape[1]:
        med = np.nanmedian(A, axis=0)
        q75, q25 = np.nanpercentile(A, [75, 25], axis=0)
        std = np.nanstd(A, axis=0)
    else:
        med = q75 = q25 = std = np.zeros(0)
    scale = (q75 - q25) / 1.349
    scale = np.where(scale > 1e-12, scale, std)
    scale = np.where(scale > 1e-12, scale, 1.0)

    def transform(Y: np.ndarray) -> np.ndarray:
        B = np.asarray(Y, dtype=float)
        B = np.where(np.isfinite(B), B, np.nan)[:, keep]
        return np.clip(np.nan_to_num((B - med) / scale, nan=0.0), -5.0, 5.0)

    return transform


class ScaledRows:
    """scale(X), row by row when indexed: ScaledRows(X, scale)[idx] equals scale(X)[idx] exactly.

    The scaling works value by value, so scaling the rows a strategy reads (its candidates, a tie) gives the
    same numbers as scaling the whole pool first, without the cost of the whole pool (0.2-0.3 s at 100k EBs,
    when the retrain's queues read a few thousand rows of it).
    """

    def __init__(self, X: np.ndarray, scale: Callable[[np.ndarray], np.ndarray]) -> None:
        self.X = np.asarray(X)
        self.scale = scale

    def __getitem__(self, idx: Any) -> np.ndarray:
        if np.ndim(idx) == 0:
            return self.scale(self.X[[idx]])[0]
        return self.scale(self.X[idx])


Rows = np.ndarray | ScaledRows
"""Standardised pool rows: an array, or computed when read."""


def standardize(X: np.ndarray) -> np.ndarray:
    """Robust z-scores per column (median / scaled IQR), missing values at the centre (0), empty columns dropped."""
    A = np.asarray(X, dtype=float)
    if A.ndim != 2 or A.shape[0] == 0:
        return np.zeros((A.shape[0] if A.ndim else 0, 0))
    return standardizer(A, sample=max(A.shape[0], 1))(A)


def weighted_kmeanspp(
    Z: np.ndarray,
    k: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
    start: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """k-means++ seeding order: each next pick is drawn with probability ~ weight * squared distance to the picks.

    ``start`` (distinct rows) are taken as the first picks, in their order, and the seeding continues from them;
    without it the first pick is drawn by weight.
    """
    n = Z.shape[0]
    k = int(min(max(k, 0), n))
    if k == 0:
        return np.zeros(0, dtype=int)
    w = np.ones(n) if weights is None else np.clip(np.asarray(weights, dtype=float), 0.0, None)
    if not np.isfinite(w).all() or w.sum() <= 0:
        w = np.ones(n)
    if start is not None and len(start):
        picks = [int(i) for i in start][:k]
    else:
        picks = [int(rng.choice(n, p=w / w.sum()))]
    d2 = np.full(n, np.inf)
    for i in picks:
        d2 = np.minimum(d2, ((Z - Z[i]) ** 2).sum(axis=1))
    taken = np.zeros(n, dtype=bool)
    taken[picks] = True
    for _ in range(len(picks), k):
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


CANDIDATE_FACTOR = 2
"""margin-diverse spreads its diverse places over this many times as many of the most uncertain EBs."""
CANDIDATE_FLOOR = 100
"""... but over at least this many (a short batch still gets a choice)."""
# Was 10 x with a floor of 2,000: on tables of a few thousand EBs that is nearly the whole pool, and the
# diversity term competed with uncertainty over EBs the model is nearly sure of. Twice the head (600 for the
# retrain's 300-place queues), benchmark al, seeds 1-3, 2026-12-06: AUC digits 0.886 -> 0.899, qa0-sim
# 0.725 -> 0.763, qa0-sim-rule 0.702 -> 0.714 (breast_cancer and wine have fewer than 600 EBs: unchanged).
# See docs/active-learning.md.


def _candidates(
    scores: np.ndarray,
    k: int,
    factor: int | None = None,
    floor: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    # Diversity is only worth buying among EBs the model is unsure about: keep the top slice.
    factor = CANDIDATE_FACTOR if factor is None else factor
    floor = CANDIDATE_FLOOR if floor is None else floor
    m = int(min(scores.shape[0], max(factor * k, floor)))
    if m >= scores.shape[0]:
        return np.arange(scores.shape[0])
    # Ties at the cut (a young forest gives many) are kept at random, never by table order.
    order = rng.permutation(scores.shape[0]) if rng is not None else np.arange(scores.shape[0])
    return order[np.argpartition(-scores[order], m - 1)[:m]]


def _generator(random_state: Any) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)


def _count(X: Any, n_instances: int) -> int:
    return int(min(max(int(n_instances), 0), np.asarray(X).shape[0]))


TIE_DIVERSE = 200
"""At most this many EBs of one tie are put in k-means++ order (the rest of the tie follows in random order)."""


def order_by_utility(
    idx: np.ndarray, utility: np.ndarray, X: np.ndarray, rng: np.random.Generator, Z: Rows | None = None
) -> np.ndarray:
    """idx sorted by utility (higher first); EBs of equal utility in k-means++ order, so a tie yields variety."""
    idx = np.asarray(idx, dtype=int)
    if idx.size <= 1:
        return idx
    # Rounded: float noise must not split what is one tie (vote shares of a forest).
    key = np.round(np.asarray(utility, dtype=float)[idx], 12)
    order = np.lexsort((rng.random(idx.size), -key))
    idx, key = idx[order], key[order]
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    ends = np.concatenate([starts[1:], [idx.size]])
    out = idx.copy()
    for a, b in zip(starts, ends):
        if b - a < 2:
            continue
        m = int(min(b - a, TIE_DIVERSE))
        members = idx[a : a + m]  # a random subset of the tie (the lexsort shuffled it)
        Zg = Z[members] if Z is not None else standardize(np.asarray(X)[members])
        out[a : a + m] = members[weighted_kmeanspp(Zg, m, rng)]
    return out


def _modal_ranked(select: Callable[..., Any], utility: Callable[..., np.ndarray], *, higher: bool) -> QueryFn:
    """A query strategy that asks modAL's `select` for the top n and orders them by modAL's `utility`."""

    def query(
        classifier: Any, X: np.ndarray, n_instances: int = 1, *, random_state: Any = None, Z: Any = None, **_: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        k = _count(X, n_instances)
        if k == 0:
            return np.zeros(0, dtype=int), np.zeros(0)
        chosen = np.asarray(select(classifier, X, n_instances=k)[0], dtype=int).ravel()
        u = np.asarray(utility(classifier, X), dtype=float)
        info = np.round(u if higher else -u, 12)
        # modAL takes an arbitrary part of a tie at the k-th place (argpartition): put the whole tie in play so
        # that diversity, not table order, decides which of its EBs make the queue.
        edge = info[chosen].min()
        tie = np.flatnonzero(info == edge)
        if tie.size > np.count_nonzero(info[chosen] == edge):
            chosen = np.union1d(chosen[info[chosen] > edge], tie)
        order = order_by_utility(chosen, info, X, _generator(random_state), Z)[:k]
        return order, u[order]

    query.__name__ = f"ranked_{select.__name__}"
    query.__doc__ = f"modAL's {select.__name__}, the picks in order of modAL's {utility.__name__}."
    return query


margin_query = _modal_ranked(margin_sampling, classifier_margin, higher=False)
entropy_query = _modal_ranked(entropy_sampling, classifier_entropy, higher=True)
least_confident_query = _modal_ranked(uncertainty_sampling, classifier_uncertainty, higher=True)


def margin_diverse_query(
    classifier: Any,
    X: np.ndarray,
    n_instances: int = 1,
    *,
    random_state: Any = None,
    Z: Rows | None = None,
    diverse_head: int | None = None,
    **_: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Uncertainty-weighted k-means++ over the most uncertain EBs (margin^2 x distance^2), then by margin.

    modAL has no such batch strategy (its ranked batch is `ranked-batch`); the uncertainty is modAL's
    classifier_margin. A flat model (every EB equally uncertain) still yields a diverse batch.
    """
    rng = _generator(random_state)
    k = _count(X, n_instances)
    if k == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    unc = 1.0 - np.asarray(classifier_margin(classifier, X), dtype=float)
    head = k if diverse_head is None else int(min(k, max(diverse_head, 0)))
    cand = _candidates(unc, head, rng=rng)
    Zc = Z[cand] if Z is not None else standardize(np.asarray(X)[cand])
    w = unc[cand] ** 2 + 1e-9
    # Start from the most uncertain EB (ties at random) so the first pick is modAL's margin_sampling pick.
    top = np.flatnonzero(w == w.max())
    picks = cand[weighted_kmeanspp(Zc, head, rng, weights=w, start=[int(rng.choice(top))])]
    if k > head:
        rest = margin_query(classifier, X, k, random_state=rng, Z=Z)[0]
        picks = np.concatenate([picks, rest[~np.isin(rest, picks)][: k - head]])
    return picks, unc[picks]


RANKED_HEAD = 30
"""At most this many EBs are placed by modAL's ranked batch (each costs a pass over candidates x labelled)."""
RANKED_CANDIDATES = 600
RANKED_LABELLED = 200


class _DistanceView:
    """What modAL.batch.ranked_batch reads of a learner: the labelled rows, here in standardised space."""

    on_transformed = False

    def __init__(self, X_training: np.ndarray | None) -> None:
        self.X_training = X_training


def ranked_batch_query(
    classifier: Any,
    X: np.ndarray,
    n_instances: int = 1,
    *,
    random_state: Any = None,
    Z: Any = None,
    diverse_head: int | None = None,
    scale: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Ranked batch-mode (Cardoso et al. 2017) by modAL.batch.ranked_batch, then by modAL's least confidence.

    modAL's uncertainty_batch_sampling measures distances on the raw features, which mix units and hold
    NaN (pairwise_distances refuses them): the same modAL ranked_batch runs here on robust z-scores, over
    the most uncertain candidates and at most RANKED_LABELLED labelled rows, so its cost stays bounded.
    """
    rng = _generator(random_state)
    k = _count(X, n_instances)
    if k == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    unc = np.asarray(classifier_uncertainty(classifier, X), dtype=float)
    head = int(min(k, RANKED_HEAD if diverse_head is None else max(min(diverse_head, RANKED_HEAD), 0)))
    cand = _candidates(unc, head, floor=RANKED_CANDIDATES)
    scale = standardizer(np.asarray(X)) if scale is None else scale
    labelled = getattr(classifier, "X_training", None)
    Zl = None
    if labelled is not None and np.asarray(labelled).shape[0]:
        L = np.asarray(labelled, dtype=float)
        if L.shape[0] > RANKED_LABELLED:
            L = L[rng.choice(L.shape[0], RANKED_LABELLED, replace=False)]
        Zl = scale(L)
    order, _ = modal_ranked_batch(
        _DistanceView(Zl),
        unlabeled=scale(np.asarray(X)[cand]),
        uncertainty_scores=unc[cand],
        n_instances=head,
        metric="euclidean",
        n_jobs=None,
    )
    picks = cand[np.asarray(order, dtype=int)]
    if k > head:
        rest = least_confident_query(classifier, X, k, random_state=rng, Z=Z)[0]
        picks = np.concatenate([picks, rest[~np.isin(rest, picks)][: k - head]])
    return picks, unc[picks]


def random_query(
    classifier: Any, X: np.ndarray, n_instances: int = 1, *, random_state: Any = None, **_: Any
) -> tuple[np.ndarray, np.ndarray]:
    """n samples in random order (the baseline every strategy is measured against); ignores the model."""
    k = _count(X, n_instances)
    idx = _generator(random_state).permutation(np.asarray(X).shape[0])[:k]
    return idx, np.zeros(k)


# --- registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """A named modAL query strategy with the sentence shown to the AoD when it picks an EB."""

    name: str
    kind: Literal["score", "batch"]
    query: QueryFn
    reason: str
    description: str


def rank(
    strategy: Strategy | str,
    learner: Any,
    X: np.ndarray,
    k: int,
    *,
    random_state: Any = None,
    Z: Rows | None = None,
    diverse_head: int | None = None,
    scale: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Indices of the first k pool rows in the order this strategy asks for them, via learner.query (modAL).

    diverse_head caps how many a batch strategy places with its (costly) diversity algorithm; the rest of the
    k follow by its uncertainty. A queue is consumed from the front, so diversity matters most there. Z: the
    pool's standardised features when the caller has them (tie-breaks and k-means++ use them), scale the
    standardizer that made them (the ranked batch puts the labelled rows in the same space).
    """
    s = STRATEGIES[strategy] if isinstance(strategy, str) else strategy
    k = _count(X, k)
    if k == 0:
        return np.zeros(0, dtype=int)
    kwargs: dict[str, Any] = {"random_state": _generator(random_state), "Z": Z}
    if s.kind == "batch":
        kwargs["diverse_head"] = diverse_head
        kwargs["scale"] = scale
    previous = learner.query_strategy
    learner.query_strategy = s.query
    try:
        idx, _rows = learner.query(X, n_instances=k, **kwargs)
    finally:
        learner.query_strategy = previous
    return np.asarray(idx, dtype=int)


STRATEGIES: dict[str, Strategy] = {
    "margin": Strategy(
        "margin",
        "score",
        margin_query,
        "margin: the model is least sure between its two likeliest values",
        "smallest gap between the two likeliest QA0 values (modAL margin_sampling)",
    ),
    "entropy": Strategy(
        "entropy",
        "score",
        entropy_query,
        "entropy: the model's prediction is the most spread out",
        "highest entropy of the predicted QA0 distribution (modAL entropy_sampling)",
    ),
    "least-confident": Strategy(
        "least-confident",
        "score",
        least_confident_query,
        "least confident: the model's best guess is weakest",
        "lowest probability of the predicted QA0 value (modAL uncertainty_sampling)",
    ),
    "margin-diverse": Strategy(
        "margin-diverse",
        "batch",
        margin_diverse_query,
        "margin, diverse batch: the model is unsure, and unlike what others are reviewing",
        "uncertainty-weighted k-means++: unsure EBs that are far apart in feature space",
    ),
    "ranked-batch": Strategy(
        "ranked-batch",
        "batch",
        ranked_batch_query,
        "ranked batch: unsure and unlike the EBs picked before it",
        "ranked batch-mode (modAL ranked_batch): uncertainty traded against similarity to labelled EBs",
    ),
    "random": Strategy("random", "batch", random_query, "random pick", "uniformly random order (baseline)"),
}
"""Every strategy an AoD can choose, by name."""

DEFAULT_STRATEGY = "margin-diverse"
"""The strategy used when none is chosen."""

COLD_START = "cold-start"
"""Queue name for diversity picks made before a usable model exists (ScoreRank rows with run_id NULL)."""


def strategy_names() -> list[str]:
    """Strategy names for the sidebar, the default first."""
    return [DEFAULT_STRATEGY] + [n for n in STRATEGIES if n != DEFAULT_STRATEGY]


COLD_START_TYPICAL = 20
"""With fewer strata than this, cold start opens each stratum with typical EBs (members nearest k-means centres)."""
# With a handful of labels a model learns most from typical examples (Hacohen et al. 2022, "Active learning on
# a budget"); k-means++ alone draws by squared distance and so favours outliers. First model's macro-F1 on 20
# cold-start labels, fit_served_model on seeds 1-8 (median), k-means++ alone -> typical first: digits 0.53 ->
# 0.78, breast_cancer 0.94 -> 0.94, wine 0.97 -> 0.96 (worst seed 0.74 -> 0.89); random 20: 0.68 / 0.91 / 0.95.


COLD_START_SAMPLE = 20_000
"""Within a stratum, cold start draws its picks from at most this many members (a uniform random sample)."""
# k-means++ costs a pass over the stratum per pick: the 2,000 picks of the cold-start queue over one 100,000-EB
# stratum (an imported single-band archive) took ~30-40 s, and the first `next` waits for it. A uniform sample
# of 20,000 still holds every kind of EB that 2,000 picks can reach.


def typical_order(Z: np.ndarray, k: int, rng: np.random.Generator, *, sample: int = 5_000) -> np.ndarray:
    """The rows nearest the centres of k k-means clusters of Z, the biggest cluster first (distinct rows)."""
    from sklearn.cluster import KMeans

    n = Z.shape[0]
    k = int(min(max(k, 0), n))
    if k == 0 or Z.ndim != 2 or Z.shape[1] == 0:
        return np.zeros(0, dtype=int)  # no feature carries anything: no EB is more typical than another
    if k == 1:
        return np.asarray([int(np.argmin(((Z - Z.mean(axis=0)) ** 2).sum(axis=1)))])
    fit_on = Z if n <= sample else Z[rng.choice(n, sample, replace=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct rows than clusters: some centres coincide, fine here
        km = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=int(rng.integers(2**31 - 1))).fit(fit_on)
    cluster = km.predict(Z)
    d2 = ((Z - km.cluster_centers_[cluster]) ** 2).sum(axis=1)
    picks: list[int] = []
    for c in np.argsort(-np.bincount(cluster, minlength=k), kind="stable"):
        members = np.flatnonzero(cluster == c)
        if members.size:
            picks.append(int(members[np.argmin(d2[members])]))
    return np.asarray(list(dict.fromkeys(picks)), dtype=int)


def stratified_diverse_order(X: np.ndarray, groups: Sequence[object], k: int, rng: np.random.Generator) -> np.ndarray:
    """Cold-start order: k-means++ within each group (band x source), groups taken in turn.

    The first picks therefore cover every group once before any group gets a second pick, and inside a group
    successive picks are far apart in standardised feature space. With fewer groups than COLD_START_TYPICAL,
    each group opens with its typical EBs (nearest k-means centres: COLD_START_TYPICAL // groups of them).
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
    # Typical picks subdivide a stratum by k-means only where band x source gives fewer strata than the first
    # picks: with many strata (the usual archive) each stratum's first pick stays a random member, because its
    # most typical member is nearly always a Pass and the first model then never sees a Fail (qa0-sim: AUC
    # 0.75 -> 0.68 when every stratum opened with its typical EB).
    typical = COLD_START_TYPICAL // max(len(uniq), 1)
    queues: list[np.ndarray] = []
    for g in uniq:
        members = np.flatnonzero(keys == g)
        if members.size > COLD_START_SAMPLE:
            members = np.sort(rng.choice(members, COLD_START_SAMPLE, replace=False))
        quota = min(per_group, members.size)
        start = typical_order(Z[members], min(typical, quota), rng)
        order = weighted_kmeanspp(Z[members], quota, rng, start=start)
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
