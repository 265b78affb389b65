# labup developer tasks. `make install` sets everything up from nothing (Python venv, labup, test
# tools, the real helm binaries the tests drive); `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HELM_DIR := .tools/helm

.PHONY: install system test lint bench demo clean

install: system $(BIN)/labup $(HELM_DIR)/4.1.4/helm $(HELM_DIR)/3.17.3/helm

# tests use strace (proving dry-runs send nothing) and iproute2 (network namespaces)
system:
	@command -v strace >/dev/null && command -v ip >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq strace iproute2; }

$(BIN)/labup: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(HELM_DIR)/4.1.4/helm $(HELM_DIR)/3.17.3/helm:
	$(BIN)/python tools/fetch_helm.py $(HELM_DIR)

# the README's first command: install, then labup's main job on the bundled example (offline plan)
demo: install
	$(BIN)/labup -c examples/lab.yaml apply --dry-run

test: install
	$(BIN)/ruff check src tests tools
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests tools

bench: install
	$(BIN)/python tools/bench.py
	$(BIN)/python tools/bench_lab.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache
