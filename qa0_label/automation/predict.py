"""The model's decision per EB at error rate alpha (CLI `predict`, `export --predictions`), and the catalogue hand-off."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from qa0_label.automation import calibrate as cal
from qa0_label.automation import explain, policy
from qa0_label.store import runs as store_runs
from qa0_label.store.db import bulk_rows, get_engine, session_scope
from qa0_label.store.models import AutoAlpha, AutoDecision, AutoRun, ExecutionBlock, ModelRun, Score
from qa0_label.store.uids import canonical_uid

NEEDS_AOD = "needs_aod"


class UnknownUids(ValueError):
    """Uids in a --uids file that are not in the database (the message names the line)."""


def read_uid_file(path: Path) -> list[str]:
    """Uids one per line (blank lines and # comments ignored), in file order, duplicates dropped."""
    out: list[str] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            uid = line.split("#", 1)[0].strip()
            if uid and uid not in seen:
                seen.add(uid)
                out.append(uid)
    return out


def check_uids(engine: Engine, path: Path) -> list[int]:
    """EB ids for the uids in PATH, in file order; UnknownUids naming the first unknown uid's line."""
    wanted: list[tuple[int, str]] = []
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            uid = line.split("#", 1)[0].strip()
            if uid:
                wanted.append((lineno, canonical_uid(uid)))  # uid___A002_X1_X2 names the same EB, as in label/show
    id_of: dict[str, int] = {}
    uids = sorted({u for _, u in wanted})
    with session_scope(engine) as s:
        conn = s.connection()
        for start in range(0, len(uids), 900):
            part = uids[start : start + 900]
            for uid, eb in conn.execute(
                select(col(ExecutionBlock.uid), col(ExecutionBlock.id)).where(col(ExecutionBlock.uid).in_(part))
            ):
                id_of[str(uid)] = int(eb or 0)  # a stored EB's id: never NULL
    missing = [(n, u) for n, u in wanted if u not in id_of]
    if missing:
        n, u = missing[0]
        more = f" (and {len(missing) - 1} more unknown uids)" if len(missing) > 1 else ""
        raise UnknownUids(f"{path}, line {n}: unknown uid {u!r}{more}")
    out, seen = [], set()
    for _, u in wanted:
        if u not in seen:
            seen.add(u)
            out.append(id_of[u])
    return out


def _serving(engine: Engine) -> tuple[ModelRun | None, AutoRun | None, float]:
    with session_scope(engine) as s:
        alpha = policy.current_alpha(session=s)
        run = store_runs.serving_run(s)
        auto = s.get(AutoRun, int(run.id or 0)) if run is not None else None
        if run is not None:
            s.expunge(run)
        if auto is not None:
            s.expunge(auto)
    return run, auto, alpha


def threshold_for(auto: AutoRun | None, alpha: float) -> tuple[float | None, str | None]:
    """The certified threshold at alpha for a run (recalibrated from its stored scores when alpha differs)."""
    if auto is None or not auto.summary:
        return None, "the serving model has no auto-QA0 calibration (retrain to create one)"
    summary = auto.summary
    if abs(float(auto.alpha) - alpha) < 1e-12:
        return auto.threshold, summary.get("why_none")
    oof = np.asarray(summary.get("oof_proba") or np.zeros((0, 3)), dtype=float).reshape(-1, 3)
    y = np.asarray(summary.get("y") or [], dtype=object)
    c = cal.calibrate(oof, y, alpha=alpha, seed=int(summary.get("seed", 0)), alphas=())
    return c.threshold, c.why_none


def _scores_stmt(run_id: int) -> Any:
    return (
        select(
            col(ExecutionBlock.id), col(ExecutionBlock.uid), col(Score.p_pass), col(Score.p_semipass), col(Score.p_fail)
        )
        .select_from(ExecutionBlock)
        .outerjoin(Score, (col(Score.eb_id) == col(ExecutionBlock.id)) & (col(Score.run_id) == int(run_id)))
        .order_by(col(ExecutionBlock.id))
    )


def _scores(engine: Engine, run_id: int, eb_ids: Sequence[int] | None) -> pd.DataFrame:
    # The driver's plain tuples (bulk_rows): SQLAlchemy Row objects cost seconds at 100k EBs.
    cols = ["eb_id", "uid", "Pass", "SemiPass", "Fail"]
    rows: list[tuple[Any, ...]] = []
    with session_scope(engine) as s:
        conn = s.connection()
        if eb_ids is None:
            for part in bulk_rows(conn, _scores_stmt(run_id)):
                rows += part
        else:
            ids = [int(e) for e in eb_ids]
            for start in range(0, len(ids), 900):
                stmt = _scores_stmt(run_id).where(col(ExecutionBlock.id).in_(ids[start : start + 900]))
                # An IN list is expanded at execution (bulk_rows compiles without it); these lists are short.
                rows += [tuple(r) for r in conn.execute(stmt)]
    frame = pd.DataFrame.from_records(rows, columns=cols)
    for c in ("Pass", "SemiPass", "Fail"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    if eb_ids is not None:
        frame = frame.set_index("eb_id").reindex([int(e) for e in eb_ids]).reset_index()
    return frame


def _model(run: ModelRun) -> Any:
    return _load_model(str(run.artifact_path), run.artifact_sha256)


@functools.lru_cache(maxsize=2)
def _load_model(path: str, sha256: str | None) -> Any:
    # Checksum and unpickling cost ~0.1 s: once per process and artifact (a run's artifact never changes).
    from qa0_label.learning import learner as lrn

    return lrn.load_artifact(Path(path), sha256=sha256)


def relevance(*, engine: Engine) -> list[dict[str, Any]]:
    """Most relevant parameters of the serving model overall, with direction (empty without a model)."""
    run, auto, _ = _serving(engine)
    path = (auto.summary or {}).get("features_path") if auto is not None else None
    if run is None or not path or not Path(path).exists():
        return []
    X, _ = explain.stored_features(path)
    art = _model(run)
    try:
        return explain.global_importance(art["learner"], X, art["features"])
    except TypeError:
        return []


def predictions(
    *, engine: Engine, eb_ids: Sequence[int] | None = None, alpha: float | None = None, reasons: bool = True
) -> dict[str, Any]:
    """{"alpha", "model_version", "threshold", "why_none", "items": [one dict per EB in the predict --json shape]}."""
    run, auto, alpha_now = _serving(engine)
    alpha = alpha_now if alpha is None else cal.check_alpha(alpha)
    if run is None:
        frame = _scores(engine, -1, eb_ids)
        why: str | None = "no trained model yet: retrain first"
        t = None
    else:
        t, why = threshold_for(auto, alpha)
        frame = _scores(engine, int(run.id or 0), eb_ids)
    proba = frame[list(cal.CLASSES)].to_numpy(dtype=float)
    scored = np.isfinite(proba).all(axis=1)
    decisions = np.full(len(frame), NEEDS_AOD, dtype=object)
    sets = np.zeros(proba.shape, dtype=bool)
    if scored.any():
        d = cal.decide(proba[scored], t)
        decisions[scored] = np.where(d == None, NEEDS_AOD, d)  # noqa: E711
        # Nothing certified: the set cannot leave out any value.
        sets[scored] = cal.set_masks(proba[scored], t) if t is not None else True
    top: list[list[dict[str, Any]]] = [[] for _ in range(len(frame))]
    if reasons and run is not None and scored.any():
        top = _reasons(run, auto, frame, proba, scored)
    order = np.argsort(-np.nan_to_num(proba), axis=1)
    classes = list(cal.CLASSES)
    # Plain Python values, built column-wise: the per-EB loop below is the whole cost at 100k EBs.
    set_lists = [[classes[j] for j in o if m[j]] for o, m in zip(order.tolist(), sets.tolist())]
    rounded = np.round(np.nan_to_num(proba), 4).tolist()
    items = [
        {
            "uid": uid,
            "decision": dec,
            "proba": dict(zip(classes, p)) if ok else None,
            "set": st_ if ok else [],
            "top_reasons": r,
        }
        for uid, dec, p, ok, st_, r in zip(
            frame["uid"].astype(str).tolist(), decisions.tolist(), rounded, scored.tolist(), set_lists, top
        )
    ]
    return {
        "alpha": alpha,
        "model_version": run.version if run is not None else None,
        "threshold": t,
        "why_none": why if t is None else None,
        "items": items,
    }


def _reasons(
    run: ModelRun, auto: AutoRun | None, frame: pd.DataFrame, proba: np.ndarray, scored: np.ndarray
) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = [[] for _ in range(len(frame))]
    path = (auto.summary or {}).get("features_path") if auto is not None else None
    if not path or not Path(path).exists():
        return out
    X, row_of = explain.stored_features(path)
    art = _model(run)
    pos = [row_of.get(int(e)) for e in frame["eb_id"]]
    have = np.asarray([scored[i] and p is not None for i, p in enumerate(pos)], dtype=bool)
    idx = np.flatnonzero(have)
    if len(idx) == 0:
        return out
    rows = np.asarray([pos[i] for i in idx], dtype=np.int64)
    try:
        got = explain.top_reasons(art["learner"], X[rows], art["features"], proba[idx])
    except TypeError:
        return out
    for i, r in zip(idx, got):
        out[int(i)] = r
    return out


_Q_SERVING = (
    store_runs.serving_select(
        col(ModelRun.id),
        col(ModelRun.version),
        col(ModelRun.artifact_path),
        col(ModelRun.artifact_sha256),
        col(AutoRun.alpha),
    )
    .select_from(ModelRun)
    .outerjoin(AutoRun, col(AutoRun.run_id) == col(ModelRun.id))
)
_Q_ALPHA = select(col(AutoAlpha.alpha)).order_by(col(AutoAlpha.id).desc()).limit(1)
_Q_ONE = (
    select(col(Score.p_pass), col(Score.p_semipass), col(Score.p_fail), col(AutoDecision.value))
    .select_from(Score)
    .outerjoin(
        AutoDecision,
        (col(AutoDecision.run_id) == col(Score.run_id)) & (col(AutoDecision.eb_id) == col(Score.eb_id)),
    )
    .where(col(Score.run_id) == bindparam("run"), col(Score.eb_id) == bindparam("eb"))
)
_Q_AUTO = select(col(AutoRun.threshold), col(AutoRun.summary), col(AutoRun.updated_at)).where(
    col(AutoRun.run_id) == bindparam("run")
)


@functools.lru_cache(maxsize=4)
def _auto_of(url: str, run_id: int, updated_at: str) -> tuple[float | None, str | None, str | None]:
    # The summary holds every held-out score: parsed once per run and alpha change, not per EB.
    with session_scope(get_engine(url)) as s:
        row = s.connection().execute(_Q_AUTO, {"run": run_id}).first()
    if row is None:
        return None, None, None
    summary = row[1] or {}
    return row[0], summary.get("why_none"), summary.get("features_path")


def explain_eb(*, engine: Engine, eb_id: int) -> dict[str, Any] | None:
    """One EB for the Label page: its auto-decision at the alpha in force, set, proba and reasons (None: no model).

    A few indexed lookups: the decision comes from the stored auto_decision row (the same the queue reads), the
    set from the run's certified threshold, the reasons from the run's saved features and model (cached).
    """
    with session_scope(engine) as s:
        conn = s.connection()
        run: Any = conn.execute(_Q_SERVING).first()
        if run is None:
            return None
        alpha_now = conn.execute(_Q_ALPHA).scalar()
        one = conn.execute(_Q_ONE, {"run": int(run[0]), "eb": int(eb_id)}).first()
        stamp = conn.execute(select(col(AutoRun.updated_at)).where(col(AutoRun.run_id) == int(run[0]))).scalar()
    alpha = float(alpha_now) if alpha_now is not None else cal.DEFAULT_ALPHA
    if one is None:
        return None
    t, why, path = _auto_of(str(engine.url), int(run[0]), str(stamp)) if stamp is not None else (None, None, None)
    if run[4] is None or abs(float(run[4]) - alpha) > 1e-12:
        t, why = None, "the auto-decisions are being brought up to date with the new alpha"
    proba = np.asarray([[float(one[0]), float(one[1]), float(one[2])]])
    sets = cal.set_masks(proba, t)[0] if t is not None else np.ones(3, dtype=bool)
    order = np.argsort(-proba[0])
    reasons: list[dict[str, Any]] = []
    if path and Path(path).exists():
        X, row_of = explain.stored_features(path)
        pos = row_of.get(int(eb_id))
        if pos is not None:
            art = _load_model(str(run[2]), run[3])
            try:
                reasons = explain.top_reasons(art["learner"], X[[pos]], art["features"], proba)[0]
            except TypeError:
                reasons = []
    return {
        "uid": None,
        "decision": str(one[3]) if one[3] is not None else NEEDS_AOD,
        "proba": {c: round(float(p), 4) for c, p in zip(cal.CLASSES, proba[0])},
        "set": [cal.CLASSES[j] for j in order if sets[j]],
        "top_reasons": reasons,
        "alpha": alpha,
        "model_version": int(run[1]),
        "why_none": why if t is None else None,
    }


# --- exports -------------------------------------------------------------------------------------


def predictions_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The predict result as one flat row per EB (for CSV / Parquet)."""
    rows = []
    for item in result["items"]:
        proba = item.get("proba") or {}
        rows.append(
            {
                "uid": item["uid"],
                "decision": item["decision"],
                "p_pass": proba.get("Pass"),
                "p_semipass": proba.get("SemiPass"),
                "p_fail": proba.get("Fail"),
                "set": "|".join(item["set"]),
                "top_reasons": "; ".join(r["text"] for r in item["top_reasons"]),
                "model_version": result["model_version"],
                "alpha": result["alpha"],
            }
        )
    cols = ["uid", "decision", "p_pass", "p_semipass", "p_fail", "set", "top_reasons", "model_version", "alpha"]
    return pd.DataFrame(rows, columns=cols)


CATALOGUE_COLUMNS = [
    "uid",
    "source",
    "band",
    "freq_ghz",
    "flux_jy",
    "flux_err_jy",
    "spectral_index",
    "observed_at",
    "qa0",
    "qa0_basis",
]


def catalogue_frame(*, engine: Engine) -> pd.DataFrame:
    """One row per Pass EB for the Source Catalogue: human consensus, adjudication, or auto-decided (qa0_basis says which).

    A human decision always wins: an EB whose consensus is not Pass is left out even if the model would pass it.
    """
    from qa0_label.store.labels import consensus

    with session_scope(engine) as s:
        cons = consensus(s)
    human = dict(zip(cons["eb_id"].astype(int), cons["value"]))
    basis = {
        int(e): ("adjudication" if src == "adjudication" else "consensus")
        for e, v, src in zip(cons["eb_id"], cons["value"], cons["source"])
        if v == "Pass"
    }
    res = predictions(engine=engine, reasons=False)
    if res["model_version"] is not None:
        with session_scope(engine) as s:
            ids: dict[str, Any] = dict(
                s.connection().execute(select(col(ExecutionBlock.uid), col(ExecutionBlock.id))).all()
            )
        for item in res["items"]:
            e = int(ids[item["uid"]])
            if item["decision"] == "Pass" and e not in human:
                basis[e] = "auto"
    if not basis:
        return pd.DataFrame(columns=CATALOGUE_COLUMNS)
    wanted = sorted(basis)
    rows: list[Any] = []
    with session_scope(engine) as s:
        conn = s.connection()
        cols = (
            col(ExecutionBlock.id),
            col(ExecutionBlock.uid),
            col(ExecutionBlock.source),
            col(ExecutionBlock.band),
            col(ExecutionBlock.freq_ghz),
            col(ExecutionBlock.flux_jy),
            col(ExecutionBlock.flux_err_jy),
            col(ExecutionBlock.spectral_index),
            col(ExecutionBlock.start_time),
        )
        for start in range(0, len(wanted), 900):
            rows += conn.execute(select(*cols).where(col(ExecutionBlock.id).in_(wanted[start : start + 900]))).all()
    frame = pd.DataFrame(rows, columns=["eb_id", *CATALOGUE_COLUMNS[:-2]])  # the EB's own columns, in order
    frame["observed_at"] = pd.to_datetime(frame["observed_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["qa0"] = "Pass"
    frame["qa0_basis"] = [basis[int(e)] for e in frame["eb_id"]]
    return frame.sort_values("observed_at", kind="stable")[CATALOGUE_COLUMNS].reset_index(drop=True)


def write_table(frame: pd.DataFrame, out: Path) -> int:
    """Write CSV (spreadsheet-safe cells) or Parquet by extension, atomically; returns the row count."""
    from qa0_label.ingest.export import write_frame

    return write_frame(frame, out)
