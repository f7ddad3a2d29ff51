"""The `ridgeline` command: a thin click layer over the library.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import click

from ridgeline import __version__
from ridgeline.cli.audit import audit_group
from ridgeline.cli.db import db_group
from ridgeline.cli.demo import demo
from ridgeline.cli.exchange import COMMANDS as EXCHANGE_COMMANDS
from ridgeline.cli.hash import hash_command
from ridgeline.cli.indicator import indicator_command
from ridgeline.cli.keys import keys
from ridgeline.cli.lists import lists
from ridgeline.cli.lists_import import import_
from ridgeline.cli.log import log_group
from ridgeline.cli.match import match_command
from ridgeline.cli.reports import reports
from ridgeline.cli.review import evidence, review
from ridgeline.cli.reviewers import reviewers
from ridgeline.cli.scan import flood, list_actions, quarantine, scan_command
from ridgeline.cli.serve import serve
from ridgeline.cli.victims import victims


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ridgeline")
def main() -> None:
    """Find, verify, report and track known CSAM by its fingerprints."""


main.add_command(hash_command)
main.add_command(lists)
lists.add_command(import_)
main.add_command(db_group)
main.add_command(demo)
main.add_command(scan_command)
lists.add_command(list_actions)
main.add_command(quarantine)
main.add_command(flood)
main.add_command(keys)
main.add_command(serve)
main.add_command(review)
main.add_command(evidence)
main.add_command(reviewers)
main.add_command(log_group)
for _command in EXCHANGE_COMMANDS:
    lists.add_command(_command)
main.add_command(audit_group)
main.add_command(match_command)
main.add_command(victims)
main.add_command(indicator_command)
main.add_command(reports)
