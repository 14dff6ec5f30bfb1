# The README's two commands are `make demo` and `make test`; both work on a fresh machine.
# `make test` installs what the tests need (Python packages; servers and the Kubernetes
# test-cluster binaries through the fragments in mk/) and then runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Fragments in mk/ append to TEST_DEPS the targets that install test prerequisites.
TEST_DEPS :=

.PHONY: install demo explain test lint unit bench clean
.DEFAULT_GOAL := demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

-include mk/*.mk

demo: install
	$(BIN)/autoscaler simulate examples/llm-serving.yaml --report out/demo

explain: install
	$(BIN)/autoscaler explain examples/llm-serving.yaml --pool llm-chat \
	  --signal queue=120 --signal in_flight=64 --signal arrival_rate=12 \
	  --signal service_seconds=10 --signal gpu_utilization=0.97 --signal held=0 --replicas 8

# ruff, mypy, and the import contracts in pyproject.toml (layers and seams).
lint: install
	$(BIN)/ruff check autoscaler policies tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install
	$(BIN)/python -m pytest tests/unit

test: lint $(TEST_DEPS)
	$(BIN)/python -m pytest

bench: install servers
	$(BIN)/python bench/decide.py
	$(BIN)/python bench/sim_speed.py
	$(BIN)/python bench/policy_quality.py
	$(BIN)/python bench/signals.py
	$(BIN)/python bench/readme.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
