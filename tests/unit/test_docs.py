"""The documentation in docs/ covers what the code offers, and nothing in the repository points outside it."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from qa0_label import cli
from qa0_label.ingest import columns

ROOT = Path(__file__).resolve().parents[2]


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """'simulate', 'benchmark scale', ... -> their parsers, read from the CLI's own argparse tree."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                found[full] = sub
                found.update(_commands(sub, full))
    return found


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    """The long options and positional arguments a user can type (help and hidden options left out)."""
    out = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        out += [s for s in action.option_strings if s.startswith("--")] or [action.dest]
    return out


def _sections(doc: str) -> dict[str, str]:
    """Command name -> its section of docs/cli.md (headings '## `name`: ...'); '' -> the text before them."""
    parts = re.split(r"^#{2,3} ", doc, flags=re.M)
    out = {"": parts[0]}
    for part in parts[1:]:
        title = re.match(r"`([^`]+)`", part)
        if title:
            out[title.group(1)] = part
    return out


def test_every_cli_command_and_flag_is_documented() -> None:
    sections = _sections((ROOT / "docs" / "cli.md").read_text())
    parser = cli.build_parser()
    commands = _commands(parser)
    assert {"simulate", "import", "export", "label", "next", "retrain", "benchmark scale"} <= set(commands)
    missing = [name for name in commands if name not in sections]
    assert not missing, f"commands without a section in docs/cli.md: {missing}"
    for name, sub in [("", parser), *commands.items()]:
        undocumented = [flag for flag in _flags(sub) if f"`{flag}" not in sections[name]]
        assert not undocumented, f"`{name}` flags missing from its section of docs/cli.md: {undocumented}"


def test_every_import_column_is_documented() -> None:
    doc = (ROOT / "docs" / "import-format.md").read_text()
    names = {
        *columns.REQUIRED_EB,
        *columns.EB_REQUIRED_TEXTS,
        *columns.EB_TEXTS,
        *columns.EB_NUMBERS,
        *columns.EB_RESERVED,
        columns.STATUS_COLUMN,
        *columns.REQUIRED_DETAIL,
        *columns.DETAIL_NUMBERS,
        *columns.DETAIL_MEASUREMENTS,
        *columns.DETAIL_RESERVED,
    }
    missing = sorted(name for name in names if f"`{name}`" not in doc)
    assert not missing, f"import columns missing from docs/import-format.md: {missing}"


def test_readme_links_the_docs_and_every_link_resolves() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in ("architecture", "import-format", "cli", "domain"):
        assert f"docs/{page}.md" in readme
    for source in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)\)", source.read_text()):
            assert (source.parent / target).exists(), f"{source.name} links to missing {target}"


def test_nothing_in_the_repository_points_outside_it() -> None:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0:
        files = listed.stdout.split()
    else:  # not a git checkout (an unpacked archive): every file but the virtualenv's
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts]
    outside = re.compile(r"\.\./shared|/wor[k]/")  # [k]: this line must not match itself
    hits = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".py", ".md", ".txt", ".toml", ".ini", ".cfg", ".sh", ""} and path.is_file():
            text = path.read_text(errors="replace")
            hits += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if outside.search(line)]
    assert not hits, f"paths outside the repository: {hits}"
