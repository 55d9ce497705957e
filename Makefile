# gridgov — `make` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit test-integration test-e2e test-api lint catalogue dashboards bench lock stack-files stack-check clean k8s-check k8s-rules

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# A new package (a service added since the last install) needs the editable install again.
$(STAMP): pyproject.toml $(wildcard libs/*/__init__.py services/*/__init__.py)
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
	$(BIN)/ruff check libs services tests bench k8s/tools deploy
	$(BIN)/mypy libs/gridkit

catalogue: $(STAMP) ## regenerate docs/events/asyncapi.json from the event declarations
	@mkdir -p docs/events
	$(BIN)/gridgov catalogue -o docs/events/asyncapi.json

dashboards: $(STAMP) ## regenerate deploy/grafana/dashboards/*.json from deploy/grafana/dashboards.py
	$(BIN)/python deploy/grafana/dashboards.py

bench: $(STAMP) ## measure locate, relay and the petition loop against their baselines; writes bench-results.json
	$(BIN)/python -m bench

lock: $(STAMP) ## re-pin the image's dependencies from pyproject.toml into deploy/requirements.lock (hashed)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --build-deps-for=wheel \
	  --no-emit-index-url --no-emit-find-links --output-file=deploy/requirements.lock pyproject.toml

stack-files: $(STAMP) ## rewrite the compose stack's per-service files (RabbitMQ users, databases, scrape targets) from the registry
	$(BIN)/python deploy/stack_files.py

stack-check: $(STAMP) ## build the image, bring docker-compose.yml up on local stand-ins, run the first session, tear down (podman)
	deploy/ci/stack-check.sh

# Kubernetes manifests (k8s/): validated with tools of their own, in a virtualenv of their own.
# CI keeps it outside its fresh clone (DEPLOY_VENV=~/.cache/…, .ci/run), so the stamp is named
# after the requirements' content rather than compared by date: a clone's files are all new.
DEPLOY_VENV  ?= .venv-deploy
DEPLOY_BIN   := $(DEPLOY_VENV)/bin
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed-$(shell sha256sum k8s/requirements.txt | cut -c1-16)
K8S_BUILD    := build/k8s
K8S_OVERLAYS := dev prod

$(DEPLOY_STAMP):
	rm -rf $(DEPLOY_VENV)
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_BIN)/pip install --quiet --upgrade pip
	$(DEPLOY_BIN)/pip install --quiet -r k8s/requirements.txt
	@touch $(DEPLOY_STAMP)

k8s-check: $(DEPLOY_STAMP) ## render every k8s overlay; validate it (Kubernetes 1.30 and 1.37 schemas, operators' CRDs) and scan it (checkov)
	@rm -rf $(K8S_BUILD) && mkdir -p $(K8S_BUILD)
	@for overlay in $(K8S_OVERLAYS); do \
	  echo "kubectl kustomize k8s/overlays/$$overlay > $(K8S_BUILD)/$$overlay.yaml"; \
	  $(DEPLOY_BIN)/kubectl kustomize k8s/overlays/$$overlay > $(K8S_BUILD)/$$overlay.yaml || exit 1; \
	done
	$(DEPLOY_BIN)/kubernetes-validate --strict --quiet --no-warn -k 1.30 $(K8S_BUILD)/*.yaml
	$(DEPLOY_BIN)/kubernetes-validate --strict --quiet --no-warn -k 1.37 $(K8S_BUILD)/*.yaml
	$(DEPLOY_BIN)/python k8s/tools/check_crs.py $(K8S_BUILD)/*.yaml
	BC_SKIP_MAPPING=TRUE $(DEPLOY_BIN)/checkov --config-file k8s/checkov.yaml -d $(K8S_BUILD)
	$(DEPLOY_BIN)/python k8s/tools/prometheusrule.py --check

k8s-rules: $(DEPLOY_STAMP) ## regenerate k8s/overlays/prod/platform/prometheusrule.yaml from deploy/prometheus/rules/gridgov.rules.yml
	$(DEPLOY_BIN)/python k8s/tools/prometheusrule.py

clean: ## remove the virtualenvs, demo data, rendered manifests and caches
	rm -rf $(VENV) $(DEPLOY_VENV) $(K8S_BUILD) .tools data .pytest_cache .ruff_cache .mypy_cache bench-results.json
