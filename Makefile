# The two README commands:
#   make test        set up the environment (idempotent) and run the test suite
#   make main        set up the environment and run the main job (CamVid train + test, prints mIoU)
# and, for development:
#   make test-fast   unit tests only (no Runner / torchrun / pip; `-m "not integration"`), < 1 min
#   make lint        the pre-commit linters (flake8, isort, yapf, codespell) on the tree; make format fixes
RTKD_VENV ?= $(HOME)/.cache/rtkd/venv
export RTKD_VENV
PY := $(RTKD_VENV)/bin/python
BIN := $(RTKD_VENV)/bin
TESTS := tests projects

.PHONY: setup test test-fast lint-tools lint format main clean

setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest -q $(TESTS)

test-fast: setup
	$(PY) -m pytest -q -m "not integration" $(TESTS)

# the .pre-commit-config.yaml hooks, run from the venv (pre-commit itself needs GitHub access)
PY_SRC := rtkd tools tests projects configs setup.py conftest.py
lint-tools: setup
	$(PY) -m pip install -q --disable-pip-version-check -c requirements/constraints.txt -r requirements/lint.txt

lint: lint-tools
	$(BIN)/flake8 .
	$(BIN)/isort --check-only --diff .
	$(BIN)/yapf --diff --recursive --exclude 'rtkd/.mim/*' $(PY_SRC)
	$(BIN)/codespell

format: lint-tools
	$(BIN)/isort .
	$(BIN)/yapf --in-place --recursive --exclude 'rtkd/.mim/*' $(PY_SRC)
	git ls-files -co --exclude-standard | grep -v '^rtkd/.mim/' | xargs $(BIN)/trailing-whitespace-fixer || true
	git ls-files -co --exclude-standard -- '*.py' | grep -v '^rtkd/.mim/' | xargs $(BIN)/double-quote-string-fixer || true

main: setup
	PATH="$(BIN):$$PATH" bash tools/main_job.sh

clean:
	rm -rf work_dirs .pytest_cache build rtkd/.mim
