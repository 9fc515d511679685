"""The package's shape: no import cycles between modules (lazy imports inside functions count), modules small."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "qa0_label"
MAX_LINES = 850  # "modules small enough to read (< ~800 lines)"
# Modules allowed over the limit while their own issues rework them; remove a name when its split lands.
OVER_LIMIT: set[str] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Modules of qa0_label that PATH imports anywhere (top level or inside functions)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != here and not (path.name == "__init__.py" and name.startswith(here + ".")):
                found.add(name)
    return found


def test_no_import_cycles() -> None:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: _imports(p, set(files)) for m, p in files.items()}
    # A package's __init__ re-exporting its own modules is not a cycle; importing a package means its __init__.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    too_big = {name: n for name, n in sizes.items() if n > MAX_LINES and name not in OVER_LIMIT}
    assert not too_big, f"split these modules (over {MAX_LINES} lines): {too_big}"


# --- one data-access rule: Core or ORM; SQL as text only where Core cannot say it -------------------------

RAW_SQL = {"text", "literal_column", "DDL", "exec_driver_sql"}
"""SQLAlchemy's ways to run SQL written as a string."""
RAW_SQL_ALLOWED = {
    "qa0_label.queue.assign": "PostgreSQL advisory lock and lease insert in one CTE round trip",
    "qa0_label.store.db": "SQLite's BEGIN / BEGIN IMMEDIATE, which the driver must see verbatim",
    "qa0_label.store.models": "CREATE TRIGGER for the detail-feature cache (Core has no trigger construct)",
    "qa0_label.bench.scale": "EXPLAIN of the timed statement (Core has no EXPLAIN construct)",
}
"""Modules allowed raw SQL, with why; docs/architecture.md's data-access section lists the same."""
PENDING: set[str] = set()  # modules listed above while they are being moved to Core


def _raw_sql_uses(path: Path) -> list[str]:
    """'line: name' for each import or call of a RAW_SQL name from SQLAlchemy in PATH."""
    tree = ast.parse(path.read_text())
    sa_modules = {"sqlalchemy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            sa_modules |= {a.asname or a.name for a in node.names if a.name.startswith("sqlalchemy")}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            uses += [f"{node.lineno}: {a.name}" for a in node.names if a.name in RAW_SQL]
        elif isinstance(node, ast.Attribute) and node.attr in RAW_SQL:
            on_sqlalchemy = isinstance(node.value, ast.Name) and node.value.id in sa_modules
            if on_sqlalchemy or node.attr == "exec_driver_sql":
                uses.append(f"{node.lineno}: {node.attr}")
    return uses


def _raw_sql_modules() -> dict[str, list[str]]:
    found = {_module_name(p): _raw_sql_uses(p) for p in PACKAGE.rglob("*.py")}
    return {m: uses for m, uses in found.items() if uses}


def test_raw_sql_only_where_core_cannot_say_it() -> None:
    others = {m: uses for m, uses in _raw_sql_modules().items() if m not in RAW_SQL_ALLOWED}
    assert not others, f"write these as Core statements or ORM (docs/architecture.md, Data access): {others}"


def test_raw_sql_allow_list_is_not_stale() -> None:
    stale = set(RAW_SQL_ALLOWED) - set(_raw_sql_modules()) - PENDING
    assert not stale, f"no raw SQL left in {sorted(stale)}: remove them from RAW_SQL_ALLOWED and the docs"


def test_the_raw_sql_check_sees_each_spelling(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import sqlalchemy as sa\nfrom sqlalchemy import text, select\n"
        "sa.literal_column('x')\nconn.exec_driver_sql('BEGIN')\nsa.select(1)\nmy.text('not sql')\n"
    )
    assert _raw_sql_uses(sample) == ["2: text", "3: literal_column", "4: exec_driver_sql"]


def test_only_store_db_touches_the_dbapi_connection() -> None:
    # One bulk-write path for both backends (issue 17): the driver's own connection and cursor stay in store.db.
    users = sorted(
        _module_name(p)
        for p in PACKAGE.rglob("*.py")
        if "dbapi_connection" in p.read_text() or ".cursor()" in p.read_text()
    )
    assert users == ["qa0_label.store.db"], users
