"""Small pieces the review modules share: the not-found error and result rows -> DataFrame."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


class EBNotFound(LookupError):
    """No EB with the requested id."""


def frame(
    rows: Sequence[Sequence[Any]], columns: Sequence[str], text_columns: Sequence[str] = ("antenna",)
) -> pd.DataFrame:
    """DataFrame from result rows, column-wise (pandas' row-object path is ~20x slower for 1,500 rows)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = {}
    for name, values in zip(columns, zip(*rows)):
        try:
            # None becomes NaN; text raises and stays object.
            out[name] = np.array(values, dtype=float) if name not in text_columns else np.asarray(values, dtype=object)
        except (TypeError, ValueError):
            out[name] = np.asarray(values, dtype=object)
    return pd.DataFrame(out)
