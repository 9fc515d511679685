# qa0-label: `make run` starts the app on the embedded SQLite database, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test test-fast browser bench bench-big clean

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

# The figures README quotes (each script prints how it was run); the browser ones need chromium.
# bench-big: the 100k / 1M EB scale runs (minutes to build each pool; files under /tmp).
bench: setup browser
	$(PY) benchmarks/bench_simulate.py --n 10000 --seed 0
	$(PY) benchmarks/bench_al.py
	$(PY) benchmarks/bench_next.py
	$(PY) benchmarks/bench_retrain.py
	$(PY) benchmarks/bench_import.py --rows 1000000
	$(PY) benchmarks/bench_ui.py --ebs 5000 --presses 30 --retrain

bench-big: setup
	$(PY) -m qa0_label --db sqlite:////tmp/qa0-scale-10k.sqlite benchmark scale --pool 10000 --writers 8 --writer-iterations 100 --json
	$(PY) -m qa0_label --db sqlite:////tmp/qa0-scale-100k.sqlite benchmark scale --pool 100000 --writers 8 --writer-iterations 100 --json
	$(PY) -m qa0_label --db sqlite:////tmp/qa0-scale-100k.sqlite benchmark scale --pool 100000 --writers 8 --writer-iterations 60 --think-ms 500 --no-retrain --json
	$(PY) -m qa0_label --db sqlite:////tmp/qa0-scale-1m.sqlite benchmark scale --pool 1000000 --writers 8 --writer-iterations 100 --json
	$(PY) benchmarks/bench_memory.py --db /tmp/qa0-scale-100k.sqlite --labels 5 --retrain

clean:
	rm -rf $(VENV) .pytest_cache
