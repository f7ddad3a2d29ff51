"""The docs are tested: README.md and docs/*.md must keep telling the truth about the CLI.

Three kinds of check, in the spirit of datasette's and sqlite-utils' documentation tests:

1. every `ridgeline ...` command in a shell code block (and in inline code) names a real
   command and only options that command has, checked with click's own parser;
2. the README's "Quick tour" hashing-and-matching block and clearinghouse block run end
   to end against a real SQLite file, on benign images made here;
3. the README links every docs page, and every page it links exists;
4. every ```python block in README.md and docs/*.md runs as written, each in a fresh
   interpreter in an empty folder (a block marked ```python no-run, or preceded by
   `<!-- not run: reason -->`, is skipped).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image, ImageDraw, ImageOps

from ridgeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"sh", "bash", "shell", "console", "shell-session"}
SEPARATORS = {";", "&&", "||", "|", "&"}
REDIRECTS = {">", ">>", "<", "2>", "&>"}
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*|<[^>]*>|\.\.\.)$")
ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
INLINE_CODE = re.compile(r"`(ridgeline [^`]*)`")


@dataclass(frozen=True)
class DocCommand:
    """One `ridgeline` invocation found in a doc: where it is, and its arguments."""

    path: Path
    lineno: int
    text: str
    args: tuple[str, ...]
    inline: bool = False

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.lineno}: {self.text.strip()}"


def fenced_blocks(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(language, line number of the first body line, body lines) of each fenced block."""
    lang: str | None = None
    start = 0
    body: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if lang is None:
                lang, start, body = stripped[3:].strip().lower(), lineno + 1, []
            else:
                yield lang, start, body
                lang = None
        elif lang is not None:
            body.append(line)


def logical_lines(start: int, body: list[str], console: bool) -> Iterator[tuple[int, str]]:
    """Join `\\` continuations; in console blocks keep only `$ ` prompt lines."""
    pending: list[str] = []
    first = start
    for offset, raw in enumerate(body):
        line = raw.rstrip()
        if not pending:
            first = start + offset
            if console:
                if not line.lstrip().startswith("$ "):
                    continue
                line = line.lstrip()[2:]
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield first, " ".join(pending)
        pending = []
    if pending:
        yield first, " ".join(pending)


def split_commands(text: str) -> list[list[str]]:
    """Shell words of each simple command on a line: comments, env prefixes, redirects gone."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in SEPARATORS:
            commands.append([])
        elif token in REDIRECTS:
            skip_next = True
        else:
            commands[-1].append(token)
    result = []
    for words in commands:
        while words and ENV_ASSIGN.match(words[0]):
            words = words[1:]
        if words:
            result.append(words)
    return result


def unbracket(args: list[str]) -> list[str]:
    """`[--list NAME]` (optional parts in usage lines) -> `--list NAME`."""
    out = []
    for arg in args:
        if arg.startswith("[") and len(arg) > 1:
            arg = arg[1:]
        if arg.endswith("]") and "[" not in arg:
            arg = arg[:-1]
        if arg:
            out.append(arg)
    return out


def is_program(word: str) -> bool:
    return word == "ridgeline" or word.endswith("/ridgeline")


def doc_commands(path: Path) -> Iterator[DocCommand]:
    """Every `ridgeline` command in the shell blocks of a doc, then in its inline code."""
    for lang, start, body in fenced_blocks(path):
        if lang not in SHELL_LANGS:
            continue
        for lineno, text in logical_lines(start, body, console=lang == "console"):
            for words in split_commands(text):
                if is_program(words[0]):
                    yield DocCommand(path, lineno, text, tuple(unbracket(words[1:])))
    in_block = False
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            continue
        for match in INLINE_CODE.finditer(line):
            for words in split_commands(match.group(1)):
                if is_program(words[0]):
                    yield DocCommand(
                        path, lineno, match.group(1), tuple(unbracket(words[1:])), inline=True
                    )


def _is_placeholder(value: str) -> bool:
    return bool(PLACEHOLDER.match(value))


def _values(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        out: list[Any] = []
        for item in value:
            out.extend(_values(item))
        return out
    return [value]


def check_command(args: tuple[str, ...], *, partial: bool = False) -> str | None:
    """Parse ARGS with click's own parser, command by command; None if they are valid.

    Checks that the command path exists, every option belongs to its command and gets
    its value, values convert to the option's type (choices, integers; placeholders like
    FILE and file paths are not converted), and, unless PARTIAL (inline mentions), that
    required arguments and options are given and no extra arguments are left over.
    """
    cmd: click.Command = main
    ctx = click.Context(main, info_name="ridgeline")
    rest = list(args)
    path = ["ridgeline"]
    while True:
        parser = cmd.make_parser(ctx)
        try:
            opts, largs, _order = parser.parse_args(list(rest))
        except click.BadOptionUsage as exc:
            if partial and "requires an argument" in exc.message:
                return None  # an inline mention of an option, e.g. `ridgeline hash --jobs`
            return f"{' '.join(path)}: {exc.format_message()}"
        except click.UsageError as exc:
            return f"{' '.join(path)}: {exc.format_message()}"
        params = {p.name: p for p in cmd.params}
        for name, value in opts.items():
            param = params.get(name)
            if param is None or getattr(param, "is_flag", False):
                continue
            if isinstance(param.type, click.Path | click.File):
                continue
            for item in _values(value):
                if not isinstance(item, str) or _is_placeholder(item):
                    continue
                try:
                    param.type.convert(item, param, ctx)
                except click.BadParameter as exc:
                    label = param.opts[0] if isinstance(param, click.Option) else name
                    return f"{' '.join(path)}: {label} {item!r}: {exc.format_message()}"
        if isinstance(cmd, click.Group):
            if not largs:
                return None if partial else f"{' '.join(path)}: no sub-command given"
            sub_name, rest = largs[0], largs[1:]
            sub = cmd.get_command(ctx, sub_name)
            if sub is None:
                return f"{' '.join(path)}: no such command {sub_name!r}"
            path.append(sub_name)
            ctx = click.Context(sub, info_name=sub_name, parent=ctx)
            cmd = sub
            continue
        if partial:
            return None
        if largs:
            return f"{' '.join(path)}: unexpected extra arguments {largs}"
        for param in cmd.params:
            given = opts.get(param.name)
            missing = given is None or (isinstance(given, tuple | list) and not given)
            if param.required and missing and not getattr(param, "envvar", None):
                label = param.opts[0] if isinstance(param, click.Option) else param.name
                return f"{' '.join(path)}: missing required {label}"
        return None


ALL_COMMANDS = [c for path in DOC_FILES for c in doc_commands(path)]


@dataclass(frozen=True)
class PythonBlock:
    """One ```python block of a doc, and whether the doc marks it as not runnable."""

    path: Path
    lineno: int
    source: str
    runnable: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.lineno}"


NOT_RUN = re.compile(r"^<!--\s*not run:.+-->$")


def python_blocks(path: Path) -> Iterator[PythonBlock]:
    """The ```python blocks of `path`; `no-run` in the info string or a preceding
    `<!-- not run: reason -->` comment marks one that is not meant to run."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for lang, start, body in fenced_blocks(path):
        words = lang.split()
        if not words or words[0] not in {"python", "py"}:
            continue
        fence = start - 2  # 0-based index of the opening fence line
        before = next((ln.strip() for ln in reversed(lines[:fence]) if ln.strip()), "")
        skip = "no-run" in words[1:] or bool(NOT_RUN.match(before))
        yield PythonBlock(path, start, "\n".join(body) + "\n", not skip)


PYTHON_BLOCKS = [b for path in DOC_FILES for b in python_blocks(path)]


def test_python_blocks_are_found() -> None:
    """The extractor sees the library examples, and nearly all of them are run."""
    names = {b.path.name for b in PYTHON_BLOCKS if b.runnable}
    assert names >= {"index.md", "lists.md", "pdq.md", "review.md", "store.md", "vpdq.md"}
    assert sum(not b.runnable for b in PYTHON_BLOCKS) <= 1  # exceptions stay rare


def test_python_block_markers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```python\nprint(1)\n```\n\n```python no-run\nx\n```\n\n"
        "<!-- not run: a plug-in's file -->\n\n```python\ny\n```\n",
        encoding="utf-8",
    )
    assert [(b.lineno, b.source, b.runnable) for b in python_blocks(doc)] == [
        (2, "print(1)\n", True),
        (6, "x\n", False),
        (12, "y\n", False),
    ]


@pytest.mark.parametrize(
    "block", [b for b in PYTHON_BLOCKS if b.runnable], ids=lambda b: b.where.replace("/", "_")
)
def test_python_block_runs(block: PythonBlock, tmp_path: Path) -> None:
    """Each example runs as pasted: a fresh interpreter, an empty folder, our environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIDGELINE_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")] if p
    )
    env["HOME"] = str(tmp_path)  # nothing may land in the user's data directory
    script = tmp_path / "block.py"
    script.write_text(block.source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"{block.where}: the python block failed (exit {done.returncode})\n"
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )


def test_doc_commands_are_found() -> None:
    """The extractor sees the blocks (guards against a parser that silently finds nothing)."""
    fenced = [c for c in ALL_COMMANDS if not c.inline]
    assert len(fenced) > 50
    assert {c.path.name for c in fenced} >= {"README.md", "scan.md", "review.md", "exchange.md"}
    continued = [c for c in fenced if c.args[:2] == ("scan", "/mnt/shared/uploads")]
    assert continued and "--work-dir" in continued[0].args


def test_every_documented_command_parses() -> None:
    """Each documented command line names a real command with real options."""
    broken = []
    for command in ALL_COMMANDS:
        problem = check_command(command.args, partial=command.inline)
        if problem:
            broken.append(f"{command.where}\n    -> {problem}")
    assert not broken, "documented commands that the CLI rejects:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("ridgeline lists frobnicate x", "no such command 'frobnicate'"),
        ("ridgeline hash photo.jpg --colour", "No such option '--colour'"),
        ("ridgeline lists export known --format pdf", "--format 'pdf'"),
        ("ridgeline review next", "missing required --reviewer"),
        ("ridgeline lists show a b", "unexpected extra arguments"),
        ("ridgeline keys revoke --db", "Option '--db' requires an argument"),
    ],
)
def test_checker_catches_bad_lines(line: str, problem: str) -> None:
    """The checker itself rejects what it should (so a passing doc test means something)."""
    (words,) = split_commands(line)
    result = check_command(tuple(words[1:]))
    assert result is not None and problem in result


def test_line_splitting_handles_shell_syntax() -> None:
    text = "X=1 ridgeline log head > head.json; ridgeline a [--list NAME] | jq .x  # note"
    assert split_commands(text) == [
        ["ridgeline", "log", "head"],
        ["ridgeline", "a", "[--list", "NAME]"],
        ["jq", ".x"],
    ]
    assert unbracket(["a", "[--list", "NAME]"]) == ["a", "--list", "NAME"]
    assert check_command(("evidence", "add", "ENTRY", "FILE", "--key-file", "K")) is None


#: Leaf commands without `--format table|json|jsonl`, as README.md's paragraph on
#: `--format` says (the rest print nothing to format, or a file's own format).
NO_OUTPUT_FORMAT = {
    "lists import": "--output",  # its --format is the file format
    "lists export": None,  # --format is the file format
    "lists feedback-export": None,  # writes a JSONL file
    "audit report": None,  # always JSON
    "db init": None,
    "reports export": None,  # the CyberTipline XML
    "reports intake": None,  # --format is the input format (xml|json); always JSONL
    "exchange rm": None,  # writes no results: a message on stderr
    "db upgrade": None,
    "db where": None,
    "demo": None,
    "serve": None,
    "indicator": None,  # --format json|csv|table (issue 14): csv for spreadsheets
    "victims export": None,  # always victims.jsonl
    "victims synth": None,  # writes victims.jsonl files
}


def leaf_commands(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from leaf_commands(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def test_output_format_option_is_as_documented() -> None:
    """README: every command that writes results takes --format table|json|jsonl."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    for name in ("lists import", "lists export", "audit report"):
        assert f"`{name}`" in text, f"README.md no longer mentions the {name} exception"
    wrong = []
    for name, cmd in leaf_commands(main):
        found = [
            opt.opts[0]
            for opt in cmd.params
            if isinstance(opt, click.Option)
            and isinstance(opt.type, click.Choice)
            and set(opt.type.choices) == {"table", "json", "jsonl"}
        ]
        expected = NO_OUTPUT_FORMAT.get(name, "--format")
        if found != ([expected] if expected else []):
            wrong.append(f"ridgeline {name}: output format option {found}, expected {expected}")
    assert not wrong, "\n".join(wrong)


# --- links -------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def local_links(path: Path) -> list[str]:
    targets = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_readme_links_every_docs_page() -> None:
    linked = {(ROOT / t).resolve() for t in local_links(README)}
    pages = {p.resolve() for p in DOC_FILES if p != README}
    unlinked = sorted(str(p.relative_to(ROOT)) for p in pages - linked)
    assert not unlinked, f"docs pages not linked from README.md: {unlinked}"


def test_local_links_resolve() -> None:
    missing = [
        f"{path.relative_to(ROOT)} -> {target}"
        for path in DOC_FILES
        for target in local_links(path)
        if not (path.parent / target).exists()
    ]
    assert not missing, "links to files that do not exist:\n" + "\n".join(missing)


# --- the README Quick tour, run for real ---------------------------------------------


def readme_block(after: str) -> list[DocCommand]:
    """The `ridgeline` commands of the first shell block after the README line AFTER."""
    lines = README.read_text(encoding="utf-8").splitlines()
    anchor = next((i for i, line in enumerate(lines) if after in line), None)
    assert anchor is not None, f"README.md has no line containing {after!r}"
    for lang, start, body in fenced_blocks(README):
        if start - 1 > anchor + 1 and lang in SHELL_LANGS:
            commands = []
            for lineno, text in logical_lines(start, body, console=lang == "console"):
                for words in split_commands(text):
                    assert is_program(words[0]), f"README.md:{lineno}: not a ridgeline command"
                    commands.append(DocCommand(README, lineno, text, tuple(words[1:])))
            return commands
    raise AssertionError(f"no shell block after {after!r} in README.md")


def benign_image(seed: int) -> Image.Image:
    """A smooth colour field with a few ellipses: distinct, textured (PDQ quality 100)."""
    rng = np.random.default_rng(seed)
    field = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    image = Image.fromarray(field).resize((320, 240), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, 260)), int(rng.integers(0, 180))
        w, h = int(rng.integers(30, 120)), int(rng.integers(30, 120))
        r, g, b = (int(x) for x in rng.integers(0, 256, 3))
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=(r, g, b))
    return image


def benign_video(path: Path) -> None:
    """Two seconds of video: two generated scenes, one second each."""
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_image(benign_image(100 + i // 10).resize((128, 96)))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


class Tour:
    """Runs doc commands (in the current directory) against one SQLite file, via the CLI."""

    def __init__(self, db: Path) -> None:
        self.runner = CliRunner(env={"RIDGELINE_DB": str(db)})

    def run(self, args: tuple[str, ...] | list[str], where: str, expect: int = 0) -> Result:
        result = self.runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == expect, (
            f"{where}\nexit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result


def rows(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def one(result: Result) -> dict[str, Any]:
    (row,) = rows(result)
    return row


def pdq_of(tour: Tour, path: Path) -> str:
    result = tour.run(["hash", str(path), "--signals", "pdq", "--format", "jsonl"], "setup")
    return str(one(result)["signals"]["pdq"]["hash"])


def test_readme_hashing_and_matching_block_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """photo.jpg, clip.mp4, uploads/ and hashes.txt made here; then the block, line by line.

    hashes.txt holds the PDQ of a *mirrored* copy of uploads/a.jpg (plus an unrelated
    image), so the final `match --dihedral` line only matches because of --dihedral.
    """
    monkeypatch.chdir(tmp_path)
    tour = Tour(tmp_path / "tour.db")
    benign_image(1).save("photo.jpg", quality=90)
    benign_video(tmp_path / "clip.mp4")
    (tmp_path / "uploads").mkdir()
    benign_image(2).save("uploads/a.jpg", quality=90)
    benign_image(3).save("uploads/b.png")
    ImageOps.mirror(Image.open("uploads/a.jpg")).save("mirrored.png")
    benign_image(4).save("other.png")
    known = [pdq_of(tour, tmp_path / "mirrored.png"), pdq_of(tour, tmp_path / "other.png")]
    Path("hashes.txt").write_text("\n".join(known) + "\n", encoding="utf-8")

    block = readme_block("Hashing and matching")
    assert [c.args[:2] for c in block] == [
        ("hash", "photo.jpg"),
        ("hash", "-r"),
        ("lists", "create"),
        ("lists", "import"),
        ("match", "--list"),
    ], "the README block changed: update this test with it"
    hashed, folder, created, imported, matched = (tour.run(c.args, c.where) for c in block)

    by_path = {r["path"]: r for r in rows(hashed)}
    photo = by_path["photo.jpg"]
    assert photo["signals"]["md5"] == hashlib.md5(Path("photo.jpg").read_bytes()).hexdigest()
    assert {"sha1", "sha256"} <= photo["signals"].keys()
    assert re.fullmatch(r"[0-9a-f]{64}", photo["signals"]["pdq"]["hash"])
    frames = by_path["clip.mp4"]["signals"]["vpdq"]
    assert len(frames) == 20 and all(re.fullmatch(r"[0-9a-f]{64}", f["hash"]) for f in frames)

    folder_rows = {Path(r["path"]).name: r for r in rows(folder)}
    assert set(folder_rows) == {"a.jpg", "b.png"}
    assert all(r["error"] is None and "pdq" in r["signals"] for r in folder_rows.values())

    assert one(created)["thresholds"] == {"pdq": 31.0}
    summary = one(imported)
    assert (summary["added"], summary["errors"]) == (2, 0)

    (row,) = rows(matched)
    assert row["query"] == "uploads/a.jpg"
    assert [(m["list"], m["signal"]) for m in row["matches"]] == [("known", "pdq")]
    assert row["matches"][0]["distance"] <= 31
    plain = tour.run(["match", "--list", "known", "uploads/a.jpg", "--format", "jsonl"], "check")
    assert one(plain)["matches"] == [], "the mirrored copy should need --dihedral"


def test_readme_clearinghouse_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clearinghouse block on a fresh database.

    partner.xml is made the way a partner would: `lists export --format ncmec-xml` from
    another database. `review submit 12` uses the id `review next` served instead of 12
    (ids depend on what the database held before).
    """
    monkeypatch.chdir(tmp_path)
    partner = Tour(tmp_path / "partner.db")
    hashes = [
        pdq_of(partner, _saved(tmp_path / f"p{i}.png", benign_image(20 + i))) for i in range(3)
    ]
    Path("partner-hashes.txt").write_text("\n".join(hashes) + "\n", encoding="utf-8")
    partner.run(["lists", "create", "shared"], "setup")
    partner.run(["lists", "import", "shared", "partner-hashes.txt", "--signal", "pdq"], "setup")
    partner.run(
        ["lists", "export", "shared", "--format", "ncmec-xml", "--out", "partner.xml"], "setup"
    )

    tour = Tour(tmp_path / "clearinghouse.db")
    block = readme_block("A clearinghouse keeping a reviewed list")
    steps = [c.args[:2] for c in block]
    assert steps == [
        ("lists", "create"),
        ("reviewers", "add"),
        ("reviewers", "add"),
        ("lists", "import"),
        ("review", "next"),
        ("review", "submit"),
        ("audit", "create"),
        ("lists", "export"),
        ("lists", "keygen"),
        ("lists", "release"),
        ("log", "verify"),
    ], "the README block changed: update this test with it"
    out: dict[tuple[str, ...], list[Result]] = {}
    served: int | None = None
    for command in block:
        args = list(command.args)
        if args[:2] == ["review", "submit"]:
            assert served is not None
            args[2] = str(served)
        result = tour.run(args, command.where)
        out.setdefault(command.args[:2], []).append(result)
        if args[:2] == ["review", "next"]:
            served = int(one(result)["entry_id"])

    assert one(out["lists", "create"][0])["review_quorum"] == 3
    alice, dana = (one(r) for r in out["reviewers", "add"])
    assert (alice["name"], alice["senior"], dana["name"], dana["senior"]) == (
        "alice",
        False,
        "dana",
        True,
    )
    imported = one(out["lists", "import"][0])
    assert (imported["format"], imported["added"], imported["errors"]) == ("ncmec-xml", 3, 0)
    item = one(out["review", "next"][0])
    assert item["status"] == "pending" and item["signals"]["pdq"] in hashes
    verdict = one(out["review", "submit"][0])
    assert (verdict["reviewer"], verdict["decision"], verdict["verdicts"], verdict["quorum"]) == (
        "alice",
        "csam",
        1,
        3,
    )
    assert verdict["status"] == "pending", "one verdict of three must not confirm an entry"
    audit = one(out["audit", "create"][0])
    assert (audit["list"], audit["mode"], audit["seed"]) == ("reviewed", "random", 7)
    assert json.loads(Path("reviewed.json").read_text(encoding="utf-8"))
    assert Path("release.key").exists() and Path("release.pub").exists()
    release = one(out["lists", "release"][0])
    assert release["version"] == 1
    assert all(Path(f).exists() for f in release["files"].values())
    log = one(out["log", "verify"][0])
    assert log["ok"] is True and log["checked"] > 0


def _saved(path: Path, image: Image.Image) -> Path:
    image.save(path)
    return path


def readme_curl_block(after: str) -> list[list[str]]:
    """The shell words of each `curl` line in the second shell block after README line AFTER."""
    lines = README.read_text(encoding="utf-8").splitlines()
    anchor = next(i for i, line in enumerate(lines) if after in line)
    blocks = [
        (start, body)
        for lang, start, body in fenced_blocks(README)
        if start - 1 > anchor + 1 and lang in SHELL_LANGS
    ]
    start, body = blocks[1]
    commands = [shlex.split(text) for _, text in logical_lines(start, body, console=False)]
    assert commands and all(c[0] == "curl" for c in commands), "expected a block of curl lines"
    return commands


def curl_with_httpx(words: list[str], port: int) -> httpx.Response:
    """Do what one README `curl` line does (-H, -F file=@PATH, a URL), with httpx.

    `$NAME` is expanded from the environment, as the shell would; port 8080 becomes `port`.
    """
    headers: dict[str, str] = {}
    files: dict[str, Any] = {}
    url = None
    rest = iter(words[1:])
    for word in rest:
        if word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = os.path.expandvars(value.strip())
        elif word == "-F":
            field, _, value = next(rest).partition("=@")
            files[field] = (Path(value).name, Path(value).read_bytes())
        else:
            url = word
    assert url is not None and url.startswith("http://127.0.0.1:8080/")
    url = os.path.expandvars(url).replace(":8080/", f":{port}/")
    assert "$" not in url and all("$" not in v for v in headers.values())
    if files:
        return httpx.post(url, headers=headers, files=files, timeout=60)
    return httpx.get(url, headers=headers, timeout=60)


def test_readme_victims_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The victims block: synthetic databases, their import and merges, the indicator
    with its charts; the estimate's interval holds the generator's true population."""
    monkeypatch.chdir(tmp_path)
    tour = Tour(tmp_path / "victims.db")
    tour.run(["db", "init"], "setup")
    block = readme_block("Tracking victims (docs/indicator.md)")
    assert [c.args[:2] for c in block] == [
        ("victims", "synth"),
        ("victims", "import"),
        ("victims", "merges"),
        ("indicator", "--period"),
    ], "the README block changed: update this test with it"
    synth, imported, merges, indicator = (tour.run(c.args, c.where) for c in block)

    truth = json.loads(Path("synth/truth.json").read_text(encoding="utf-8"))
    assert synth.stdout.split() == ["synth/NCMEC.jsonl", "synth/ICSE.jsonl", "synth/EUROPOL.jsonl"]
    summary = one(imported)
    lines = sum(
        len(Path(f"synth/{name}.jsonl").read_text(encoding="utf-8").splitlines())
        for name in ("NCMEC", "ICSE", "EUROPOL")
    )
    assert summary["records"] == lines and summary["bad_lines"] == 0
    assert summary["victims"] < summary["records"], "records of one victim were merged"
    merged = rows(merges)
    assert len(merged) == summary["merges"] and {m["reason"] for m in merged} <= {
        "hash",
        "same_as",
    }
    text = indicator.stdout
    assert f"{summary['victims']} known victims after merging" in text
    assert "Time to identification (Kaplan-Meier" in text and "log-rank by age_band" in text
    low, high = (int(x) for x in re.search(r"95 % CI (\d+)–(\d+)\);", text).groups())  # type: ignore[union-attr]
    assert low <= truth["population"] <= high, (low, high, truth["population"])
    charts = sorted(p.name for p in Path("charts").iterdir())
    assert charts == [f"{n}.{e}" for n in ("estimate", "index", "survival") for e in ("png", "svg")]


@pytest.mark.slow
def test_readme_provider_block_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serve_process: Callable[..., Any]
) -> None:
    """The provider block: actions, a scan, the same scan on Ray, a key, the server;
    then its curl lines (run with httpx) against that server.

    `serve` runs as a child process on a free port instead of 8080.
    """
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the quarantine folder
    db = tmp_path / "provider.db"
    tour = Tour(db)
    Path("uploads").mkdir()
    benign_image(5).save("uploads/a.jpg", quality=90)
    benign_image(6).save("uploads/b.png")
    benign_image(5).save("photo.jpg", quality=90)  # what the front end uploads later
    known = pdq_of(tour, Path("uploads/a.jpg"))
    Path("known.txt").write_text(known + "\n", encoding="utf-8")
    tour.run(["lists", "create", "known"], "setup")
    tour.run(["lists", "import", "known", "known.txt", "--signal", "pdq"], "setup")

    block = readme_block("A service provider sweeping storage and checking uploads")
    assert [c.args[:2] for c in block] == [
        ("lists", "actions"),
        ("scan", "uploads/"),
        ("scan", "uploads/"),
        ("keys", "create"),
        ("serve", "--workers"),
    ], "the README block changed: update this test with it"
    actions, local, on_ray, key_made = (tour.run(c.args, c.where) for c in block[:4])

    assert one(actions)["actions"] == ["flag", "quarantine", "report"]
    by_name = {Path(r["path"]).name: r for r in rows(local)}
    assert set(by_name) == {"a.jpg", "b.png"}
    hit = by_name["a.jpg"]
    assert [(m["list"], m["signal"], m["distance"]) for m in hit["matches"]] == [
        ("known", "pdq", 0.0)
    ]
    assert {a["action"] for a in hit["actions"]} == {"flag", "quarantine", "report"}
    assert not Path("uploads/a.jpg").exists(), "quarantine moves the matched file"
    saved = [json.loads(line) for line in Path("results.jsonl").read_text().splitlines()]
    assert {Path(r["path"]).name for r in saved} == {"a.jpg", "b.png"}
    (ray_row,) = rows(on_ray)  # a.jpg is in quarantine now; b.png is the same as before
    assert Path(ray_row["path"]).name == "b.png"
    assert ray_row["signals"] == by_name["b.png"]["signals"] and ray_row["matches"] == []
    quarantined = one(tour.run(["quarantine", "list", "--format", "jsonl"], "check"))
    assert Path(quarantined["original_path"]).name == "a.jpg"
    key = one(key_made)["key"]

    serve_args = ["{port}" if a == "8080" else a for a in block[4].args]
    server = serve_process(*serve_args, env={**os.environ, "RIDGELINE_DB": str(db)})
    photo_pdq = pdq_of(tour, Path("photo.jpg"))
    monkeypatch.setenv("KEY", key)
    monkeypatch.setenv("PDQ", photo_pdq)
    uploaded, looked_up = (
        curl_with_httpx(words, server.port)
        for words in readme_curl_block("A service provider sweeping storage")
    )
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    assert body["signals"]["pdq"]["hash"] == photo_pdq
    assert [(m["list"], m["signal"]) for m in body["matches"]] == [("known", "pdq")]
    assert looked_up.status_code == 200, looked_up.text
    assert [m["list"] for m in looked_up.json()["matches"]] == ["known"]
    # the provider role never reads list contents
    denied = httpx.get(f"{server.base}/v1/lists", headers={"Authorization": f"Bearer {key}"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    server.proc.terminate()
    assert server.proc.wait(timeout=30) == 0
