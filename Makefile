# Greenlight. The two commands a newcomer needs: `make demo` and `make test`.
# Both create or reuse the virtual environment .venv by themselves.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# aws-sam-cli pins boto3 and click: it lives in its own tool environment.
SAM_VENV ?= .tools/sam
SAM := $(SAM_VENV)/bin/sam
# Tavern, a peer in the benchmark, in its own environment (it pins its own pytest).
TAVERN := .tools/tavern/bin/tavern-ci
export SAM_CLI_TELEMETRY = 0
export GREENLIGHT_SAM = $(abspath $(SAM))

# The Lambda build (sam build runs the build-<LogicalId> targets below).
LAMBDA_PLATFORM ?= manylinux2014_aarch64
LAMBDA_PYTHON_VERSION ?= 3.13
# The Lambda runtime ships the AWS SDK: it is left out of the artifact.
RUNTIME_PROVIDED := boto3 botocore s3transfer

.PHONY: demo test lint bench build clean venv tools lambda-artifact

demo: $(VENV)/.installed
	$(VENV)/bin/greenlight demo

test: $(VENV)/.installed $(SAM)
	$(VENV)/bin/ruff check hooks tests bench test_suites
	$(VENV)/bin/ruff format --check hooks tests bench test_suites
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check hooks tests bench test_suites
	$(VENV)/bin/ruff format --check hooks tests bench test_suites
	$(VENV)/bin/mypy

bench: $(VENV)/.installed $(TAVERN)
	$(PY) bench/run.py

build: $(SAM)
	$(SAM) build --build-in-source

venv: $(VENV)/.installed
tools: $(SAM)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(TAVERN):
	test -x .tools/tavern/bin/python || $(PYTHON) -m venv .tools/tavern
	.tools/tavern/bin/pip install --quiet tavern "pytest<9"  # Tavern 3 imports _pytest.python_api
	test -x $(TAVERN)

$(SAM):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli
	test -x $(SAM)

# ---- Lambda artifact: the hooks package, test_suites/ and the runtime dependencies ----
# The dependencies are read from pyproject.toml, so the list lives in one place.
BUILD_TMP := $(shell mktemp -d -u /tmp/greenlight-build.XXXXXX)

lambda-artifact:
	test -n "$(ARTIFACTS_DIR)"
	mkdir -p $(BUILD_TMP)
	$(PYTHON) -c 'import tomllib, re; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print("\n".join(d for d in deps if re.split(r"[<>=!~ \[]", d)[0].lower() not in "$(RUNTIME_PROVIDED)".split()))' > $(BUILD_TMP)/requirements.txt
	$(PYTHON) -m pip install --quiet --target "$(ARTIFACTS_DIR)" --platform $(LAMBDA_PLATFORM) \
		--implementation cp --python-version $(LAMBDA_PYTHON_VERSION) --only-binary=:all: \
		--upgrade -r $(BUILD_TMP)/requirements.txt
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(BUILD_TMP) .
	$(PYTHON) -m pip install --quiet --no-deps --target "$(ARTIFACTS_DIR)" --upgrade $(BUILD_TMP)/greenlight_hooks-*.whl
	rm -rf "$(ARTIFACTS_DIR)/test_suites" && cp -R test_suites "$(ARTIFACTS_DIR)/test_suites"
	find "$(ARTIFACTS_DIR)" -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf "$(ARTIFACTS_DIR)/bin" $(BUILD_TMP)
	# The JSON Schemas compiled to Python once, here, rather than on every cold start.
	PYTHONPATH="$(ARTIFACTS_DIR)" $(PYTHON) -m hooks.validators "$(ARTIFACTS_DIR)/hooks/_validators" \
		hooks/plan_schema.json hooks/suites/http/schema.json > /dev/null
	# Bytecode for the runtime's Python: /var/task is read-only, so without it every cold
	# start compiles every module again. unchecked-hash: no timestamps (the same bytes on
	# every build), and the runtime never stats the sources to validate it.
	python$(LAMBDA_PYTHON_VERSION) -m compileall -q -j 0 --invalidation-mode unchecked-hash \
		-x '/test_suites/' "$(ARTIFACTS_DIR)" > /dev/null

build-BeforeInstallHook build-AfterInstallHook build-AfterAllowTestTrafficHook \
build-BeforeAllowTrafficHook build-AfterAllowTrafficHook:
	$(MAKE) --no-print-directory lambda-artifact ARTIFACTS_DIR="$(ARTIFACTS_DIR)"

clean:
	rm -rf .aws-sam build *.egg-info .mypy_cache .ruff_cache
