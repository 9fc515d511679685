"""Version 1 is the baseline: created from the models on an empty database, nothing to upgrade."""

from sqlalchemy.engine import Connection


def upgrade(conn: Connection) -> None:
    """Nothing to do: version 1 is only ever created fresh."""
    return None
