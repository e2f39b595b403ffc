# Two commands for a fresh machine:  make run   and   make test
# Both create (or refresh, when pyproject.toml changed) the virtualenv in .venv first.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && echo $$p && break; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit install clean bench

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## make run: migrate the SQLite database under var/, then start the bot on 127.0.0.1:8080
## with the bundled knowledge and an in-process fake WeChat API (so replies can be seen).
run: $(STAMP)
	@mkdir -p var
	$(BIN)/lawbot db upgrade
	$(BIN)/lawbot kb check --quiet
	$(BIN)/lawbot serve --dev

## make test: lint, type-check and the whole test suite (SQLite always; PostgreSQL and
## Redis too when LAWBOT_TEST_POSTGRES_URL / LAWBOT_TEST_REDIS_URL are set, as .ci/run does).
test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check bot handlers tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	@echo "see bench/README.md: benchmarks are run by hand, one at a time"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
