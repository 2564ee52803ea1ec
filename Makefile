# The course's commands. Every target creates .venv first if it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
# nbgrader runs `alembic` (and notebooks run `jupyter`) from PATH.
export PATH := $(VENV)/bin:$(PATH)
export PYTHONHASHSEED := 0

TOPICS := $(notdir $(patsubst %/,%,$(wildcard source/*/)))
JOBS ?= $(shell nproc)
TOPIC ?=
NOTEBOOK ?=
LAB_ARGS ?=
AUTOGRADE_ARGS ?=

.PHONY: venv lab test lint release index grade bench autograde bench-autograde lock clean help

help:
	@echo "make lab        install (first time) and open JupyterLab on the course"
	@echo "make test       install (first time) and run the whole test suite"
	@echo "make grade TOPIC=01_convolution   self-grade your notebook in mywork/"
	@echo "make release    regenerate the student notebooks in release/"
	@echo "make index      regenerate the topic tables and the interview index"
	@echo "make autograde ASSIGNMENT=01_convolution [JOBS=n]   grade submitted/*/<id>/"
	@echo "make bench      time every notebook and print the metrics they reach"
	@echo "make bench-autograde   grading throughput, JOBS=1 vs JOBS=2, beside plain nbgrader"
	@echo "make lint       ruff over the package, tests and notebooks"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

lab: venv
	$(PY) -m cnncourse.workspace
	$(VENV)/bin/jupyter lab --allow-root --ServerApp.root_dir=$(CURDIR) $(LAB_ARGS)

# One torch thread per worker: two workers on two cores.
test: venv
	$(VENV)/bin/ruff check .
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax -q

lint: venv
	$(VENV)/bin/ruff check .

release: venv
	$(PY) -m cnncourse.release $(TOPICS)

# The README's topic table, the home notebook's table and the interview index, from the notebooks.
index: venv
	$(PY) -m cnncourse.pages

grade: venv
	$(PY) -m cnncourse.grading $(TOPIC) $(NOTEBOOK)

bench: venv
	$(PY) -m cnncourse.bench

# Instructor grading of submitted/*/$(ASSIGNMENT)/: sandboxed, parallel, fault-isolated.
autograde: venv
	@test -n "$(ASSIGNMENT)" || { echo "usage: make autograde ASSIGNMENT=<id> [JOBS=n]"; exit 2; }
	$(PY) -m cnngrade $(ASSIGNMENT) --jobs $(JOBS) $(AUTOGRADE_ARGS)

# Grading throughput (JOBS=1, JOBS=2) and plain `nbgrader autograde` on the same generated class
# of honest students; default: the no-torch fixture assignment ag_tiny.
BENCH_ASSIGNMENT ?= ag_tiny
BENCH_STUDENTS ?= 8
bench-autograde: venv
	$(PY) -m cnngrade --bench $(BENCH_ASSIGNMENT) --students $(BENCH_STUDENTS)

lock: venv
	{ echo "# Exact pins for the whole course (lock-style). Regenerate with: make lock"; \
	  $(VENV)/bin/pip freeze --exclude-editable | grep -v '^cnnlab'; } > requirements.txt

clean:
	rm -rf .grading feedback autograded/*/ gradebook.db
