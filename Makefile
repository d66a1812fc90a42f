# Two commands on a fresh clone: `make demo` and `make test`. Each makes .venv by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/digest demo

# Every test, real services included, on two xdist workers (each with its own PostgreSQL
# scratch database and Redis db: DIGEST_TEST_REDIS, and the db below it for the second);
# the tests that run Celery workers or CPU hogs share one xdist worker (--dist loadgroup).
test: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadgroup

# What needs no service and starts no process: seconds, for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not service and not process"

lint: $(STAMP)
	$(BIN)/ruff check digest workers tests benchmarks
	$(BIN)/ruff format --check digest workers tests benchmarks
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy digest workers

check: lint typecheck test

# The headline figures, one JSON line each (needs PostgreSQL, and Postfix's smtp-sink/smtp-source).
bench: $(STAMP)
	$(BIN)/python benchmarks/collect.py
	$(BIN)/python benchmarks/conformance.py
	$(BIN)/python benchmarks/plan.py
	$(BIN)/python benchmarks/send.py --recipients 100000 --workers 2

clean:
	rm -rf $(VENV) digest.db digest.db-* digest.db.key outbox preview .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
