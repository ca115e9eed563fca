# The README's two commands: `make run` and `make test`. Everything else is for contributors.
SHELL := /bin/bash
# The first Python >= 3.11 on PATH (pyenv shims that are not activated fail the check quietly).
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for p in python3.12 python3.11 python3.13 python3; do $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && echo $$p && break; done)
endif
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= --quiet --disable-pip-version-check
STAGE ?= dev

.PHONY: run test gates style train backtest training-source unit integration lint typecheck validate bench build deploy clean reset

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip

# One stamp per extra, refreshed whenever pyproject.toml changes.
$(VENV)/.local-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e ".[local]"
	@touch $@

$(VENV)/.training-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e ".[local,training]"
	@touch $@ $(VENV)/.local-installed

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev]"
	@touch $@ $(VENV)/.local-installed $(VENV)/.training-installed

# checkov in a venv of its own (it pins boto3 and packaging, which .venv's tools need at other versions);
# tests/template/test_checkov.py runs it. The stamp names the version, so a bump reinstalls.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP): | $(BIN)/python
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required"; exit 1; }
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install $(PIP_FLAGS) "checkov==$(CHECKOV_VERSION)"
	@touch $@

.PHONY: checkov
checkov: $(CHECKOV_STAMP)  ## checkov over template.yaml and iac/*.yaml, offline (the test also scans the translated template)
	BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE $(CHECKOV_VENV)/bin/checkov --framework cloudformation --skip-download --quiet --compact -f template.yaml $(addprefix -f ,$(wildcard iac/*.yaml))

run: $(VENV)/.local-installed  ## one real decision cycle, offline
	$(BIN)/ffe run

test: gates $(CHECKOV_STAMP)  ## the gates, then the whole suite (unit, state machine, template, API, integration, e2e)
	$(BIN)/pytest -n auto --dist loadfile -q

# What `make test` runs before any test, in this order, stopping at the first failure.
gates: style typecheck

style: $(VENV)/.dev-installed  ## ruff's lint rules and its formatting, checked (never rewritten)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

train: $(VENV)/.training-installed  ## regime mixtures + meta-controller from the bundled data, into MLflow
	$(BIN)/ffe train

backtest: $(VENV)/.training-installed  ## the champion against the naive router and every strategy, held-out data
	$(BIN)/ffe backtest --asset EURUSD
	$(BIN)/ffe backtest --asset SPX

training-source:  ## build/training/: what a SageMaker training job runs (script mode source_dir)
	rm -rf build/training && mkdir -p build/training
	cp -r layers/core/ffe build/training/ffe
	find build/training -name __pycache__ -prune -exec rm -rf {} +
	cat layers/core/requirements.txt layers/core/requirements-training.txt > build/training/requirements.txt

unit: $(VENV)/.dev-installed  ## tests/unit: no PostgreSQL, no moto (neither is even imported)
	$(BIN)/pytest -n auto --dist loadfile -q tests/unit

integration: $(VENV)/.dev-installed  ## everything else: the embedded PostgreSQL and/or moto
	$(BIN)/pytest -n auto --dist loadfile -q tests --ignore=tests/unit

lint: style $(VENV)/.dev-installed
	$(BIN)/cfn-lint template.yaml iac/*.yaml

typecheck: $(VENV)/.dev-installed  ## mypy over ffe, functions, gpu_inference and tests ([tool.mypy] in pyproject.toml)
	$(BIN)/mypy

validate: lint  ## what `sam validate --lint` checks, without the SAM CLI
	$(BIN)/python -c "from ffe.local.template import translate, project_root; translate(project_root(), {'Stage': '$(STAGE)', 'DatabaseSecretArn': ''}); print('template.yaml translates')"

bench: $(VENV)/.dev-installed  ## figures, never assertions
	$(BIN)/python bench/bench_decision.py
	$(BIN)/python bench/bench_cycle.py
	$(BIN)/python bench/bench_providers.py
	$(BIN)/python bench/bench_store.py
	$(BIN)/python bench/bench_risk.py
	$(BIN)/python bench/bench_assignment.py
	$(BIN)/python bench/bench_gate_step.py
	$(BIN)/python bench/bench_paper.py
	$(BIN)/python bench/bench_mlflow.py
	$(BIN)/python bench/bench_backtest.py
	PYTHONPATH=layers/core:. $(BIN)/python bench/bench_inference.py
	$(BIN)/python bench/bench_cold_start.py
	$(BIN)/python bench/bench_decision_path.py
	$(BIN)/python bench/bench_durations.py
	$(BIN)/python bench/bench_rate_limit.py
	$(BIN)/python bench/bench_batch.py
	$(BIN)/python bench/bench_scaling.py 10 100 1000
	PYTHONPATH=. $(BIN)/python bench/bench_promotion_gate.py

build:  ## needs the AWS SAM CLI, make and python3.12 with pip (each layer's Makefile builds it: docs/performance.md)
	sam build --config-env $(STAGE)
	@du -sm .aws-sam/build/*Layer | awk '{print "  " $$2 ": " $$1 " MB unzipped (budget 80 MB each, 250 MB per function)"}'

deploy: build  ## STAGE=dev|staging|prod
	sam deploy --config-env $(STAGE)

.PHONY: localstack-run
localstack-run:  ## deploy template.yaml into a running LocalStack (LOCALSTACK_ENDPOINT, DATABASE_URL) and run one cycle: docs/localstack.md
	scripts/localstack-run.sh $(LOCALSTACK_FLAGS)

.PHONY: image
image:  ## STAGE=dev|staging|prod: build gpu_inference/Dockerfile, push ffe-<stage>-inference:<git sha> to ECR, print InferenceImageUri
	scripts/push-image.sh --stage $(STAGE) $(IMAGE_FLAGS)

reset: $(VENV)/.local-installed
	$(BIN)/ffe reset

clean:
	rm -rf $(VENV) .aws-sam .ffe
