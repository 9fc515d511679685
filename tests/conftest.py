"""Shared fixtures: every test database lives under tmp_path, never in the working tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from qa0_label.db import dispose_engines, init_db, make_engine


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file inside this test's tmp_path."""
    return f"sqlite:///{tmp_path / 'qa0.sqlite'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An initialised engine on a fresh temporary database."""
    eng = make_engine(db_url)
    init_db(eng)
    yield eng
    eng.dispose()
    dispose_engines()
