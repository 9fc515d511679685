"""Where an EB's metrics sit among EBs already labelled Pass, SemiPass and Fail (consensus labels)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Integer, Select, bindparam, cast, func, literal
from sqlalchemy import select as sa_select
from sqlmodel import Session

from qa0_label.review import limits
from qa0_label.review.rows import EBNotFound
from qa0_label.review.rows import frame as _frame
from qa0_label.store import labels
from qa0_label.store.models import CAUTION_ORDER, ExecutionBlock, Label, table_of

CONTEXT_METRICS: dict[str, str | None] = {
    "pwv_mm": "pwv_mm",
    "pwv_over_limit": "pwv_mm",  # divided by the band's limit in Python
    "elevation_deg": "elevation_deg",
    "n_antennas": "n_antennas",
    "exec_fraction": "exec_fraction",
    "tsys_median_k": "tsys_median_k",
    "phase_rms_deg": "phase_rms_deg",
    "flagged_fraction": "flagged_fraction",
    "spectral_index": "spectral_index",
    "duration_s": "duration_s",
    "flux_deviation_sigma": None,  # from the four flux columns in Python
    "flux_ratio": None,  # measured / expected flux
}
"""Metrics context() can place among labelled EBs (name -> the execution_block column it is read from; None:
derived in Python from the base columns)."""

DEFAULT_CONTEXT_METRICS: tuple[str, ...] = (
    "pwv_over_limit",
    "elevation_deg",
    "phase_rms_deg",
    "flagged_fraction",
    "exec_fraction",
    "flux_deviation_sigma",
)
"""Band-independent metrics (PWV relative to the band's limit), so EBs of all bands can be compared."""

CONTEXT_GROUPS: tuple[str, ...] = ("this EB", "Pass", "SemiPass", "Fail")
CONTEXT_CAP_PER_CLASS = 2000


# 64-bit on every backend: the product overflows PostgreSQL's INTEGER.
_HASH_MUL = literal(2654435761, BigInteger)
_HASH_MOD = literal(4294967296, BigInteger)


def _sampled_consensus(band: int | None, cap: int) -> Select[Any]:
    """(grp, EB columns of _context_columns) of up to CAP consensus-labelled EBs per class, optionally of one band.

    The consensus comes from labels.consensus_select (SQL, so the page never pulls every label into Python).
    The sample order is a fixed multiplicative hash of the id: representative, and stable as labels accumulate.
    """
    cons = labels.consensus_select(ExecutionBlock.band == band if band is not None else None).subquery("cons")  # type: ignore[arg-type]
    k = func.row_number().over(
        partition_by=cons.c.value, order_by=((cast(cons.c.eb_id, BigInteger) * _HASH_MUL) % _HASH_MOD, cons.c.eb_id)
    )
    sampled = sa_select(cons.c.eb_id, cons.c.value, k.label("k")).subquery("s")
    e = _EB.alias("e")
    return (
        sa_select(sampled.c.value.label("grp"), *_context_columns(e))
        .select_from(sampled.join(e, e.c.id == sampled.c.eb_id))
        .where(sampled.c.k <= cap)
    )


def _this_eb(session: Session, eb_id: int, metrics: Sequence[str], same_band: bool) -> tuple[pd.DataFrame, int | None]:
    """(the EB's row as _context_frame, its band when SAME_BAND); ValueError for unknown METRICS, EBNotFound."""
    unknown = [m for m in metrics if m not in CONTEXT_METRICS]
    if unknown:
        raise ValueError(
            f"unknown context metric(s) {', '.join(map(repr, unknown))}; expected {', '.join(CONTEXT_METRICS)}"
        )
    rows = session.connection().execute(_Q_THIS_EB, {"eb": int(eb_id)}).fetchall()
    if not rows:
        raise EBNotFound(f"no EB with id {eb_id}")
    this = _context_frame(rows)
    return this, int(this["band"].iloc[0]) if same_band and this["band"].notna().all() else None


def context(
    *,
    session: Session,
    eb_id: int,
    metrics: Sequence[str] = DEFAULT_CONTEXT_METRICS,
    cap_per_class: int = CONTEXT_CAP_PER_CLASS,
    same_band: bool = False,
) -> pd.DataFrame:
    """Where this EB's metrics sit among EBs already labelled Pass, SemiPass and Fail (consensus labels).

    METRICS are keys of CONTEXT_METRICS (ValueError otherwise); up to CAP_PER_CLASS labelled EBs per class are
    used (a fixed pseudo-random sample, cached until labels or EBs change), optionally only of the EB's own
    band. This EB itself is never part of a labelled group, and its own label is never shown. Returns long
    DataFrame[eb_id, metric, value, group] with group in CONTEXT_GROUPS ("this EB" first); rows with a
    missing value are dropped.
    """
    this, band = _this_eb(session, eb_id, metrics, same_band)
    this["group"] = "this EB"
    labelled = _labelled_sample(session, cap=int(cap_per_class), band=band)
    # The EB under review is never its own context, whatever label it has.
    data = pd.concat([this, labelled[labelled["eb_id"] != int(eb_id)]], ignore_index=True)
    long = data.melt(id_vars=["eb_id", "group"], value_vars=list(metrics), var_name="metric", value_name="value")
    long = long.replace([np.inf, -np.inf], np.nan).dropna(subset=["value"])
    long["group"] = pd.Categorical(long["group"], categories=list(CONTEXT_GROUPS), ordered=True)
    long["metric"] = pd.Categorical(long["metric"], categories=list(dict.fromkeys(metrics)), ordered=True)
    long = long.sort_values(["metric", "group", "eb_id"], ignore_index=True)
    long["group"] = long["group"].astype(str)
    long["metric"] = long["metric"].astype(str)
    return long[["eb_id", "metric", "value", "group"]]


_CONTEXT_BASE = ("band", "freq_ghz", "pwv_mm", "flux_jy", "flux_err_jy", "expected_flux_jy", "expected_flux_err_jy")
_CONTEXT_SQL_METRICS = tuple(m for m, column in CONTEXT_METRICS.items() if column and m not in _CONTEXT_BASE)
_EB = table_of(ExecutionBlock)


def _context_columns(e: Any) -> list[Any]:
    """The columns context() reads of EB table (or alias) E: id, _CONTEXT_BASE, then _CONTEXT_SQL_METRICS."""
    return [
        e.c.id,
        *(e.c[c] for c in _CONTEXT_BASE),
        *(e.c[str(CONTEXT_METRICS[m])].label(m) for m in _CONTEXT_SQL_METRICS),
    ]


_Q_THIS_EB = sa_select(*_context_columns(_EB)).where(_EB.c.id == bindparam("eb", type_=Integer()))
# The state the cached labelled sample belongs to: any label or EB added, removed or re-imported changes it.
_Q_STATE = sa_select(
    sa_select(func.max(table_of(Label).c.id)).scalar_subquery(),
    sa_select(func.count()).select_from(table_of(Label)).scalar_subquery(),
    sa_select(func.max(_EB.c.id)).scalar_subquery(),
    sa_select(func.count()).select_from(_EB).scalar_subquery(),
    sa_select(func.max(_EB.c.imported_at)).scalar_subquery(),
)
_CONTEXT_CACHE: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()
_CONTEXT_LOCK = threading.Lock()
CONTEXT_CACHE_SIZE = 8


def _context_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """EB rows of _context_columns as floats, with every derived metric of CONTEXT_METRICS added."""
    data = _frame(rows, ["eb_id", *_CONTEXT_BASE, *_CONTEXT_SQL_METRICS], text_columns=())
    for col in data.columns:
        data[col] = pd.to_numeric(data[col], errors="coerce").astype(float)
    data["eb_id"] = data["eb_id"].astype("int64")
    data["pwv_over_limit"] = data["pwv_mm"] / limits.pwv_limits_mm(data["band"], data["freq_ghz"])
    err = np.hypot(data["flux_err_jy"].fillna(0.0), data["expected_flux_err_jy"].fillna(0.0))
    data["flux_deviation_sigma"] = (data["flux_jy"] - data["expected_flux_jy"]) / err.where(err > 0)
    data["flux_ratio"] = data["flux_jy"] / data["expected_flux_jy"].where(data["expected_flux_jy"] > 0)
    return data


def _labelled_sample(session: Session, *, cap: int, band: int | None) -> pd.DataFrame:
    """Metrics of up to CAP consensus-labelled EBs per class (column group), cached per database state.

    Every EB's review shows the same labelled sample, so it is computed once per state of the label and
    EB tables: a new label, undo, adjudication or import changes the version key and the sample is rebuilt.
    """
    return _labelled_sample_keyed(session, cap=cap, band=band)[1]


def _labelled_sample_keyed(session: Session, *, cap: int, band: int | None) -> tuple[tuple[Any, ...], pd.DataFrame]:
    """(cache key, sample) of _labelled_sample: the key names the database state the sample belongs to."""
    conn = session.connection()
    version = tuple(conn.execute(_Q_STATE).one())
    key = (conn.engine.url.render_as_string(hide_password=True), cap, band, version)
    with _CONTEXT_LOCK:
        cached = _CONTEXT_CACHE.get(key)
        if cached is not None:
            _CONTEXT_CACHE.move_to_end(key)
            return key, cached
    rows = conn.execute(_sampled_consensus(band, cap)).fetchall()
    data = _context_frame([r[1:] for r in rows])
    data["group"] = [str(r[0]) for r in rows]
    with _CONTEXT_LOCK:
        _CONTEXT_CACHE[key] = data
        while len(_CONTEXT_CACHE) > CONTEXT_CACHE_SIZE:
            _CONTEXT_CACHE.popitem(last=False)
    return key, data


# --- context, pre-aggregated (what the review chart draws) ------------------------------------------

CONTEXT_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
SUMMARY_COLUMNS: tuple[str, ...] = ("metric", "group", "q05", "q25", "median", "q75", "q95", "n", "value", "where")


def _position_text(value: float, sorted_groups: Mapping[str, np.ndarray]) -> str:
    """'above 62% of Pass; above 20% of Fail': the share of each labelled group below VALUE."""
    parts = []
    for name in CAUTION_ORDER[::-1]:
        vals = sorted_groups.get(name)
        if vals is not None and vals.size:
            below = int(np.searchsorted(vals, value, side="left"))
            parts.append(f"above {100.0 * below / vals.size:.0f}% of {name}")
    return "; ".join(parts)


def _group_rows(metric: str, sorted_groups: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    rows = []
    for name in CAUTION_ORDER[::-1]:  # Pass, SemiPass, Fail
        vals = sorted_groups.get(name)
        if vals is None or not vals.size:
            continue
        q05, q25, q50, q75, q95 = np.quantile(vals, CONTEXT_QUANTILES)
        rows.append(
            {
                "metric": metric,
                "group": name,
                "q05": q05,
                "q25": q25,
                "median": q50,
                "q75": q75,
                "q95": q95,
                "n": int(vals.size),
                "value": np.nan,
                "where": None,
            }
        )
    return rows


def _this_rows(metric: str, values: Sequence[float], sorted_groups: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    return [
        {
            "metric": metric,
            "group": "this EB",
            "q05": np.nan,
            "q25": np.nan,
            "median": np.nan,
            "q75": np.nan,
            "q95": np.nan,
            "n": np.nan,
            "value": float(v),
            "where": _position_text(float(v), sorted_groups),
        }
        for v in list(values)[:1]
    ]


def summarise_context(long: pd.DataFrame) -> pd.DataFrame:
    """context() output (metric, value, group) -> per metric, each labelled group's quantiles and this EB's place.

    Returns DataFrame[metric, group, q05, q25, median, q75, q95, n, value, where]: one row per labelled group
    with values (quantiles, n) and one "this EB" row (value, where = its position among the groups), metrics in
    their order of appearance. Pure; the chart draws this instead of thousands of points.
    """
    if long is None or long.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    d = long.dropna(subset=["value"])
    rows: list[dict[str, Any]] = []
    for metric in dict.fromkeys(d["metric"].astype(str)):
        part = d[d["metric"].astype(str) == metric]
        groups = {
            name: np.sort(part.loc[part["group"] == name, "value"].to_numpy(dtype=float)) for name in CAUTION_ORDER
        }
        this = part.loc[part["group"] == "this EB", "value"].to_numpy(dtype=float)
        rows += _group_rows(metric, groups) + _this_rows(metric, this, groups)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


_SUMMARY_CACHE: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()


def context_summary(
    *,
    session: Session,
    eb_id: int,
    metrics: Sequence[str] = DEFAULT_CONTEXT_METRICS,
    cap_per_class: int = CONTEXT_CAP_PER_CLASS,
    same_band: bool = False,
) -> pd.DataFrame:
    """summarise_context(context(...)) at the cost of one EB row: the labelled groups' sorted values and
    quantiles are kept per database state, so each EB adds only its own values and their positions.

    Same rules as context(): the EB under review never counts in a labelled group (when it is in the sample,
    its groups are summarised without it) and its own label is never shown.
    """
    this, band = _this_eb(session, eb_id, metrics, same_band)
    key, labelled = _labelled_sample_keyed(session, cap=int(cap_per_class), band=band)
    skey = (key, tuple(metrics))
    with _CONTEXT_LOCK:
        cached = _SUMMARY_CACHE.get(skey)
    if cached is None:
        sorted_values = {
            m: {
                g: np.sort(labelled.loc[labelled["group"] == g, m].dropna().to_numpy(dtype=float))
                for g in CAUTION_ORDER
            }
            for m in metrics
        }
        ids = labelled["eb_id"].to_numpy(dtype=np.int64)
        cached = {
            "sorted": sorted_values,
            "ids": set(ids.tolist()),
            "rows": {m: _group_rows(m, sorted_values[m]) for m in metrics},
        }
        with _CONTEXT_LOCK:
            _SUMMARY_CACHE[skey] = cached
            while len(_SUMMARY_CACHE) > CONTEXT_CACHE_SIZE:
                _SUMMARY_CACHE.popitem(last=False)
    if int(eb_id) in cached["ids"]:
        # The EB under review is in the labelled sample (an overlap or gold review): leave it out.
        others = labelled[labelled["eb_id"] != int(eb_id)]
        groups_of = {
            m: {g: np.sort(others.loc[others["group"] == g, m].dropna().to_numpy(dtype=float)) for g in CAUTION_ORDER}
            for m in metrics
        }
        group_rows = {m: _group_rows(m, groups_of[m]) for m in metrics}
    else:
        groups_of, group_rows = cached["sorted"], cached["rows"]
    rows: list[dict[str, Any]] = []
    for m in metrics:
        own = this[m].replace([np.inf, -np.inf], np.nan).dropna().to_numpy(dtype=float)
        rows += group_rows[m] + _this_rows(m, own, groups_of[m])
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
