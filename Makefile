# plantctl: two commands on a fresh Debian machine with Python 3.11
#   make demo   simulator + controller + HMI on embedded defaults
#   make test   everything the tests need (Python and Debian packages), then every test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEB_PACKAGES := mbpoll chromium chromium-driver victoria-metrics
NODE_DIR := tests/interop/node

.PHONY: demo test test-long lint typecheck deps deps-debian deps-node bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml requirements.lock
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

deps: $(STAMP)

# Debian packages the tests need. Installed only when missing and only as root;
# otherwise the tests that need them fail with a message naming the package.
deps-debian:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (run 'sudo apt-get install$$missing')"; \
	  fi; \
	fi

# The non-Python OPC-UA client used by the interoperability test (npm registry only).
deps-node: $(NODE_DIR)/node_modules/.installed
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: deps deps-debian deps-node
	$(PY) -m ruff check plantctl sequences sim_plc hmi tests
	$(PY) -m mypy
	$(PY) -m pytest -q

test-long: deps deps-debian deps-node
	$(PY) -m pytest -q -m long

demo: deps
	$(PY) -m plantctl demo

# Figures next to their targets (docs/performance.md); quick 60 s runs, BENCH_ARGS=--full for 10 min.
bench: deps deps-debian
	$(PY) -m bench $(BENCH_ARGS)

lint: deps
	$(PY) -m ruff check plantctl sequences sim_plc hmi tests

typecheck: deps
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
