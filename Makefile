# The two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs; nothing touches your real ~/.aws.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/credd demo

# Lint and types first, in seconds: what they check is in pyproject.toml ([tool.ruff], [tool.mypy]).
test: check
	$(PY) -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(VENV)/bin/ruff check
	$(PY) -m mypy

# Every benchmark and its tables (BENCHMARKS.md); BENCH_ARGS="--quick" for a smoke run.
bench: $(STAMP)
	$(PY) bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache build *.egg-info
