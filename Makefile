# authml: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
AUTHML := $(PY) -m authml
# The exact CPU wheel on the build machines; a looser pin downloads a multi-GB CUDA build.
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= .authml-demo
# make demo reports how many injected attacks rank among this many top alerts.
DEMO_TOP ?= 50

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[dev,train]'
	touch $@

install: $(VENV)/.installed ## create .venv and install authml with its train and dev extras

test: install ## run the whole test suite (integration tests skip when no Docker engine answers)
	@# The report test opens the HTML in headless Chromium; install it where we can, never fail here.
	@if ! command -v chromedriver >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver for the report test"; \
	  { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; } || \
	  echo "could not install chromium; the browser test will skip and say why"; fi
	$(PY) -m pytest

lint: install ## ruff, and the offline checks of every asset
	$(VENV)/bin/ruff check authml tests benchmarks
	$(VENV)/bin/ruff format --check authml tests benchmarks
	$(AUTHML) assets fmt --check
	$(AUTHML) assets lock --check
	$(AUTHML) assets lint

demo: install ## end to end on the embedded engine with a generated, labelled scenario
	rm -rf $(DEMO_DIR)
	$(AUTHML) --project-dir $(DEMO_DIR) generate --users 50 --days 21 --seed 7 --attacks --out $(DEMO_DIR)/generated
	$(AUTHML) --project-dir $(DEMO_DIR) ingest $(DEMO_DIR)/generated/events.ndjson
	$(AUTHML) --project-dir $(DEMO_DIR) store summary
	$(AUTHML) --project-dir $(DEMO_DIR) features build
	@# Train on the generator's attack-free window only, then score everything.
	$(AUTHML) --project-dir $(DEMO_DIR) train --end "$$($(PY) -c 'import json,sys; print(json.load(open(sys.argv[1]))["training_window"]["end"][:10])' $(DEMO_DIR)/generated/scenario.json)"
	$(AUTHML) --project-dir $(DEMO_DIR) score
	$(AUTHML) --project-dir $(DEMO_DIR) report --out $(DEMO_DIR)/report.html --summary $(DEMO_TOP)

up: ## start Elasticsearch and Kibana from docker-compose.yml (needs .env and a Docker engine)
	docker compose up -d --wait

down: ## stop the stack
	docker compose down

bootstrap: install ## install every asset in es_assets/ into the cluster (URL and credentials from .env; the environment overrides)
	@set -euo pipefail; \
	if [ -f .env ]; then \
	  while IFS= read -r line || [ -n "$$line" ]; do \
	    case "$$line" in ''|\#*) continue;; esac; \
	    key="$${line%%=*}"; value="$${line#*=}"; value="$${value%\"}"; value="$${value#\"}"; \
	    if [ -z "$${!key+x}" ]; then export "$$key=$$value"; fi; \
	  done < .env; \
	else echo "no .env: using AUTHML_ES_* from the environment (copy .env.example to .env)"; fi; \
	export AUTHML_ES_URL="$${AUTHML_ES_URL:-http://localhost:$${ES_PORT:-9200}}"; \
	export AUTHML_KIBANA_URL="$${AUTHML_KIBANA_URL:-http://localhost:$${KIBANA_PORT:-5601}}"; \
	if [ -z "$${AUTHML_ES_API_KEY:-}" ] && [ -z "$${AUTHML_ES_PASSWORD:-}" ] && [ -n "$${ELASTIC_PASSWORD:-}" ]; then \
	  export AUTHML_ES_USERNAME=elastic AUTHML_ES_PASSWORD="$$ELASTIC_PASSWORD"; fi; \
	$(AUTHML) assets apply

.PHONY: help install test lint demo up down bootstrap
