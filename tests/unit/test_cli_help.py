"""Every command has help, and help never needs torch or a cluster."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from authml.cli import cli


def _all_commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{name} is listed but cannot be loaded"
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _all_commands(
                command, click.Context(command, parent=ctx, info_name=name), (*prefix, name)
            )


def test_every_command_has_help_text():
    ctx = click.Context(cli, info_name="authml")
    commands = list(_all_commands(cli, ctx))
    assert commands, "no subcommands found"
    runner = CliRunner()
    for path, command in commands:
        assert command.help, f"authml {' '.join(path)} has no help text"
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output


def test_help_and_version_work_without_torch():
    # A meta-path hook makes `import torch` fail, as on a machine without the train extra.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'): raise ImportError('torch blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from authml.cli import cli, main\n"
        "import click\n"
        "ctx = click.Context(cli, info_name='authml')\n"
        "for name in cli.list_commands(ctx):\n"
        "    try: main([name, '--help'])\n"
        "    except SystemExit as e: assert not e.code, name\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert "authml" in result.output


def test_a_query_stopped_by_ctrl_c_ends_the_command_as_interrupted(monkeypatch, capsys):
    """DuckDB reports Ctrl-C during a statement as RuntimeError "Query interrupted": where no code
    expects it (a setting between two batches), the command still ends as interrupted (exit 130,
    one line, no traceback); any other RuntimeError stays an error."""
    import authml.cli as entry

    def stopped(**kwargs):
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(entry.cli, "main", stopped)
    with pytest.raises(SystemExit) as exit_info:
        entry.main(["ingest", "x"])
    assert exit_info.value.code == 130
    assert "interrupted" in capsys.readouterr().err

    def broken(**kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(entry.cli, "main", broken)
    with pytest.raises(RuntimeError, match="something else"):
        entry.main(["ingest", "x"])
