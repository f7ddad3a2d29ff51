"""Errors raised at the edges, each with a message a user can act on."""

from __future__ import annotations


class RidgelineError(Exception):
    """Base class: every error Ridgeline raises on purpose derives from it."""

    #: Stable machine-readable code, used by the HTTP API and JSON output.
    code = "error"


class InvalidHash(RidgelineError, ValueError):
    """A hash string that is not valid for its signal type."""

    code = "invalid_hash"

    def __init__(self, signal: str, value: str, expected: str) -> None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(f"invalid {signal} hash {shown!r}: expected {expected}")
        self.signal = signal
        self.value = value
        self.expected = expected


class UnknownSignal(RidgelineError, KeyError):
    """A signal name that no installed plug-in provides."""

    code = "unknown_signal"

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown signal type {name!r}; installed: {', '.join(sorted(known))}")
        self.name = name

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class BadInput(RidgelineError, ValueError):
    """Content that cannot be processed: corrupt, truncated, empty, wrong type, too big."""

    code = "bad_input"


class DecompressionBomb(BadInput):
    """An image or archive that expands beyond the configured limit."""

    code = "decompression_bomb"


class NotComputable(RidgelineError):
    """The signal cannot be computed from this content (wrong media type, proprietary)."""

    code = "not_computable"


class NotFound(RidgelineError, LookupError):
    """A named object (list, entry, ...) does not exist."""

    code = "not_found"


class Conflict(RidgelineError):
    """The request conflicts with what is stored (duplicate name, wrong state)."""

    code = "conflict"


class PermissionDenied(RidgelineError):
    """The actor may not do this (review rules, roles)."""

    code = "permission_denied"
