"""Version 3: index score (run_id, uncertainty), for picks after a strategy's stored queue ran dry.

Until the next retrain those picks take the most uncertain unlabelled EBs from the run's scores; without the
index that meant sorting every score of the run (~140 ms per pick on a 100,000-EB pool). Only adds an index:
no row is touched.
"""

from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    """Create ix_score_run_uncertainty (same SQL on SQLite and PostgreSQL)."""
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_score_run_uncertainty ON score (run_id, uncertainty)")
