"""The ``authml`` command. Subcommands live one noun per module and are imported only when used,
so ``authml --help`` stays fast and never imports torch or opens a connection."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import NoReturn

import click

from authml import __version__
from authml.config import ENV_PREFIX, find_config_file, load_config
from authml.errors import AuthmlError, interrupted_query


def _command_modules() -> list[str]:
    """Each module ``authml/cli/<noun>.py`` (not starting with ``_``) defines the command ``<noun>``."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that command (or the command list) is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name.replace("_", "-") for name in _command_modules()]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = cmd_name.replace("-", "_")
        if module_name not in _command_modules():
            return None
        return getattr(importlib.import_module(f"{__name__}.{module_name}"), module_name)


@click.group(
    cls=LazyGroup, context_settings={"auto_envvar_prefix": ENV_PREFIX, "help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="authml")
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".authml"),
    show_default=True,
    show_envvar=True,
    help="Directory holding the embedded store, dead letters, models and reports.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML config file (default: $AUTHML_CONFIG, ./authml.toml, ~/.config/authml/config.toml).",
)
@click.pass_context
def cli(ctx: click.Context, project_dir: Path, config_path: Path | None) -> None:
    """Find Windows accounts that authenticate in ways they never have.

    Settings come from, highest first: a flag, an AUTHML_* environment variable
    (AUTHML_PROJECT_DIR, AUTHML_INGEST_STRICT, ...), the config file, the default.
    """
    config = load_config(find_config_file(config_path))
    # Click fills options from default_map only where neither a flag nor an env var was given.
    ctx.default_map = config
    source = ctx.get_parameter_source("project_dir")
    if source == click.core.ParameterSource.DEFAULT and "project_dir" in config:
        project_dir = Path(config["project_dir"])
    ctx.obj = {"project_dir": project_dir, "config": config}


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and an exit code, never a traceback."""
    try:
        cli.main(args=argv, prog_name="authml", standalone_mode=False)
    except click.exceptions.Abort:
        _exit_interrupted()
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AuthmlError as exc:
        click.echo(f"authml: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _exit_interrupted()
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:
        # Ctrl-C while DuckDB ran a statement outside the places that expect one (a setting, a
        # commit that completed before DuckDB noticed): an interruption all the same
        if not interrupted_query(exc):
            raise
        _exit_interrupted()


def _exit_interrupted() -> NoReturn:
    click.echo(
        "authml: interrupted; the store holds everything committed so far, run again to resume", err=True
    )
    sys.exit(130)
