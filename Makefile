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

# What is being installed is said first, and counted after: a fresh install takes minutes.
# `make PIP_QUIET= install` shows pip's own progress.
PIP_QUIET ?= --quiet

$(STAMP): pyproject.toml
	@echo "make: installing elastic-autoscaler and its dev extras into $(VENV) with pip" \
	  "(numpy, matplotlib, boto3, kubernetes; for the tests ray, optuna, playwright, moto, ...;" \
	  "a few minutes on a fresh machine;" \
	  "make PIP_QUIET= install shows pip's progress)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip
	$(BIN)/python -m pip install $(PIP_QUIET) -e '.[dev]'
	@echo "make: $$($(BIN)/python -m pip list --format=freeze 2>/dev/null | wc -l) packages" \
	  "in $(VENV); $$($(BIN)/autoscaler --version)"
	touch $(STAMP)

install: $(STAMP)

-include mk/*.mk

demo: install
	@echo "make demo: replaying the bundled Azure LLM trace through examples/llm-serving.yaml" \
	  "and the baselines; the HTML report goes to out/demo/index.html"
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
