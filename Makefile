# The two commands: `make demo` runs the operator's main job on a local control plane it starts
# itself; `make test` runs the whole test suite. Both install what they need on first use.
# `make e2e` (root) adds a real node, builds the image and runs tests/e2e against it (opt-in).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` / `make integration`: each starts its own control plane and
# operator; --dist loadfile keeps a file's tests on one worker (module fixtures start once). 0 = off.
# 4 on 2 cores: the tests mostly wait on the API server and on the operator's timers (the suite's
# CPU is ~1.5 cores busy at 4 workers); 2 workers took 8 min 27 s, 4 took 5 min 14 s (docs/operations.md).
JOBS ?= 4
XDIST  = $(if $(filter-out 0,$(JOBS)),-n $(JOBS) --dist loadfile)

.PHONY: demo test unit integration e2e bench lint deps system-deps node-deps binaries node-binaries clean

demo: deps binaries
	$(BIN)/certpolicy demo $(if $(KEEP),--keep)

# --durations=10: the ten slowest steps, printed at the end (CI's log shows where the time goes);
# -rs: every skipped test with its reason (a skip is not evidence: CI's log says which and why).
test: deps binaries
	$(BIN)/pytest $(XDIST) --durations=10 -rs $(PYTEST_ARGS)

unit: deps
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: deps binaries
	$(BIN)/pytest tests/integration $(XDIST) --durations=10 -rs $(PYTEST_ARGS)

# The e2e suite on a local node: containerd + kubelet + kube-proxy + controller-manager +
# scheduler, the operator image built from the Dockerfile and installed from manifests/.
e2e: deps binaries node-deps node-binaries
	CERTPOLICY_TEST_BACKEND=node $(BIN)/pytest tests/e2e -s $(PYTEST_ARGS)

# ruff (lint + import order) and mypy (strict for pki/, policy/, rotation/): pyproject.toml configures both.
lint: deps
	$(BIN)/ruff check operator tests benchmarks scripts
	$(BIN)/mypy

bench: deps binaries
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

deps: $(VENV)/.installed system-deps

system-deps:
	@scripts/install-system-deps.sh

# kube-apiserver and kubectl: built once from the Go module proxy, then cached (~/.cache/certpolicy);
# cert-manager's controller for the integration tests too (tests/tools/cert-manager-controller).
binaries: deps
	@$(BIN)/certpolicy local-cluster --build-only --cert-manager >/dev/null

node-deps:
	@scripts/install-system-deps.sh --node

# kubelet, kube-controller-manager, kube-scheduler, kube-proxy: same module, same cache.
node-binaries: deps
	@$(BIN)/certpolicy local-cluster --build-only --node >/dev/null

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache build *.egg-info operator/*.egg-info
