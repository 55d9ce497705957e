# gridgov — `make` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration test-e2e test-api lint catalogue dashboards bench clean

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

dashboards: $(STAMP) ## regenerate deploy/grafana/dashboards/*.json from deploy/grafana/dashboards.py
	$(BIN)/python deploy/grafana/dashboards.py

bench: $(STAMP) ## measure locate, relay and the petition loop against their baselines; writes bench-results.json
	$(BIN)/python -m bench

clean: ## remove the virtualenv, demo data and caches
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache bench-results.json
