# The front door: `make book` (the quick profile by default) and `make test`.
# Both build .venv from nothing but Python 3.10+.
PYTHON ?= python3
PROFILE ?= quick
JOBS ?= 2
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install book test lint clean-book

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

book: install
	$(VENV)/bin/synclib reproduce --profile $(PROFILE) --jobs $(JOBS)
	@echo "The book: $(CURDIR)/book/_build/html/index.html"

test: install
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q --nbval-lax notebooks

lint: install
	$(VENV)/bin/ruff check synclib tests data_prep bench book/_ext

clean-book:
	rm -rf book/executed book/_build
