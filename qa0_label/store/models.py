"""SQLModel tables: the whole persistent data model lives in this one module."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional, cast

from sqlalchemy import DDL, JSON, Column, Index, Table, Text, UniqueConstraint, event
from sqlmodel import Field, SQLModel

LABEL_VALUES: tuple[str, ...] = ("Pass", "SemiPass", "Fail")
"""QA0 values in display order."""

ORDINAL: dict[str, int] = {"Fail": 0, "SemiPass": 1, "Pass": 2}
"""Ordinal position for agreement statistics: Fail < SemiPass < Pass."""

CAUTION_ORDER: tuple[str, ...] = ("Fail", "SemiPass", "Pass")
"""Tie-break order for consensus: the more cautious value wins."""

LABEL_KINDS: tuple[str, ...] = ("review", "undo", "adjudication")
ARCHIVE_LABELER = "archive"  # the labeler an import's qa0_status column records its labels as
ROLES: tuple[str, ...] = ("aod", "lead")
RUN_STATUSES: tuple[str, ...] = ("running", "done", "failed")

SCHEMA_VERSION = 4
"""Bump together with a new migration under db/migrations/."""


def utcnow() -> datetime:
    """Current time, timezone-aware in UTC (the database stores every time in UTC)."""
    return datetime.now(timezone.utc)


def row_id(row: SQLModel) -> int:
    """The primary key of a stored row (SQLModel types `id` Optional: it is None only before the first flush)."""
    value = getattr(row, "id")
    if value is None:
        raise ValueError(f"{type(row).__name__} has no id yet: it was never flushed")
    return int(value)


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy Table of a table model: for Core statements (SQLModel does not declare __table__ for type checkers)."""
    return cast(Table, getattr(model, "__table__"))


class Meta(SQLModel, table=True):
    """Key/value facts about the database itself, such as the schema version."""

    key: str = Field(primary_key=True, max_length=64)
    value: str


class ExecutionBlock(SQLModel, table=True):
    """One run of a Scheduling Block on a flux-calibrator (grid) source."""

    __tablename__ = "execution_block"

    id: Optional[int] = Field(default=None, primary_key=True)
    uid: str = Field(index=True, unique=True, max_length=64)
    sb_name: Optional[str] = None
    project: Optional[str] = None
    source: str = Field(index=True, max_length=64)
    band: int = Field(index=True)
    array: Optional[str] = Field(default=None, max_length=8)
    start_time: datetime = Field(index=True)
    duration_s: Optional[float] = None
    n_antennas: Optional[int] = None
    pwv_mm: Optional[float] = None
    elevation_deg: Optional[float] = None
    tsys_median_k: Optional[float] = None
    phase_rms_deg: Optional[float] = None
    flagged_fraction: Optional[float] = None
    exec_fraction: Optional[float] = None
    freq_ghz: Optional[float] = None
    flux_jy: Optional[float] = None
    flux_err_jy: Optional[float] = None
    spectral_index: Optional[float] = None
    spectral_index_err: Optional[float] = None
    expected_flux_jy: Optional[float] = None
    expected_flux_err_jy: Optional[float] = None
    extra: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON))
    imported_at: datetime = Field(default_factory=utcnow)


EB_FIELDS: tuple[str, ...] = tuple(
    c.name for c in table_of(ExecutionBlock).columns if c.name not in ("id", "imported_at")
)
"""An EB's own fields in table order (no surrogate id, no import stamp): what the header and an EB table show."""


class EBDetail(SQLModel, table=True):
    """One antenna x spectral window x scan measurement of an EB (drives the review plots)."""

    __tablename__ = "eb_detail"
    __table_args__ = (Index("ix_eb_detail_eb", "eb_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    eb_id: int = Field(foreign_key="execution_block.id", ondelete="CASCADE")
    antenna: str = Field(max_length=8)
    spw: int
    scan: int
    freq_ghz: Optional[float] = None
    time_s: Optional[float] = None  # seconds since the EB started
    tsys_k: Optional[float] = None
    amplitude: Optional[float] = None  # calibrated amplitude, Jy
    phase_deg: Optional[float] = None
    bp_ripple_db: Optional[float] = None  # peak-to-peak autocorrelation variation across the spw
    flagged: bool = False


class ReferenceOutcome(SQLModel, table=True):
    """The simulator's hidden 'true' QA0; never a feature, never shown in the review UI."""

    __tablename__ = "reference_outcome"

    eb_id: int = Field(primary_key=True, foreign_key="execution_block.id", ondelete="CASCADE")
    value: str = Field(max_length=16)
    reasons: str = ""


class Labeler(SQLModel, table=True):
    """A person (or an importer such as 'archive') who gives labels."""

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=80)
    role: str = Field(default="aod", max_length=8)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Label(SQLModel, table=True):
    """Append-only label event; the current label of (eb, labeler) is the newest review/undo event."""

    __table_args__ = (
        Index("ix_label_eb_labeler", "eb_id", "labeler_id", "id"),
        Index("ix_label_labeler", "labeler_id", "id"),
        # assign asks "was this label reverted?" for every candidate EB (0004_label_reverts_index.py).
        Index("ix_label_reverts", "reverts_id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    eb_id: int = Field(foreign_key="execution_block.id", ondelete="CASCADE")
    labeler_id: int = Field(foreign_key="labeler.id")
    # NULL only for an undo event that returns the EB to "no label from this labeler".
    value: Optional[str] = Field(default=None, max_length=16)
    comment: Optional[str] = None
    reason: Optional[str] = None  # adjudication reason
    seconds_on_eb: Optional[float] = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    kind: str = Field(default="review", max_length=16)
    client_event_id: Optional[str] = Field(default=None, unique=True, max_length=64)
    reverts_id: Optional[int] = Field(default=None, foreign_key="label.id")


class LeadSecret(SQLModel, table=True):
    """A team lead's passphrase as a salted scrypt hash (access.authz); the passphrase itself is never stored."""

    __tablename__ = "lead_secret"

    labeler_id: int = Field(primary_key=True, foreign_key="labeler.id")
    salt_hex: str = Field(max_length=64)
    hash_hex: str = Field(max_length=128)
    n: int
    r: int
    p: int
    set_at: datetime = Field(default_factory=utcnow)


class UnlockAttempt(SQLModel, table=True):
    """One try to unlock lead actions; the rate limit counts the failed ones of the last minute."""

    __tablename__ = "unlock_attempt"
    __table_args__ = (Index("ix_unlock_attempt_name_at", "name_key", "at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    name_key: str = Field(max_length=80)  # the case-folded name tried (it may not exist)
    at: datetime = Field(default_factory=utcnow)
    ok: bool = False


class LabelerChange(SQLModel, table=True):
    """History of lead renames and merges of labelers: who changed what, when, and how many labels moved."""

    __tablename__ = "labeler_change"

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=8)  # "rename" or "merge"
    from_name: str = Field(max_length=80, index=True)
    into_name: str = Field(max_length=80)
    into_id: int = Field(foreign_key="labeler.id")
    by_name: str = Field(max_length=80)
    n_labels: int = 0
    at: datetime = Field(default_factory=utcnow)


class Skip(SQLModel, table=True):
    """An AoD moved past an EB without labelling it; it is not offered to them again."""

    __table_args__ = (UniqueConstraint("eb_id", "labeler_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    eb_id: int = Field(foreign_key="execution_block.id", ondelete="CASCADE")
    labeler_id: int = Field(foreign_key="labeler.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Lease(SQLModel, table=True):
    """An EB handed to one labeler; the primary key makes a double hand-out impossible."""

    eb_id: int = Field(primary_key=True, foreign_key="execution_block.id", ondelete="CASCADE")
    labeler_id: int = Field(foreign_key="labeler.id", index=True)
    reason: str = Field(default="", max_length=32)  # strategy name, "overlap", "gold", "cold-start"
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)


class GoldEB(SQLModel, table=True):
    """An EB whose right answer a lead has fixed; served blind to AoDs and scored."""

    __tablename__ = "gold_eb"

    eb_id: int = Field(primary_key=True, foreign_key="execution_block.id", ondelete="CASCADE")
    value: str = Field(max_length=16)
    set_by_id: int = Field(foreign_key="labeler.id")
    reason: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)


class ModelRun(SQLModel, table=True):
    """One retrain: its inputs, metrics, and the artifact it produced."""

    __tablename__ = "model_run"

    id: Optional[int] = Field(default=None, primary_key=True)
    version: int = Field(index=True, unique=True)
    status: str = Field(default="running", max_length=16, index=True)
    trigger: str = Field(default="manual", max_length=16)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: Optional[datetime] = None
    heartbeat_at: Optional[datetime] = None
    progress: float = 0.0
    progress_text: Optional[str] = None
    n_labels: int = 0
    strategy: Optional[str] = None
    estimator: Optional[str] = None
    feature_version: Optional[str] = None
    features: Optional[list[str]] = Field(default=None, sa_column=Column(JSON))
    metrics: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON))
    artifact_path: Optional[str] = None
    artifact_sha256: Optional[str] = None
    error: Optional[str] = None
    pid: Optional[int] = None
    host: Optional[str] = None


class Score(SQLModel, table=True):
    """A model run's prediction for one EB, precomputed so 'next EB' is one indexed query."""

    __table_args__ = (
        Index("ix_score_run_eb", "run_id", "eb_id", unique=True),
        # Picks after a strategy's stored queue ran dry read the most uncertain scores first (assign._Q_SCORES).
        Index("ix_score_run_uncertainty", "run_id", "uncertainty"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="model_run.id", ondelete="CASCADE")
    eb_id: int = Field(foreign_key="execution_block.id", ondelete="CASCADE")
    p_pass: float
    p_semipass: float
    p_fail: float
    uncertainty: float


class ScoreRank(SQLModel, table=True):
    """Position of an EB in a strategy's queue for one model run (lower rank = review sooner)."""

    __tablename__ = "score_rank"
    __table_args__ = (Index("ix_score_rank_queue", "run_id", "strategy", "rank"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    # NULL run: the cold-start diversity queue, used before any model exists.
    run_id: Optional[int] = Field(default=None, foreign_key="model_run.id", ondelete="CASCADE")
    strategy: str = Field(max_length=32)
    rank: int
    eb_id: int = Field(foreign_key="execution_block.id", ondelete="CASCADE")


class EBDetailFeatures(SQLModel, table=True):
    """Per-EB cache of the detail-derived features, so a retrain never re-aggregates millions of detail rows.

    A row is valid for the EB's detail rows as they were when it was computed: triggers on eb_detail delete
    it whenever one of the EB's detail rows is deleted or updated (a re-import replaces them) and, on
    PostgreSQL, inserted; on SQLite an insert is caught by max_detail_id (a newer row of the EB exists). A
    row of another feature version is recomputed at the next retrain.
    """

    __tablename__ = "eb_detail_features"

    eb_id: int = Field(primary_key=True, foreign_key="execution_block.id", ondelete="CASCADE")
    feature_version: str = Field(max_length=16)
    n_rows: int  # detail rows the values come from
    max_detail_id: int  # the newest of those rows
    # JSON list in the order of features.DETAIL_FEATURES, null for NaN (plain text: we parse it ourselves).
    values_json: str = Field(sa_column=Column(Text, nullable=False))
    computed_at: datetime = Field(default_factory=utcnow)


# Invalidation triggers, created with the table on a fresh database (0002_detail_features.py makes the same
# ones on an upgraded database). SQLite has row triggers only: one for INSERT would cost ~25 % of a bulk
# detail load, so inserts are detected through max_detail_id instead.
SQLITE_DETAIL_TRIGGERS: tuple[str, ...] = (
    "CREATE TRIGGER IF NOT EXISTS eb_detail_features_del AFTER DELETE ON eb_detail "
    "BEGIN DELETE FROM eb_detail_features WHERE eb_id = OLD.eb_id; END",
    "CREATE TRIGGER IF NOT EXISTS eb_detail_features_upd AFTER UPDATE ON eb_detail "
    "BEGIN DELETE FROM eb_detail_features WHERE eb_id IN (OLD.eb_id, NEW.eb_id); END",
)
POSTGRES_DETAIL_TRIGGERS: tuple[str, ...] = (
    """CREATE OR REPLACE FUNCTION qa0_detail_features_drop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM eb_detail_features WHERE eb_id IN (SELECT DISTINCT eb_id FROM changed_rows);
  RETURN NULL;
END $$""",
    """CREATE OR REPLACE FUNCTION qa0_detail_features_drop_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM eb_detail_features
  WHERE eb_id IN (SELECT eb_id FROM old_rows UNION SELECT eb_id FROM new_rows);
  RETURN NULL;
END $$""",
    "CREATE TRIGGER eb_detail_features_ins AFTER INSERT ON eb_detail REFERENCING NEW TABLE AS changed_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION qa0_detail_features_drop()",
    "CREATE TRIGGER eb_detail_features_del AFTER DELETE ON eb_detail REFERENCING OLD TABLE AS changed_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION qa0_detail_features_drop()",
    "CREATE TRIGGER eb_detail_features_upd AFTER UPDATE ON eb_detail REFERENCING OLD TABLE AS old_rows "
    "NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION qa0_detail_features_drop_upd()",
)

for _sql in SQLITE_DETAIL_TRIGGERS:
    event.listen(table_of(EBDetailFeatures), "after_create", DDL(_sql).execute_if(dialect="sqlite"))
for _sql in POSTGRES_DETAIL_TRIGGERS:
    event.listen(
        table_of(EBDetailFeatures), "after_create", DDL(_sql.replace("%", "%%")).execute_if(dialect="postgresql")
    )


# --- auto-QA0 (qa0_label/automation): new tables only, created on start-up like every table ----------------


class AutoAlpha(SQLModel, table=True):
    """One change of auto-QA0's maximum error rate alpha: the newest row is in force (audit: who, when, old -> new)."""

    __tablename__ = "auto_alpha"

    id: Optional[int] = Field(default=None, primary_key=True)
    alpha: float
    old_alpha: Optional[float] = None
    changed_by_id: int = Field(foreign_key="labeler.id")
    changed_at: datetime = Field(default_factory=utcnow)


class AutoRun(SQLModel, table=True):
    """What a model run's calibration found: the held-out scores it certifies alpha with, curve and per-class figures."""

    __tablename__ = "auto_run"

    run_id: int = Field(primary_key=True, foreign_key="model_run.id", ondelete="CASCADE")
    alpha: float  # the alpha the stored decisions (AutoDecision rows) were derived with
    threshold: Optional[float] = None  # None: nothing may be auto-decided at that alpha
    summary: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON))
    updated_at: datetime = Field(default_factory=utcnow)


class AutoDecision(SQLModel, table=True):
    """An EB the model may decide alone under its run's calibration and the alpha in force (queue skips these)."""

    __tablename__ = "auto_decision"

    run_id: int = Field(primary_key=True, foreign_key="model_run.id", ondelete="CASCADE")
    eb_id: int = Field(primary_key=True, foreign_key="execution_block.id", ondelete="CASCADE")
    value: str = Field(max_length=16)


class AcceptedSuggestion(SQLModel, table=True):
    """A review label that is an AoD accepting the model's auto-QA0 suggestion (key A) rather than their own call."""

    __tablename__ = "accepted_suggestion"

    label_id: int = Field(primary_key=True, foreign_key="label.id", ondelete="CASCADE")
    run_id: Optional[int] = Field(default=None, foreign_key="model_run.id")
    suggested: str = Field(max_length=16)
