# labup developer tasks. `make install` sets everything up from nothing (Python venv, labup, test
# tools, the real helm binaries the tests drive), without root and without the system's package
# manager; `make test` runs the whole suite (it checks the system tools its network tests need).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HELM_DIR := .tools/helm

.PHONY: install test-tools test lint bench demo clean

install: $(BIN)/labup $(HELM_DIR)/4.1.4/helm $(HELM_DIR)/3.17.3/helm

# the tests use strace (proving dry-runs send nothing), iproute2 (network namespaces), unshare and
# setpriv (util-linux): checked here, never installed behind your back (.ci/run installs them in CI)
test-tools:
	@missing=""; for tool in strace ip unshare setpriv; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	  if [ -n "$$missing" ]; then echo "make test needs:$$missing (Debian: apt-get install strace iproute2 util-linux)"; exit 1; fi

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

test: install test-tools
	$(BIN)/ruff check src tests tools
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests tools

bench: install
	$(BIN)/python tools/bench.py
	$(BIN)/python tools/bench_lab.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache
