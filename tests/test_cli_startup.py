"""CLI start-up: commands are imported when they run, and `--help` stays light."""

from __future__ import annotations

import subprocess
import sys

import click

from ridgeline.cli import COMMANDS, main
from ridgeline.cli.lazy import LazyGroup
from ridgeline.cli.lists import LAZY_COMMANDS, lists


def test_lazy_help_lines_are_the_commands_own() -> None:
    """The help table written beside each lazy command says what the command says."""
    ctx = click.Context(main)
    for group, table in ((main, COMMANDS), (lists, LAZY_COMMANDS)):
        assert isinstance(group, LazyGroup)
        for name, (_, _, text) in table.items():
            command = group.get_command(ctx, name)
            assert command is not None, name
            assert command.get_short_help_str(limit=1000) == text, name


def test_help_imports_no_heavy_module() -> None:
    """`ridgeline --help` and `ridgeline lists --help` load neither SQLAlchemy, NumPy,
    Pillow nor FastAPI (they cost most of a second before anything happened)."""
    code = (
        "import sys\n"
        "from ridgeline.cli import main\n"
        "for argv in (['--help'], ['lists', '--help']):\n"
        "    try:\n"
        "        main(argv, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('sqlalchemy', 'numpy', 'PIL', 'fastapi', 'rich')"
        " if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert "audit" in out.stdout and "Commands:" in out.stdout
    assert lines[-1] == "HEAVY=sqlalchemy", lines[-1]  # lists --help: its own module only
    first = subprocess.run(
        [sys.executable, "-c", code.replace("['lists', '--help']", "['--help']")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert first.stdout.strip().splitlines()[-1] == "HEAVY=", first.stdout
