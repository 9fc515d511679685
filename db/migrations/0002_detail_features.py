"""Version 2: eb_detail_features, the per-EB cache of detail-derived features, with its invalidation triggers.

Frozen SQL (not the live model), so this step means the same thing whenever it runs. Only adds a table and
triggers: no existing row is touched, so no label can be lost. The cache starts empty and fills at the next
retrain (or simulate).
"""

from sqlalchemy import text
from sqlalchemy.engine import Connection

_TABLE = """
CREATE TABLE eb_detail_features (
    eb_id INTEGER NOT NULL PRIMARY KEY REFERENCES execution_block (id) ON DELETE CASCADE,
    feature_version VARCHAR(16) NOT NULL,
    n_rows INTEGER NOT NULL,
    max_detail_id {bigint} NOT NULL,
    values_json TEXT NOT NULL,
    computed_at {timestamp} NOT NULL
)
"""

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS eb_detail_features_del AFTER DELETE ON eb_detail "
    "BEGIN DELETE FROM eb_detail_features WHERE eb_id = OLD.eb_id; END",
    "CREATE TRIGGER IF NOT EXISTS eb_detail_features_upd AFTER UPDATE ON eb_detail "
    "BEGIN DELETE FROM eb_detail_features WHERE eb_id IN (OLD.eb_id, NEW.eb_id); END",
)

_POSTGRES_TRIGGERS = (
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


def upgrade(conn: Connection) -> None:
    """Create eb_detail_features and the triggers that drop a row when its EB's details change."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_TABLE.format(bigint="INTEGER", timestamp="DATETIME"))
        for sql in _SQLITE_TRIGGERS:
            conn.exec_driver_sql(sql)
    else:
        conn.exec_driver_sql(_TABLE.format(bigint="BIGINT", timestamp="TIMESTAMP WITHOUT TIME ZONE"))
        for sql in _POSTGRES_TRIGGERS:
            conn.execute(text(sql))
