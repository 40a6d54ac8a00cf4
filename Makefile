# One command to set up and open the course, one to test it; the instructor's commands after.
# Every target is idempotent: the second `make lab` starts JupyterLab at once.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is pinned (pyproject.toml); on a machine whose pip would pick a multi-GB CUDA build, add
# the CPU wheel index, e.g.  make setup TORCH_INDEX=--extra-index-url=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed
PORT   ?= 8888
# Jupyter refuses to run as root (containers, CI) unless told to
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
JOBS   ?= 2

.PHONY: setup lab start submit test test-fast lint bench release autograde feedback grades download

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "torch==2.13.0"
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) -e ".[dev]"
	$(BIN)/jupyter labextension list 2>&1 | grep -q "nbgrader.*enabled" || \
	  (echo "nbgrader's JupyterLab extension is not enabled" && exit 1)
	@touch $(STAMP)
	@echo "set-up done: run 'make lab' to open the course"

# JupyterLab at the course root with lesson 1 in front; `splatcourse lab` holds the arguments
# (the browser test of a student's first hour starts JupyterLab through it too).
lab: setup
	$(BIN)/splatcourse lab --port=$(PORT) $(ALLOW_ROOT)

# make start EXERCISE=ex01_toy_splats   (your copy in work/; an existing one is never overwritten)
# make submit EXERCISE=ex01_toy_splats [STUDENT=jdoe]   (writes work/submissions/<student>_<exercise>.zip)
EXERCISE ?= ex01_toy_splats
STUDENT  ?=
start: setup
	$(BIN)/splatcourse start $(EXERCISE)

submit: setup
	$(BIN)/splatcourse submit $(EXERCISE) $(if $(STUDENT),--student $(STUDENT),)

# Tests run two at a time, so each keeps to one torch thread (two would fight for the cores).
# The browser tests share one JupyterLab and one Chromium, so they run in a single process.
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) -p no:cacheprovider -m "not browser"
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -p no:cacheprovider -p no:xdist -m browser tests/browser

test-fast: setup
	$(BIN)/python -m pytest -n $(JOBS) -p no:cacheprovider -m "not slow and not browser"

# The rules live in pyproject.toml: ruff (code and notebooks), the formatter, pyright on src/,
# and import-linter's contracts for the package's layers (see CONTRIBUTING.md).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	$(BIN)/lint-imports

# Every benchmark in bench/, one after the other; each ends with one JSON line.
BENCHES := $(sort $(wildcard bench/*.py))
bench: setup
	@set -e; for b in $(BENCHES); do echo "== $$b"; $(BIN)/python $$b; done

# --- instructor -----------------------------------------------------------------------------
release: setup
	$(BIN)/splatcourse release

# make autograde SUBMISSIONS=path/to/folder   (laid out as <student>/<assignment>/<notebook>.ipynb)
SUBMISSIONS ?= autograde/inbox
autograde: setup
	$(BIN)/splatcourse autograde $(SUBMISSIONS)

feedback: setup
	$(BIN)/splatcourse feedback

grades: setup
	$(BIN)/splatcourse grades

# make download CAPTURE=socketed_axe_arreton
CAPTURE ?= socketed_axe_arreton
download: setup
	$(BIN)/splatcourse download $(CAPTURE)

# The small trained axe model that exercise 3's hidden test draws (built once, cached under
# data/cache/; the grader also builds it before its first ex03 submission).
.PHONY: renderer-model
renderer-model: setup
	$(BIN)/splatcourse renderer-model
