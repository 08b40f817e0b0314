# One task runner for the README, CI and developers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/execlog serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check execlog tests bench
	$(BIN)/ruff format --check execlog tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

docs: install
	$(BIN)/python -m execlog.docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
