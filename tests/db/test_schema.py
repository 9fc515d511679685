"""Schema creation, versioning and the upgrade path (an upgrade never loses labels)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from qa0_label.store import db as dbmod
from qa0_label.store import models
from qa0_label.store.db import init_db, make_engine

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


def test_upgrade_to_version_2_adds_the_detail_cache_and_its_triggers(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _old_database(path)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO eb_detail (eb_id, antenna, spw, scan, tsys_k, amplitude, flagged) VALUES (1, 'DA41', 0, 1, 80, 1.0, 0)"
    )
    conn.commit()
    conn.close()
    engine = make_engine(f"sqlite:///{path}")
    assert init_db(engine) == models.SCHEMA_VERSION >= 2
    with engine.begin() as conn:
        assert [tuple(r) for r in conn.execute(text("SELECT value, client_event_id FROM label"))] == [("Fail", "e1")]
        assert conn.execute(text("SELECT COUNT(*) FROM eb_detail")).scalar_one() == 1
        triggers = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
        assert {"eb_detail_features_del", "eb_detail_features_upd"} <= triggers
        conn.execute(
            text(
                "INSERT INTO eb_detail_features (eb_id, feature_version, n_rows, max_detail_id, values_json, computed_at) "
                "VALUES (1, 'x', 1, 1, '[]', '2024-01-01 00:00:00')"
            )
        )
        conn.execute(text("DELETE FROM eb_detail WHERE eb_id = 1"))
        assert conn.execute(text("SELECT COUNT(*) FROM eb_detail_features")).scalar_one() == 0
    engine.dispose()


def test_upgrade_path_on_every_backend(engine) -> None:
    """Drop what version 2 added, mark the database version 1, and upgrade again (PostgreSQL SQL included)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO execution_block (uid, source, band, start_time, imported_at) "
                "VALUES ('uid://A002/X1/X1', 'J1256-0547', 3, '2024-01-01 00:00:00', '2024-01-01 00:00:00')"
            )
        )
        eb = conn.execute(text("SELECT id FROM execution_block")).scalar_one()
        conn.execute(
            text("INSERT INTO labeler (name, role, active, created_at) VALUES ('ana', 'aod', true, '2024-01-01')")
        )
        who = conn.execute(text("SELECT id FROM labeler")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO label (eb_id, labeler_id, value, created_at, kind, client_event_id) "
                "VALUES (:e, :w, 'Fail', '2024-01-01 00:05:00', 'review', 'e1')"
            ),
            {"e": eb, "w": who},
        )
        conn.execute(
            text("INSERT INTO eb_detail (eb_id, antenna, spw, scan, flagged) VALUES (:e, 'DA41', 0, 1, false)"),
            {"e": eb},
        )
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TABLE eb_detail_features"))
            for trig in ("ins", "del", "upd"):
                conn.execute(text(f"DROP TRIGGER eb_detail_features_{trig} ON eb_detail"))
            conn.execute(text("DROP FUNCTION qa0_detail_features_drop(), qa0_detail_features_drop_upd()"))
        else:
            conn.execute(text("DROP TRIGGER eb_detail_features_del"))
            conn.execute(text("DROP TRIGGER eb_detail_features_upd"))
            conn.execute(text("DROP TABLE eb_detail_features"))
        conn.execute(text("DROP INDEX ix_score_run_uncertainty"))
        conn.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
    assert init_db(engine) == models.SCHEMA_VERSION
    with engine.begin() as conn:
        assert dbmod.schema_version(conn) == models.SCHEMA_VERSION
        assert "ix_score_run_uncertainty" in {ix["name"] for ix in inspect(conn).get_indexes("score")}
        assert [tuple(r) for r in conn.execute(text("SELECT value, client_event_id FROM label"))] == [("Fail", "e1")]
        conn.execute(
            text(
                "INSERT INTO eb_detail_features (eb_id, feature_version, n_rows, max_detail_id, values_json, computed_at) "
                "VALUES (:e, 'x', 1, 1, '[]', '2024-01-01 00:00:00')"
            ),
            {"e": eb},
        )
        conn.execute(text("UPDATE eb_detail SET tsys_k = 90 WHERE eb_id = :e"), {"e": eb})
        assert conn.execute(text("SELECT COUNT(*) FROM eb_detail_features")).scalar_one() == 0
