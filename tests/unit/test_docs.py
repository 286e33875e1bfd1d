"""Every command is documented: its full name appears in README.md or docs/*.md."""

from __future__ import annotations

from pathlib import Path

import click

from authml.cli import cli
from tests.unit.test_cli_help import _all_commands

REPO = Path(__file__).resolve().parents[2]


def documentation() -> str:
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def test_every_command_is_documented():
    text = documentation()
    ctx = click.Context(cli, info_name="authml")
    missing = [
        "authml " + " ".join(path)
        for path, command in _all_commands(cli, ctx)
        if not isinstance(command, click.Group) and f"authml {' '.join(path)}" not in text
    ]
    assert not missing, f"commands missing from README.md and docs/: {missing}"


def test_readme_links_point_at_existing_files():
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)\)", readme)
    broken = [t for t in targets if not t.startswith("http") and not (REPO / t).exists()]
    assert not broken, broken
