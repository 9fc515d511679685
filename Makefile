# qa0-label: `make run` starts the app on the embedded SQLite database, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test test-fast browser bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# The first start seeds db/qa0.sqlite with simulated demo EBs and labels (takes a few seconds, once).
run: setup
	$(VENV)/bin/streamlit run streamlit_app.py

# Browser tests need Debian's chromium; as root we install it, otherwise they are skipped with a reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } || echo "chromium not installed: browser tests will be skipped"

test: setup browser
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not e2e and not slow"

bench: setup
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_al.py

clean:
	rm -rf $(VENV) .pytest_cache
