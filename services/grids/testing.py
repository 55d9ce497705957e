"""Factories for tests of grids and of services that need a registry."""

from __future__ import annotations

import json

from gridgeo.testing import COMMUNITY, COMMUNITY_EAST, COUNTY, STREET, rect  # noqa: F401 - for the tests

from .tables import Division, bump_revision, lock_registry


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
