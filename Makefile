# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test bench screenshots clean

$(BIN)/dagbridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/dagbridge

## The whole stack on this machine (Temporal, Kafka, a worker, the bridge) running the example DAG.
run: install
	$(BIN)/dagbridge dev --demo

## Lint, format check, types, then the whole test suite against real Temporal and Kafka servers it starts itself.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

## Latency and throughput figures, next to a plain-Temporal baseline measured in the same run.
bench: install
	$(BIN)/python benchmarks/benchmark.py

## Screenshots of DAG runs in the Temporal UI (headless Chromium: apt-get install -y chromium) into docs/images.
screenshots: install
	$(BIN)/python scripts/screenshot_temporal_ui.py docs/images

clean:
	rm -rf $(VENV) .pytest_cache
