# Two commands on a fresh machine with Python 3.11+ and make: `make run` and `make test`.
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
# The data directory: DATA_DIR given to make (`make dev DATA_DIR=/srv/jc/data`), else ./data. Not read from the
# environment: it is a generic name other tools set, and a stray one had `make run` write the demo state there.
ifeq ($(origin DATA_DIR),environment)
$(warning DATA_DIR=$(DATA_DIR) in the environment is not read; give it to make instead: make <target> DATA_DIR=...)
endif
DATA_DIR := data
DATA_ABS := $(abspath $(DATA_DIR))
# Empty counts as not set, from the environment or the command line (`?=` kept an empty one: `make dev` then failed
# on `mkdir -p` with no folder, and `make run` passed it on).
ifeq ($(strip $(DAGSTER_HOME)),)
override DAGSTER_HOME := $(DATA_ABS)/pipeline/dagster_home
endif
export DAGSTER_HOME

.PHONY: venv run test dev bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.cfg
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jc_pipeline needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	@touch $@

## run: install, write the demo state (first time only), run the whole pipeline, say where to look
run: venv
	@test -f $(DATA_DIR)/agencies.csv || $(BIN)/jc-pipeline demo-data --data-dir $(DATA_DIR)
	$(BIN)/jc-pipeline run --data-dir $(DATA_DIR)

## test: install and run the whole test suite (slow end-to-end tests included)
test: venv
	$(BIN)/python -m pytest

## dev: the Dagster UI with schedules, sensors and the daemon, on the same instance as `jc-pipeline run`
##      (the nightly schedule and the sensors start RUNNING; docs/operations.md). Ctrl-C stops everything.
DEV_HOST ?= 127.0.0.1
DEV_PORT ?= 3000
dev: venv
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp jc_pipeline/instance/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@echo "Dagster UI: http://$(DEV_HOST):$(DEV_PORT)  (instance $(DAGSTER_HOME), data $(DATA_ABS))"
	@# Started in the instance's folder: from the repo root, dagster dev warns that the root's dagster.yaml (kept for a
	@# plain `dagster dev` there) is not the instance's.
	cd $(DAGSTER_HOME) && DAGSTER_HOME="$$(pwd -P)" JC_DATA_DIR=$(DATA_ABS) $(abspath $(BIN))/dagster dev \
		-w $(CURDIR)/workspace.yaml -h $(DEV_HOST) -p $(DEV_PORT)

## bench: the benchmark suite (ratios against DuckDB reading the same files)
bench: venv
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) $(DATA_DIR)/pipeline $(DATA_DIR)/warehouse.duckdb $(DATA_DIR)/reports
