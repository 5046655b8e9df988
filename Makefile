# The two commands of the README:
#   make run   - create .venv, install Spor, start it on the embedded database
#   make test  - create .venv, install Spor with its test tools, run the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test install lint bench

$(BIN)/spor: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/spor

install: $(BIN)/spor

run: install
	$(BIN)/spor serve $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check lrs statements_schema projections adapters tests bench
	$(BIN)/mypy lrs statements_schema projections

bench: install
	$(BIN)/python -m bench.ingest $(ARGS)
