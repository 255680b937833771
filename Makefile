# One set of entry points for people and CI. On a fresh machine with only python3 and make,
# `make demo` and `make test` build everything they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Tests run in parallel: most of their time is the twin's scenario clock, not the CPU. A
# test module runs on one worker (loadfile): its module-scoped runs are made once.
TEST_WORKERS ?= 4

.PHONY: install demo test test-slow lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/selfheal demo

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test-slow: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -m slow

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/selfheal bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .selfheal
