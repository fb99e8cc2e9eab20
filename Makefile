# Two entry points (see README): `make demo` and `make test`. Both create .venv/ first if needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
OUT ?= out/demo

.PHONY: setup demo test test-all clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in the [vlm] extra: the CPU build, never an unpinned CUDA download.
	$(VENV)/bin/pip install --quiet -e ".[sim,vlm,dev,bench]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/svr export n=256 out=$(OUT)

# JAX and torch tests run in separate processes; torch single-threaded. `make test` leaves out the
# long statistical checks (@pytest.mark.slow); `make test-all` runs them too.
PYTEST_MARK ?= not slow
test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "$(PYTEST_MARK)" tests/sim
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/python -m pytest -m "$(PYTEST_MARK)" tests/vlm

test-all: $(STAMP)
	$(MAKE) test PYTEST_MARK=""

clean:
	rm -rf $(VENV) out
