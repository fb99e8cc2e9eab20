"""Differentiable splatting of vessel segments: a fast windowed path and a dense reference oracle."""

from .profile import segment_profile as segment_profile
from .reference import render_dense as render_dense
from .splat import render_windowed as render_windowed
from .splat import window_size as window_size
