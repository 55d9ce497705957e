"""HTTP door into the registry: networks, divisions, grids, staffing, housing, locate.

One blueprint; each module below registers the routes of one part of the registry.
"""

from . import grids, housing, locating, networks, staffing  # noqa: F401 - they register routes
from .common import blp

__all__ = ["blp"]
