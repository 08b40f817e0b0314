# One task runner for the README, CI and developers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench docs clean frontend screenshots

# The web UI (frontend/): `npm ci` when the lock changes, the Vite build into execlog/static/
# when a source changes; both stamped, so repeated runs cost nothing.
FRONTEND := frontend
NODE_STAMP := $(FRONTEND)/node_modules/.installed
UI_BUILD := execlog/static/index.html
UI_SOURCES := $(shell find $(FRONTEND)/src -type f 2>/dev/null) $(FRONTEND)/index.html \
	$(FRONTEND)/vite.config.ts $(FRONTEND)/tsconfig.json

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(NODE_STAMP): $(FRONTEND)/package.json $(FRONTEND)/package-lock.json
	cd $(FRONTEND) && npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

$(UI_BUILD): $(NODE_STAMP) $(UI_SOURCES)
	cd $(FRONTEND) && npm run build

frontend: $(UI_BUILD)

run: install frontend
	$(BIN)/execlog serve

test: install frontend
	cd $(FRONTEND) && npx vitest run
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install $(NODE_STAMP)
	$(BIN)/ruff check execlog tests bench
	$(BIN)/ruff format --check execlog tests bench
	$(BIN)/mypy
	cd $(FRONTEND) && npx tsc --noEmit && npx eslint .

# The README's pictures of the web UI, retaken from a real demo run (tests/ui/test_screenshots.py).
screenshots: install frontend
	EXECLOG_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/ui/test_screenshots.py

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

docs: install
	$(BIN)/python -m execlog.docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(FRONTEND)/node_modules execlog/static
