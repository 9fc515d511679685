"""Labelled tables for the active-learning benchmark, loaded into a temporary database the way a site would.

Every dataset becomes EB rows in a SQLite file: ``qa0-sim`` through the simulator (EBs, detail rows, hidden
reference QA0 = the oracle's answers), the scikit-learn tables and a user's CSV through the importer, their
numeric columns as the EBs' extra columns (features ``extra_x_<name>``). The benchmark then reads the
features with the same ``features.build_features`` the retrain uses, so every arm sees the same matrix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Engine

from qa0_label.store.models import LABEL_VALUES

DATASETS: tuple[str, ...] = ("qa0-sim", "breast_cancer", "wine", "digits")
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
        ids: dict[str, int] = {str(u): int(i) for u, i in conn.execute(text("SELECT uid, id FROM execution_block"))}
    return np.asarray([ids[u] for u in ebs["uid"]], dtype=np.int64)


def simulate_table(engine: Engine, n: int = QA0_SIM_N, seed: int = QA0_SIM_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Simulated EBs with detail rows (the `simulate` command's path); (EB ids, hidden reference QA0 values)."""
    from qa0_label.sim.simulate import simulate

    simulate(engine=engine, n=n, seed=seed)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT e.id, r.value FROM execution_block e JOIN reference_outcome r ON r.eb_id = e.id ORDER BY e.id")
        ).all()
    return np.asarray([r[0] for r in rows], dtype=np.int64), np.asarray([r[1] for r in rows], dtype=object)
