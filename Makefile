# tinyvmaf: `make run` (set up + run the pipeline on the demo corpus), `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
export MLFLOW_ALLOW_FILE_STORE ?= false

.PHONY: setup system-deps run test lint bench params ui corpus

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# The demo corpus is built only when data/ is absent; a real corpus comes from
# `dvc pull` (a team remote) or your own files plus data/manifest.csv.
data/manifest.csv: | $(STAMP)
	tinyvmaf corpus demo data

corpus: data/manifest.csv

run: setup corpus
	dvc repro

# Debian's chromium + chromedriver for the MLflow UI browser test (idempotent).
system-deps:
	bash scripts/install-system-deps.sh

test: setup system-deps
	$(BIN)/ruff check src tests benchmarks train.py
	$(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check src tests benchmarks train.py
	$(BIN)/ruff format --check src tests benchmarks train.py

# Speed targets, measured as ratios against a baseline run side by side.
bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

params: setup
	tinyvmaf params

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000
