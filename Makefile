# The two README commands:
#   make test   set up the environment (idempotent) and run the test suite
#   make main   set up the environment and run the main job (CamVid train + test, prints mIoU)
RTKD_VENV ?= $(HOME)/.cache/rtkd/venv
export RTKD_VENV
PY := $(RTKD_VENV)/bin/python
BIN := $(RTKD_VENV)/bin

.PHONY: setup test main clean

setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest -q tests

main: setup
	PATH="$(BIN):$$PATH" bash tools/main_job.sh

clean:
	rm -rf work_dirs .pytest_cache
