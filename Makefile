# Quick start: `make run` (full pipeline on the built-in sample), `make check` (the fast
# tests) and `make test` (all of them).
# All three create .venv if missing and install the exact versions of the lock file
# (requirements/lock.txt: core + dev, every transitive dependency pinned, made by
# pip-compile; `make lock` regenerates it). torch goes in first, on its own, so
# that this machine's CPU wheel (pip find-links) is the one used. `make test`
# also installs the browser of tests/system/test_ui_browser.py (see `browser` below).
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements/lock.txt
STAMP := $(VENV)/.encoderflow-installed
# Debian's chromium, driven by Playwright in tests/system/test_ui_browser.py (never `playwright install`)
ENCODERFLOW_CHROMIUM ?= /usr/bin/chromium
export ENCODERFLOW_CHROMIUM
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run check test browser lock clean-outputs docs docs-render

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	    { echo "encoderflow needs Python >= 3.11 ($(PY) is $$($(PY) -V)); remove $(VENV) and rerun with a newer python3" >&2; exit 1; }
	$(PY) -m pip install -q "$$(grep -i '^pip==' $(LOCK))"
	$(PY) -m pip install -q "$$(grep -i '^torch==' $(LOCK))"
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q -e . --no-deps
	$(PY) -m pip check
	@touch $@

setup: $(STAMP)

run: setup
	$(VENV)/bin/encoderflow run

# The tests come in three tiers, one folder each (tests/conftest.py):
#   tests/unit         code and property tests: no servers, pipelines, subprocess CLIs or
#                      training beyond a step; with the doctests of components/ and flows/
#   tests/integration  real pipelines, DVC, Prefect, MLflow stores, tiny Lightning training
#   tests/system       a browser (UI), PostgreSQL, multi-process DDP
# `make check`: the unit tier + the doctests, for the edit-and-rerun loop (<= 2 min on 2
# cores). `make test`: every tier (testpaths in pyproject.toml); CI runs it (.ci/run).
check: setup
	$(PY) -m pytest tests/unit components flows

test: setup browser
	$(PY) -m pytest

# Installs chromium with apt-get when it is missing and we may (root, or sudo
# without a password). Otherwise it says so and goes on: the browser test then
# skips with the reason.
browser:
	@if [ -x "$(ENCODERFLOW_CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else sudo=no; fi; \
	if ! command -v apt-get >/dev/null 2>&1 || [ "$$sudo" = no ]; then \
	    echo "make test: $(ENCODERFLOW_CHROMIUM) is missing and cannot be installed here (needs apt-get, as root or with passwordless sudo)." >&2; \
	    echo "make test: tests/system/test_ui_browser.py will be SKIPPED. Install the browser with: sudo apt-get install chromium" >&2; \
	    exit 0; fi; \
	echo "make test: installing chromium with apt-get (for tests/system/test_ui_browser.py)"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    || echo "make test: apt-get install chromium FAILED; tests/system/test_ui_browser.py will be SKIPPED" >&2

# Regenerates the lock from pyproject.toml (core + dev), keeping the current pins
# where they still fit: `make lock LOCK_ARGS=--upgrade` moves everything to the
# newest allowed, `LOCK_ARGS="-P NAME"` one package. pip-compile, not uv: it reads
# this machine's pip config, whose find-links holds the CPU torch wheel (uv would
# lock the CUDA torch with its nvidia-* packages). The local label is dropped
# (torch==2.13.0+cpu -> torch==2.13.0), which the CPU wheel still satisfies.
lock:
	@test -x $(PY) || python3 -m venv $(VENV)
	@test -x $(VENV)/bin/pip-compile || $(PY) -m pip install -q "$$(grep -i '^pip-tools==' $(LOCK) || echo pip-tools)"
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile -q --extra dev --strip-extras --allow-unsafe --no-emit-index-url \
	    --no-emit-find-links $(LOCK_ARGS) -o $(LOCK) pyproject.toml
	sed -i -E 's/^(torch==[^+ ]+)\+[A-Za-z0-9.]+$$/\1/' $(LOCK)
	@! grep -iE '^nvidia-' $(LOCK) || { echo "$(LOCK) pins nvidia-* packages: the CUDA torch was locked" >&2; exit 1; }

# The docs site (mkdocs.yml, docs/): served on http://127.0.0.1:8000, reloading on edits.
# docs-render rewrites the rendered blocks of README.md and docs/*.md from reports/*.json and
# reports/benchmarks/*.json (python docs/render.py --help).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

docs-render: setup
	$(PY) docs/render.py

clean-outputs:
	rm -rf data/prepared data/tokenized models reports checkpoints
