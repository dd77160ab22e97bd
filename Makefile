# One-command set-up: `make demo` runs the main job, `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
DATA_ROOT ?= $(abspath ../shared/data)
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-$(TORCH_VERSION)

export CONTINUOUS_GNN_DATA ?= $(DATA_ROOT)

.PHONY: install demo test test-slow lint reproduce solvers oversmoothing scatter clean

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

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(PIP) install --quiet ruff
	$(VENV)/bin/ruff check continuous_gnn tests experiments

reproduce: $(STAMP)
	$(PY) experiments/reproduce.py

solvers: $(STAMP)
	$(PY) experiments/solver_benchmark.py

oversmoothing: $(STAMP)
	$(PY) experiments/oversmoothing.py

scatter: $(STAMP)
	$(PIP) install --no-build-isolation torch-scatter

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
