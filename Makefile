# Every way of running the platform, for people and CI alike. `make` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install up down status demo test lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install the project with its test tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: install ## start SeaweedFS, Redis (if none answers), the gateway and the workers
	$(BIN)/python -m scripts.stack up

down: ## stop what `make up` started
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m scripts.stack down; fi

status: ## show the processes `make up` started
	$(BIN)/python -m scripts.stack status

demo: up ## train, evaluate, promote and query a model on real chemistry results
	$(BIN)/python -m scripts.demo

test: install ## run the unit and integration tests against real Redis and SeaweedFS
	$(BIN)/python -m pytest -q

lint: install ## ruff and mypy
	$(BIN)/ruff check shared services scripts tests
	$(BIN)/ruff format --check shared services scripts tests
	$(BIN)/mypy shared services

clean: down ## remove the local stack's data and logs
	rm -rf .run
