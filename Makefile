# gridgov — `make` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration test-e2e test-api lint catalogue bench lock stack-files stack-check clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install gridgov with its dev tools

run: $(STAMP) ## run every service embedded (no RabbitMQ/PostgreSQL needed), with a demo county
	$(BIN)/gridgov run

test: $(STAMP) ## every test: unit, integration and end-to-end (needs RabbitMQ + PostgreSQL on 127.0.0.1)
	$(PYTEST) -q tests

test-unit: $(STAMP) ## fast tests, no servers
	$(PYTEST) -q tests/unit

test-integration: $(STAMP) ## services against real PostgreSQL and RabbitMQ
	$(PYTEST) -q tests/integration

test-e2e: $(STAMP) ## each service as its own gunicorn process, plus schemathesis
	$(PYTEST) -q tests/e2e

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check libs services tests bench
	$(BIN)/mypy libs/gridkit

catalogue: $(STAMP) ## regenerate docs/events/asyncapi.json from the event declarations
	@mkdir -p docs/events
	$(BIN)/gridgov catalogue -o docs/events/asyncapi.json

bench: $(STAMP) ## measure locate, relay and the petition loop against their baselines; writes bench-results.json
	$(BIN)/python -m bench

lock: $(STAMP) ## re-pin the image's dependencies from pyproject.toml into deploy/requirements.lock (hashed)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --build-deps-for=wheel \
	  --no-emit-index-url --no-emit-find-links --output-file=deploy/requirements.lock pyproject.toml

stack-files: $(STAMP) ## rewrite the compose stack's per-service files (RabbitMQ users, databases, scrape targets) from the registry
	$(BIN)/python deploy/stack_files.py

stack-check: $(STAMP) ## build the image, bring docker-compose.yml up on local stand-ins, run the first session, tear down (podman)
	deploy/ci/stack-check.sh

clean: ## remove the virtualenv, demo data and caches
	rm -rf $(VENV) .tools data .pytest_cache .ruff_cache .mypy_cache bench-results.json
