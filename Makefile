# Quick start: `make run` (full pipeline on the built-in sample) and `make test`.
# Both create .venv if missing, install torch==2.13.0 (CPU) when no torch is
# installed, then the project with its dev extras.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.encoderflow-installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test clean-outputs

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	@touch $@

setup: $(STAMP)

run: setup
	$(VENV)/bin/encoderflow run

test: setup
	$(VENV)/bin/python -m pytest

clean-outputs:
	rm -rf data/prepared data/tokenized models reports checkpoints
