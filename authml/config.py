"""Where settings come from.

Precedence, highest first: a command-line flag, then an ``AUTHML_*`` environment variable, then the
config file, then the built-in default. Click implements the first, second and last through
``auto_envvar_prefix``; this module supplies the config file as Click's ``default_map``.

The config file is TOML: ``--config PATH``, else ``$AUTHML_CONFIG``, else ``authml.toml`` in the
current directory, else ``~/.config/authml/config.toml``. Top-level keys are the global options
(``project_dir = "..."``); a table per command holds that command's options::

    project_dir = "/var/lib/authml"
    [ingest]
    strict = true
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from authml.errors import InputError

ENV_PREFIX = "AUTHML"
DEFAULT_PROJECT_DIR = Path(".authml")
CONFIG_FILE_NAMES = (Path("authml.toml"), Path.home() / ".config" / "authml" / "config.toml")


def find_config_file(explicit: str | os.PathLike | None = None) -> Path | None:
    """The config file to read, or None. An explicitly named file must exist."""
    named = explicit or os.environ.get(f"{ENV_PREFIX}_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise InputError(f"config file {path} does not exist")
        return path
    for candidate in CONFIG_FILE_NAMES:
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | None) -> dict[str, Any]:
    """The config file as a Click default_map (option names with dashes turned to underscores)."""
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}") from exc
    return _underscored(data)


def _underscored(data: dict[str, Any]) -> dict[str, Any]:
    return {
        key.replace("-", "_"): _underscored(value) if isinstance(value, dict) else value
        for key, value in data.items()
    }
