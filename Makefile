# tinyvmaf: `make run` (set up + run the pipeline on the demo corpus), `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
export MLFLOW_ALLOW_FILE_STORE ?= false

.PHONY: setup system-deps run test lint bench bench-full params ui corpus loco stress check-lock release readme push

setup: $(STAMP)

# pip compiles bytecode on one core (~50 s of the install); compileall on all cores takes ~25 s. A file
# that does not compile (a package's Python-2 leftovers) only stays uncompiled, as pip would leave it.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -r requirements.lock
	$(BIN)/python -m pip install -q --no-compile --no-deps -e .
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true
	touch $(STAMP)

# The demo corpus is built only when data/ is absent; a real corpus comes from
# `dvc pull` (a team remote) or your own files plus data/manifest.csv.
data/manifest.csv: | $(STAMP)
	tinyvmaf corpus demo data

corpus: data/manifest.csv

# The pipeline, then the gated model into the MLflow Model Registry (its own step: a stage
# restored from the run-cache does not run, so registration cannot live inside one).
# `tinyvmaf repro` is `dvc repro` with independent stages at once (the students side by side), each
# stage still reproduced by DVC: the same dvc.lock and outputs as `dvc repro`, in less wall time.
# REPRO_JOBS: stages at once (default: one more than the cores available).
run: setup corpus
	tinyvmaf repro $(if $(REPRO_JOBS),-j $(REPRO_JOBS))
	tinyvmaf model promote

# Debian's chromium + chromedriver for the MLflow UI browser test (idempotent).
system-deps:
	bash scripts/install-system-deps.sh

# Two pytest-xdist workers, a test module at a time to whichever is free, the slowest modules first
# (tests/conftest.py's XDIST_FIRST; expensive session fixtures are built once per run, tests/once.py).
# One file alone runs as always: `.venv/bin/python -m pytest -q tests/gate/test_gate.py`.
test: setup system-deps
	$(BIN)/ruff check src tests benchmarks train.py
	$(BIN)/python -m pytest -q -n 2 --dist loadscope --no-loadscope-reorder --durations=20 tests

lint: setup
	$(BIN)/ruff check src tests benchmarks train.py
	$(BIN)/ruff format --check src tests benchmarks train.py

# Leave-one-content-out over the corpus: one retraining per content (slow; not part of `make run`).
# Writes loco/<teacher>.json for every student (commit them); `dvc repro` puts them in the model cards.
loco: setup corpus
	dvc repro label
	for s in $$($(BIN)/python -c "import yaml; print(' '.join(yaml.safe_load(open('params.yaml'))['students']))"); do \
		tinyvmaf eval --loco --student $$s || exit 1; done
	dvc repro

# The queued-sweep path (`tinyvmaf queue`) ten times in a row, each with new experiments.
stress: setup
	TINYVMAF_STRESS_ROUNDS=10 $(BIN)/python -m pytest -q tests/pipeline/test_experiments.py -k queued

# A fresh clone runs the pipeline and must leave git clean: the committed dvc.lock is reproducible.
check-lock:
	bash scripts/check-lock.sh

# Copy the gated model into the package (src/tinyvmaf/packaged); review and commit it yourself.
release: setup
	tinyvmaf model release

# Speed, measured as ratios against a baseline run side by side (benchmarks/README.md).
bench: setup
	$(BIN)/python benchmarks/run.py

bench-full: setup
	$(BIN)/python benchmarks/run.py --full

params: setup
	tinyvmaf params

# The README's pipeline figures (its `<!-- tinyvmaf:NAME begin -->` blocks) from the committed metrics/*.json:
# run after `dvc repro` (and `make loco`), then commit README.md with them. `--check` is what the test runs.
readme: setup
	$(BIN)/python -m tinyvmaf.report readme

# `dvc push --run-cache` plus the committed (cache: false) outs the run-cache names, which DVC leaves out.
push: setup
	$(BIN)/python -m tinyvmaf.experiments.runcache

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000
