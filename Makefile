# `make run` and `make test` set themselves up from nothing: a .venv with gradlint
# installed editable, its dev tools and torch (exactly torch==2.13.0, the CPU build
# this machine keeps on local disk; any other spec pulls a multi-GB CUDA build).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench calibrate accuracy fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet 'torch==2.13.0'
	# the distribution was called `gradlint` before it became torch-gradlint: an old .venv drops it
	$(BIN)/python -m pip uninstall --quiet -y gradlint 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e '.[dev,dynamic,lsp]'
	touch $(STAMP)

# static findings first (milliseconds), then each confirmed by a backward pass on the CPU
run: $(STAMP)
	$(BIN)/gradlint check fixtures/ ; status=$$?; [ $$status -le 1 ] || exit $$status
	$(BIN)/gradlint check --dynamic --device cpu --report gradlint-report fixtures/ ; \
	  status=$$?; [ $$status -le 1 ] || exit $$status

# the suite runs on every core (pytest-xdist), a test module to a worker so that its fixtures
# (a pre-commit environment, a built wheel, measured models) are made once; TEST_WORKERS=0 runs it
# in this one process
TEST_WORKERS ?= auto

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/mutants.py
	$(BIN)/python benchmarks/dynamic_zoo.py

calibrate: $(STAMP)
	$(BIN)/python benchmarks/calibrate.py

# 10,000 generated, structure-aware and mutated programs: no GL002, traceback, hang or blow-up
fuzz: $(STAMP)
	$(BIN)/python benchmarks/fuzz.py

# precision, recall and F1 per hazard class on generated models labelled by measurement
accuracy: $(STAMP)
	$(BIN)/python benchmarks/accuracy.py

clean:
	rm -rf $(VENV) build *.egg-info
