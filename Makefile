# Two entry points (see README): `make demo` and `make test`. Both create .venv/ first if needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
OUT ?= out/demo

.PHONY: setup chromium demo test test-sim test-vlm clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in the [vlm] extra: the CPU build, never an unpinned CUDA download.
	$(VENV)/bin/pip install --quiet -e ".[sim,vlm,dev]"
	touch $(STAMP)

# Headless Chromium for the dataset browser's test (tests/sim/test_browse.py): Debian's packages, never a
# browser download. Idempotent; as non-root without sudo it says so and the test skips with that reason.
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "chromium / chromedriver missing and no root: the browser test will skip (apt-get install chromium chromium-driver)"; fi

setup: $(STAMP) chromium

demo: $(STAMP)
	$(VENV)/bin/svr export n=256 out=$(OUT)

# JAX and torch tests run in separate processes; torch single-threaded.
test: $(STAMP)
	$(VENV)/bin/python -m pytest tests/sim
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/python -m pytest tests/vlm

clean:
	rm -rf $(VENV) out
