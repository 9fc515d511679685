"""The CLI's checks and messages: --db opening, argument types, file errors, progress lines.

Everything here turns a problem into one line naming the argument or file (docs/cli.md): UserError for bad
input (exit 2), Failure for anything else (exit 1). No heavy imports: `label` must start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class UserError(Exception):
    """A problem with what the user asked for; printed without a traceback, exit code 2."""


class Failure(Exception):
    """A failure that is not the user's input (a full disk, a server that does not answer): exit 1, no traceback."""


DB_URL_FORMS = "sqlite:///path or postgresql+psycopg://user:password@host:5432/db"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def _db_named(args: argparse.Namespace, url: str) -> str:
    """How a message names the database: the flag or variable it came from, password hidden."""
    import os

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        shown = url
    if args.db:
        return f"--db {shown}"
    return f"$QA0_DATABASE_URL {shown}" if os.environ.get("QA0_DATABASE_URL") else shown


def open_engine(args: argparse.Namespace, *, must_exist: bool = False) -> Any:
    """The engine for --db, or UserError naming --db when it is not a database this tool can open.

    MUST_EXIST (every command but those that add data) refuses a SQLite file that is not there: creating folders
    and an empty database would turn a typo into "nothing left to review".
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError

    from qa0_label.config import database_url
    from qa0_label.store.db import get_engine

    raw = database_url(args.db)
    named = _db_named(args, raw)
    try:
        url = make_url(raw)
    except ArgumentError:
        raise UserError(f"{named}: not a database URL ({DB_URL_FORMS})") from None
    if url.get_backend_name() not in SUPPORTED_BACKENDS:
        raise UserError(f"{named}: not a SQLite or PostgreSQL URL ({DB_URL_FORMS})")
    sqlite_file = None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        sqlite_file = Path(str(url.database))
        if sqlite_file.is_dir():
            raise UserError(f"{named}: {sqlite_file} is a directory, not a database file")
        if must_exist and not sqlite_file.exists():
            raise UserError(f"no database at {sqlite_file}; create one with simulate or import")
    try:
        return get_engine(raw)
    except NoSuchModuleError:
        raise UserError(f"{named}: unknown database driver {url.drivername!r} ({DB_URL_FORMS})") from None
    except ImportError as exc:  # a known dialect whose driver package is not installed (postgresql+psycopg2)
        raise UserError(
            f"{named}: the driver {exc.name or url.drivername!r} is not installed ({DB_URL_FORMS})"
        ) from None
    except OSError as exc:  # the folders of a new SQLite file cannot be made (read-only place, a file in the path)
        raise UserError(f"{named}: {_os_reason(exc, writing=True)}") from None
    except DatabaseError as exc:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        if sqlite_file is not None and ("not a database" in reason or "unable to open" in reason):
            # The file named by --db is something else, or its folder cannot hold a database: the user's input.
            raise UserError(f"{named}: cannot open it as a SQLite database ({reason})") from None
        raise Failure(f"{named}: {reason}") from None


_progress_line_open = False
"""Whether a progress line redrawn in place (no newline yet) is on stderr."""


def progress_line(text: str) -> None:
    global _progress_line_open
    print(f"\r{text}", end="", file=sys.stderr, flush=True)
    _progress_line_open = True


def end_progress_line() -> None:
    """End an open progress line, so that the next message (an error, "interrupted") starts a line of its own."""
    global _progress_line_open
    if _progress_line_open:
        _progress_line_open = False
        print(file=sys.stderr, flush=True)


# --- argument types: checked by argparse, so a bad value exits 2 naming its flag before any work ------------


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least MINIMUM."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


positive_int = _whole_number(1)
non_negative_int = _whole_number(0)


def non_negative_float(raw: str) -> float:
    """An argparse type: a finite number >= 0."""
    import math

    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {raw}")
    return value


def non_empty(raw: str) -> str:
    """An argparse type: a value that must not be empty (an empty --db would silently mean the default)."""
    if not raw.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return raw


def input_path(raw: str) -> Path:
    """An argparse type: a file to read; an empty path is refused rather than read as "no file"."""
    if not raw.strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(raw)


def output_path(raw: str) -> Path:
    """An argparse type: a file to write (its folders may be missing); refused before any work when it cannot be."""
    if not raw.strip():
        raise argparse.ArgumentTypeError("empty path")
    path = Path(raw)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{raw}: is a directory; give a file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{raw}: {folder} is a file, not a folder")
    return path


def _os_reason(exc: OSError, *, writing: bool = False) -> str:
    """What went wrong with a file, in words (the OSError's own text names our hidden temp file, not the user's)."""
    words = {
        # Writing, the folders were made first: a missing entry means the place does not take files (/proc).
        errno.ENOENT: "cannot create a file there" if writing else "no such file",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EISDIR: "is a directory",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.EEXIST: "a part of the path is a file, not a folder",  # mkdir(exist_ok=True) met a file
        errno.EROFS: "read-only file system",
    }
    return words.get(exc.errno or 0, (exc.strerror or type(exc).__name__).lower())


_NOT_THE_USERS_FAULT = {errno.ENOSPC, errno.EIO, errno.EDQUOT}  # the disk, not the path the user gave


@contextlib.contextmanager
def writing(flag: str, out: Path) -> Iterator[None]:
    """Report a failed write as FLAG OUT and what is wrong: exit 2 for a path that cannot be written, 1 for a full disk."""
    try:
        yield
    except OSError as exc:
        message = f"{flag} {out}: {_os_reason(exc, writing=True)}"
        if exc.errno in _NOT_THE_USERS_FAULT:
            raise Failure(message) from None
        raise UserError(message) from None


@contextlib.contextmanager
def reading(flag: str, path: Path) -> Iterator[None]:
    """Report a file that cannot be read (missing, a directory, unreadable) as FLAG PATH and why: exit 2."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"{flag} {path}: {_os_reason(exc)}") from None


def say(message: str) -> None:
    """A message on stderr, on a line of its own even after a progress line; a closed stderr is not an error."""
    try:
        end_progress_line()
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass


def silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (tests capture stdout in memory)
        pass


def check_utf8_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse an argument holding bytes that are not UTF-8 (a Latin-1 terminal, a pasted binary), naming it.

    Python keeps such bytes as lone surrogates, which no database, file or terminal write accepts: without this
    check they fail later as a UnicodeEncodeError, sometimes after a write.
    """
    for dest, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            text = str(item) if isinstance(item, (str, Path)) else ""
            bad = next((i for i, ch in enumerate(text) if "\udc80" <= ch <= "\udcff"), None)
            if bad is not None:
                byte = ord(text[bad]) - 0xDC00
                raise UserError(
                    f"{_argument_name(parser, dest)}: not UTF-8 text (byte 0x{byte:02x} at position {bad + 1})"
                )


def _argument_name(parser: argparse.ArgumentParser, dest: str) -> str:
    """How the user typed the argument stored in DEST: its long option, else the positional's name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                name = _argument_name(sub, dest)
                if name != dest:
                    return name
        elif action.dest == dest and action.option_strings:
            return action.option_strings[-1]
    return dest
