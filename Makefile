# Two commands on a fresh clone: `make demo` and `make test`. Each makes .venv by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv resolves and installs from uv.lock; it is itself pinned and kept in .uv/, outside the venv.
UV_VERSION := 0.13.9
UV := .uv/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: demo test test-fast lint typecheck check bench clean lock lock-upgrade

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .uv uv==$(UV_VERSION)

# Exactly what uv.lock says, dev tools included; reinstalls when pyproject.toml or uv.lock change.
# Compiled to bytecode at install, as pip does: every `digest` process (workers in the tests
# too) would otherwise compile its imports again when PYTHONDONTWRITEBYTECODE is set.
# --locked refuses a uv.lock that no longer matches pyproject.toml: run `make lock` and commit it.
$(STAMP): pyproject.toml uv.lock | $(UV)
	@$(UV) lock --check --python $(PYTHON) --quiet 2>/dev/null || \
	  { echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock" >&2; exit 2; }
	$(UV) sync --locked --extra dev --python $(PYTHON) --quiet --compile-bytecode
	touch $(STAMP)

# Adds what pyproject.toml gained and drops what it lost, keeping every other pin as it is.
lock: $(UV)
	$(UV) lock --python $(PYTHON)

# Moves every pin to the newest release pyproject.toml allows (review the diff, run `make check`).
lock-upgrade: $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

demo: $(STAMP)
	$(BIN)/digest demo

# Every test, real services included, on two xdist workers (each with its own PostgreSQL
# scratch database and Redis db: DIGEST_TEST_REDIS, and the db below it for the second);
# the tests that run Celery workers or CPU hogs share one xdist worker (--dist loadgroup).
# Our own modules compiled first: with PYTHONDONTWRITEBYTECODE set, each of the hundreds of
# `digest` processes the tests start would compile them again (half a second each).
test: $(STAMP)
	$(BIN)/python -m compileall -q digest workers
	$(BIN)/pytest -q -n 2 --dist loadgroup

# What needs no service and starts no process: seconds, for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not service and not process" tests/unit

lint: $(STAMP)
	$(BIN)/ruff check digest workers tests benchmarks
	$(BIN)/ruff format --check digest workers tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy digest workers

check: lint typecheck test

# The headline figures, one JSON line each (needs PostgreSQL, and Postfix's smtp-sink/smtp-source).
bench: $(STAMP)
	$(BIN)/python benchmarks/collect.py
	$(BIN)/python benchmarks/conformance.py
	$(BIN)/python benchmarks/plan.py
	$(BIN)/python benchmarks/send.py --recipients 100000 --workers 2
	$(BIN)/python benchmarks/subscribers.py
	$(BIN)/python benchmarks/subscribers_import.py
	$(BIN)/python benchmarks/subscribers_export.py
	$(BIN)/python benchmarks/report.py
	$(BIN)/python benchmarks/retention.py  # 24M rows: about half an hour on 2 cores

clean:
	rm -rf $(VENV) .uv digest.db digest.db-* digest.db.key outbox preview .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
