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

.PHONY: venv dev test lint system-packages schema migrate clean layers package deploy destroy bench \
	localstack-venv localstack dev-localstack

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
	@$(MAKE) -s localstack-venv || echo "LocalStack could not be installed: tests/e2e/test_localstack.py is skipped"
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff (lint + format check) over everything, mypy over app.py, chalicelib/ and cli/ (pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/mypy

# Debian packages the tests use: Chromium for the browser tests (driven by Playwright; never
# `playwright install`, which downloads a browser build), shellcheck for the deploy scripts,
# exiftool (the reference the EXIF reader is compared with), colord-data and icc-profiles-free
# (Adobe RGB and grey ICC profiles for the colour-management tests), libavif-bin (avifenc writes
# AVIFs with a given nclx colour box: Pillow's encoder always writes sRGB's).
system-packages:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v exiftool >/dev/null || missing="$$missing libimage-exiftool-perl"; \
	command -v avifenc >/dev/null || missing="$$missing libavif-bin"; \
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
	$(PY) layers/build.py --compile-package build/package/deployment.zip  # no compiling at cold start
	if ls build/layers/*.zip >/dev/null 2>&1; then $(PY) layers/build.py --check-only; fi

deploy: venv
	STAGE=$(STAGE) infra/aws/deploy.sh

destroy: venv
	STAGE=$(STAGE) infra/aws/destroy.sh

# --- LocalStack (docs/localstack.md): host mode, its own Python 3.13 venv, loopback only ---
LOCALSTACK_VENV ?= .pixelake/localstack/venv
LOCALSTACK_PORT ?= 4566
LOCALSTACK_VERSION ?= 2026.3.0
LOCALSTACK_PYTHON ?= $(shell for p in python3.13 $(HOME)/.pyenv/versions/3.13*/bin/python3.13; do \
	$$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)

$(LOCALSTACK_VENV)/.installed-$(LOCALSTACK_VERSION):
	@test -n "$(LOCALSTACK_PYTHON)" || { echo "LocalStack needs Python 3.13 (pyenv install 3.13)"; exit 1; }
	test -x $(LOCALSTACK_VENV)/bin/python || $(LOCALSTACK_PYTHON) -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/pip install -q --upgrade pip
	# cbor2 6 and pyOpenSSL 26 break localstack-core 2026.3 at start-up.
	$(LOCALSTACK_VENV)/bin/pip install -q "localstack-core[runtime]==$(LOCALSTACK_VERSION)" "cbor2<6" "pyopenssl<26"
	rm -f $(LOCALSTACK_VENV)/.installed-* && touch $@

localstack-venv: $(LOCALSTACK_VENV)/.installed-$(LOCALSTACK_VERSION)

# S3 and SQS on http://127.0.0.1:$(LOCALSTACK_PORT) in the foreground. hypercorn: the default
# twisted gateway binds 0.0.0.0 whatever GATEWAY_LISTEN says.
localstack: localstack-venv
	GATEWAY_SERVER=hypercorn GATEWAY_LISTEN=127.0.0.1:$(LOCALSTACK_PORT) LOCALSTACK_HOST=127.0.0.1:$(LOCALSTACK_PORT) \
		SERVICES=s3,sqs SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
		exec $(LOCALSTACK_VENV)/bin/python -m localstack.runtime.main

# `make dev` with S3 and SQS on the LocalStack that `make localstack` runs (another terminal).
dev-localstack: venv
	AWS_ENDPOINT_URL=http://127.0.0.1:$(LOCALSTACK_PORT) AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
		PORT=$(PORT) $(PY) -m infra.local
