# Two entry points: `make demo` and `make test`. Everything they need is installed
# into .venv from the package registries; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
C_SOURCES := $(wildcard src/ridgeline/*/*.c src/ridgeline/*/*.h)
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck pytest chromium ext wasm bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

$(VENV)/.stamp-base: $(BIN)/python pyproject.toml setup.py $(C_SOURCES)
	$(PIP) install -e .
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(PIP) install -e '.[test]'
	touch $@

$(VENV)/.stamp-bench: $(VENV)/.stamp-base
	$(PIP) install -e '.[bench]'
	touch $@

demo: $(VENV)/.stamp-base
	$(BIN)/ridgeline demo

# Rebuild the C kernels in place after editing them (development only).
ext: $(BIN)/python
	$(BIN)/python setup.py -q build_ext --inplace

# Rebuild the browser's PDQ hasher (src/ridgeline/submit/static/pdq.{js,wasm}) from
# _pdqcore.c with Debian's emscripten; the artefacts are committed (serving needs no
# emscripten) and tests/test_selfsubmit.py checks they are current.
wasm:
	scripts/build-pdq-wasm

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(VENV)/.stamp-test
	$(BIN)/mypy

# The browser tests (tests/test_ui*.py) use Debian's Chromium, installed when missing.
chromium:
	scripts/ensure-chromium

# Two processes (one per core), a test file per process so module fixtures stay whole;
# PYTEST_ARGS="-p no:xdist" (or -n 0) runs the suite in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile

pytest: $(VENV)/.stamp-test chromium
	scripts/with-postgres $(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.stamp-bench
	$(BIN)/python bench/hashing.py
	$(BIN)/python bench/match.py --n 1000000
	$(BIN)/python bench/selfsubmit.py

# Every fuzz target (tests/fuzz_targets.py) under atheris for FUZZ_SECONDS each, then
# schemathesis over the running service with FUZZ_EXAMPLES examples per operation.
# `make test` runs the same briefly (tests/test_fuzz.py, tests/test_schemathesis.py).
FUZZ_SECONDS ?= 60
FUZZ_EXAMPLES ?= 50
fuzz: $(VENV)/.stamp-test
	mkdir -p fuzz-artifacts
	for t in $$($(BIN)/python tests/fuzz_run.py --list 2>/dev/null); do \
	  echo "== $$t"; \
	  $(BIN)/python tests/fuzz_run.py $$t -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=fuzz-artifacts/$$t- > fuzz-artifacts/$$t.log 2>&1 \
	    || { tail -40 fuzz-artifacts/$$t.log; exit 1; }; \
	  grep '^Done' fuzz-artifacts/$$t.log; \
	done
	RIDGELINE_SCHEMATHESIS_EXAMPLES=$(FUZZ_EXAMPLES) scripts/with-postgres \
	  $(BIN)/python -m pytest -q tests/test_schemathesis.py

clean:
	rm -rf $(VENV) build src/*.egg-info src/ridgeline/*/*.so
