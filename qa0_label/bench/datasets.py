"""Labelled tables for the active-learning benchmark, loaded into a temporary database the way a site would.

Every dataset becomes EB rows in a SQLite file: ``qa0-sim`` through the simulator (EBs, detail rows, hidden
reference QA0 = the oracle's answers), the scikit-learn tables and a user's CSV through the importer, their
numeric columns as the EBs' extra columns (features ``extra_x_<name>``). The app arm and the random arm read
the features with the same ``features.build_features`` the retrain uses; plain modAL reads only what a site
has without the app (``own_columns``: the EB table's own numeric fields and numeric extra columns).

``qa0-sim-rule`` is the same simulated EBs labelled by ``checklist_rule``, a QA0 rule the app never saw: not the
simulator's hidden reference, and not one of the app's features (see its docstring).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from qa0_label.bench import AL_DATASETS
from qa0_label.store.models import EB_FIELDS, LABEL_VALUES, ExecutionBlock, ReferenceOutcome, table_of

DATASETS: tuple[str, ...] = AL_DATASETS
SIMULATED: tuple[str, ...] = ("qa0-sim", "qa0-sim-rule")
QA0_SIM_N = 3000
QA0_SIM_SEED = 2024


class BenchInputError(ValueError):
    """A dataset the benchmark cannot use (the message names the file and column)."""


@dataclass(frozen=True)
class Table:
    """A labelled table: numeric feature columns and the QA0 value of each row."""

    name: str
    features: pd.DataFrame
    y: np.ndarray


def _qa0_values(target: np.ndarray, mapping: dict[int, str]) -> np.ndarray:
    return np.asarray([mapping[int(t)] for t in target], dtype=object)


def sklearn_table(name: str) -> Table:
    """breast_cancer (benign Pass, malignant Fail), wine (cultivar 0/1/2 Pass/SemiPass/Fail), digits (0-3/4-6/7-9)."""
    from sklearn import datasets

    if name == "breast_cancer":
        data = datasets.load_breast_cancer()
        y = _qa0_values(data.target, {1: "Pass", 0: "Fail"})
    elif name == "wine":
        data = datasets.load_wine()
        y = _qa0_values(data.target, {0: "Pass", 1: "SemiPass", 2: "Fail"})
    elif name == "digits":
        data = datasets.load_digits()
        y = _qa0_values(data.target, {d: "Pass" if d <= 3 else "SemiPass" if d <= 6 else "Fail" for d in range(10)})
    else:
        raise BenchInputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)} or --csv PATH")
    names = [str(c) for c in getattr(data, "feature_names", [])] or [f"f{j}" for j in range(data.data.shape[1])]
    return Table(name, pd.DataFrame(np.asarray(data.data, dtype=float), columns=names), y)


def parse_map(spec: str | None) -> dict[str, str]:
    """'good=Pass,meh=SemiPass,bad=Fail' -> {'good': 'Pass', ...} (QA0 values in any case)."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        canon = {v.lower(): v for v in LABEL_VALUES}.get(value.strip().lower())
        if not sep or not key.strip() or canon is None:
            raise BenchInputError(f"--map entry {part.strip()!r} is not LABEL=Pass|SemiPass|Fail")
        out[key.strip()] = canon
    return out


def csv_table(path: Path, label_column: str, mapping: dict[str, str] | None = None) -> Table:
    """A user's labelled archive: the label column (Pass/SemiPass/Fail in any case, or mapped) and its numeric columns."""
    where = f"{path}"
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise BenchInputError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise BenchInputError(f"{where}: is a directory, not a file") from None
    except PermissionError:
        raise BenchInputError(f"{where}: permission denied") from None
    except OSError as exc:  # any other reason the file cannot be read: the message names the file, not a class
        raise BenchInputError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BenchInputError(f"{where}: not a readable CSV ({exc})") from None
    if label_column not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20]))
        raise BenchInputError(f"{where}: label column '{label_column}' is missing (the header has: {shown})")
    raw = frame[label_column]
    keep = raw.notna() & (raw.astype(str).str.strip() != "")
    raw = raw[keep].astype(str).str.strip()
    canon = {v.lower(): v for v in LABEL_VALUES}
    mapped = raw.map(lambda v: mapping[v] if mapping and v in mapping else canon.get(v.lower()))
    bad = sorted(set(raw[mapped.isna()]))
    if bad:
        shown = ", ".join(repr(b) for b in bad[:5])
        raise BenchInputError(
            f"{where}: column '{label_column}' has values other than Pass/SemiPass/Fail ({shown}); "
            "give --map VALUE=Pass,VALUE=Fail,..."
        )
    if mapped.nunique() < 2:
        only = mapped.iloc[0] if len(mapped) else "nothing"
        raise BenchInputError(f"{where}: column '{label_column}' holds one value only ({only}); nothing to learn")
    rest = frame.loc[keep].drop(columns=[label_column])
    numeric = rest.apply(pd.to_numeric, errors="coerce")
    cols = [
        c for c in rest.columns if numeric[c].notna().sum() > 0.5 * rest[c].notna().sum() and numeric[c].notna().any()
    ]
    if not cols:
        raise BenchInputError(f"{where}: no numeric column besides '{label_column}' to learn from")
    return Table(f"csv:{path.name}", numeric[cols].reset_index(drop=True), mapped.to_numpy(dtype=object))


def _column_name(raw: str, taken: set[str]) -> str:
    base = "x_" + (re.sub(r"[^0-9a-zA-Z]+", "_", str(raw)).strip("_").lower() or "col")
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def import_table(engine: Engine, table: Table) -> np.ndarray:
    """Import the table's rows as EBs (features as extra columns) through the importer; returns the EB ids in row order."""
    from qa0_label.ingest import import_frames

    taken: set[str] = set()
    feats = table.features.copy()
    feats.columns = [_column_name(c, taken) for c in feats.columns]
    n = len(feats)
    # One source, band and time for every row: the placeholders carry no information (and no row order).
    ebs = pd.DataFrame(
        {
            "uid": [f"uid://bench/X{i:x}" for i in range(n)],
            "source": "J0000+0000",
            "band": 3,
            "array": "12m",
            "start_time": "2024-01-01T00:00:00Z",
        }
    )
    import_frames(engine=engine, ebs=pd.concat([ebs, feats.reset_index(drop=True)], axis=1), ebs_name=table.name)
    with engine.connect() as conn:
        eb = table_of(ExecutionBlock).c
        ids: dict[str, int] = {str(u): int(i) for u, i in conn.execute(select(eb.uid, eb.id))}
    return np.asarray([ids[u] for u in ebs["uid"]], dtype=np.int64)


def simulate_table(
    engine: Engine, n: int = QA0_SIM_N, seed: int = QA0_SIM_SEED, *, rule: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated EBs with detail rows (the `simulate` command's path); (EB ids, QA0 values).

    The values are the simulator's hidden reference, or with rule=True those of ``checklist_rule`` on the EB rows.
    """
    from qa0_label.sim.simulate import simulate

    simulate(engine=engine, n=n, seed=seed)
    with engine.connect() as conn:
        ref = table_of(ReferenceOutcome).c
        rows = conn.execute(select(ref.eb_id, ref.value).order_by(ref.eb_id)).all()
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    if not rule:
        return ids, np.asarray([r[1] for r in rows], dtype=object)
    eb = table_of(ExecutionBlock).c
    with engine.connect() as conn:
        ebs = pd.DataFrame(
            conn.execute(select(eb.id, *(eb[c] for c in CHECKLIST_FIELDS)).order_by(eb.id)).all(),
            columns=["id", *CHECKLIST_FIELDS],
        ).set_index("id")
    return ids, checklist_rule(ebs.reindex(ids))


# --- a QA0 rule the app never saw ---------------------------------------------------------------------------

CHECKLIST_FIELDS: tuple[str, ...] = (
    "array",
    "n_antennas",
    "exec_fraction",
    "flagged_fraction",
    "flux_jy",
    "expected_flux_jy",
    "phase_rms_deg",
    "elevation_deg",
)
"""The EB fields ``checklist_rule`` reads (no detail rows: a summary-table check)."""

CHECKLIST_NOMINAL_ANTENNAS: dict[str, float] = {"12m": 43.0, "7m": 10.0}
CHECKLIST_WARN: dict[str, float] = {
    "antennas_below": 0.75,  # share of the array's nominal antennas
    "exec_below": 0.85,
    "flagged_above": 0.08,
    "flux_log_dev_above": 0.25,  # |ln(flux / catalogue flux)|, about 28 %
    "phase_rms_deg_above": 30.0,  # one limit for every band and array
    "elevation_below": 25.0,
}
CHECKLIST_BAD: dict[str, float] = {
    "antennas_below": 0.5,
    "exec_below": 0.5,
    "flagged_above": 0.2,
    "flux_log_dev_above": 0.5,
    "phase_rms_deg_above": 60.0,
}


def checklist_rule(ebs: pd.DataFrame) -> np.ndarray:
    """QA0 from a summary-table checklist another observatory might use; the 'data you did not design' check.

    Six checks on EB-level fields, each a warning or (five of them) a failure: usable antennas below 75 % / 50 %
    of the array's nominal count (12 m: 43, 7 m: 10), execution fraction below 0.85 / 0.5, flagged fraction
    above 8 % / 20 %, flux off the catalogue by |ln ratio| > 0.25 / 0.5, phase RMS above 30 / 60 degrees
    whatever the band, elevation below 25 degrees (warning only). Fail on any failure or on two warnings
    ("two strikes"), SemiPass on one warning, else Pass; a missing value passes its check. Its thresholds and
    its two-strikes combination differ from the simulator's reference (severity per fault, the worst decides,
    band- and array-dependent limits, detail rows) and from the app's limit features. On the 3,000 simulated
    EBs it gives about 77 % Pass, 16 % SemiPass, 7 % Fail and agrees with the reference on about 81 %.
    """
    f = {c: pd.to_numeric(ebs[c], errors="coerce") for c in CHECKLIST_FIELDS if c != "array"}
    nominal = ebs["array"].map(CHECKLIST_NOMINAL_ANTENNAS).astype(float).fillna(CHECKLIST_NOMINAL_ANTENNAS["12m"])
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.abs(np.log(f["flux_jy"] / f["expected_flux_jy"]))
    measured = {
        "antennas_below": f["n_antennas"] / nominal,
        "exec_below": f["exec_fraction"],
        "flagged_above": f["flagged_fraction"],
        "flux_log_dev_above": dev,
        "phase_rms_deg_above": f["phase_rms_deg"],
        "elevation_below": f["elevation_deg"],
    }

    def crosses(limits: dict[str, float]) -> list[np.ndarray]:
        # A NaN comparison is False: a missing value passes its check.
        return [
            np.asarray(measured[k] < v if k.endswith("_below") else measured[k] > v, dtype=bool)
            for k, v in limits.items()
        ]

    warnings = np.sum(crosses(CHECKLIST_WARN), axis=0)
    failed = np.any(crosses(CHECKLIST_BAD), axis=0)
    return np.where(failed | (warnings >= 2), "Fail", np.where(warnings >= 1, "SemiPass", "Pass")).astype(object)


# --- what plain modAL learns from ---------------------------------------------------------------------------


def own_columns(engine: Engine, eb_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The EB table's own numeric fields and numeric extra columns, rows in eb_ids order: what a site has without the app.

    This is what an export of the EB table gives a site that runs plain modAL: no detail aggregates, no derived
    features, no text field (source, array, uid). Columns empty or constant over the whole table carry nothing
    and are left out: for an imported table (scikit-learn, CSV) that leaves exactly its ``extra_x_`` columns.
    """
    eb = table_of(ExecutionBlock).c
    numeric = [c for c in EB_FIELDS if c != "extra" and eb[c].type.python_type in (int, float)]
    with engine.connect() as conn:
        rows = conn.execute(select(eb.id, eb.extra, *(eb[c] for c in numeric)).order_by(eb.id)).all()
    frame = pd.DataFrame(rows, columns=["id", "extra", *numeric]).set_index("id")
    extra = pd.DataFrame([x if isinstance(x, dict) else {} for x in frame.pop("extra").tolist()], index=frame.index)
    for col in extra.columns:
        values = pd.to_numeric(extra[col], errors="coerce")
        if values.notna().any():
            frame[f"extra_{col}"] = values
    frame = frame.reindex(eb_ids).apply(pd.to_numeric, errors="coerce").astype(float)
    keep = [c for c in frame.columns if frame[c].nunique(dropna=False) > 1]
    return frame[keep].to_numpy(dtype=float), keep
