"""Inter-labeler agreement statistics over each labeler's current QA0 label (pure: DataFrames in, no database).

Input ("labels")
    A DataFrame with columns ``eb_id``, ``labeler``, ``value`` and optionally ``created_at``,
    ``seconds_on_eb`` and ``event_id``: exactly what ``labels.current_labels(session, include_archive=False)``
    returns. Values are normalised case-insensitively (``semipass`` -> ``SemiPass``); an unknown value raises
    ``labels.LabelError`` (a ValueError) naming it. Rows without a value (an undo back to "no label") are
    ignored. If the same (eb_id, labeler) appears more than once only the newest row counts (by ``event_id``,
    else ``created_at``, else input order), so a revised label never counts twice.

Items
    An item is an EB. Every agreement statistic uses only items rated by at least two labelers; EBs with one
    label carry no information about agreement. Categories are ``models.LABEL_VALUES`` (Pass, SemiPass,
    Fail) and every 3x3 matrix is in that order. The ordinal order is ``models.ORDINAL``: Fail < SemiPass < Pass.

Statistics
    * Cohen's kappa per pair of labelers, over the EBs both rated (scikit-learn's ``cohen_kappa_score``).
    * Fleiss' kappa. Items may have different numbers of raters (AoDs overlap on a share of EBs only), so we
      use Fleiss' generalised kappa for missing ratings (Gwet, Handbook of Inter-Rater Reliability, 4th ed.,
      sec. 5): observed agreement p_a = mean over items of sum_k r_ik (r_ik - 1) / (r_i (r_i - 1)), chance
      agreement p_e = sum_k pi_k^2 with pi_k = mean over items of r_ik / r_i. With the same number of raters
      on every item this is exactly Fleiss (1971) and equals statsmodels' ``fleiss_kappa``.
    * Krippendorff's alpha, nominal and ordinal, from the coincidence matrix (Krippendorff 2011); identical
      to the ``krippendorff`` package with Fail=0, SemiPass=1, Pass=2.
    * Percent agreement: mean over items of the share of rater pairs on the item that agree (for two raters,
      the share of items on which they agree). This is the p_a of Fleiss' kappa.
    * Bootstrap intervals resample items (EBs) with replacement and take percentiles.

Edge cases (never an exception, never a number that means nothing)
    * no labels, one labeler, or no EB rated by two labelers: ``n_items`` is 0 and every statistic is None
      (``agreement_report`` says which case in ``notes``); ``pairwise_cohen`` returns [].
    * everyone gives the same single value on the shared EBs: chance agreement is 1, so kappa and alpha are
      0/0 and are None (with a note); percent agreement is 1.0.
    * a pair of labelers with one shared EB: kappa is what the formula gives (0.0 if they disagree, None if
      they agree, since chance agreement is then 1); ``n`` is reported next to it and the report adds a note
      for pairs with fewer than ``SMALL_PAIR_N`` shared EBs. Bootstrap intervals need at least 2 items.
    DataFrame outputs use NaN for "undefined"; dict outputs (report, model comparison) use None so they
    serialise to JSON null.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from qa0_label.store.labels import normalize_value
from qa0_label.store.models import CAUTION_ORDER, LABEL_VALUES, ORDINAL

CATEGORIES: tuple[str, ...] = LABEL_VALUES
"""Row / column order of every matrix here: Pass, SemiPass, Fail."""

SMALL_PAIR_N = 10
"""Pairs sharing fewer EBs than this get a 'kappa is unstable' note in the report."""

_K = len(CATEGORIES)
_INDEX = {v: i for i, v in enumerate(CATEGORIES)}
_RANK = np.array([ORDINAL[v] for v in CATEGORIES])
# Column indices in tie-break order: argmax over these picks the most cautious of the tied values.
_CAUTION_COLS = np.array([_INDEX[v] for v in CAUTION_ORDER])
# _BETWEEN[c, k, g] = 1 when category g lies between c and k (inclusive) in the ordinal order.
_BETWEEN = np.array(
    [
        [
            [1.0 if min(_RANK[c], _RANK[k]) <= _RANK[g] <= max(_RANK[c], _RANK[k]) else 0.0 for g in range(_K)]
            for k in range(_K)
        ]
        for c in range(_K)
    ]
)
_BLOCK_CELLS = 2_000_000  # items x replicates drawn at once: bounds memory, keeps numpy busy
_FAST_STATISTICS = ("fleiss_kappa", "alpha_nominal", "alpha_ordinal", "percent_agreement")

Level = Literal["nominal", "ordinal"]
Statistic = Callable[[pd.DataFrame], "float | None"]


# --- input --------------------------------------------------------------------------------------


def prepare(labels: pd.DataFrame | None) -> pd.DataFrame:
    """Validated labels: one row per (eb_id, labeler), canonical values, integer ``code`` column (CATEGORIES).

    Sorted by (eb_id, labeler); keeps created_at (as UTC timestamps), seconds_on_eb and event_id if given.
    """
    if labels is None or (len(labels) == 0 and not {"eb_id", "labeler", "value"} <= set(labels.columns)):
        labels = pd.DataFrame({"eb_id": [], "labeler": [], "value": []}, dtype=object)
    missing = [c for c in ("eb_id", "labeler", "value") if c not in labels.columns]
    if missing:
        raise ValueError(f"labels need columns eb_id, labeler, value; missing {', '.join(missing)}")
    keep = [c for c in ("eb_id", "labeler", "value", "created_at", "seconds_on_eb", "event_id") if c in labels]
    df = labels[keep]
    present = (df["value"].notna() & df["eb_id"].notna() & df["labeler"].notna()).to_numpy()
    if not present.all():
        df = df[present]
    value_idx, raw_values = pd.factorize(df["value"])
    lut = np.array([_INDEX[normalize_value(v)] for v in raw_values], dtype=np.int64)
    code = lut[value_idx]
    names = df["labeler"].astype(str).to_numpy(dtype=object)
    eb_idx, _ = pd.factorize(df["eb_id"], sort=True)
    name_idx, name_uniques = pd.factorize(names, sort=True)
    created = pd.to_datetime(df["created_at"], utc=True, format="ISO8601") if "created_at" in df else None
    # Only the newest label of a labeler on an EB counts (a revision replaces, it does not add).
    if "event_id" in df:
        recency = np.argsort(df["event_id"].to_numpy(), kind="stable")
    elif created is not None:
        # datetime64, not an object array of Timestamps: argsort is then a numpy sort, not Python compares.
        recency = np.argsort(created.dt.tz_convert(None).to_numpy(), kind="stable")
    else:
        recency = np.arange(len(df))
    key = eb_idx.astype(np.int64) * max(len(name_uniques), 1) + name_idx
    newest_first = recency[::-1]
    _, first = np.unique(key[newest_first], return_index=True)
    rows = newest_first[first]  # ordered by key, i.e. by (eb_id, labeler)
    out: dict[str, Any] = {
        "eb_id": df["eb_id"].to_numpy()[rows],
        "labeler": names[rows],
        "value": np.array(CATEGORIES, dtype=object)[code[rows]],
        "code": code[rows],
    }
    if created is not None:
        out["created_at"] = created.iloc[rows].reset_index(drop=True)
    for col in ("seconds_on_eb", "event_id"):
        if col in df:
            out[col] = df[col].to_numpy()[rows]
    return pd.DataFrame(out)


def _items(prep: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item index per row, sorted item ids, counts[item, category]) over all items of prepared labels."""
    item_idx, items = pd.factorize(prep["eb_id"], sort=True)
    counts = np.bincount(item_idx * _K + prep["code"].to_numpy(), minlength=len(items) * _K)
    return item_idx, np.asarray(items), counts.reshape(len(items), _K).astype(float)


def _multi(prep: pd.DataFrame) -> pd.DataFrame:
    """Rows of items rated by at least two labelers."""
    if prep.empty:
        return prep
    item_idx, _, counts = _items(prep)
    keep = counts.sum(axis=1)[item_idx] >= 2
    return prep if keep.all() else prep[keep].reset_index(drop=True)


def _count_matrix(prep: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, counts[item, category]) for items with at least two labelers, sorted by eb_id."""
    if prep.empty:
        return np.array([]), np.zeros((0, _K))
    _, items, counts = _items(prep)
    keep = counts.sum(axis=1) >= 2
    return items[keep], counts[keep]


# --- statistics from an item x category count matrix (vectorised over bootstrap weights) -------------


def _fleiss_pa_pe(counts: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_items = counts.shape[0]
    r = counts.sum(axis=1)
    p_item = (counts * (counts - 1)).sum(axis=1) / (r * (r - 1))
    share = counts / r[:, None]
    pa = weights @ p_item / n_items
    pi = weights @ share / n_items
    return pa, (pi**2).sum(axis=1)


def _fleiss_from_counts(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    pa, pe = _fleiss_pa_pe(counts, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Chance agreement 1 means every rating is the same value: kappa is 0/0, not a number.
        return np.where(1 - pe > 1e-12, (pa - pe) / (1 - pe), np.nan)


def _alpha_from_counts(counts: np.ndarray, weights: np.ndarray, level: Level) -> np.ndarray:
    n_items = counts.shape[0]
    r = counts.sum(axis=1)
    pairs = counts[:, :, None] * counts[:, None, :] - np.einsum("ic,ck->ick", counts, np.eye(_K))
    per_item = (pairs / (r - 1)[:, None, None]).reshape(n_items, _K * _K)
    coincidence = (weights @ per_item).reshape(-1, _K, _K)
    n_c = coincidence.sum(axis=2)
    n = n_c.sum(axis=1)
    if level == "nominal":
        delta = np.broadcast_to(1.0 - np.eye(_K), coincidence.shape)
    else:
        between = np.einsum("ckg,bg->bck", _BETWEEN, n_c)
        delta = (between - (n_c[:, :, None] + n_c[:, None, :]) / 2) ** 2
    observed = (coincidence * delta).sum(axis=(1, 2))
    expected = (n_c[:, :, None] * n_c[:, None, :] * delta).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Expected disagreement 0 means a single value was used: alpha is 0/0, not a number.
        return np.where(expected > 0, 1 - (n - 1) * observed / expected, np.nan)


def _fast_statistic(name: str, counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if name == "fleiss_kappa":
        return _fleiss_from_counts(counts, weights)
    if name == "percent_agreement":
        return _fleiss_pa_pe(counts, weights)[0]
    return _alpha_from_counts(counts, weights, "nominal" if name == "alpha_nominal" else "ordinal")


def _scalar(values: np.ndarray) -> float | None:
    value = float(values[0])
    return None if math.isnan(value) else value


def _kappa_from_codes(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Cohen's kappa of paired category codes, once per row of weights (one row of ones if None)."""
    onehot = np.zeros((len(x), _K * _K))
    onehot[np.arange(len(x)), x * _K + y] = 1.0
    w = np.ones((1, len(x))) if weights is None else weights
    conf = (w @ onehot).reshape(-1, _K, _K)
    n = conf.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        po = np.trace(conf, axis1=1, axis2=2) / n
        pe = (conf.sum(axis=2) * conf.sum(axis=1)).sum(axis=1) / n**2
        return np.where((n > 0) & (1 - pe > 1e-12), (po - pe) / (1 - pe), np.nan)


# --- public statistics ---------------------------------------------------------------------------


def _codes(values: Sequence[Any]) -> list[int | None]:
    return [
        None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else _INDEX[normalize_value(v)]
        for v in values
    ]


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two equally long sequences of QA0 values (pairs with a missing value are dropped).

    Returns None when there are no pairs or chance agreement is 1 (both always gave the same single value).
    """
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs sequences of equal length, got {len(a)} and {len(b)}")
    pairs = [(x, y) for x, y in zip(_codes(a), _codes(b)) if x is not None and y is not None]
    if not pairs:
        return None
    x, y = (np.array(p, dtype=int) for p in zip(*pairs))
    return _scalar(_kappa_from_codes(x, y))


def _wide(prep: pd.DataFrame) -> pd.DataFrame:
    """Item x labeler matrix of category codes (-1 where the labeler did not rate the item)."""
    if prep.empty:
        return pd.DataFrame()
    return prep.pivot(index="eb_id", columns="labeler", values="code").fillna(-1).astype(int)


def pairwise_cohen(
    labels: pd.DataFrame, *, n_boot: int = 0, seed: int = 0, level: float = 0.95
) -> list[dict[str, Any]]:
    """Cohen's kappa for every pair of labelers sharing at least one EB.

    Returns ``[{"a", "b", "n", "kappa", "percent_agreement"}]`` sorted by (a, b) with a < b; kappa is None
    when undefined. With n_boot > 0 each entry also has ``low`` / ``high``: a bootstrap interval over the
    pair's shared EBs (None when fewer than 2 shared EBs or kappa is undefined).
    """
    wide = _wide(_multi(prepare(labels)))
    out: list[dict[str, Any]] = []
    names = [str(c) for c in wide.columns]  # pivot sorts them
    matrix = wide.to_numpy()
    rated = matrix >= 0
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            both = rated[:, i] & rated[:, j]
            n = int(both.sum())
            if n == 0:
                continue
            x, y = matrix[both, i], matrix[both, j]
            entry: dict[str, Any] = {
                "a": a,
                "b": b,
                "n": n,
                "kappa": _scalar(_kappa_from_codes(x, y)),
                "percent_agreement": float(np.mean(x == y)),
            }
            if n_boot > 0:
                ci = _pair_ci(x, y, entry["kappa"], n_boot=n_boot, seed=seed, level=level)
                entry["low"], entry["high"] = ci if ci else (None, None)
            out.append(entry)
    return out


def fleiss_kappa(labels: pd.DataFrame) -> float | None:
    """Fleiss' kappa (generalised for items with different numbers of raters), or None when undefined."""
    _, counts = _count_matrix(prepare(labels))
    if counts.shape[0] == 0:
        return None
    return _scalar(_fleiss_from_counts(counts, np.ones((1, counts.shape[0]))))


def krippendorff_alpha(labels: pd.DataFrame, level: Level = "nominal") -> float | None:
    """Krippendorff's alpha, nominal or ordinal (Fail < SemiPass < Pass), or None when undefined."""
    if level not in ("nominal", "ordinal"):
        raise ValueError(f"level must be 'nominal' or 'ordinal', got {level!r}")
    _, counts = _count_matrix(prepare(labels))
    if counts.shape[0] == 0:
        return None
    return _scalar(_alpha_from_counts(counts, np.ones((1, counts.shape[0])), level))


def percent_agreement(labels: pd.DataFrame) -> float | None:
    """Mean over items of the share of agreeing rater pairs; None when no item has two raters."""
    _, counts = _count_matrix(prepare(labels))
    if counts.shape[0] == 0:
        return None
    return _scalar(_fleiss_pa_pe(counts, np.ones((1, counts.shape[0])))[0])


# --- bootstrap --------------------------------------------------------------------------------------


_STATISTIC_NAMES: dict[Callable[[pd.DataFrame], float | None], str] = {
    fleiss_kappa: "fleiss_kappa",
    percent_agreement: "percent_agreement",
}


def _check_boot(n_boot: int, level: float) -> None:
    if int(n_boot) < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")


def resample_indices(n_items: int, *, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """The item indices of each bootstrap replicate, in blocks: the stream every bootstrap here uses.

    Yields arrays of shape (block, n_items) whose rows are replicates; together n_boot rows. The same
    (n_items, n_boot, seed) always gives the same replicates, whichever statistic is being resampled.
    """
    rng = np.random.default_rng(seed)
    block = max(1, min(n_boot, _BLOCK_CELLS // max(n_items, 1)))
    done = 0
    while done < n_boot:
        size = min(block, n_boot - done)
        yield rng.integers(0, n_items, size=(size, n_items))
        done += size


def _interval(replicates: np.ndarray, level: float) -> tuple[float, float] | None:
    defined = replicates[~np.isnan(replicates)]
    # If most resamples are undefined, the defined ones are a biased subset: no interval at all.
    if len(defined) < max(2, len(replicates) / 2):
        return None
    tail = (1 - level) / 2
    low, high = np.quantile(defined, [tail, 1 - tail])
    return float(low), float(high)


def _weighted_replicates(
    n_items: int, n_boot: int, seed: int, compute: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    # A replicate is a vector of how often each item was drawn, so sum-based statistics are one matmul.
    out: list[np.ndarray] = []
    for idx in resample_indices(n_items, n_boot=n_boot, seed=seed):
        rows = np.repeat(np.arange(idx.shape[0]) * n_items, n_items)
        weights = np.bincount(rows + idx.ravel(), minlength=idx.size).reshape(idx.shape)
        out.append(compute(weights.astype(float)))
    return np.concatenate(out)


def _ci_from_counts(
    name: str, counts: np.ndarray, *, n_boot: int, seed: int, level: float
) -> tuple[float, float] | None:
    n_items = counts.shape[0]
    if n_items < 2 or math.isnan(_fast_statistic(name, counts, np.ones((1, n_items)))[0]):
        return None
    reps = _weighted_replicates(n_items, n_boot, seed, lambda w: _fast_statistic(name, counts, w))
    return _interval(reps, level)


def _pair_ci(
    x: np.ndarray, y: np.ndarray, kappa: float | None, *, n_boot: int, seed: int, level: float
) -> tuple[float, float] | None:
    if kappa is None or len(x) < 2:
        return None
    _check_boot(n_boot, level)
    reps = _weighted_replicates(len(x), n_boot, seed, lambda w: _kappa_from_codes(x, y, w))
    return _interval(reps, level)


def bootstrap_ci(
    labels: pd.DataFrame,
    statistic: Statistic | str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of a statistic, resampling items (EBs rated by at least two labelers).

    ``statistic`` is a callable ``labels -> float | None`` (it receives a labels DataFrame in which each
    drawn item gets a fresh ``eb_id`` 0..n-1, so an item drawn twice counts twice), or one of the names
    "fleiss_kappa", "alpha_nominal", "alpha_ordinal", "percent_agreement" (also ``fleiss_kappa`` and
    ``percent_agreement`` themselves), which take a vectorised path with the same resamples.
    Returns (low, high), or None when there are fewer than 2 items, the statistic is undefined on the data,
    or it is undefined on more than half of the resamples. The same seed gives the same interval.
    """
    _check_boot(n_boot, level)
    name = statistic if isinstance(statistic, str) else _STATISTIC_NAMES.get(statistic)
    if isinstance(statistic, str) and statistic not in _FAST_STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; expected a callable or one of {_FAST_STATISTICS}")
    prep = prepare(labels)
    if name is not None:
        return _ci_from_counts(name, _count_matrix(prep)[1], n_boot=n_boot, seed=seed, level=level)
    assert callable(statistic)
    multi = _multi(prep).sort_values(["eb_id", "labeler"], kind="stable").reset_index(drop=True)
    sizes = multi.groupby("eb_id", sort=True).size().to_numpy()
    n_items = len(sizes)
    point = statistic(multi) if n_items >= 2 else None
    if point is None or math.isnan(point):
        return None
    starts = np.cumsum(sizes) - sizes
    columns = [c for c in multi.columns if c not in ("code", "eb_id")]
    values: list[float] = []
    for idx in itertools.chain.from_iterable(resample_indices(n_items, n_boot=n_boot, seed=seed)):
        lens = sizes[idx]
        offsets = np.cumsum(lens) - lens
        rows = np.arange(lens.sum()) - np.repeat(offsets, lens) + np.repeat(starts[idx], lens)
        sample = multi.iloc[rows][columns].reset_index(drop=True)
        sample.insert(0, "eb_id", np.repeat(np.arange(n_items), lens))
        result = statistic(sample)
        values.append(np.nan if result is None else float(result))  # NaN stays NaN: undefined
    return _interval(np.array(values), level)


# --- confusion matrices and consensus of the others -------------------------------------------------------


def _empty_matrix(index_name: str, columns_name: str) -> pd.DataFrame:
    frame = pd.DataFrame(0, index=list(CATEGORIES), columns=list(CATEGORIES), dtype="int64")
    frame.index.name, frame.columns.name = index_name, columns_name
    return frame


def _matrix(x: np.ndarray, y: np.ndarray, index_name: str, columns_name: str) -> pd.DataFrame:
    frame = _empty_matrix(index_name, columns_name)
    counts = np.bincount(x.astype(int) * _K + y.astype(int), minlength=_K * _K).reshape(_K, _K)
    frame.iloc[:, :] = counts
    return frame


def pair_confusion(labels: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """3x3 counts over EBs both rated: rows = a's value, columns = b's value (Pass, SemiPass, Fail order)."""
    if str(a) == str(b):
        raise ValueError("pair_confusion compares two different labelers")
    prep = prepare(labels)
    wide = _wide(prep)
    if str(a) not in wide.columns or str(b) not in wide.columns:
        return _empty_matrix(str(a), str(b))
    both = (wide[str(a)] >= 0) & (wide[str(b)] >= 0)
    return _matrix(wide.loc[both, str(a)].to_numpy(), wide.loc[both, str(b)].to_numpy(), str(a), str(b))


def others_consensus(labels: pd.DataFrame) -> pd.DataFrame:
    """Per (eb_id, labeler): own value and the majority of the OTHER labelers on that EB (cautious ties).

    Columns eb_id, labeler, value, consensus, n_others; rows only where at least one other labeler rated
    the EB. Ties go to the more cautious value, as in ``labels.majority_value``.
    """
    multi = _multi(prepare(labels))
    cols = ["eb_id", "labeler", "value", "consensus", "n_others"]
    if multi.empty:
        return pd.DataFrame(columns=cols)
    item_idx, _, counts = _items(multi)
    per_row = counts[item_idx]
    own = np.zeros_like(per_row)
    own[np.arange(len(multi)), multi["code"].to_numpy()] = 1
    others = per_row - own
    pick = _CAUTION_COLS[np.argmax(others[:, _CAUTION_COLS], axis=1)]
    return pd.DataFrame(
        {
            "eb_id": multi["eb_id"].to_numpy(),
            "labeler": multi["labeler"].to_numpy(),
            "value": multi["value"].to_numpy(),
            "consensus": np.array(CATEGORIES, dtype=object)[pick],
            "n_others": others.sum(axis=1).astype(int),
        }
    )


def confusion_vs_consensus(labels: pd.DataFrame, labeler: str) -> pd.DataFrame:
    """3x3 counts: rows = the labeler's value, columns = consensus of the other labelers on the same EB."""
    cons = others_consensus(labels)
    mine = cons[cons["labeler"] == str(labeler)]
    return _matrix(
        mine["value"].map(_INDEX).to_numpy(dtype=int),
        mine["consensus"].map(_INDEX).to_numpy(dtype=int),
        str(labeler),
        "consensus of others",
    )


# --- trend, per-labeler and model comparisons --------------------------------------------------------


def weekly_trend(labels: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Krippendorff's alpha per week, an item falling in the week (Monday 00:00 UTC) of its newest label.

    Columns: week (UTC timestamp), n_items, alpha_nominal, alpha_ordinal, low / high (bootstrap interval of
    alpha_nominal), low_ordinal / high_ordinal. Only weeks with items appear; NaN where undefined.
    Requires ``created_at``.
    """
    cols = ["week", "n_items", "alpha_nominal", "alpha_ordinal", "low", "high", "low_ordinal", "high_ordinal"]
    prep = prepare(labels)
    if prep.empty:
        return pd.DataFrame(columns=cols)
    if "created_at" not in prep:
        raise ValueError("weekly_trend needs a created_at column")
    multi = _multi(prep)
    if multi.empty:
        return pd.DataFrame(columns=cols)
    item_idx, _, counts = _items(multi)
    newest = multi["created_at"].groupby(item_idx).max()  # indexed by item position, like counts
    week = newest.dt.normalize() - pd.to_timedelta(newest.dt.day_of_week, unit="D")
    rows: list[dict[str, Any]] = []
    for start, members in week.groupby(week, sort=True).groups.items():
        sub = counts[np.asarray(members, dtype=int)]
        ones = np.ones((1, sub.shape[0]))
        ci_nom = _ci_from_counts("alpha_nominal", sub, n_boot=n_boot, seed=seed, level=level)
        ci_ord = _ci_from_counts("alpha_ordinal", sub, n_boot=n_boot, seed=seed, level=level)
        rows.append(
            {
                "week": start,
                "n_items": int(sub.shape[0]),
                "alpha_nominal": float(_fast_statistic("alpha_nominal", sub, ones)[0]),
                "alpha_ordinal": float(_fast_statistic("alpha_ordinal", sub, ones)[0]),
                "low": ci_nom[0] if ci_nom else np.nan,
                "high": ci_nom[1] if ci_nom else np.nan,
                "low_ordinal": ci_ord[0] if ci_ord else np.nan,
                "high_ordinal": ci_ord[1] if ci_ord else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _value_series(values: pd.Series | pd.DataFrame, what: str) -> pd.Series:
    """eb_id -> canonical value, from a Series indexed by eb_id or a DataFrame(eb_id, value)."""
    if isinstance(values, pd.DataFrame):
        if not {"eb_id", "value"} <= set(values.columns):
            raise ValueError(f"{what} needs columns eb_id and value")
        values = values.drop_duplicates("eb_id", keep="last").set_index("eb_id")["value"]
    values = values[values.notna()]
    if values.index.has_duplicates:
        raise ValueError(f"{what} has more than one value for some eb_id")
    mapping = {raw: normalize_value(raw) for raw in pd.unique(values)}
    return values.map(mapping).astype(object)


def gold_accuracy(labels: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """Each labeler's current labels on gold EBs vs the gold value: DataFrame(labeler, n, correct, accuracy).

    ``gold`` is a DataFrame(eb_id, value). Labelers with no label on a gold EB are not listed.
    """
    cols = ["labeler", "n", "correct", "accuracy"]
    prep = prepare(labels)
    truth = _value_series(gold, "gold") if gold is not None and len(gold) else pd.Series(dtype=object)
    scored = prep[prep["eb_id"].isin(truth.index)]
    if scored.empty:
        return pd.DataFrame(columns=cols)
    hit = scored["value"].to_numpy() == truth.loc[scored["eb_id"]].to_numpy()
    out = (
        pd.DataFrame({"labeler": scored["labeler"].to_numpy(), "hit": hit})
        .groupby("labeler", sort=True)["hit"]
        .agg(n="size", correct="sum")
        .reset_index()
    )
    out["n"] = out["n"].astype(int)
    out["correct"] = out["correct"].astype(int)
    out["accuracy"] = out["correct"] / out["n"]
    return out[cols]


def per_labeler_stats(
    labels: pd.DataFrame,
    *,
    model_predictions: pd.Series | None = None,
    gold: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per labeler: workload, value shares, speed, and agreement with others, the model and gold.

    Columns: labeler, n_labels, share_pass, share_semipass, share_fail, median_seconds (of seconds_on_eb;
    NaN if absent), n_vs_consensus, agreement_with_consensus and kappa_with_consensus (vs the majority of
    the OTHER labelers on the same EBs, cautious ties), n_vs_model, agreement_with_model (share of the
    labeler's labels equal to ``model_predictions``, a Series of QA0 values indexed by eb_id; pass
    out-of-fold cross-validated predictions, never in-sample ones, or the model looks better than it is;
    NaN when not given), gold_n, gold_accuracy (``gold`` = DataFrame(eb_id, value); NaN when no gold label).
    Counts and shares use all of the labeler's current labels, agreement columns only the EBs compared.
    """
    cols = [
        "labeler",
        "n_labels",
        "share_pass",
        "share_semipass",
        "share_fail",
        "median_seconds",
        "n_vs_consensus",
        "agreement_with_consensus",
        "kappa_with_consensus",
        "n_vs_model",
        "agreement_with_model",
        "gold_n",
        "gold_accuracy",
    ]
    prep = prepare(labels)
    if prep.empty:
        return pd.DataFrame(columns=cols)
    cons = others_consensus(prep)
    preds = _value_series(model_predictions, "model_predictions") if model_predictions is not None else None
    gold_scores = gold_accuracy(prep, gold) if gold is not None else pd.DataFrame(columns=["labeler"])
    gold_by = gold_scores.set_index("labeler") if len(gold_scores) else None
    rows: list[dict[str, Any]] = []
    for name, mine in prep.groupby("labeler", sort=True):
        n = len(mine)
        seconds = pd.to_numeric(mine["seconds_on_eb"], errors="coerce") if "seconds_on_eb" in mine else None
        vs = cons[cons["labeler"] == name]
        kappa = cohen_kappa(vs["value"].tolist(), vs["consensus"].tolist()) if len(vs) else None
        row: dict[str, Any] = {
            "labeler": name,
            "n_labels": n,
            "share_pass": float((mine["value"] == "Pass").mean()),
            "share_semipass": float((mine["value"] == "SemiPass").mean()),
            "share_fail": float((mine["value"] == "Fail").mean()),
            "median_seconds": float(seconds.median()) if seconds is not None and seconds.notna().any() else np.nan,
            "n_vs_consensus": len(vs),
            "agreement_with_consensus": float((vs["value"] == vs["consensus"]).mean()) if len(vs) else np.nan,
            "kappa_with_consensus": np.nan if kappa is None else kappa,
            "n_vs_model": 0,
            "agreement_with_model": np.nan,
            "gold_n": 0,
            "gold_accuracy": np.nan,
        }
        if preds is not None:
            seen = mine[mine["eb_id"].isin(preds.index)]
            row["n_vs_model"] = len(seen)
            if len(seen):
                row["agreement_with_model"] = float(
                    np.mean(seen["value"].to_numpy() == preds.loc[seen["eb_id"]].to_numpy())
                )
        if gold_by is not None and name in gold_by.index:
            row["gold_n"] = int(gold_by.loc[name, "n"])
            row["gold_accuracy"] = float(gold_by.loc[name, "accuracy"])
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def model_vs_consensus(consensus: pd.DataFrame, predictions: pd.Series) -> dict[str, Any]:
    """Model predictions vs consensus labels on the EBs both cover.

    ``consensus`` is DataFrame(eb_id, value) (e.g. ``labels.consensus``), ``predictions`` a Series of QA0
    values indexed by eb_id (out-of-fold). Returns {"kappa": float|None, "per_class_recall": {"Pass",
    "SemiPass", "Fail": float|None}, "n": int, "accuracy": float|None}; None where undefined (JSON-safe).
    """
    truth = _value_series(consensus, "consensus")
    preds = _value_series(predictions, "predictions")
    shared = truth.index.intersection(preds.index)
    t = truth.loc[shared].to_numpy()
    p = preds.loc[shared].to_numpy()
    recall: dict[str, float | None] = {}
    for value in CATEGORIES:
        mask = t == value
        recall[value] = float(np.mean(p[mask] == value)) if mask.any() else None
    return {
        "kappa": cohen_kappa(list(t), list(p)) if len(shared) else None,
        "per_class_recall": recall,
        "n": int(len(shared)),
        "accuracy": float(np.mean(t == p)) if len(shared) else None,
    }


# --- the report ---------------------------------------------------------------------------------------


def agreement_report(labels: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """All agreement statistics as a JSON-serialisable dict (the ``agreement --json`` contract).

    Keys: n_items, n_labelers, n_labels, cohen_kappa (pairs with a defined kappa: a, b, n, kappa,
    percent_agreement, low, high), cohen_kappa_undefined (pairs whose kappa is 0/0, with n and
    percent_agreement), fleiss_kappa, krippendorff_alpha_nominal, krippendorff_alpha_ordinal,
    percent_agreement, and for each of those four a ``<key>_ci`` [low, high] or None, plus ci_level,
    n_boot and notes (a sentence for every null and every caveat). No NaN anywhere: undefined is None.
    n_boot=0 skips the intervals (they are None). Cost: about 1 s of CPU for 26k labels, 20 labelers and
    n_boot=1000, so a page should cache it.
    """
    if n_boot:
        _check_boot(n_boot, level)
    prep = prepare(labels)
    _, counts = _count_matrix(prep)
    n_items = int(counts.shape[0])
    notes: list[str] = []
    report: dict[str, Any] = {
        "n_items": n_items,
        "n_labelers": int(prep["labeler"].nunique()),
        "n_labels": int(len(prep)),
        "cohen_kappa": [],
        "cohen_kappa_undefined": [],
        "fleiss_kappa": None,
        "krippendorff_alpha_nominal": None,
        "krippendorff_alpha_ordinal": None,
        "percent_agreement": None,
        "fleiss_kappa_ci": None,
        "krippendorff_alpha_nominal_ci": None,
        "krippendorff_alpha_ordinal_ci": None,
        "percent_agreement_ci": None,
        "ci_level": level,
        "n_boot": n_boot,
        "notes": notes,
    }
    if prep.empty:
        notes.append("no labels yet: agreement needs EBs labelled by at least two labelers")
        return report
    if report["n_labelers"] < 2:
        notes.append(f"only one labeler ({prep['labeler'].iloc[0]}) has labels: agreement needs at least two")
        return report
    if n_items == 0:
        notes.append("no EB has labels from two labelers yet: route some EBs to a second AoD for overlap")
        return report

    ones = np.ones((1, n_items))
    for key, name in (
        ("fleiss_kappa", "fleiss_kappa"),
        ("krippendorff_alpha_nominal", "alpha_nominal"),
        ("krippendorff_alpha_ordinal", "alpha_ordinal"),
        ("percent_agreement", "percent_agreement"),
    ):
        report[key] = _scalar(_fast_statistic(name, counts, ones))
        ci = _ci_from_counts(name, counts, n_boot=n_boot, seed=seed, level=level) if n_boot else None
        report[f"{key}_ci"] = list(ci) if ci else None
    if n_items < SMALL_PAIR_N:
        notes.append(f"only {n_items} EB(s) have two or more labels: every statistic here is unstable")
    used = [CATEGORIES[c] for c in range(_K) if counts[:, c].sum() > 0]
    if len(used) == 1:
        notes.append(
            f"every label on the {n_items} shared EBs is {used[0]}: chance agreement is 1, so kappa and alpha "
            "are undefined (0/0) and reported as null; percent agreement is 1.0"
        )
    if not n_boot:
        notes.append("n_boot=0: no bootstrap intervals were computed")
    elif n_items < 2:
        notes.append("bootstrap intervals need at least 2 shared EBs: intervals are null")
    elif report["krippendorff_alpha_nominal"] is not None and report["krippendorff_alpha_nominal_ci"] is None:
        notes.append("the statistics are undefined on most bootstrap resamples: intervals are null")

    for pair in pairwise_cohen(prep, n_boot=n_boot, seed=seed, level=level):
        if pair["kappa"] is None:
            report["cohen_kappa_undefined"].append({k: pair[k] for k in ("a", "b", "n", "percent_agreement")})
        else:
            pair.setdefault("low", None)
            pair.setdefault("high", None)
            report["cohen_kappa"].append(pair)
    if report["cohen_kappa_undefined"]:
        names = ", ".join(f"{p['a']}/{p['b']}" for p in report["cohen_kappa_undefined"])
        notes.append(
            f"Cohen's kappa is undefined for {names}: on their shared EBs both gave one and the same value "
            "(listed under cohen_kappa_undefined with their percent agreement)"
        )
    small = [p for p in report["cohen_kappa"] if p["n"] < SMALL_PAIR_N]
    if small:
        notes.append(
            f"{len(small)} pair(s) share fewer than {SMALL_PAIR_N} EBs: their kappa is unstable "
            "(see n and the interval)"
        )
    return report
