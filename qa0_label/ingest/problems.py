"""Why a file is refused: Problem (file, line or row, column, message) and ImportRefused."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qa0_label.ingest.columns import MAX_LISTED_PROBLEMS


@dataclass(frozen=True)
class Problem:
    """One reason a file is refused: where (file, CSV line or Parquet row, column) and what."""

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"{_row_word(self.file)} {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return ": ".join([self.file, *([", ".join(where)] if where else []), self.message])


class ImportRefused(Exception):
    """The input cannot be imported; nothing was written. `.problems` lists the reasons in file order.

    `.omitted` counts further problems of a very bad file that were counted but not kept.
    """

    def __init__(self, problems: Iterable[Problem], *, omitted: int = 0) -> None:
        self.problems: list[Problem] = list(problems)
        self.omitted = int(omitted)
        super().__init__(self.problems)

    def __str__(self) -> str:
        lines = [str(p) for p in self.problems[:MAX_LISTED_PROBLEMS]]
        extra = len(self.problems) + self.omitted - MAX_LISTED_PROBLEMS
        if extra > 0:
            lines.append(f"... and {extra} more problem{'s' if extra != 1 else ''}")
        return "\n".join(lines)


class ImportInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, which the CLI turns into Ctrl-C) stopped an import; `.committed` says whether it was written.

    A KeyboardInterrupt, so callers that only know Ctrl-C still stop. Before the commit the write transaction
    rolls back and the database is as it was; after it (the spool was being removed) the import is complete.
    """

    def __init__(self, *, committed: bool) -> None:
        self.committed = committed
        super().__init__("import interrupted after it was written" if committed else "import interrupted")


def upload_problem(*, name: str, size: int | None, limit_mb: float) -> Problem | None:
    """The problem with an upload of SIZE bytes over LIMIT_MB (MiB), or None when it fits."""
    limit = int(limit_mb * 1024 * 1024)
    if size is None or size <= limit:
        return None
    return Problem(
        name,
        None,
        None,
        f"the file is {size / 1024 / 1024:,.1f} MB; uploads are limited to {limit_mb:g} MB (import larger files "
        "with the command line: python -m qa0_label import PATH)",
    )


def _row_word(name: str) -> str:
    return "row" if name.lower().endswith(".parquet") else "line"


def _refuse(name: str, message: str, *, row: int | None = None, column: str | None = None) -> ImportRefused:
    return ImportRefused([Problem(name, row, column, message)])
