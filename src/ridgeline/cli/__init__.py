"""The `ridgeline` command: a thin click layer over the library.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import click

from ridgeline import __version__
from ridgeline.cli.db import db_group
from ridgeline.cli.demo import demo
from ridgeline.cli.hash import hash_command
from ridgeline.cli.lists import lists
from ridgeline.cli.lists_import import import_


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ridgeline")
def main() -> None:
    """Find, verify, report and track known CSAM by its fingerprints."""


main.add_command(hash_command)
main.add_command(lists)
lists.add_command(import_)
main.add_command(db_group)
main.add_command(demo)
