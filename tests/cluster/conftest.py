"""A single-node SLURM cluster (scripts/local_slurm.py) for the tests of this folder, started once per
session and stopped at its end, whatever happened: no daemon, job step or job process outlives it."""

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def local_slurm_module():
    spec = importlib.util.spec_from_file_location("local_slurm", REPO / "scripts" / "local_slurm.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_slurm"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def slurm(request):
    ls = local_slurm_module()
    reason = None
    if os.geteuid() != 0:
        reason = "the local SLURM cluster needs root (slurmd starts jobs as their user)"
    elif ls.missing_programs():
        reason = (f"SLURM/munge/MariaDB programs missing: {', '.join(ls.missing_programs())}; "
                  f"`make slurm-packages` installs {' '.join(ls.PACKAGES)} with apt-get")
    if reason:
        # Printed as well as recorded: a skipped cluster test must be seen in CI's log, never silent.
        print(f"\nSKIPPED the SLURM cluster tests: {reason}", file=sys.stderr)
        pytest.skip(reason)
    # Short path under /tmp: munged wants its socket folder world-searchable up the tree, and a Unix
    # socket path is limited to 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="svr-slurm-", dir="/tmp"))
    cluster = ls.LocalSlurm(root, cpus=4)  # 4 CPUs declared on 2 cores: three jobs run at once

    def stop():
        cluster.stop()
        left = ls.job_processes(str(cluster.conf)) + [p for p in cluster.started_pids if ls.alive(p)]
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes outlived the SLURM cluster: {left}"

    request.addfinalizer(stop)
    cluster.start()
    return cluster
