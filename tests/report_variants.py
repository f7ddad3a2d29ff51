"""Many synthetic report and fileDetails documents for byte-for-byte checks.

Starting from the fully filled-in samples, every scalar field reachable in them is
set in turn to awkward values (empty, blank, markup and quotes, control characters,
over-long, non-ASCII, out-of-range numbers, naive or future times) and every node
field is removed, so that each rule and each escape of the writer is exercised. The
order is deterministic: tests/data/reports_golden.json holds digests made from it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

from ridgeline.reports import model as m
from ridgeline.reports import samples, schema

_TEXTS = ("", "   ", "a<b>&c\"d'e\n\tf\r", "x" * 3001, "Café ✓ 名前", "https://example.com/a b")
_INTS = (-1, 0, 70000)
_WHEN = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
_TIMES = (
    dt.datetime(2026, 3, 1, 12, 30),  # no time zone
    dt.datetime(2099, 1, 1, tzinfo=dt.UTC),  # the future
    dt.datetime(2026, 3, 1, 7, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
)


def _values(s: schema.Spec, current: Any) -> tuple[Any, ...]:
    if s.kind == "flag" or s.typ is bool:
        return (not current,) if s.kind == "flag" else (not current, None)
    if s.typ is str:
        return (*_TEXTS, *(sorted(s.enum)[:1] if s.enum else ()), None)
    if s.typ is int:
        return (*_INTS, None)
    if s.typ is float:
        return (-90.5, 1e300, None)
    if s.typ is dt.datetime:
        return (*_TIMES, None)
    if s.typ is dt.date:
        return (dt.date(2010, 1, 31), None)
    return (None,)


def mutations(node: Any) -> Iterator[Any]:
    """`node` with one field changed, for every field of it and of the nodes below it
    (the first item of repeated fields)."""
    lay = schema.layout(type(node))
    for s in lay.specs:
        current = getattr(node, s.name)
        if s.is_node:
            if s.many:
                if current:
                    for inner in mutations(current[0]):
                        yield dataclasses.replace(node, **{s.name: (inner, *current[1:])})
                    yield dataclasses.replace(node, **{s.name: ()})
                else:
                    yield dataclasses.replace(node, **{s.name: (s.typ(),)})
            elif current is not None:
                for inner in mutations(current):
                    yield dataclasses.replace(node, **{s.name: inner})
                yield dataclasses.replace(node, **{s.name: None})
            else:
                yield dataclasses.replace(node, **{s.name: s.typ()})
            continue
        if s.many:
            for value in _values(s, current[0] if current else None):
                if value is not None:
                    yield dataclasses.replace(node, **{s.name: (value, *current[1:])})
            yield dataclasses.replace(node, **{s.name: ()})
            continue
        for value in _values(s, current):
            if value != current:
                yield dataclasses.replace(node, **{s.name: value})


def reports() -> list[m.Report]:
    out: list[m.Report] = [m.Report(), samples.minimal_report()]
    out += [samples.rich_report(n) for n in range(0, 400, 7)]
    out += list(mutations(samples.rich_report(3)))
    out += list(mutations(samples.minimal_report()))
    return out


def file_details() -> list[m.FileDetails]:
    base = samples.file_details("0123456789abcdef" * 2, "ab" * 32)
    rich = dataclasses.replace(base, report_id=123, file_id="f-1")
    return [m.FileDetails(), base, rich, *mutations(rich)]
