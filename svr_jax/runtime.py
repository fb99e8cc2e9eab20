"""Process settings for XLA on a CPU, applied by the command-line entry points before JAX is loaded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# glibc >= 2.35: malloc asks for transparent huge pages (madvise) for its large blocks; ignored by older
# glibc and other C libraries.
HUGEPAGE_MALLOC = "glibc.malloc.hugetlb=1"


def reexec_with_hugepage_malloc(argv: list[str]) -> None:
    """Re-execute this process once as ``python *argv`` with ``HUGEPAGE_MALLOC`` in ``GLIBC_TUNABLES``.

    XLA's CPU runtime takes its large temporaries (several hundred MB per fit step) from malloc, which
    maps fresh 4 KiB pages for each and faults them in again on every step; huge pages cut those faults
    tenfold (docs/experiments/runtime.md). The tunable is read at process start, hence the re-execution; it does
    nothing when the variable already names the setting (or ``SVR_NO_REEXEC=1``, or not on Linux).
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if sys.platform != "linux" or "glibc.malloc.hugetlb" in tunables or os.environ.get("SVR_NO_REEXEC") == "1":
        return
    env = dict(os.environ, GLIBC_TUNABLES=":".join(t for t in (tunables, HUGEPAGE_MALLOC) if t))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], env)


def enable_compilation_cache() -> None:
    """Persist compiled XLA programs across runs: a second `svr generate` starts in seconds."""
    import jax

    cache = os.environ.get("SVR_JAX_CACHE", str(Path.home() / ".cache" / "svr_jax" / "xla"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
