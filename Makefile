# Two commands on a fresh machine:
#   make lab    set everything up, start the stack, open JupyterLab
#   make test   set everything up and run every test (what CI runs)
# Everything else is a step of those two, or a part of `make test` for a
# developer's loop: `make test-quick` (no stack), `make test LAB=03` (one lab).

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
LAB_ENV := $(VENV)/bin/lab-env
# uv must use this machine's Python, never download one.
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup lab test test-quick up down doctor labs bench test-tools

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The venv is rebuilt from the lock whenever the lock changes. --inexact keeps
# the test-only browser group (test-tools) when `make lab` syncs again.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --inexact --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced
	$(LAB_ENV) setup

lab: setup
	$(LAB_ENV) lab $(LAB_ARGS)

# shellcheck lints the devcontainer scripts in the test suite; chromium and
# playwright (the browser group) run the learner's path in JupyterLab
# (tests/browser/test_browser.py). Debian's chromium: no browser is ever downloaded.
# setup --cluster builds lab 05's Kubernetes control plane (tests/runtime/test_native_cluster.py) and
# --cli the Dapr CLI it runs homes with, so no test waits for a build mid-cell;
# --containers installs docker.io, docker-compose and mmdebstrap (as root, with apt;
# elsewhere it says what to do and the tests marked `containers` skip). `images build`
# makes the local images ahead (minutes the first time), so no test or cell waits on it.
test-tools: $(VENV)/.synced
	@{ command -v shellcheck >/dev/null && command -v chromium >/dev/null; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck chromium fonts-noto-color-emoji >/dev/null) || \
	  echo "note: install shellcheck and chromium to lint the devcontainer scripts and run the browser test"; }
	$(UV) sync --frozen --inexact --group browser --group test --python $(PYTHON)
	$(LAB_ENV) setup --cluster --cli --containers
	@if [ "$$(id -u)" = 0 ] && command -v dockerd >/dev/null; then $(LAB_ENV) images build; \
	  else echo "note: no dockerd to build the local images with: the tests marked containers will skip"; fi

# Both cores, then the tests that must run alone (tests/run_suite.py).
# LAB=03 runs one lab's evidence: its notebook, its checks' tests, its grading.
test: setup test-tools
	$(VENV)/bin/python tests/run_suite.py $(if $(LAB),--lab $(LAB))

# Pure logic and helpers, no stack: a developer's loop (under 3 minutes).
test-quick: $(VENV)/.synced
	$(UV) sync --frozen --inexact --group test --python $(PYTHON)
	$(VENV)/bin/python tests/run_suite.py --quick

up: setup
	$(LAB_ENV) up

down:
	$(LAB_ENV) down

doctor:
	$(LAB_ENV) doctor

bench: setup
	$(VENV)/bin/python bench/stack_bench.py
