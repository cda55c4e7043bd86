# The front door: `make book` (the quick profile by default) and `make test`.
# Both build .venv from nothing but Python 3.10+, with the exact versions of requirements.lock
# (pyproject.toml keeps the ranges; `.ci/lock` rewrites the lock from them).
PYTHON ?= python3
PROFILE ?= quick
JOBS ?= 2
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install book test lint lock clean-book

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

book: install
	$(VENV)/bin/synclib reproduce --profile $(PROFILE) --jobs $(JOBS)
	@echo "The book: $(CURDIR)/book/_build/html/index.html"

test: install
	$(PY) -m pytest -q --durations=20 tests
	$(PY) -m pytest -q --nbval-lax notebooks

lint: install
	$(VENV)/bin/ruff check synclib tests data_prep bench book/_ext

lock:
	bash .ci/lock

clean-book:
	rm -rf book/executed book/_build
