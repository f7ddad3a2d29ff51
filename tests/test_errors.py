"""Errors carry their status: every code is documented with its HTTP and exit status,
and the same bad value gives the same exit status on every command that takes it."""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import ridgeline
from ridgeline import errors
from ridgeline.cli import main
from ridgeline.errors import RidgelineError

DOC = Path(__file__).resolve().parents[1] / "docs" / "service.md"


def _all_error_classes() -> list[type[RidgelineError]]:
    """Every RidgelineError subclass in the package (each module imported first)."""
    for module in pkgutil.walk_packages(ridgeline.__path__, "ridgeline."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)

    def walk(cls: type[RidgelineError]) -> Iterator[type[RidgelineError]]:
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    return list(dict.fromkeys(walk(RidgelineError)))


def _documented() -> dict[str, tuple[int, int]]:
    """code -> (HTTP status, exit status) from the error table in docs/service.md."""
    text = DOC.read_text()
    section = text[text.index("## Errors") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| (\d) \|", section, re.M)
    assert rows, "no error table in docs/service.md"
    table: dict[str, tuple[int, int]] = {}
    for code, http, exit_status in rows:
        assert code not in table, f"{code} documented twice"
        table[code] = (int(http), int(exit_status))
    return table


def test_every_error_code_is_documented_with_its_statuses() -> None:
    classes = _all_error_classes()
    documented = _documented()
    raised: dict[str, tuple[int, int]] = {}
    for cls in classes:
        statuses = (cls.http_status, cls.exit_status)
        assert raised.setdefault(cls.code, statuses) == statuses, (
            f"code {cls.code!r} has two statuses ({cls.__name__})"
        )
        assert cls.code in documented, f"{cls.__name__}.code {cls.code!r} not in docs/service.md"
        assert documented[cls.code] == statuses, (
            f"{cls.code}: docs say HTTP/exit {documented[cls.code]}, {cls.__name__} {statuses}"
        )
    assert set(documented) == set(raised), (
        f"documented but never raised: {set(documented) - set(raised)}"
    )
    # bad input is a 4xx that exits 2; nothing else exits 2
    for cls in classes:
        if issubclass(cls, errors.BadInput):
            assert 400 <= cls.http_status < 500 and cls.exit_status == 2, cls


def test_errors_state_their_statuses_as_class_attributes() -> None:
    """Each subclass names its own code and gets its statuses from itself or a parent
    that is not the catch-all base (whose 500 means "nobody classified this")."""
    for cls in _all_error_classes():
        if cls is RidgelineError:
            continue
        assert "code" in vars(cls), f"{cls.__name__} has no code of its own"
        for attribute in ("http_status", "exit_status"):
            owner = next(base for base in cls.__mro__ if attribute in vars(base))
            assert owner is not RidgelineError or attribute == "exit_status", (
                f"{cls.__name__}.{attribute} falls back to the base class"
            )


# --- same bad value, same exit status on every command ---------------------------------

MD5 = hashlib.md5(b"benign error test item").hexdigest()


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real SQLite file with list `a` holding one entry, and a small file to import."""
    root = tmp_path_factory.mktemp("errors")
    db = str(root / "r.db")
    runner = CliRunner()
    made = runner.invoke(main, ["lists", "create", "a"], env={"RIDGELINE_DB": db})
    assert made.exit_code == 0, made.output
    added = runner.invoke(
        main, ["lists", "entries", "add", "a", f"md5:{MD5}"], env={"RIDGELINE_DB": db}
    )
    assert added.exit_code == 0, added.output
    data = root / "hashes.csv"
    data.write_text(f"md5\n{MD5}\n")
    (root / "plain.csv").write_text(f"hash\n{MD5}\n")  # needs --signal
    yield db, root


#: A bad value, its expected exit status, and the commands that take it.
CASES: dict[str, tuple[int, list[list[str]]]] = {
    "negative quorum": (
        2,
        [
            ["lists", "create", "b", "--review-quorum", "-1"],
            ["lists", "update", "a", "--review-quorum", "-1"],
        ],
    ),
    "negative threshold": (
        2,
        [
            ["lists", "create", "b", "--threshold=-1"],
            ["lists", "create", "b", "--threshold=md5=-1"],
            ["lists", "update", "a", "--threshold=-1"],
            ["lists", "update", "a", "--threshold=pdq=-3"],
        ],
    ),
    "non-numeric threshold": (
        2,
        [
            ["lists", "create", "b", "--threshold", "pdq=x"],
            ["lists", "update", "a", "--threshold", "pdq=x"],
        ],
    ),
    "unknown signal": (
        2,
        [
            ["lists", "create", "b", "--signals", "nope"],
            ["lists", "create", "b", "--threshold", "nope=3"],
            ["lists", "update", "a", "--threshold", "nope=3"],
            ["lists", "import", "a", "{root}/plain.csv", "--signal", "nope"],
            ["match", "--signal", "nope", MD5],
            ["hash", "--signals", "nope", "{root}/hashes.csv"],
            ["scan", "--signals", "nope", "{root}"],
        ],
    ),
    "bad purpose": (
        2,
        [["lists", "create", "b", "--purpose", "nope"]],
    ),
    "unknown list": (
        1,
        [
            ["lists", "show", "nope"],
            ["lists", "update", "nope", "--enable"],
            ["lists", "history", "nope"],
            ["lists", "entries", "add", "nope", f"md5:{MD5}"],
            ["lists", "entries", "ls", "nope"],
            ["lists", "import", "nope", "{root}/hashes.csv"],
            ["lists", "export", "nope", "--format", "jsonl", "--out", "{root}/out.jsonl"],
            ["lists", "actions", "nope"],
            ["lists", "feedback-show", "nope"],
            ["match", "--list", "nope", "--signal", "md5", MD5],
            ["scan", "--list", "nope", "{root}/hashes.csv"],
            ["audit", "create", "nope"],
        ],
    ),
    "unknown entry": (
        1,
        [
            ["lists", "entries", "show", "999999"],
            ["lists", "entries", "disable", "999999"],
            ["lists", "entries", "enable", "999999"],
            ["lists", "entries", "delete", "999999"],
            ["lists", "entries", "history", "999999"],
            ["lists", "entries", "retire", "999999"],
            ["lists", "feedback", "999999", "--affirmative", "--provider", "p"],
        ],
    ),
    "bad hash": (
        2,
        [
            ["lists", "entries", "add", "a", "md5:zz-not-a-hash"],
            ["match", "--signal", "md5", "zz-not-a-hash"],
        ],
    ),
    "bad classification": (
        2,
        [
            ["lists", "entries", "add", "a", f"md5:{MD5}", "--classification", "industry:Z9"],
            ["lists", "entries", "add", "a", f"md5:{MD5}", "--classification", "nolabel"],
            ["lists", "entries", "ls", "a", "--classification", "industry:Z9"],
        ],
    ),
    "bad time": (
        2,
        [
            ["lists", "entries", "disable", "1", "--until", "garbage"],
            [
                "lists",
                "import",
                "a",
                "{root}/hashes.csv",
                "--format",
                "ncmec-xml",
                "--since",
                "garbage",
            ],
            ["lists", "feedback-export", "{root}/feedback.jsonl", "--since", "garbage"],
        ],
    ),
    "confidence out of range": (
        2,
        [
            ["audit", "create", "a", "--confidence", "2"],
            ["audit", "create", "a", "--mode", "full", "--confidence", "0"],
        ],
    ),
    "bad entry status": (
        2,
        [["lists", "entries", "ls", "a", "--status", "nope"]],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_bad_value_same_exit_status_everywhere(case: str, cli_db: tuple[str, Path]) -> None:
    db, root = cli_db
    expected, commands = CASES[case]
    runner = CliRunner()
    seen: dict[str, int] = {}
    for argv in commands:
        args = [a.replace("{root}", str(root)) for a in argv]
        result = runner.invoke(main, args, env={"RIDGELINE_DB": db})
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            " ".join(argv),
            result.output,
            result.exception,
        )
        seen[" ".join(argv)] = result.exit_code
        assert "Traceback" not in result.output
        assert "No such option" not in result.output and "Missing" not in result.output
        assert "Error" in result.output or "error" in result.output, (argv, result.output)
    assert set(seen.values()) == {expected}, seen


def test_create_and_update_refuse_a_negative_quorum_alike(cli_db: tuple[str, Path]) -> None:
    """One rule, one message: the library checks the quorum for both commands."""
    db, _ = cli_db
    runner = CliRunner()
    env = {"RIDGELINE_DB": db}
    create = runner.invoke(main, ["lists", "create", "b", "--review-quorum", "-1"], env=env)
    update = runner.invoke(main, ["lists", "update", "a", "--review-quorum", "-1"], env=env)
    assert create.exit_code == update.exit_code == 2
    assert create.output == update.output == "Error: review quorum cannot be negative\n"
