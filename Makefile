# Everything runs from the project's own virtual environment; make never relies on an activated shell.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PYTHONPATH := tests

# aws-sam-cli pins boto3 below functions/requirements.txt, and checkov pins packaging<24, which pytest cannot share:
# each lives in its own virtual environment, installed on first use.
SAM_VENV      := .venv-sam
SAM           := $(SAM_VENV)/bin/sam
CHECKOV_VENV  := .venv-checkov
SAM_STAMP     := $(SAM_VENV)/.installed
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
export SAM_CLI_TELEMETRY := 0

.PHONY: install test lint build unit integration demo dev bench reliability conformance openapi clean

install: $(STAMP)

$(STAMP): pyproject.toml functions/requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
	touch $(STAMP)

$(SAM_STAMP): requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

$(CHECKOV_STAMP): requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

lint: install $(SAM_STAMP) $(CHECKOV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(SAM) validate --lint --region us-east-1
	$(SAM_VENV)/bin/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --quiet --compact

# sam build needs the runtime's Python (python3.13) on PATH: found there, or among pyenv's versions.
# Lambda's /var/task is read-only, so whatever is not shipped as bytecode is compiled on every cold start: the
# built code (package and dependencies) is compiled with that Python, hash-based (`sam deploy` dates every file
# 1980-01-01 in its zip, which would make timestamp-based .pyc stale), checked against the source's hash so that
# a .pyc can never stand for other source than its own.
build: install $(SAM_STAMP)
	@py313="$$(sh tests/packaging/find-python3.13)" || { \
		echo "make build: sam build needs Python 3.13 (the functions' runtime, python3.13) on PATH; none found there or in pyenv." >&2; \
		exit 1; }; \
	echo "make build: sam build with $$py313"; \
	PATH="$$(dirname "$$py313"):$$PATH" $(SAM) build && \
	"$$py313" -m compileall -q -f -j 0 --invalidation-mode checked-hash .aws-sam/build/*Function && \
	$(PY) tests/packaging/check_build.py --python "$$py313"

test: lint
	$(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

integration: install
	$(PY) -m pytest tests/integration

demo: install
	$(PY) -m devstack.demo

dev: install
	$(PY) -m devstack.dev

bench: install
	$(PY) -m devstack.bench

# The reliability suite in full (crash matrix, load with duplicates, fuzzing, rate limits, secret scan);
# `make test` runs it at a reduced scale.
reliability: install
	$(PY) -m reliability --scale full

# Checks the simulator against a record of the real service: `assets-attach doctor --live --record FILE` on a site.
conformance: install
	@test -n "$(RECORD)" || { echo "usage: make conformance RECORD=FILE (written by assets-attach doctor --live --record FILE)" >&2; exit 2; }
	$(PY) -m devstack.conformance "$(RECORD)"

# openapi.json, generated from the models the webhook validates and answers with (a unit test compares them).
openapi: install
	PYTHONPATH=functions $(PY) -m assets_attach.api_document > openapi.json

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .mypy_cache .pytest_cache .ruff_cache
