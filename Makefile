# The two commands of the README: `make run` and `make test`.
# Each creates the virtual environment it needs and installs trialdesk into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run demo test check-python clean

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "trialdesk needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }

$(VENV)/.run-installed: pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.run-installed

# The web application with demo data; prints the address and the demo log-ins.
run: $(VENV)/.run-installed
	$(BIN)/trialdesk serve --demo

# The command-line demo: trials, NB-NK-2026 and the example patients screened.
demo: $(VENV)/.run-installed
	$(BIN)/trialdesk demo

test: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
