"""A static, offline dataset browser for an ``svr export`` folder (``svr browse``; see site.py)."""

from .site import BrowseConfig as BrowseConfig
from .site import BrowseReport as BrowseReport
from .site import build as build
from .source import open_export as open_export
