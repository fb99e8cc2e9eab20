"""svr_jax: a differentiable OCTA simulator in JAX (Synthetic Vasculature Reasoning).

Public API (pure, key-first functions; the caller applies jit and vmap)::

    import jax, svr_jax as svr
    cfg = svr.preset("3mm")
    params = svr.default_params(cfg)
    sample = jax.jit(svr.simulate, static_argnums=2)(jax.random.key(0), params, cfg)
"""

from . import pathology as pathology
from .appearance import apply_appearance as apply_appearance
from .config import AppearanceParams as AppearanceParams
from .config import FieldConfig as FieldConfig
from .config import GrowthConfig as GrowthConfig
from .config import PathologyParams as PathologyParams
from .config import SimConfig as SimConfig
from .config import SimParams as SimParams
from .config import VesselParams as VesselParams
from .config import default_params as default_params
from .config import preset as preset
from .graph import VesselGraph as VesselGraph
from .pathology import LESION_NAMES as LESION_NAMES
from .pathology import STAGES as STAGES
from .pathology import PathologyConfig as PathologyConfig
from .simulate import MASK_NAMES as MASK_NAMES
from .simulate import Sample as Sample
from .simulate import grow as grow
from .simulate import grow_diseased as grow_diseased
from .simulate import render_signal as render_signal
from .simulate import sample_keys as sample_keys
from .simulate import segment_groups as segment_groups
from .simulate import simulate as simulate
from .simulate import simulate_batch as simulate_batch

__version__ = "0.1.0"
