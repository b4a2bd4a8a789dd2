# pov_pipeline — `make demo` sets everything up and runs the pipeline; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export DAGSTER_HOME := $(CURDIR)/.dagster_home
export DAGSTER_DISABLE_TELEMETRY := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo demo-paper test test-fast bench ui lint format clean validate services

# torch is pinned to the local CPU wheel: any other spec pulls gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,s3]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/pov demo

# Its own lake and Dagster instance: an instance's metadata describes one lake.
demo-paper: install
	mkdir -p build/paper_lake/.dagster_home
	DAGSTER_HOME=$(CURDIR)/build/paper_lake/.dagster_home $(VENV)/bin/pov --lake build/paper_lake demo --size paper

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

$(VENV)/.bench-installed: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]' torch==2.13.0
	touch $@

# The paper-size demo lake is what the training benchmark times (and is reused if up to date).
bench: $(VENV)/.bench-installed demo-paper
	$(PY) benchmarks/run_all.py

ui: install
	$(VENV)/bin/dagster dev --host 127.0.0.1 --port 3000 -w workspace.yaml

# PostgreSQL server binaries for the Postgres-backed instance tests (Debian package).
services:
	bash deploy/ci/install_services.sh

validate: install
	$(VENV)/bin/dagster definitions validate -w workspace.yaml

lint: install
	$(VENV)/bin/ruff check pov_pipeline pov_pipeline_tests benchmarks deploy
	$(VENV)/bin/ruff format --check pov_pipeline pov_pipeline_tests benchmarks deploy

format: install
	$(VENV)/bin/ruff format pov_pipeline pov_pipeline_tests benchmarks deploy
	$(VENV)/bin/ruff check --fix pov_pipeline pov_pipeline_tests benchmarks deploy

clean:
	rm -rf data_lake/tables data_lake/landing data_lake/study data_lake/cache data_lake/models \
	       data_lake/reports data_lake/pov.duckdb .dagster_home/storage .dagster_home/history \
	       .dagster_home/schedules .dagster_home/logs
