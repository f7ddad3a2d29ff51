"""Named crash points for the kill -9 tests (issue 17): a no-op unless a test asks.

`reached("lists.import.written")` does nothing in normal runs. When the environment
variable `RIDGELINE_CRASH_AT` names the point (optionally `NAME@N` for its N-th
arrival), the process writes `ridgeline-crashpoint NAME` to stderr and blocks there
forever, so a test can kill it with SIGKILL at exactly that step instead of guessing
with sleeps. Points sit where a real crash hurts most: inside an open transaction,
between a remote call and the commit that records it, between writing a file and
renaming it into place.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "RIDGELINE_CRASH_AT"
MARK = "ridgeline-crashpoint"
_arrivals: dict[str, int] = {}


def reached(name: str) -> None:
    """Block here (for a kill -9) if the test environment names this point."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _arrivals[name] = _arrivals.get(name, 0) + 1
    if _arrivals[name] != (int(nth) if nth.isdigit() else 1):
        return
    sys.stderr.write(f"{MARK} {name}\n")
    sys.stderr.flush()
    while True:  # pragma: no cover - ended by the test's SIGKILL
        time.sleep(3600)
