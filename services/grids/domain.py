"""The registry's rules in plain Python: scopes, levels, boundary validation.

No Flask, no SQLAlchemy: callers pass parent chains and shapely geometries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import shapely

import gridgeo as geometry
from gridkit.auth import Principal

DEFAULT_NETWORKS = (("party", "党建网格"), ("security", "综治网格"), ("urban", "城管网格"))
GRID_KINDS = ("regular", "dedicated")
GRID_STAFF_ROLES = ("grid_head", "grid_worker", "grid_instructor")
STAFF_ROLES = (*GRID_STAFF_ROLES, "building_manager")
DIVISION_KINDS = ("county", "street", "community")
DIVISION_PARENT = {"county": None, "street": "county", "community": "street"}

COUNTY_WIDE = ("county_admin", "sysadmin")
SUBTREE_ADMINS = ("street_admin", "community_admin")
GRID_EDITORS = COUNTY_WIDE + SUBTREE_ADMINS
STAFFERS = GRID_EDITORS + ("grid_head",)
HOUSING_EDITORS = GRID_EDITORS + ("building_manager",)
RESIDENT_READERS = HOUSING_EDITORS + GRID_STAFF_ROLES

ParentOf = Callable[[int], int | None]


def scope_grid(scope: str) -> int | None:
    """The grid id of a ``grid:<id>`` scope (None for anything else)."""
    kind, _, ident = scope.partition(":")
    return int(ident) if kind == "grid" and ident.isdigit() else None


def is_within(grid_id: int, scope: str, parent_of: ParentOf) -> bool:
    """True if ``grid_id`` is the scope's grid or one of its descendants, or lies in
    the scope's division (``division:<code>``: a community or street admin's area).
    ``county`` covers everything; other scope kinds cover no grid. ``parent_of``
    may also offer ``divisions(grid_id)``: the codes of the divisions the grid lies in."""
    if scope == "county":
        return True
    if scope.startswith("division:"):
        divisions = getattr(parent_of, "divisions", None)
        return divisions is not None and scope.partition(":")[2] in divisions(grid_id)
    root = scope_grid(scope)
    if root is None:
        return False
    seen: set[int] = set()
    current: int | None = grid_id
    while current is not None and current not in seen:  # guard against cycles
        if current == root:
            return True
        seen.add(current)
        current = parent_of(current)
    return False


def may_act_on(principal: Principal, grid_id: int | None, roles: Sequence[str],
               parent_of: ParentOf, *, division_codes: Sequence[str] = ()) -> bool:
    """County-wide roles act anywhere; other ``roles`` only inside their scope.
    ``grid_id`` None means a new top-level (level-1) grid in the division whose
    chain of codes is ``division_codes``: county-wide roles or that division's admins."""
    if principal.has_role(*COUNTY_WIDE):
        return True
    if grid_id is None:
        return any(grant.scope.startswith("division:") and grant.scope.partition(":")[2] in division_codes
                   for grant in principal.grants_for(*[r for r in roles if r not in COUNTY_WIDE]))
    return any(is_within(grid_id, grant.scope, parent_of)
               for grant in principal.grants_for(*[r for r in roles if r not in COUNTY_WIDE]))


def may_staff(principal: Principal, grid_id: int, role: str, parent_of: ParentOf) -> bool:
    """Admins staff their subtree; a grid head may add workers and instructors in their own grid."""
    if may_act_on(principal, grid_id, GRID_EDITORS, parent_of):
        return True
    return role in ("grid_worker", "grid_instructor") and may_act_on(
        principal, grid_id, ("grid_head",), parent_of)


def expected_level(parent_level: int | None) -> int:
    return 1 if parent_level is None else parent_level + 1


# --------------------------------------------------------------------------
# dates: "on date D" means the state at the end of that day (UTC)
# --------------------------------------------------------------------------


def instant_of(value: date | datetime, *, end_of_day: bool = True) -> datetime:
    """A query date is the state at the end of that day; a validity bound
    (valid_from, valid_to) given as a date starts at its midnight."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time.max if end_of_day else time.min, tzinfo=UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------
# boundary validation
# --------------------------------------------------------------------------


@dataclass
class Findings:
    """What is wrong with one boundary: messages per field, plus overlap pairs."""

    errors: dict[str, list[str]] = field(default_factory=dict)
    overlaps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, fieldname: str, message: str) -> None:
        self.errors.setdefault(fieldname, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.errors)


def parse(boundary: Any, findings: Findings, fieldname: str = "boundary"):
    try:
        return floating(geometry.parse_boundary(boundary, fieldname))
    except geometry.GeometryError as exc:
        findings.add(exc.field, exc.message)
        return None


def floating(geom):
    """Drop the 1e-7° precision grid shapely attaches on snapping (coordinates stay
    snapped). Kept on, GEOS erodes whole polygons to EMPTY in negative buffers, which
    makes every real overlap look like a sliver."""
    return shapely.set_precision(geom, 0)


def load(text: str):
    """A boundary stored by the registry (already validated and snapped)."""
    return shapely.from_geojson(text)


def check_boundary(code: str, geom, *, parent: tuple[str, Any] | None,
                   neighbours: Iterable[tuple[str, Any]],
                   children: Iterable[tuple[str, Any]] = (),
                   findings: Findings | None = None) -> Findings:
    """Containment in the parent, no overlap with same network/level/kind
    neighbours, and (on a redraw) every current child still inside."""
    findings = findings if findings is not None else Findings()
    if parent is not None:
        for problem in geometry.check_inside_parent(geom, parent[1]):
            findings.add("boundary", f"{problem.message} {parent[0]}")
    for other, overlap_m2 in geometry.find_overlaps(geom, list(neighbours)):
        findings.add("boundary", f"boundary overlaps grid {other} by {overlap_m2:,.1f} m²")
        findings.overlaps.append({"grids": [code, other], "overlap_m2": round(overlap_m2, 3)})
    for child_code, child in children:
        if geometry.check_inside_parent(child, geom):
            findings.add("boundary", f"child grid {child_code} would stick out of the new boundary")
    return findings
