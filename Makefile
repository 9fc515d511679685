# qa0-label: `make run` starts the app on the embedded SQLite database, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Every package of the app, the tests and the linters at the version CI tested (hashes checked on install).
LOCK := requirements.lock

.PHONY: setup run test test-fast lint lock browser bench bench-big clean

setup: $(VENV)/.installed

$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Regenerate the lock after a change to the dependencies in pyproject.toml (keep requirements.txt in step):
# the newest versions that satisfy them, for Python 3.11 on Linux, with hashes.
lock:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra dev --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --quiet --output-file $(LOCK)
	rm -f $(VENV)/.installed

# Lint, format and type checks (CI runs them before the tests).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The first start seeds db/qa0.sqlite with simulated demo EBs and labels (a progress bar, ~10 s, once) BEFORE the
# server listens, so the first visitor sees an EB at once. Port / host: STREAMLIT_SERVER_PORT=8600 make run, or
# make run ARGS="--server.port 8600 --server.address 0.0.0.0".
ARGS ?=
run: setup
	$(PY) -m qa0_label seed-demo
	$(VENV)/bin/streamlit run streamlit_app.py $(ARGS)

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
