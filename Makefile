# The two commands: `make demo` (the whole system on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint test test-fast demo migrate clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

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
