"""Credentials of live sources: from the environment or a credentials file, never the
database, never a log line.

For a source named `ncmec-main` of kind `ncmec`, the username is read from
`RIDGELINE_EXCHANGE_NCMEC_MAIN_USERNAME` (the name upper-cased, other characters as
`_`), else from the TOML file `RIDGELINE_EXCHANGE_CREDENTIALS` names, table
`[ncmec-main]`, key `username`. The values live only in a `Credentials` object, whose
repr shows the field names and never the values.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ridgeline.errors import BadInput
from ridgeline.exchange.live.errors import CredentialsMissing

ENV_FILE = "RIDGELINE_EXCHANGE_CREDENTIALS"


@dataclass(frozen=True)
class Credentials:
    """A source's secrets by field name (repr shows the names only)."""

    source: str
    values: Mapping[str, str] = field(repr=False)

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def env_name(source: str, field_name: str) -> str:
    """The environment variable holding `field_name` of `source`."""
    stem = re.sub(r"[^A-Z0-9]", "_", source.upper())
    return f"RIDGELINE_EXCHANGE_{stem}_{field_name.upper()}"


def _from_file(source: str, path: str | os.PathLike[str] | None) -> Mapping[str, str]:
    name = path or os.environ.get(ENV_FILE)
    if not name:
        return {}
    try:
        doc = tomllib.loads(Path(name).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"credentials file {name}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"credentials file {name}: not TOML ({exc})") from None
    table = doc.get(source)
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise BadInput(f"credentials file {name}: [{source}] must be a table")
    return {str(k): str(v) for k, v in table.items()}


def load(
    source: str,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    *,
    file: str | os.PathLike[str] | None = None,
) -> Credentials:
    """The credentials of `source`: every `required` field, and `optional` ones if set."""
    from_file = _from_file(source, file)
    values: dict[str, str] = {}
    for name in (*required, *optional):
        value = os.environ.get(env_name(source, name)) or from_file.get(name)
        if value:
            values[name] = value
    missing = [n for n in required if n not in values]
    if missing:
        where = ", ".join(env_name(source, n) for n in missing)
        raise CredentialsMissing(
            f"source {source!r} has no {', '.join(missing)}: set {where}, or put them in "
            f"the [{source}] table of the file {ENV_FILE} names"
        )
    return Credentials(source, values)
