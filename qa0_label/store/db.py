"""Engine and session helpers: SQLite pragmas, schema creation and upgrade, bulk reads and inserts."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ClauseElement, event, insert, inspect, update
from sqlalchemy import column as sa_column
from sqlalchemy import select as sa_select
from sqlalchemy import table as sa_table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Session, SQLModel, create_engine

from qa0_label.config import database_url
from qa0_label.store import models

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "db" / "migrations"
BUSY_TIMEOUT_MS = 10_000

_engines: dict[str, Engine] = {}
T = TypeVar("T")


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # pysqlite's own transaction handling commits before DDL and breaks SAVEPOINTs; we emit BEGIN
    # ourselves (see _sqlite_begin) so migrations and nested transactions are truly atomic.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets AoDs read while another writes; busy_timeout turns short lock waits into waits, not errors.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


WRITE_BEGIN_ATTEMPTS = 6
"""BEGIN IMMEDIATE attempts (each waits up to busy_timeout) before "database is locked" reaches a caller."""


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so a writer waits (busy_timeout) instead of failing
    # with "database is locked" when it upgrades a read transaction whose snapshot went stale.
    if not conn.get_execution_options().get("qa0_write"):
        conn.exec_driver_sql("BEGIN")
        return
    for attempt in range(WRITE_BEGIN_ATTEMPTS):
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            # SQLite's busy handler is not fair: on an overloaded host with many writers one of them can
            # wait out busy_timeout. Nothing has run in this transaction yet, so asking again is safe.
            if "locked" not in str(exc).lower() or attempt == WRITE_BEGIN_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


def writer(engine: Engine) -> Engine:
    """The same engine, but its transactions take SQLite's write lock at BEGIN (no-op elsewhere)."""
    return engine.execution_options(qa0_write=True)


def make_engine(url: str | None = None) -> Engine:
    """Create an engine for URL (default from the environment) with our connection settings."""
    url = database_url(url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def get_engine(url: str | None = None) -> Engine:
    """A process-wide engine per URL whose schema is created or upgraded on first use."""
    url = database_url(url)
    engine = _engines.get(url)
    if engine is None:
        engine = make_engine(url)
        init_db(engine)
        _engines[url] = engine
    return engine


def dispose_engines() -> None:
    """Close every cached engine (tests use this between temporary databases)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


class WriteGate:
    """Queue for SQLite writers: a re-entrant lock for this process's threads, then an flock for all processes.

    SQLite's busy handler polls with sleeps of up to 100 ms, so writers fighting over its file lock wait far
    longer than the few milliseconds a write takes, and unfairly. Queueing on these locks first hands the
    write over as soon as the previous writer commits. The flock is on a side file next to the database; the
    kernel drops it when a process dies, so a kill -9 never leaves it held. Writers that do not pass through
    here (imports, retrains) still meet at SQLite's own lock, which keeps correctness in every case.
    """

    def __init__(self, lock_path: str | None) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._path = lock_path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Wait for this process's turn, then for the file's."""
        self._lock.acquire()
        if self._depth == 0 and self._path is not None:
            try:
                self._flock()
            except BaseException:
                self._lock.release()
                raise
        self._depth += 1

    def release(self) -> None:
        """Hand the write over to the next waiting thread or process."""
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                import fcntl

                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def _flock(self) -> None:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: SQLite's lock alone serialises writers
            self._path = None
            return
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)  # type: ignore[arg-type]
            except OSError:  # read-only directory: fall back to SQLite's lock
                self._path = None
                return
        fcntl.flock(self._fd, fcntl.LOCK_EX)


_write_gates: dict[str, WriteGate] = {}
_gates_lock = threading.Lock()


def _forget_gates_in_child() -> None:
    # A forked child shares the parent's open lock file (an flock on it would not exclude the parent) and
    # may have copied a lock some other thread held: it starts with gates of its own.
    global _gates_lock
    _write_gates.clear()
    _gates_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_gates_in_child)


def write_lock_path(engine: Engine) -> str | None:
    """The side file whose flock orders writers across processes (None for in-memory databases)."""
    database = engine.url.database
    if not is_sqlite(engine) or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return str(Path(database).resolve()) + "-qa0-write.lock"


def _write_gate(engine: Engine) -> WriteGate:
    """One gate per SQLite file and process: this process's writers queue here, in order."""
    key = str(engine.url)
    with _gates_lock:
        gate = _write_gates.get(key)
        if gate is None:
            gate = _write_gates[key] = WriteGate(write_lock_path(engine))
        return gate


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """One session per user action: commit on success, roll back on any error.

    write=True takes SQLite's write lock when the transaction starts; use it for actions that read
    and then write (labels, leases) so concurrent AoDs queue instead of failing.
    """
    # Streamlit serves every AoD from threads of one process, and CLI users and other app servers are other
    # processes: all of them queue at the gate (see WriteGate) rather than in SQLite's polling busy handler.
    gate = _write_gate(engine) if write and is_sqlite(engine) else None
    if gate is not None:
        gate.acquire()
    try:
        with Session(writer(engine) if write else engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        if gate is not None:
            gate.release()


def insert_unless_taken(table: Any, key: str, returning: Any) -> dict[str, Any]:
    """INSERT ... ON CONFLICT (KEY) DO NOTHING, one prebuilt statement per backend (by dialect name)."""
    # A taken key inserts nothing, instead of an IntegrityError that needs a SAVEPOINT around every attempt (two
    # more statements per call on a hot path). Whether it wrote: RETURNING on PostgreSQL (SQLAlchemy does not
    # keep psycopg's row count of an INSERT); SQLite's row count, since SQLite has RETURNING only from 3.35 on.
    return {
        "sqlite": sqlite_insert(table)
        .on_conflict_do_nothing(index_elements=[key])
        .execution_options(preserve_rowcount=True),
        "postgresql": pg_insert(table).on_conflict_do_nothing(index_elements=[key]).returning(returning),
    }


def inserted_key(result: CursorResult[Any]) -> Any | None:
    """The primary key an insert_unless_taken() statement wrote, or None when the key was taken."""
    if result.returns_rows:
        return result.scalar()
    key = result.inserted_primary_key
    return key[0] if key is not None and result.rowcount == 1 else None


def retry_locked(fn: Callable[[], T], *, attempts: int = 5, delay_s: float = 0.05) -> T:
    """Run fn again when SQLite reports a lock that outlived busy_timeout (safe for idempotent work)."""
    for attempt in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(delay_s * (2**attempt))
    raise AssertionError("unreachable")


# --- schema versioning -------------------------------------------------------------------------


# The bookkeeping of migrations names meta's two columns itself instead of using models.Meta: it runs on an
# older schema before any migration, so it must not depend on today's models.
_META = sa_table("meta", sa_column("key"), sa_column("value"))
_VERSION_KEY = "schema_version"


def schema_version(conn: Connection) -> int | None:
    """The schema version recorded in the database, or None for an empty database."""
    if not inspect(conn).has_table("meta"):
        return None
    row = conn.execute(sa_select(_META.c.value).where(_META.c.key == _VERSION_KEY)).fetchone()
    return int(row[0]) if row else None


def _load_migration(version: int) -> Callable[[Connection], None]:
    matches = sorted(MIGRATIONS_DIR.glob(f"{version:04d}_*.py"))
    if not matches:
        raise RuntimeError(f"no migration to schema version {version} in {MIGRATIONS_DIR}")
    spec = importlib.util.spec_from_file_location(f"qa0_migration_{version:04d}", matches[0])
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.upgrade


def init_db(engine: Engine) -> int:
    """Create the schema on an empty database or upgrade an older one; returns the version."""
    try:
        return _init_db_once(engine)
    except Exception:
        # Two processes starting on a new database race to create it; the loser finds it made.
        time.sleep(0.5)
        return _init_db_once(engine)


def _init_db_once(engine: Engine) -> int:
    with writer(engine).begin() as conn:
        current = schema_version(conn)
        if current is None:
            if inspect(conn).has_table("execution_block"):
                raise RuntimeError("database has qa0 tables but no schema version; refusing to guess")
            SQLModel.metadata.create_all(conn)
            _set_version(conn, models.SCHEMA_VERSION)
            return models.SCHEMA_VERSION
        if current > models.SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema version {current} is newer than this program ({models.SCHEMA_VERSION})"
            )
        for version in range(current + 1, models.SCHEMA_VERSION + 1):
            # Each step runs inside this one transaction: a failed upgrade leaves the old schema intact.
            _load_migration(version)(conn)
            _set_version(conn, version)
        # New tables introduced by later versions are created idempotently.
        SQLModel.metadata.create_all(conn)
        return models.SCHEMA_VERSION


def _set_version(conn: Connection, version: int) -> None:
    updated = conn.execute(update(_META).where(_META.c.key == _VERSION_KEY).values(value=str(version))).rowcount
    if not updated:
        conn.execute(insert(_META).values(key=_VERSION_KEY, value=str(version)))


# --- bulk reads and writes ----------------------------------------------------------------------
#
# The data-access rule (docs/architecture.md): the ORM where speed does not matter, prebuilt Core statements on
# hot paths, and for row counts where SQLAlchemy's per-row work dominates, these two helpers: the only code that
# touches the DB-API cursor, written once for both backends.


def _column_list(conn: Connection, columns: Sequence[str]) -> str:
    # Quote identifiers: "array" is a reserved word in PostgreSQL. Already-quoted names pass through.
    quote = conn.dialect.identifier_preparer.quote
    return ", ".join(c if c.startswith('"') else quote(c) for c in columns)


def bulk_insert(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Insert many rows through the DB-API cursor (an order of magnitude faster than ORM objects).

    PostgreSQL with psycopg 3 gets COPY (~50x faster than executemany for a million rows); SQLite and other
    drivers an executemany. Values go to the driver as they are: datetimes and JSON must already be in the
    column's stored form on SQLite (see the column type's bind processor).
    """
    if not rows:
        return 0
    cols = _column_list(conn, columns)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql" and hasattr(cursor, "copy"):
            with cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(mark for _ in columns)})", rows)
    finally:
        cursor.close()
    return len(rows)


def refresh_statistics(engine: Engine, tables: Sequence[str]) -> None:
    """After a bulk write that queries read at once: the planner's statistics of these tables, now."""
    if engine.dialect.name != "postgresql":
        # SQLite keeps no statistics unless ANALYZE is run, which this app never does: its plans do not go stale.
        return
    # Autovacuum analyses a table only a while after a bulk write (a minute or more). Until then PostgreSQL took
    # a new run's 100,000 scores for one row and looked an EB's score up by scanning them in uncertainty order:
    # `next` p95 16 ms instead of 0.2 ms after every retrain.
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE " + _column_list(conn, tables))


def bulk_insert_packed(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    packed: Sequence[Sequence[Any]],
    *,
    rows_each: int,
    first_plus: int | None = None,
) -> int:
    """Insert rows packed ROWS_EACH to a parameter list (len(columns) * ROWS_EACH flat values per list).

    One multi-row INSERT per list, all lists in one executemany: on SQLite about half the time of one row per
    statement. FIRST_PLUS: the first column is stored as its parameter plus this constant, computed by the
    database (positions in a batch become ids without a Python pass over a million values).
    """
    if not packed or rows_each < 1:
        return 0
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    first = f"({mark} + {int(first_plus)}" if first_plus is not None else f"({mark}"
    one = first + f", {mark}" * (len(columns) - 1) + ")"
    sql = f"INSERT INTO {table} ({_column_list(conn, columns)}) VALUES " + ", ".join([one] * rows_each)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, packed)
    finally:
        cursor.close()
    return len(packed) * rows_each


def sqlite_functions(conn: Connection, functions: dict[str, Callable[[Any], Any]]) -> None:
    """SQLite: register one-argument deterministic SQL functions on this connection (a fallback for builds
    without them)."""
    raw = conn.connection.dbapi_connection
    assert raw is not None  # a checked-out connection
    for name, fn in functions.items():
        raw.create_function(name, 1, fn, deterministic=True)


@contextmanager
def sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite: skip foreign-key checks for a bulk load whose parents were just written (PRAGMA works outside
    BEGIN only, so enter this before the transaction); other backends: nothing."""
    raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
    if raw is None:
        yield
        return
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def bulk_rows(conn: Connection, stmt: ClauseElement, *, batch: int = 50_000) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of a Core SELECT as the driver's plain tuples, BATCH rows at a time.

    SQLAlchemy Row objects cost about twice the fetch at 100k+ rows and pandas probes them attribute by
    attribute; no result processing happens here (times come back as the driver returns them).
    """
    compiled = stmt.compile(dialect=conn.dialect)
    assert isinstance(compiled, SQLCompiler)  # a SELECT compiles to SQL
    params = compiled.params
    args: Any = [params[k] for k in compiled.positiontup or ()] if compiled.positional else params
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, args)
        while rows := cursor.fetchmany(batch):
            yield [tuple(r) for r in rows]
    finally:
        cursor.close()


def backup_sqlite(engine: Engine, out: Path) -> int:
    """Consistent copy of a live SQLite database (online backup API); returns the size in bytes."""
    if not is_sqlite(engine):
        raise ValueError("backup copies SQLite databases; for PostgreSQL use pg_dump")
    source_path = engine.url.database
    if not source_path or source_path == ":memory:":
        raise ValueError("an in-memory database cannot be backed up")
    out = Path(out)
    if out.resolve() == Path(source_path).resolve():
        raise ValueError(f"{out}: the backup must not overwrite the live database")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    # Create the file first: a place that cannot be written fails as an OSError (permission denied, ...)
    # instead of SQLite's bare "unable to open database file".
    tmp.touch()
    src = sqlite3.connect(source_path, timeout=BUSY_TIMEOUT_MS / 1000)
    dst = sqlite3.connect(tmp)
    try:
        # The backup API copies a consistent snapshot even while AoDs keep writing.
        src.backup(dst, pages=4096)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    tmp.replace(out)
    return out.stat().st_size
