# The commands of the README: `make run` starts the whole system, `make demo` drives it
# as the mobile app would, `make test` runs every check and `make bench` the benchmarks.
# Each creates .venv on first use; the logic lives in Python, not here.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Tests run against real PostgreSQL and Redis (a database number of their own). When nothing
# answers at TEST_DATABASE_URL's local host and port, a private PostgreSQL is started there
# for the run (data in var/test-postgres, kept between runs).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/algotrader
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# pytest-xdist workers, each given whole test files (their module fixtures start real stacks
# once): most tests wait on real processes and clocks, not on the CPU. Each
# worker takes its own test database and Redis database (15, 14, 13...). 0 runs serially.
PYTEST_WORKERS ?= 3


.PHONY: audit
.PHONY: run test test-under-load soak lint importlint format typecheck migrations-check deploy-check pytest install install-dev browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt requirements-kite-client.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	# The official Kite client, only to prove the simulator faithful: its autobahn pin
	# conflicts with daphne's, and the newer autobahn serves it fine (tested).
	$(BIN)/pip install --quiet --no-deps -r requirements-kite-client.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

.env: | $(BIN)/python
	$(BIN)/python -m algotrader.devenv env

.PHONY: demo bench

# Redis and PostgreSQL (each started for the session if nothing answers; PostgreSQL's data in
# var/postgres), .env, migrations, the operator account, the Procfile.
# BROKER=kite-sim (here or in .env) also runs the Kite simulator and points the Kite settings at it.
run: install
	$(BIN)/python -m algotrader.devenv run

# Against the running stack (`make run` in another terminal); BROKER=kite-sim for the Kite simulator.
demo: install
	$(BIN)/python -m algotrader.demo

# Every benchmark at sizes that finish in under 10 minutes on 2 cores; JSON and PNGs in bench/results/.
bench: install-dev
	$(BIN)/python -m bench.run_all $(BENCH_ARGS)

test: install-dev lint importlint typecheck migrations-check deploy-check audit pytest

# `make test` three times in a row in a fresh clone of the committed HEAD (its own .venv),
# two CPU-burning processes beside it; non-zero if any run fails (docs/testing.md).
test-under-load:
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) PYTEST_WORKERS=$(PYTEST_WORKERS) \
	PYTEST_ARGS="$(PYTEST_ARGS)" $(PYTHON) -m tests.under_load $(UNDER_LOAD_ARGS)

lint: install-dev
	ruff check .
	ruff format --check .

format: install-dev
	ruff check --fix .
	ruff format .

# Known vulnerabilities in the installed dependencies (pip-audit; README: what CI can check).
audit: install-dev
	python -m algotrader.dependency_audit

# Apps depend one way (docs/architecture.md): the import contracts in .importlinter.
importlint: install-dev
	lint-imports

typecheck: install-dev
	mypy .

migrations-check: install-dev
	python manage.py makemigrations --check --dry-run

# Production settings must pass Django's deployment checklist with no warning.
deploy-check: install-dev
	DJANGO_ENV=production \
	SECRET_KEY=$$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
	JWT_SIGNING_KEY=$$(python -c 'import secrets; print(secrets.token_urlsafe(50))') \
	FIELD_ENCRYPTION_KEYS=$$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	ALLOWED_HOSTS=api.example.com \
	python manage.py check --deploy --fail-level WARNING

# The admin's browser tests drive Debian's Chromium through Playwright; no browser is
# downloaded from elsewhere. Installed here when missing (as root), like any system package.
export CHROMIUM_PATH ?= /usr/bin/chromium
browser:
	@test -x "$(CHROMIUM_PATH)" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM_PATH): sudo apt-get install chromium (or set CHROMIUM_PATH)" >&2; \
	    exit 1; \
	  fi; }

pytest: install-dev browser
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) python -m algotrader.devenv pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The race tests at their full round counts (the suite runs as many rounds as fit its budget).
soak: install-dev browser
	SOAK=1 DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) python -m algotrader.devenv pytest -p no:xdist -m soak $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
