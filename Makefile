# Every target sets itself up: on a fresh machine `make demo` and `make test` are all you need.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Tests run in this many processes (pytest-xdist); each test has its own databases and folders.
TEST_WORKERS ?= 2

.PHONY: setup demo test lint format services ui bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0  # the CPU build, before anything can ask for a CUDA one
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## Create .venv and install the platform with its dev tools

demo: setup  ## Write the demo data and materialize every demo pipeline on the embedded default
	$(BIN)/etl demo

test: setup services  ## Check the import contracts (lint-imports, pyproject.toml), then run the whole test suite against the machine's real services
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: setup  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

services:  ## Start PostgreSQL, MariaDB, Redis, RabbitMQ and NATS if one is down
	bash .ci/services.sh

ui: setup  ## Open the Dagster UI on the embedded instance
	$(BIN)/etl ui

bench: setup services  ## Benchmarks: load throughput, file-arrival latency, dedup against splink, anomaly detection
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_latency.py
	$(BIN)/python benchmarks/bench_dedup.py
	$(BIN)/python benchmarks/bench_anomaly.py

clean:
	rm -rf data .dagster_home benchmarks/out dbt_project/target dbt_project/logs
