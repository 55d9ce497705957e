"""The test county every service's test world shares: boundaries only (each service
seeds its own projection of it from these)."""

from __future__ import annotations


def rect(x0: float, y0: float, x1: float, y1: float) -> dict:
    """A GeoJSON Polygon for a lon/lat rectangle."""
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


# A county 0.2° × 0.2° with one street and two communities side by side.
COUNTY = rect(100.0, 25.0, 100.2, 25.2)
STREET = rect(100.0, 25.0, 100.2, 25.1)
COMMUNITY = rect(100.0, 25.0, 100.1, 25.1)
COMMUNITY_EAST = rect(100.1, 25.0, 100.2, 25.1)
