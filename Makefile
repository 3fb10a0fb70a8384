# Two commands on a fresh machine: `make leaderboard` (the main job) and `make test`.
# Both create the virtualenv and install the project on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test ends leaderboard lint format docs clean

# Raw data for machines without internet: ../shared/data beside the checkout when present
# (else DGL downloads what it needs). Override with `make leaderboard DATA=/path`.
DATA ?= $(wildcard ../shared/data)
SUITE ?= quick
# Torch threads per trial (empty: torch's default, one per core); 1 on a machine shared with
# other jobs, where waiting on busy cores makes each trial many times slower.
THREADS ?=
# Test processes side by side (pytest-xdist; each test file runs whole in one of them, so its
# fixtures are built once); 0 runs the suite in this process.
TEST_JOBS ?= 2

install: $(STAMP)

# constraints.txt: the verified versions inside setup.cfg's ranges.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e ".[bench,dev,docs,ogb,postgres,pyg]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile

# The whole suite in fresh environments at the oldest and newest versions setup.cfg accepts
# (about 8 minutes each; CI runs it after `test`).
ends:
	.ci/ends

leaderboard: $(STAMP)
	$(VENV)/bin/dgl-ssm leaderboard --suite $(SUITE) $(if $(DATA),--data-dir $(DATA)) \
		$(if $(THREADS),--threads $(THREADS))

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The API reference from the docstrings (numpydoc); any Sphinx warning is an error.
docs: $(STAMP)
	$(PY) -m sphinx -b html -q -W --keep-going docs docs/_build/html

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/generated
