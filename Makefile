# The course's commands. Every target creates .venv first if it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
# nbgrader runs `alembic` (and notebooks run `jupyter`) from PATH.
export PATH := $(VENV)/bin:$(PATH)
export PYTHONHASHSEED := 0

TOPICS := $(notdir $(patsubst %/,%,$(wildcard source/*/)))
# nproc is GNU; macOS has getconf; python is the last resort.
JOBS ?= $(shell nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || python3 -c 'import os; print(os.cpu_count())')
TOPIC ?=
NOTEBOOK ?=
LAB_ARGS ?=
AUTOGRADE_ARGS ?=
SCHEDULER ?=

.PHONY: venv lab test test-gpu lint release index book weights grade bench autograde bench-autograde lock clean help

help:
	@echo "make lab        install (first time) and open JupyterLab on the course"
	@echo "make test       install (first time) and run the whole test suite"
	@echo "make test-gpu   every notebook, the mutants and autograde checks with CNNLAB_DEVICE=cuda"
	@echo "make grade TOPIC=01_convolution   self-grade your notebook in mywork/"
	@echo "make release    regenerate the student notebooks in release/"
	@echo "make index      regenerate the interview index and the topic tables from the notebooks"
	@echo "make book       build the course as a static, searchable HTML site in _build/book/"
	@echo "make weights    retrain the course's pretrained backbone (cnnlab/weights/)"
	@echo "make autograde ASSIGNMENT=01_convolution [JOBS=n | SCHEDULER=tcp://host:8786] [GPU=1]   grade submitted/*/<id>/"
	@echo "make bench      time every notebook and print the metrics they reach"
	@echo "make bench-autograde   grading throughput, JOBS=1 vs JOBS=2 vs a 2-worker Dask cluster, beside plain nbgrader"
	@echo "make lint       ruff over the package, tests and notebooks"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

lab: venv
	$(PY) -m cnncourse.workspace
	$(VENV)/bin/jupyter lab --allow-root --ServerApp.root_dir=$(CURDIR) $(LAB_ARGS) notebooks/00_start_here.ipynb

# One torch thread per worker: two workers on two cores.
test: venv
	$(VENV)/bin/ruff check .
	CNNLAB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax -q

# The GPU path. Without a CUDA device it says so in one line and succeeds (GPU_REQUIRED=1 fails).
test-gpu: venv
	@if ! $(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"; then \
	  echo "make test-gpu: no CUDA device visible to torch here; nothing run"; test -z "$(GPU_REQUIRED)"; \
	else \
	  CNNLAB_DEVICE=cuda OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadfile \
	    --nbval-lax -q notebooks source $(wildcard tests/test_topic_*.py tests/test_devices.py); \
	fi

lint: venv
	$(VENV)/bin/ruff check .

release: venv
	$(PY) -m cnncourse.release $(TOPICS)

grade: venv
	$(PY) -m cnncourse.grading $(TOPIC) $(NOTEBOOK)

index: venv
	$(PY) -m cnncourse.pages

book: venv
	OMP_NUM_THREADS=1 $(PY) -m cnncourse.book

weights: venv
	OMP_NUM_THREADS=1 $(PY) -m cnnlab.pretrained

bench: venv
	$(PY) -m cnncourse.bench

# Instructor grading of submitted/*/$(ASSIGNMENT)/: sandboxed, parallel, fault-isolated.
autograde: venv
	@test -n "$(ASSIGNMENT)" || { echo "usage: make autograde ASSIGNMENT=<id> [JOBS=n | SCHEDULER=tcp://host:8786] [GPU=1]"; exit 2; }
	$(PY) -m cnngrade $(ASSIGNMENT) --jobs $(JOBS) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(GPU),--gpu) $(AUTOGRADE_ARGS)

# Grading throughput (JOBS=1, JOBS=2, a 2-worker Dask cluster on 127.0.0.1, the distribution layer
# per student and a projection to 50 machines) and plain `nbgrader autograde` on the same generated
# class of honest students; default: the no-torch fixture assignment ag_tiny.
BENCH_ASSIGNMENT ?= ag_tiny
BENCH_STUDENTS ?= 8
bench-autograde: venv
	$(PY) -m cnngrade --bench $(BENCH_ASSIGNMENT) --students $(BENCH_STUDENTS)

# One lock for Linux (CUDA torch), macOS and Windows: environment markers pick the wheels.
# Pins already in requirements.txt are kept; add a package to requirements.in first.
lock: venv
	$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11.5 --no-annotate \
	  --custom-compile-command "make lock" requirements.in -o requirements.txt

clean:
	rm -rf .grading feedback autograded/*/ gradebook.db
