# Pixelake: `make dev` runs the whole system locally, `make test` runs every test.
SHELL := /bin/bash
# Lambda's python3.12 runtime matches the wheels we ship; fall back to python3 where 3.12 is missing.
PYTHON ?= $(shell for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12 python3; do \
	$$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt layers/*/requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
PORT ?= 5000

.PHONY: venv dev test browser schema migrate clean

$(STAMP): requirements.txt requirements-dev.txt $(wildcard layers/*/requirements.txt) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e .   # the `pixelake` command (cli/)
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

dev: venv
	PORT=$(PORT) $(PY) -m infra.local

test: venv browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium through Playwright (never `playwright install`:
# it downloads a browser build, which this project does not fetch).
browser:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

# Regenerate database_schema.sql from the Alembic migrations (a test checks it is current).
schema: venv
	$(PY) -m chalicelib.db.migrate --sql > database_schema.sql

# Apply migrations to DATABASE_URL (RDS in a deploy; the local stack migrates on start).
migrate: venv
	$(PY) -m chalicelib.db.migrate

clean:
	rm -rf $(VENV) .pytest_cache
