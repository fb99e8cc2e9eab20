# Two entry points (see README): `make demo` and `make test`. Both create .venv/ first if needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
OUT ?= out/demo

.PHONY: setup chromium demo test test-slow test-all test-slurm slurm-packages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in the [vlm] extra: the CPU build, never an unpinned CUDA download.
	$(VENV)/bin/pip install --quiet -e ".[sim,vlm,dev,bench]"
	touch $(STAMP)

# Headless Chromium for the dataset browser's test (tests/sim/test_browse.py): Debian's packages, never a
# browser download. Idempotent; as non-root without sudo it says so and the test skips with that reason.
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "chromium / chromedriver missing and no root: the browser test will skip (apt-get install chromium chromium-driver)"; fi

setup: $(STAMP) chromium slurm-packages

demo: $(STAMP)
	$(VENV)/bin/svr export n=256 out=$(OUT)

# JAX and torch tests run in separate processes; torch single-threaded. `make test` leaves out the
# long statistical checks (@pytest.mark.slow); `make test-all` runs them too. The JAX tests run in
# TEST_WORKERS processes (pytest-xdist), one test file per process at a time: one process leaves a core
# idle through its single-threaded stretches (Python, tracing, file I/O); docs/experiments/runtime.md.
# XLA's backend optimisation level 1 in `make test`: half the compile time of the default (2), which is
# most of a first run; results agree to float32 rounding (docs/experiments/runtime.md). `make test-slow`
# (CI runs both) compiles at the default level, as `svr` does.
PYTEST_MARK ?= not slow
TEST_WORKERS ?= 2
TEST_XLA_FLAGS ?= --xla_backend_optimization_level=1
test: $(STAMP) chromium
	XLA_FLAGS="$(TEST_XLA_FLAGS) $$XLA_FLAGS" $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "$(PYTEST_MARK)" tests/sim
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/python -m pytest -m "$(PYTEST_MARK)" tests/vlm

# Only the long checks (CI runs `make test` and then this: every test once).
test-slow: $(STAMP) chromium
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m slow tests/sim || [ $$? -eq 5 ]
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/python -m pytest -m slow tests/vlm || [ $$? -eq 5 ]

test-all: $(STAMP)
	$(MAKE) test PYTEST_MARK=""

# Debian packages of the single-node SLURM cluster that tests/cluster/ starts (scripts/local_slurm.py).
# Installed as root where missing; nothing happens when present. Where they cannot be installed the
# SLURM tests skip and print why.
SLURM_PACKAGES := slurmctld slurmd slurm-client munge slurmdbd slurm-wlm-mysql-plugin mariadb-server-core
slurm-packages:
	@if dpkg -s $(SLURM_PACKAGES) >/dev/null 2>&1; then echo "SLURM packages: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(SLURM_PACKAGES)) \
	    || echo "SLURM packages: apt-get failed; the SLURM tests will skip"; \
	else echo "SLURM packages: missing, and installing needs root and apt-get; the SLURM tests will skip"; fi

# A SLURM cluster on this machine runs `svr export` as a Hydra multirun (a few minutes).
test-slurm: $(STAMP) slurm-packages
	$(VENV)/bin/python -m pytest -rs --durations=3 tests/cluster

clean:
	rm -rf $(VENV) out
