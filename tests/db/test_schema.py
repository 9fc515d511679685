"""Schema creation, versioning and the upgrade path (an upgrade never loses labels)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from qa0_label import db as dbmod
from qa0_label import models
from qa0_label.db import init_db, make_engine

BASELINE = Path(dbmod.MIGRATIONS_DIR) / "0001_baseline.sql"


def _old_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(BASELINE.read_text())
    conn.execute(
        "INSERT INTO execution_block (uid, source, band, start_time, imported_at) "
        "VALUES ('uid://A002/X1/X1', 'J1256-0547', 3, '2024-01-01 00:00:00.000000', '2024-01-01 00:00:00.000000')"
    )
    conn.execute("INSERT INTO labeler (name, role, active, created_at) VALUES ('ana', 'aod', 1, '2024-01-01 00:00:00')")
    conn.execute(
        "INSERT INTO label (eb_id, labeler_id, value, created_at, kind, client_event_id) "
        "VALUES (1, 1, 'Fail', '2024-01-01 00:05:00', 'review', 'e1')"
    )
    conn.commit()
    conn.close()


def test_fresh_database_gets_current_version_and_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.sqlite'}")
    assert init_db(engine) == models.SCHEMA_VERSION
    with engine.connect() as conn:
        assert dbmod.schema_version(conn) == models.SCHEMA_VERSION
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    assert init_db(engine) == models.SCHEMA_VERSION  # idempotent
    engine.dispose()


def test_upgrade_from_version_1_keeps_labels(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _old_database(path)
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    with engine.connect() as conn:
        assert dbmod.schema_version(conn) == models.SCHEMA_VERSION
        rows = conn.execute(text("SELECT value, client_event_id FROM label")).fetchall()
        assert [tuple(r) for r in rows] == [("Fail", "e1")]
        tables = set(inspect(conn).get_table_names())
    assert {t.name for t in models.SQLModel.metadata.sorted_tables} <= tables
    engine.dispose()


def test_failed_upgrade_leaves_old_schema_and_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.sqlite"
    _old_database(path)
    monkeypatch.setattr(models, "SCHEMA_VERSION", 2)

    def broken(conn) -> None:
        conn.execute(text("ALTER TABLE label ADD COLUMN scratch INTEGER"))
        raise RuntimeError("migration bug")

    monkeypatch.setattr(dbmod, "_load_migration", lambda version: broken)
    engine = make_engine(f"sqlite:///{path}")
    with pytest.raises(RuntimeError, match="migration bug"):
        init_db(engine)
    engine.dispose()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    assert conn.execute("SELECT value FROM label").fetchall() == [("Fail",)]
    assert "scratch" not in [r[1] for r in conn.execute("PRAGMA table_info(label)")]
    conn.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '999' WHERE key = 'schema_version'"))
    with pytest.raises(RuntimeError, match="newer"):
        init_db(engine)
    engine.dispose()


def test_every_version_has_a_migration() -> None:
    for version in range(1, models.SCHEMA_VERSION + 1):
        assert callable(dbmod._load_migration(version))
