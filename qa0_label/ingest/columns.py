"""The import format as data: required, known and reserved columns, their rules, and the limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[[float, str], None]

LINE_COLUMN = "__line__"
"""Column read_table adds: the CSV line (header = line 1) or Parquet row (1-based) each row came from."""

MAX_LISTED_PROBLEMS = 20
MAX_KEPT_PROBLEMS = 1_000  # problems kept per file (the rest are counted): a file of bad rows stays small
DEFAULT_CHUNK_ROWS = 50_000  # rows read, validated and written per block: memory stays flat (300k rows: 0.66 GB peak vs 0.95 GB at 100k, same CPU)
MAX_UID = 64
MAX_COLUMN_NAME = 100
MAX_EXTRA_COLUMNS = 200
INT_MAX = 2**31 - 1  # PostgreSQL INTEGER
CHUNK = 500  # ids per IN (...) list: well under every backend's bind-parameter limit
WRITE_CHUNK = 5_000  # rows per executemany, so progress moves on large files
FULL_SCAN_OVER = 5_000  # look-ups of more keys than this read the whole (narrow) column once

REQUIRED_EB = ("uid", "source", "band", "start_time")
REQUIRED_DETAIL = ("uid", "antenna", "spw", "scan")
STATUS_COLUMN = "qa0_status"
EXPORT_COLUMNS = ["uid", "labeler", "role", "value", "comment", "reason", "kind", "seconds_on_eb", "created_at"]
# Cells a spreadsheet would run as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class NumberRule:
    """What a numeric column may hold."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the value must be strictly above `low`

    def describe(self) -> str:
        """Human wording of the allowed range."""
        if self.low is not None and self.high is not None:
            return f"must be between {self.low:g} and {self.high:g}"
        if self.low == 0:
            return "must be greater than 0" if self.low_open else "must not be negative"
        return "is out of range"


# Known optional ExecutionBlock columns (tests check this matches models.ExecutionBlock).
EB_NUMBERS: dict[str, NumberRule] = {
    "duration_s": NumberRule(low=0),
    "n_antennas": NumberRule(integer=True, low=0),
    "pwv_mm": NumberRule(low=0),
    "elevation_deg": NumberRule(low=0, high=90),
    "tsys_median_k": NumberRule(low=0),
    "phase_rms_deg": NumberRule(low=0),
    "flagged_fraction": NumberRule(low=0, high=1),
    "exec_fraction": NumberRule(low=0, high=1),
    "freq_ghz": NumberRule(low=0, low_open=True),
    "flux_jy": NumberRule(),
    "flux_err_jy": NumberRule(low=0),
    "spectral_index": NumberRule(),
    "spectral_index_err": NumberRule(low=0),
    "expected_flux_jy": NumberRule(),
    "expected_flux_err_jy": NumberRule(low=0),
}
EB_TEXTS: dict[str, int] = {"sb_name": 256, "project": 64, "array": 8}
EB_REQUIRED_TEXTS: dict[str, int] = {"uid": MAX_UID, "source": 64}
# Columns of ExecutionBlock that a file must not set (ours to manage); present ones are ignored.
EB_RESERVED = ("id", "eb_id", "extra", "imported_at")

DETAIL_NUMBERS: dict[str, NumberRule] = {
    "spw": NumberRule(integer=True, low=0),
    "scan": NumberRule(integer=True, low=0),
    "freq_ghz": NumberRule(low=0, low_open=True),
    "time_s": NumberRule(),
    "tsys_k": NumberRule(low=0),
    "amplitude": NumberRule(low=0),
    "phase_deg": NumberRule(),
    "bp_ripple_db": NumberRule(low=0),
}
DETAIL_MEASUREMENTS = ("freq_ghz", "time_s", "tsys_k", "amplitude", "phase_deg", "bp_ripple_db", "flagged")
DETAIL_RESERVED = ("id", "eb_id")

_BAND_RE = re.compile(r"^(?:alma[\s_-]*rb[\s_-]*|rb[\s_-]*|band[\s_-]*|b[\s_-]*)?0*(\d{1,2})(?:\.0+)?$")
_ARRAY_RE = re.compile(r"^(12|7)[\s_-]*m$", re.IGNORECASE)
# C0/C1 controls, and invisible or bidi formatting characters (zero-width space / joiners, word joiner, BOM,
# LRM/RLM/ALM, embeddings, overrides and isolates) that make a source or name display as something it is not.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_NAN_WORDS = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})
# The observatory's "not decided yet" statuses carry no QA0 value: imported as no label.
_UNDECIDED = frozenset({"unset", "pending"})
_IGNORED_NAME_RE = re.compile(r"^(?:unnamed: ?\d+|__index_level_\d+__)$")
