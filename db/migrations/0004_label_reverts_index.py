"""Version 4: index label (reverts_id), so assign can ask "was this label undone?" per candidate EB.

An undone label no longer counts as "labelled" when the queue picks an EB (issue 15: undo returns the EB).
Only adds an index; the new tables of version 4 (lead_secret, unlock_attempt, labeler_change) are created
from the models after the upgrade.
"""

from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    """Create ix_label_reverts (same SQL on SQLite and PostgreSQL)."""
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_label_reverts ON label (reverts_id)")
