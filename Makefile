# The two commands of the README:
#   make book   execute every chapter notebook with papermill, then build the HTML book
#   make test   unit tests, every chapter notebook under nbval, then the book from those runs
# Both create .venv with python3.11 and install the package with its dev extra when
# pyproject.toml is newer than the last install. The scripts they call live in tools/.

# OpenMP threads that busy-wait slow torch down many times over when another process shares
# the cores, as on CI machines and laptops; passive waiting costs little when they are idle.
export OMP_WAIT_POLICY ?= PASSIVE

PYTHON_FOR_VENV ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Seconds one notebook cell may run (papermill and nbval), and all notebooks under nbval
# together (make test). Override on the command line: make test CELL_TIMEOUT=600
CELL_TIMEOUT ?= 1200
NOTEBOOK_TIMEOUT ?= 3000

.PHONY: book test install clean

book: $(INSTALLED)
	@status=0; \
	$(PY) tools/execute_notebooks.py --output _build/executed --cell-timeout $(CELL_TIMEOUT) || status=1; \
	$(PY) tools/build_book.py --executed _build/executed || status=1; \
	exit $$status

test: $(INSTALLED)
	PYTHON=$(PY) CELL_TIMEOUT=$(CELL_TIMEOUT) NOTEBOOK_TIMEOUT=$(NOTEBOOK_TIMEOUT) tools/run_tests.sh

install: $(INSTALLED)

$(PY):
	$(PYTHON_FOR_VENV) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -e ".[dev]"
	touch $(INSTALLED)

clean:
	rm -rf _build .pytest_cache
