"""CLI start-up: commands are imported when they run, and `--help` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from ridgeline.cli import COMMANDS, main
from ridgeline.cli.lazy import LazyGroup
from ridgeline.cli.lists import LAZY_COMMANDS, lists
from ridgeline.store import Store


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
    assert lines[-1] == "HEAVY=", lines[-1]
    first = subprocess.run(
        [sys.executable, "-c", code.replace("['lists', '--help']", "['--help']")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert first.stdout.strip().splitlines()[-1] == "HEAVY=", first.stdout


def test_literals_match_the_library() -> None:
    from ridgeline import lists as L
    from ridgeline.cli import lists as cli_lists

    assert cli_lists.DEFAULT_REVIEW_QUORUM == L.DEFAULT_REVIEW_QUORUM
    assert cli_lists.ENTRY_STATUSES == L.ENTRY_STATUSES


def test_lists_ls_reads_sqlite_without_sqlalchemy_and_says_the_same(tmp_path: Path) -> None:
    """The fast read answers exactly what the Store path answers, importing no SQLAlchemy."""
    import json

    from ridgeline import fastread
    from ridgeline import lists as L
    from ridgeline.store import Store

    db = tmp_path / "ls.db"
    store = Store.open(db)
    with store.session() as s:
        a = L.create_list(s, "alpha", owner="T&S", description="d", thresholds={"pdq": 20},
                          signals=["pdq", "md5"], review_quorum=2)  # fmt: skip
        L.create_list(s, "beta", purpose="allow")
        for i in range(3):
            L.add_entry(s, a, {"md5": f"{i:032x}"})
        expected = [
            L.list_to_json(hl, entry_count=n)
            for hl, n in ((L.get_list(s, "alpha"), 3), (L.get_list(s, "beta"), 0))
        ]
    store.close()
    assert fastread.list_summaries(db) == expected
    code = (
        "import sys, json\n"
        "from ridgeline.cli import main\n"
        f"main(['lists', 'ls', '--db', {str(db)!r}, '--format', 'json'], standalone_mode=False)\n"
        "print('HEAVY=' + ','.join(m for m in ('sqlalchemy', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    body, _, heavy = out.stdout.rpartition("HEAVY=")
    assert heavy.strip() == ""
    assert json.loads(body) == expected
    assert fastread.list_summaries(tmp_path / "missing.db") is None  # the Store path decides


def test_every_lists_command_runs_in_a_fresh_process(store: Store, tmp_path: Path) -> None:
    """Each `lists` command in its own interpreter, as a user runs it (the lazy import of
    `ridgeline.lists` once loaded `lists.models` twice: `lists show` died on SQLAlchemy's
    "Table 'lists' is already defined", and so did `lists ls` off the SQLite fast path)."""
    import json

    from ridgeline import lists as L

    with store.session() as s:
        L.add_entry(s, L.create_list(s, "known"), {"md5": "0" * 32})
    store.close()
    db = store.url
    runs = [
        ["lists", "ls"],
        ["lists", "show", "known"],
        ["lists", "update", "known", "--threshold", "20"],
        ["lists", "entries", "ls", "known"],
        ["lists", "entries", "add", "known", "md5:" + "1" * 32],
        ["lists", "entries", "show", "1"],
        ["lists", "history", "known"],
    ]
    for args in runs:
        done = subprocess.run(
            [sys.executable, "-c", "from ridgeline.cli import main; main()",
             *args, "--db", db, "--format", "json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, (args, done.stderr[-2000:])
        assert "Traceback" not in done.stderr and "SAWarning" not in done.stderr, args
        json.loads(done.stdout)
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    done = subprocess.run(
        [sys.executable, "-c", "from ridgeline.cli import main; main()",
         "lists", "ls", "--db", str(missing)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"no Ridgeline database at {missing}" in done.stderr
    assert not (tmp_path / "nonexistent").exists()


def _commands(
    group: click.Group, ctx: click.Context, prefix: str = ""
) -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, click.Context(command, parent=ctx), f"{prefix}{name} ")
    return found


def test_counts_and_sizes_refuse_zero_and_negatives() -> None:
    """A count, a size or a page option that takes any whole number accepted `-j 0` and
    `--limit -1` (a negative LIMIT returns everything in SQLite). Every plain-int option
    must be one whose whole range means something (ids, seeds, thresholds checked by the
    library, which say what is wrong themselves)."""
    checked_by_library = {
        "--seed", "--auditors-per-item", "--review-quorum", "--daily-cap",
        "--break-after-minutes", "--break-minutes",
    }  # fmt: skip
    plain: list[str] = []
    for path, command in _commands(main, click.Context(main)):
        for param in command.params:
            if isinstance(param, click.Option) and param.type is click.INT:
                name = max(param.opts, key=len)
                if name not in checked_by_library:
                    plain.append(f"{path} {name}")
    assert plain == []
    runner = CliRunner()
    for argv in (["hash", "-j", "0", "x"], ["log", "show", "--limit", "-1"],
                 ["lists", "history", "x", "--limit", "0"]):  # fmt: skip
        result = runner.invoke(main, argv)
        assert result.exit_code == 2 and "is not in the range" in result.output, argv


def test_seconds_rates_and_shares_refuse_what_means_nothing() -> None:
    """`serve --timeout -1` or `audit create --margin 2` started and failed later (or
    never timed out). Every float option has a range: seconds and rates above 0 (or 0
    where 0 means off), shares between 0 and 1."""
    plain = [
        f"{path} {max(param.opts, key=len)}"
        for path, command in _commands(main, click.Context(main))
        for param in command.params
        if isinstance(param, click.Option) and param.type is click.FLOAT
    ]
    assert plain == []
    runner = CliRunner()
    for argv in (["serve", "--timeout", "-1"], ["serve", "--rate-limit", "0"],
                 ["audit", "create", "x", "--margin", "2"],
                 ["webhooks", "deliver", "--base-delay", "-5"]):  # fmt: skip
        result = runner.invoke(main, argv)
        assert result.exit_code == 2 and "is not in the range" in result.output, argv
