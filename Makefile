# Greenlight. The two commands a newcomer needs: `make demo` and `make test`.
# Both create or reuse the virtual environment .venv by themselves.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# aws-sam-cli pins boto3 and click: it lives in its own tool environment.
SAM_VENV ?= .tools/sam
SAM := $(SAM_VENV)/bin/sam
# checkov, the template's policy checks, in its own tool environment too.
CHECKOV := .tools/checkov/bin/checkov
# Tavern, a peer in the benchmark, in its own environment (it pins its own pytest).
TAVERN := .tools/tavern/bin/tavern-ci
AUTOCANNON := .tools/autocannon/node_modules/.bin/autocannon
export SAM_CLI_TELEMETRY = 0
export GREENLIGHT_SAM = $(abspath $(SAM))
export GREENLIGHT_CHECKOV = $(abspath $(CHECKOV))

# The Lambda build (sam build runs the build-<LogicalId> targets below).
LAMBDA_PLATFORM ?= manylinux2014_aarch64
LAMBDA_PYTHON_VERSION ?= 3.13

.PHONY: demo test test-under-load lint bench bench-build build clean venv tools lambda-artifact lock

demo: $(VENV)/.installed
	$(VENV)/bin/greenlight demo

# The tests, TEST_WORKERS at a time. No installed pytest plugin loads unless named here: a
# plugin in .venv (Schemathesis brings two) cannot change or slow the run.
TEST_WORKERS ?= 2
PYTEST := env PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(VENV)/bin/pytest -p xdist.plugin -n $(TEST_WORKERS)

test: $(VENV)/.installed $(SAM) $(CHECKOV)
	$(VENV)/bin/ruff check hooks tests bench test_suites
	$(VENV)/bin/ruff format --check hooks tests bench test_suites
	$(VENV)/bin/mypy
	$(PYTEST)

# The tests that start processes or measure time, again, with twice as many busy processes
# as cores: they must hold on a loaded machine (.ci/run runs this after make test).
test-under-load: $(VENV)/.installed $(SAM) $(CHECKOV)
	$(PY) .ci/under_load.py $(PYTEST) -m timing

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check hooks tests bench test_suites
	$(VENV)/bin/ruff format --check hooks tests bench test_suites
	$(VENV)/bin/mypy

bench: $(VENV)/.installed $(TAVERN) $(AUTOCANNON)
	$(PY) bench/run.py

# sam build's time and size against the five-build design it replaced (needs python3.13).
bench-build: $(VENV)/.installed $(SAM)
	$(PY) bench/build.py

build: $(SAM)
	$(SAM) build

# After a change to the dependencies in pyproject.toml: pin them again, with their hashes.
lock:
	$(PYTHON) .ci/lock.py

venv: $(VENV)/.installed
tools: $(SAM) $(CHECKOV)

# pip's lines that say what it fetches and what it installed (pipefail keeps pip's status).
PROGRESS := { grep -E --line-buffered '^(Collecting|Successfully installed)' || true; }

$(VENV)/.installed: pyproject.toml
	@echo "==> setting up $(VENV) (once: a minute or two; pip says what it installs)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	set -o pipefail; $(PY) -m pip install --progress-bar off -e '.[dev]' | $(PROGRESS)
	touch $@

$(TAVERN):
	test -x .tools/tavern/bin/python || $(PYTHON) -m venv .tools/tavern
	.tools/tavern/bin/pip install --quiet tavern "pytest<9"  # Tavern 3 imports _pytest.python_api
	test -x $(TAVERN)

# The load engine's peer in the bench, from npm, in a folder of its own.
$(AUTOCANNON):
	npm install --no-audit --no-fund --silent --prefix .tools/autocannon "autocannon@8"
	test -x $(AUTOCANNON)

$(SAM):
	@echo "==> installing aws-sam-cli into $(SAM_VENV) (once: several minutes; pip says what it installs)"
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	set -o pipefail; $(SAM_VENV)/bin/pip install --progress-bar off aws-sam-cli | $(PROGRESS)
	test -x $(SAM)

$(CHECKOV):
	@echo "==> installing checkov into .tools/checkov (once: a minute; pip says what it installs)"
	test -x .tools/checkov/bin/python || $(PYTHON) -m venv .tools/checkov
	set -o pipefail; .tools/checkov/bin/pip install --progress-bar off "checkov>=3.2,<4" | $(PROGRESS)
	test -x $(CHECKOV)

# ---- The Lambda layer: the hooks package and its runtime dependencies, built once ----
# sam build runs build-GreenlightLayer below once for the five hooks and the fail-safe; each
# function's own code is only its suites (CodeUri: test_suites/). The dependencies come from
# requirements-lambda.txt (`python3 .ci/lock.py` writes it from pyproject.toml), every wheel
# checked against its sha256: two builds from one commit hold the same bytes.
LAMBDA_LOCK := requirements-lambda.txt
LAYER_PATH ?= /opt/python
BUILD_TMP := $(shell mktemp -d -u /tmp/greenlight-build.XXXXXX)

lambda-artifact:
	test -n "$(ARTIFACTS_DIR)"
	mkdir -p $(BUILD_TMP) "$(ARTIFACTS_DIR)"
	$(PYTHON) -m pip install --quiet --no-deps --require-hashes --no-compile \
		--target "$(ARTIFACTS_DIR)" --platform $(LAMBDA_PLATFORM) --implementation cp \
		--python-version $(LAMBDA_PYTHON_VERSION) --only-binary=:all: --upgrade -r $(LAMBDA_LOCK)
	# The package itself, unpacked from its wheel (pip would record the wheel's temporary
	# path in direct_url.json, and the build would differ from one run to the next).
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(BUILD_TMP) .
	rm -rf "$(ARTIFACTS_DIR)/hooks" "$(ARTIFACTS_DIR)"/greenlight_hooks-*.dist-info
	$(PYTHON) -m zipfile -e $(BUILD_TMP)/greenlight_hooks-*.whl "$(ARTIFACTS_DIR)"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf "$(ARTIFACTS_DIR)/bin" $(BUILD_TMP)
	# The JSON Schemas compiled to Python once, here, rather than on every cold start.
	PYTHONPATH="$(ARTIFACTS_DIR)" $(PYTHON) -m hooks.core.validators "$(ARTIFACTS_DIR)/hooks/_validators" \
		hooks/gate/plan_schema.json hooks/suites/http/schema.json > /dev/null
	# Bytecode for the runtime's Python: /opt is read-only, so without it every cold
	# start compiles every module again. unchecked-hash: no timestamps (the same bytes on
	# every build), and the runtime never stats the sources to validate it. The file names
	# in the code objects are those of the layer in the runtime, not of this build's folder.
	python$(LAMBDA_PYTHON_VERSION) -m compileall -q -j 0 --invalidation-mode unchecked-hash \
		-s "$(ARTIFACTS_DIR)" -p $(LAYER_PATH) -x '/hooks/examples/' "$(ARTIFACTS_DIR)" > /dev/null

# A Python layer's modules live under python/ (on the runtime's sys.path as /opt/python).
build-GreenlightLayer:
	$(MAKE) --no-print-directory lambda-artifact ARTIFACTS_DIR="$(ARTIFACTS_DIR)/python"

clean:
	rm -rf .aws-sam build *.egg-info .mypy_cache .ruff_cache
