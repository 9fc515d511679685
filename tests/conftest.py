"""Shared fixtures: every test database lives under tmp_path (SQLite) or is a throw-away PostgreSQL database.

Database-facing tests use the `db_url` / `engine` fixtures. When QA0_TEST_POSTGRES_URL points at a
PostgreSQL server (CI starts one on loopback), those tests run twice: on SQLite and on PostgreSQL.
Tests that check something only SQLite has (the file, WAL, backup) are marked `sqlite_only`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from qa0_label.store.db import dispose_engines, init_db, make_engine

POSTGRES_ADMIN_URL = os.environ.get("QA0_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_ADMIN_URL else [])


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers used by this suite."""
    config.addinivalue_line("markers", "sqlite_only: checks a SQLite-specific behaviour")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which database server the test runs against."""
    if request.param != "sqlite" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("SQLite-specific behaviour")
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database: a SQLite file in tmp_path or a new PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'qa0.sqlite'}"
        dispose_engines()
        return
    admin_url = make_url(POSTGRES_ADMIN_URL)
    name = f"qa0_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An initialised engine on a fresh temporary database."""
    eng = make_engine(db_url)
    init_db(eng)
    yield eng
    eng.dispose()
