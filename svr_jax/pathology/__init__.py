"""Diabetic-retinopathy operators and staging (see each module's docstring).

Operators are pure, key-first functions with deterministic twins (``dropout`` / ``random_dropout``,
``microaneurysms`` / ``random_microaneurysms``, ...), composed by ``chain`` on a ``Disease`` state;
``stage_chain`` is the standard chain for one traced stage. ``simulate(key, params, cfg, stage=...)``
is the usual entry point.
"""

from ._beading import RADIUS_SLACK as RADIUS_SLACK
from ._beading import venous_beading as venous_beading
from ._chain import Disease as Disease
from ._chain import chain as chain
from ._chain import faz_enlargement as faz_enlargement
from ._chain import healthy as healthy
from ._chain import stage_chain as stage_chain
from ._dropout import FLOW_KEEPING_DIAMETER_UM as FLOW_KEEPING_DIAMETER_UM
from ._dropout import dropout as dropout
from ._dropout import random_dropout as random_dropout
from ._dropout import random_regions as random_regions
from ._faz import Fringe as Fringe
from ._faz import enlarge_faz as enlarge_faz
from ._faz import prune_faz_border as prune_faz_border
from ._faz import ragged_depth_mm as ragged_depth_mm
from ._findings import MAX_FINDINGS as MAX_FINDINGS
from ._findings import Findings as Findings
from ._findings import findings_to_list as findings_to_list
from ._irma import irma as irma
from ._irma import random_irma as random_irma
from ._lesions import LESION_NAMES as LESION_NAMES
from ._lesions import Blobs as Blobs
from ._lesions import Tufts as Tufts
from ._measure import branch_tortuosity as branch_tortuosity
from ._measure import faz_shape as faz_shape
from ._measure import tortuosity_index as tortuosity_index
from ._microaneurysm import microaneurysms as microaneurysms
from ._microaneurysm import random_microaneurysms as random_microaneurysms
from ._neovascularization import neovascularization as neovascularization
from ._neovascularization import random_neovascularization as random_neovascularization
from ._record import Lesions as Lesions
from ._record import no_lesions as no_lesions
from ._record import render_lesions as render_lesions
from ._regions import Regions as Regions
from ._regions import make_regions as make_regions
from ._staging import STAGE_CHOICES as STAGE_CHOICES
from ._staging import STAGE_TABLE as STAGE_TABLE
from ._staging import STAGES as STAGES
from ._staging import PathologyConfig as PathologyConfig
from ._staging import as_config as as_config
from ._staging import draw_stage as draw_stage
from ._staging import draw_weighted_stage as draw_weighted_stage
from ._staging import stage_profile as stage_profile
from ._staging import stage_weights as stage_weights
from ._tortuosity import SPAN_SLACK as SPAN_SLACK
from ._tortuosity import random_tortuosity as random_tortuosity
from ._tortuosity import tortuosity as tortuosity
from ._tortuosity import warp_tortuosity as warp_tortuosity
