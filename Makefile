# make demo: train, test and visualise a small CAL model on generated birds.
# make test: the test suite.
# Both set up .venv with pinned versions unless PYTHON is given or a virtual
# environment is active.
ifdef PYTHON
  PY := $(PYTHON)
  SETUP_DONE :=
else ifdef VIRTUAL_ENV
  PY := $(VIRTUAL_ENV)/bin/python
  SETUP_DONE :=
else
  PY := .venv/bin/python
  SETUP_DONE := .venv/.mmcal-installed
endif

DEMO_DIR ?= work_dirs/demo
DEMO_DATA ?= data/synthetic_birds
export PYTHONUNBUFFERED := 1

.PHONY: setup test demo

setup: $(SETUP_DONE)
	@$(PY) -c "import mmcal" 2>/dev/null || $(PY) -m pip install -q --no-deps -e .

.venv/.mmcal-installed: requirements/pinned.txt setup.py requirements/runtime.txt
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/python -m pip install -q -r requirements/pinned.txt
	.venv/bin/python -m pip install -q --no-deps -e .
	touch $@

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(PY) tools/demo.py --data-root $(DEMO_DATA) --work-dir $(DEMO_DIR)
