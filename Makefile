# Pixelake: `make dev` runs the whole system locally, `make test` runs every test.
SHELL := /bin/bash
# Lambda's python3.12 runtime matches the wheels we ship; fall back to python3 where 3.12 is missing.
PYTHON ?= $(shell for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12 python3; do \
	$$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt layers/*/requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
PORT ?= 5000
# Deployment (docs/deploy.md): `make deploy STAGE=dev` needs AWS credentials, `layers` and
# `package` do not (the region only names ARNs in the template).
STAGE ?= dev
PACKAGE_REGION := $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)

.PHONY: venv dev test lint system-packages schema migrate clean layers package deploy destroy bench

$(STAMP): requirements.txt requirements-dev.txt $(wildcard layers/*/requirements.txt) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip<26.3"  # chalice 1.34 (chalice package runs pip) declares pip<26.3
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e .   # the `pixelake` command (cli/)
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

dev: venv
	PORT=$(PORT) $(PY) -m infra.local

test: venv system-packages lint
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff (lint + format check) over everything, mypy over app.py, chalicelib/ and cli/ (pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/mypy

# Debian packages the tests use: Chromium for the browser tests (driven by Playwright; never
# `playwright install`, which downloads a browser build), shellcheck for the deploy scripts,
# exiftool (the reference the EXIF reader is compared with), colord-data and icc-profiles-free
# (Adobe RGB and grey ICC profiles for the colour-management tests).
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v exiftool >/dev/null || missing="$$missing libimage-exiftool-perl"; \
	test -f /usr/share/color/icc/colord/AdobeRGB1998.icc || missing="$$missing colord-data"; \
	test -f /usr/share/color/icc/Gray-CIE_L.icc || missing="$$missing icc-profiles-free"; \
	if [ -n "$$missing" ]; then apt-get update -q && apt-get install -y -q $$missing; fi

# Regenerate database_schema.sql from the Alembic migrations (a test checks it is current).
schema: venv
	$(PY) -m chalicelib.db.migrate --sql > database_schema.sql

# Apply migrations to DATABASE_URL (RDS in a deploy; the local stack migrates on start).
migrate: venv
	$(PY) -m chalicelib.db.migrate

clean:
	rm -rf $(VENV) .pytest_cache

# Benchmarks (not tests): docs/benchmarks/report.{md,json} and plots, about 10 min. A scratch
# database pixelake_bench on BENCH_DATABASE_URL's server (embedded PostgreSQL if none answers).
bench: venv
	$(PY) benchmarks/bench_suite.py $(BENCH_ARGS)

# Lambda layers from python3.12 manylinux wheels into build/layers/*.zip; fails over 250 MB.
layers: venv
	$(PY) layers/build.py

# The app's CloudFormation (SAM) template + deployment.zip in build/package/. Queue names are
# read from PIXELAKE_STAGE when app.py is imported, so it must match --stage.
package: venv
	rm -rf build/package
	PIXELAKE_STAGE=$(STAGE) AWS_DEFAULT_REGION=$(PACKAGE_REGION) $(VENV)/bin/chalice package \
		--stage $(STAGE) --pkg-format cloudformation --template-format yaml \
		--merge-template infra/aws/app-merge.yaml build/package/
	if ls build/layers/*.zip >/dev/null 2>&1; then $(PY) layers/build.py --check-only; fi

deploy: venv
	STAGE=$(STAGE) infra/aws/deploy.sh

destroy: venv
	STAGE=$(STAGE) infra/aws/destroy.sh
