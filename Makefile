# One-command set-up: `make demo` runs the main job, `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
DATA_ROOT ?= $(abspath ../shared/data)
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Named after the torch requirement, so that another TORCH_SPEC installs that torch into an existing .venv.
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC)' | tr -c 'A-Za-z0-9.-' '_')
DOCS_STAMP := $(VENV)/.installed-docs
# The site is built here (not versioned); open $(DOCS_OUT)/index.html.
DOCS_OUT ?= docs/_build/html

export CONTINUOUS_GNN_DATA ?= $(DATA_ROOT)

.PHONY: install demo test test-slow lint docs docs-render reproduce solvers bench oversmoothing scatter clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned, so that no later requirement pulls a multi-GB CUDA build.
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e ".[test,plot,tune,metis]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/continuous-gnn train --preset graff --dataset cora --splits 0

# The test suite never downloads benchmark data (tests/conftest.py also sets this and refuses any connection
# beyond loopback).
test test-slow: export CONTINUOUS_GNN_NO_DOWNLOAD = 1

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(PIP) install --quiet ruff
	$(VENV)/bin/ruff check continuous_gnn tests experiments

$(DOCS_STAMP): $(STAMP) setup.cfg
	$(PIP) install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

# Strict: -E reads every page again, so each build reports every warning; -W makes a warning an error; docs/conf.py
# makes every reference into the package one that must resolve. Offline: no intersphinx, and MathJax is copied
# into the site from the sphinx-mathjax-offline package.
docs: $(DOCS_STAMP)
	$(PY) -m sphinx -b html -E -W --keep-going -q docs $(DOCS_OUT)

# What a reader's browser shows: every page of the built site in headless Chromium (Debian's chromium, not on CI),
# failing on a formula MathJax could not typeset or an image the site lacks. Run it after `make docs`.
docs-render: $(STAMP)
	$(PY) docs/render_check.py $(DOCS_OUT)

reproduce: $(STAMP)
	$(PY) experiments/reproduce.py

solvers: $(STAMP)
	$(PY) experiments/solver_benchmark.py

# The performance benchmark (docs/performance.md); run it alone on the machine: other jobs distort every number.
bench: $(STAMP)
	$(VENV)/bin/continuous-gnn bench

oversmoothing: $(STAMP)
	$(PY) experiments/oversmoothing.py

scatter: $(STAMP)
	$(PIP) install --no-build-isolation torch-scatter

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/api/generated
