# Two entry points (see README): `make demo` and `make test`. Both create .venv/ first if needed.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
OUT ?= out/demo

.PHONY: setup demo test test-sim test-vlm clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in the [vlm] extra: the CPU build, never an unpinned CUDA download.
	$(VENV)/bin/pip install --quiet -e ".[sim,vlm,dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/svr export n=256 out=$(OUT)

# JAX and torch tests run in separate processes; torch single-threaded.
test: $(STAMP)
	$(VENV)/bin/python -m pytest tests/sim
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/python -m pytest tests/vlm

clean:
	rm -rf $(VENV) out
