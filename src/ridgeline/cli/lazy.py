"""Commands imported only when they run: `ridgeline --help` must not import SQLAlchemy,
NumPy, Pillow and FastAPI (0.9 s before anything happened on every call).

A `LazyGroup` knows each lazy command's module, attribute and one-line help, so
listing commands loads none of them; `tests/test_cli_startup.py` checks the help
lines against the commands themselves.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import click

#: name -> (module, attribute, short help) of a command loaded on first use.
Lazy = Mapping[str, tuple[str, str, str]]


class LazyGroup(click.Group):
    """A click group whose `lazy` commands are imported when first looked up."""

    def __init__(self, *args: Any, lazy: Lazy | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str, str]] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attribute, _ = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the lazy table: help without importing every command."""
        rows = []
        limit = formatter.width - 6 - max((len(n) for n in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                text = self.lazy[name][2]
                rows.append((name, _shorten(text, limit)))
            else:
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _shorten(text: str, limit: int) -> str:
    """As click shortens help: whole words, `...` when cut."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 3, 1)].rsplit(" ", 1)[0]
    return cut.rstrip(" .,;:") + "..."


class _LazyModule(ModuleType):
    """Stands in for a module until one of its attributes is used, then imports it.

    Not importlib's LazyLoader: that puts a half-made package in `sys.modules`, and a
    later `from PACKAGE.sub import X` then runs `PACKAGE.sub` twice (SQLAlchemy refused
    the second copy of every table: `ridgeline lists show` failed in a fresh process).
    Nothing is put in `sys.modules` here, so ordinary imports stay ordinary.
    """

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attribute)


def lazy_module(name: str) -> ModuleType:
    """`name`, imported when one of its attributes is first used."""
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"no module named {name!r}")
    return _LazyModule(name)
