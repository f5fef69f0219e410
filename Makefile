# Two entry points: `make run` (Airflow with this package's DAGs, UI on localhost:8080)
# and `make test` (everything the tests need, then every test). Both create .venv/ if missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test test-unit test-integration lint-imports bench clean sandbox-reset

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(STAMP_RUN): requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(STAMP_TEST): requirements.txt requirements-test.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements-test.txt
	touch $@ $(STAMP_RUN)

# run needs the test requirements too: without a cluster it starts the local sandbox (sandbox/).
run: $(STAMP_TEST)
	scripts/run-airflow.sh

sandbox-reset:
	scripts/sandbox.sh reset

# The layering contracts in .importlinter (core pure, clients only in hooks, dags wire only, no upward import).
lint-imports: $(STAMP_TEST)
	PYTHONPATH=plugins:. $(VENV)/bin/lint-imports --no-cache

# The builds prepare-tests.sh found are handed to pytest explicitly: every test process and
# every program the tests start uses exactly those.
TEST_ENV = ANTDB_HOME="$$(scripts/ensure-antdb.sh --where)" PGO_OPERATOR_DIR="$$(scripts/ensure-operator.sh --where)"

test: lint-imports
	scripts/prepare-tests.sh
	$(TEST_ENV) $(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: lint-imports
	$(VENV)/bin/pytest tests/unit tests/dags $(PYTEST_ARGS)

test-integration: $(STAMP_TEST)
	scripts/prepare-tests.sh
	$(TEST_ENV) $(VENV)/bin/pytest tests/integration tests/antdb $(PYTEST_ARGS)

bench: $(STAMP_TEST)
	scripts/prepare-tests.sh
	$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .airflow .pytest_cache
