import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import svr_jax as svr
from svr_jax.realdata import default_octa500_dir
from svr_jax.runtime import enable_compilation_cache

# The CLI's persistent XLA cache (SVR_JAX_CACHE) for every test, not only for those that happen to run
# after an in-process `svr export`: a second `make test` skips most compilation. Unlike the CLI, the tests
# keep programs of any compile time: hundreds of small ones (eager oracles, single operators) add up.
enable_compilation_cache()
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

REPO = Path(__file__).resolve().parents[2]


def octa500_dir() -> Path:
    return default_octa500_dir()


@pytest.fixture(scope="session")
def small_cfg() -> svr.SimConfig:
    """A reduced field (1.5 mm, 96 px, small trees): same code paths, fast to compile and run."""
    return svr.SimConfig(
        field=svr.FieldConfig(fov_mm=1.5, size_px=96),
        growth=svr.GrowthConfig(n_roots=4, generations=3, steps_per_branch=3, capillary_spacing_um=40.0, deep_spacing_um=55.0,
                                attractors=160, colonisation_steps=24, new_per_step=12),
    )


@pytest.fixture(scope="session")
def branching_cfg(small_cfg) -> svr.SimConfig:
    """``small_cfg`` with the fixed-layout trees (GrowthConfig.architecture = "branching")."""
    return dataclasses.replace(small_cfg, growth=dataclasses.replace(small_cfg.growth, architecture="branching"))


@pytest.fixture(scope="session")
def colonisation_cfg(small_cfg) -> svr.SimConfig:
    """``small_cfg`` with the space-colonisation trees (GrowthConfig.architecture = "colonisation")."""
    return dataclasses.replace(small_cfg, growth=dataclasses.replace(small_cfg.growth, architecture="colonisation"))


# The batch of the small field's exporter programs (``svr_jax.batch.batched_simulator``): test files that
# simulate batches of ``small_cfg`` use this one size, so each program compiles once for all of them.
SMALL_BATCH = 48


@pytest.fixture(scope="session")
def small_batch(small_cfg):
    """run(pathology setting, params, seed) -> Sample [SMALL_BATCH] of ``small_cfg`` by the exporters' programs
    (healthy for "normal", one program for every other setting and spread)."""
    from svr_jax.batch import batched_simulator
    from svr_jax.pathology import as_config

    def run(stage="normal", params=None, seed: int = 0, variability: float = 0.0):
        keys = svr.sample_keys(seed, jnp.arange(SMALL_BATCH))
        return batched_simulator(small_cfg, as_config(stage), variability)(keys, params)

    return run


@pytest.fixture(scope="session")
def small_params() -> svr.SimParams:
    p = svr.SimParams()
    return dataclasses.replace(p, vessels=dataclasses.replace(p.vessels, faz_area_mm2=0.12, branch_length_mm=0.4))


@pytest.fixture(scope="session")
def tiny_cfg() -> svr.SimConfig:
    """Smaller still, for the slow paths (no-jit execution, the dense O(H·W·N) oracle)."""
    return svr.SimConfig(
        field=svr.FieldConfig(fov_mm=0.9, size_px=48),
        growth=svr.GrowthConfig(n_roots=3, generations=2, steps_per_branch=2, capillary_spacing_um=60.0, deep_spacing_um=80.0,
                                attractors=48, colonisation_steps=10, new_per_step=6),
    )
