"""Signal type registry: built-ins and plug-ins from the `ridgeline.signals` entry points.

A third party adds a signal type by publishing a package with, in its pyproject:

    [project.entry-points."ridgeline.signals"]
    myhash = "mypackage.signals:MY_HASH"

where `MY_HASH` is a `ridgeline.signals.base.SignalType` instance. The instance holds
everything Ridgeline needs to compute, index, match and export the signal
(docs/signals.md lists its members).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from ridgeline.errors import UnknownSignal
from ridgeline.signals.base import (
    HashOptions,
    IndexKind,
    PdqValue,
    Query,
    SignalType,
    SignalValue,
    StreamingSignal,
    VpdqFrameValue,
)
from ridgeline.signals.crypto import MD5, SHA1, SHA256
from ridgeline.signals.pdq import PDQ
from ridgeline.signals.photodna import PHOTODNA
from ridgeline.signals.vpdq import VPDQ

ENTRY_POINT_GROUP = "ridgeline.signals"

#: In this order in listings and in native CSV columns.
BUILTINS: tuple[SignalType, ...] = (MD5, SHA1, SHA256, PDQ, PHOTODNA, VPDQ)

__all__ = [
    "ENTRY_POINT_GROUP",
    "HashOptions",
    "IndexKind",
    "PdqValue",
    "Query",
    "SignalType",
    "SignalValue",
    "StreamingSignal",
    "VpdqFrameValue",
    "all_signals",
    "get_signal",
    "normalize",
]


@cache
def all_signals() -> dict[str, SignalType]:
    """Every installed signal type by name; built-ins first, then plug-ins."""
    found: dict[str, SignalType] = {s.name: s for s in BUILTINS}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue  # built-ins (registered through our own entry points too) win
        obj = ep.load()
        signal = obj() if isinstance(obj, type) else obj
        if not isinstance(signal, SignalType):
            raise TypeError(f"entry point {ep.value} is not a ridgeline SignalType")
        found[signal.name] = signal
    return found


def get_signal(name: str) -> SignalType:
    """The signal type called `name`, or `UnknownSignal`."""
    signals = all_signals()
    try:
        return signals[name.strip().lower()]
    except KeyError:
        raise UnknownSignal(name, list(signals)) from None


def normalize(signal: str, value: str) -> str:
    """Canonical form of `value` for the named signal (raises `InvalidHash`)."""
    return get_signal(signal).normalize(value)
