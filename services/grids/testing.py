"""Factories for tests of grids and of services that need a registry."""

from __future__ import annotations

import json

from .tables import Division, bump_revision, lock_registry


def rect(x0: float, y0: float, x1: float, y1: float) -> dict:
    """A GeoJSON Polygon for a lon/lat rectangle."""
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


# A county 0.2° × 0.2° with one street and two communities side by side.
COUNTY = rect(100.0, 25.0, 100.2, 25.2)
STREET = rect(100.0, 25.0, 100.2, 25.1)
COMMUNITY = rect(100.0, 25.0, 100.1, 25.1)
COMMUNITY_EAST = rect(100.1, 25.0, 100.2, 25.1)


def seed_divisions(runtime) -> dict[str, int]:
    """county DL → street DL-01 → communities DL-01-01 (west) and DL-01-02 (east); ids by code."""
    with runtime.db.transaction() as session:
        lock_registry(session)
        county = Division(code="DL", name="大理市", kind="county", boundary=json.dumps(COUNTY))
        session.add(county)
        session.flush()
        street = Division(code="DL-01", name="下关街道", kind="street", parent_id=county.id,
                          boundary=json.dumps(STREET))
        session.add(street)
        session.flush()
        west = Division(code="DL-01-01", name="龙溪社区", kind="community", parent_id=street.id,
                        boundary=json.dumps(COMMUNITY))
        east = Division(code="DL-01-02", name="洱滨社区", kind="community", parent_id=street.id,
                        boundary=json.dumps(COMMUNITY_EAST))
        session.add_all([west, east])
        session.flush()
        bump_revision(session)
        return {d.code: d.id for d in (county, street, west, east)}


def grid_body(code: str, boundary: dict, *, network: str = "security", parent_id: int | None = None,
              division_id: int | None = None, **extra) -> dict:
    body = {"network": network, "code": code, "name": f"{code}网格", "boundary": boundary}
    if parent_id is not None:
        body["parent_id"] = parent_id
    if division_id is not None:
        body["division_id"] = division_id
    return body | extra
