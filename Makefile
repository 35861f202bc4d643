# One-command entry points. Each installs routeq into .venv first (from this checkout only).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo demo-queries test test-fast lint constraints

# Versions pinned by constraints.txt (reproducible installs); `make constraints` refreezes it.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/routeq summarize examples/corpus --out summaries.jsonl

demo-queries: $(STAMP)
	$(VENV)/bin/routeq demo

test: $(STAMP)
	$(VENV)/bin/pytest

test-fast: $(STAMP)  # everything but the fault-injection suite
	$(VENV)/bin/pytest -m "not fault"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples bench
	$(VENV)/bin/ruff format --check src tests examples bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports  # the import-layer contract in .importlinter (docs/design.md)

constraints: $(STAMP)  # refreeze the pins from .venv after a dependency change
	{ sed -n '/^#/p' constraints.txt; \
	  $(PY) -m pip freeze --all --exclude-editable | grep -v -i -E '^(pip|routeq)=='; \
	} > constraints.txt.new && mv constraints.txt.new constraints.txt
