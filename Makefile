# The two commands: `make demo` (the whole system on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lock lint test test-fast demo migrate clean

## Every dependency from the lock, checked against its hashes; then this project itself,
## built with the locked setuptools (nothing unpinned is fetched).
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

## Re-resolve the lock files from pyproject.toml's pins (Python 3.11, Linux): requirements.lock
## for the production image, requirements-dev.lock for everything else (all extras). Extras stay
## on the pins (coverage[toml]): pip 23's hash mode otherwise takes a package asked for with an
## extra (pytest-cov's coverage[toml]>=…) as unpinned once a newer release is out, and fails.
LOCK := $(BIN)/uv pip compile pyproject.toml --group build --generate-hashes --python-version 3.11 \
	--python-platform linux --custom-compile-command "make lock" --quiet --no-strip-extras
lock: install
	$(LOCK) --output-file requirements.lock
	$(LOCK) --extra dev --extra demo --output-file requirements-dev.lock

## Lint, format and import order (ruff), types (mypy: strict for shared/ and publish_worker/).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Everything the tests need (virtualenv, Chromium for the browser tests), then all the tests,
## with coverage of the code the test process runs (floor: [tool.coverage.report] fail_under).
test: install
	scripts/test-prereqs
	$(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered

## The unit tests only (no whole-system, browser or process-spawning tests): under a minute.
test-fast: install
	$(BIN)/python -m pytest -m "not e2e and not browser and not slow"

## The whole system on one machine: SQLite, embedded Redis, the Meta sandbox, http://127.0.0.1:8000/
demo: install
	$(BIN)/social-connect demo

migrate: install
	$(BIN)/social-connect migrate

clean:
	rm -rf $(VENV) var/*.db .pytest_cache
