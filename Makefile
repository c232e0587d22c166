# The two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs; nothing touches your real ~/.aws.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The AWS SDK for JavaScript v3 that tests/test_js_sdk.py runs with node, as tests/js/package-lock.json pins it.
JS_STAMP := tests/js/node_modules/.installed
NPM := $(shell command -v npm 2>/dev/null)

.PHONY: demo test check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Without npm the JavaScript SDK tests skip (and fail under CI=true, where .ci/run installs nodejs).
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
ifeq ($(NPM),)
	@echo "npm not found: the JavaScript SDK tests will skip (Debian: apt-get install nodejs)"
else
	$(NPM) ci --prefix tests/js --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)
endif

demo: $(STAMP)
	$(VENV)/bin/credd demo

# Lint and types first, in seconds: what they check is in pyproject.toml ([tool.ruff], [tool.mypy]).
test: check $(JS_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(VENV)/bin/ruff check
	$(PY) -m mypy

# Every benchmark and its tables (BENCHMARKS.md); BENCH_ARGS="--quick" for a smoke run.
bench: $(STAMP)
	$(PY) bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tests/js/node_modules .pytest_cache .hypothesis .mypy_cache .ruff_cache build *.egg-info
