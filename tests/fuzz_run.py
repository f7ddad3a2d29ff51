"""Run one fuzz target (tests/fuzz_targets.py) under atheris.

    python tests/fuzz_run.py TARGET [libFuzzer flags: -runs=N, -max_total_time=S, ...]
    python tests/fuzz_run.py --list

The seed corpus is written (from code) into a fresh folder that libFuzzer also grows,
unless a corpus folder is given as the last argument. A crash prints the traceback
and the input (`crash-*` file in the working folder) and exits non-zero.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).parent))

with atheris.instrument_imports(include=["ridgeline"]):
    import fuzz_targets


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] == "--list":
        print("\n".join(fuzz_targets.TARGETS))
        return
    target = fuzz_targets.TARGETS[argv[1]]
    flags = argv[2:]
    if not flags or flags[-1].startswith("-"):
        corpus = Path(tempfile.mkdtemp(prefix=f"ridgeline-fuzz-{argv[1]}-"))
        for n, seed in enumerate(target.seeds()):
            (corpus / f"seed-{n}").write_bytes(seed)
        flags.append(str(corpus))
    flags = [f for f in flags if f] + ["-rss_limit_mb=1536", "-timeout=20"]
    atheris.Setup([argv[0], *flags], target.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
