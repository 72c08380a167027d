# Every way of running the platform, for people and CI alike. `make` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install up down status demo test fuzz lint clean compose-check k8s-render k8s-check scale-demo bench

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

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

fuzz: install ## fuzz the HTTP API with schemathesis; fails on any 5xx
	HYPOTHESIS_STORAGE_DIRECTORY=test-artifacts/hypothesis \
		$(BIN)/python -m pytest -q -o timeout=900 tests/fuzz/fuzz_api.py

lint: install ## ruff and mypy
	$(BIN)/ruff check shared services scripts tests
	$(BIN)/ruff format --check shared services scripts tests
	$(BIN)/mypy shared services

clean: down ## remove the local stack's data and logs, and its keys in Redis
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m scripts.stack forget; fi
	rm -rf .run

# --- deployment: docker-compose.yml, Dockerfile, k8s/ ---------------------------
# The validators come from PyPI (the `deploy` extra) and Debian (docker-compose);
# checkov gets a virtual environment of its own, as it pins boto3 and packaging
# below what the platform needs. None of them needs a Docker engine or a cluster.
DEPLOY_STAMP := $(VENV)/.deploy-installed
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_VERSION := 3.3.30
CHECKOV := $(CHECKOV_VENV)/bin/checkov
K8S_VERSIONS := 1.30.0 1.37.0
OVERLAY ?= dev
RENDERED := .run/k8s
# Stand-ins for the secrets that compose requires; compose-check also proves
# that each one missing stops compose.
COMPOSE_SECRETS := ADMIN_API_KEY PSEUDONYM_KEY S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY
# An empty env file, so that a developer's .env does not stand in for a missing secret.
COMPOSE_ENV_FILE := .run/compose-check.env
COMPOSE_CONFIG := docker-compose --env-file $(COMPOSE_ENV_FILE) -f docker-compose.yml config -q

$(DEPLOY_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[deploy]'
	touch $(DEPLOY_STAMP)

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'

compose-check: $(DEPLOY_STAMP) ## validate docker-compose.yml and the Dockerfile (no engine needed)
	@command -v docker-compose >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	@mkdir -p $(dir $(COMPOSE_ENV_FILE)) && : > $(COMPOSE_ENV_FILE)
	env $(foreach s,$(COMPOSE_SECRETS),$(s)=compose-check-stand-in-value) $(COMPOSE_CONFIG)
	@for missing in $(COMPOSE_SECRETS); do \
	  others=""; for name in $(COMPOSE_SECRETS); do \
	    [ "$$name" = "$$missing" ] || others="$$others $$name=compose-check-stand-in-value"; done; \
	  if error=$$(env -u $$missing $$others $(COMPOSE_CONFIG) 2>&1); then \
	    echo "docker-compose.yml starts without $$missing"; exit 1; fi; \
	  case "$$error" in *"set $$missing"*) ;; \
	    *) echo "docker-compose.yml failed without $$missing, but not for it: $$error"; exit 1;; esac; \
	  echo "docker-compose.yml refuses to start without $$missing"; done
	$(BIN)/hadolint Dockerfile
	@echo "compose-check: docker-compose.yml and Dockerfile are valid"

k8s-render: ## print the manifests of overlay OVERLAY=dev|prod
	@$(MAKE) --silent --no-print-directory $(DEPLOY_STAMP) >&2
	@$(BIN)/kubectl kustomize k8s/overlays/$(OVERLAY)

k8s-check: $(DEPLOY_STAMP) $(CHECKOV) ## render both overlays, check schemas, the platform's needs, checkov
	mkdir -p $(RENDERED)
	$(BIN)/kubectl kustomize k8s/overlays/dev > $(RENDERED)/dev.yaml
	$(BIN)/kubectl kustomize k8s/overlays/prod > $(RENDERED)/prod.yaml
	$(BIN)/python k8s/validate.py $(RENDERED)/dev.yaml $(RENDERED)/prod.yaml \
	  --template k8s/secret.template.yaml $(foreach v,$(K8S_VERSIONS),--kubernetes-version $(v))
	LOG_LEVEL=ERROR $(CHECKOV) --config-file k8s/checkov.yaml --framework kubernetes dockerfile \
	  --file $(RENDERED)/dev.yaml --file $(RENDERED)/prod.yaml --file k8s/secret.template.yaml \
	  --file Dockerfile
	LOG_LEVEL=ERROR $(CHECKOV) --config-file k8s/checkov.yaml --framework secrets \
	  --directory k8s --file docker-compose.yml --file Dockerfile
	@echo "k8s-check: both overlays render and pass the schemas, the platform's checks and checkov"

scale-demo: install ## drain 40 training jobs with 1, 2 and 4 workers; print jobs per minute
	$(BIN)/python -m scripts.scale_demo

# The benchmark's own environment: MLflow is what we are measured against, not
# something the platform depends on. Its scikit-learn, numpy and pandas are the
# platform's, so that it can load the very pipeline our training service fitted.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
MLFLOW_VERSION := 3.17.2

$(BENCH_STAMP): $(STAMP)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet 'mlflow==$(MLFLOW_VERSION)' \
	  $$($(BIN)/python -c "from importlib.metadata import version as v; \
	  print(' '.join(f'{p}=={v(p)}' for p in ('scikit-learn', 'numpy', 'pandas', 'scipy', 'joblib')))")
	touch $(BENCH_STAMP)

bench: install $(BENCH_STAMP) ## gateway vs `mlflow models serve`, side by side; JSON last line
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m scripts.bench
