# The README's quick start: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build from this machine's disk. A bare `torch` requirement would pull a multi-GB CUDA build;
# elsewhere, point pip at a CPU index (see README) or override TORCH_SPEC.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.cardgen-installed

.PHONY: setup demo test lint typecheck pytest bench schemas sample-reports clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[hf,dev]"
	@touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/cardgen demo

lint: setup
	$(BIN)/ruff check cardgen tests benchmarks scripts
	$(BIN)/ruff format --check cardgen tests benchmarks scripts

typecheck: setup
	$(BIN)/mypy cardgen

pytest: setup
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: setup
	$(BIN)/python benchmarks/bench_fingerprint.py
	$(BIN)/python benchmarks/bench_pack.py
	$(BIN)/python benchmarks/bench_judge.py

schemas: setup
	$(BIN)/python -m cardgen.schemas --write

# The demo's documents, committed under sample_reports/ and linked from the README. The stage
# cache is dropped first so that the samples show what this code writes (the family stays cached).
sample-reports: setup
	rm -rf demo-out
	$(BIN)/cardgen demo --out demo-out
	$(BIN)/python scripts/sample_reports.py demo-out sample_reports

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-out
