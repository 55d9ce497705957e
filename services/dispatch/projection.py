"""Where a point is, and who stands on each rung of the ladder there.

:class:`Projection` keeps one in-memory snapshot per process: a
:class:`gridgeo.LocateIndex` per network over the current grids, one
over the divisions, and the grid tree. It rebuilds lazily when the
``projection_revision`` row moves, so every gunicorn worker and the event
worker stay current without messaging. Staff and grants are read per
routing from small indexed tables.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass, field

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from gridgeo import LocateIndex, parse_boundary

from .tables import (
    AccountStatus,
    GridStaff,
    KnownDivision,
    KnownGrid,
    ProjectionRevision,
    StaffGrant,
)

DIVISION_DEPTH = {"county": 0, "street": 1, "community": 2}


@dataclass(frozen=True)
class GridInfo:
    id: int
    network: str
    level: int
    parent_id: int | None
    division_code: str | None


@dataclass
class Snapshot:
    revision: int
    grids: dict[int, GridInfo] = field(default_factory=dict)
    by_network: dict[str, LocateIndex] = field(default_factory=dict)
    divisions: dict[int, KnownDivision] = field(default_factory=dict)
    division_by_code: dict[str, KnownDivision] = field(default_factory=dict)
    division_index: LocateIndex | None = None

    def grid_at(self, network: str, lon: float, lat: float) -> GridInfo | None:
        """The deepest current grid of ``network`` containing the point (ties: lowest id)."""
        index = self.by_network.get(network)
        hits = [self.grids[g] for g in index.locate_one(lon, lat)] if index else []
        return max(hits, key=lambda g: (g.level, -g.id), default=None)

    def chain(self, grid_id: int | None) -> tuple[int, ...]:
        """The grid and its ancestors (for grid:<id> subtree scopes)."""
        out: list[int] = []
        while grid_id is not None and grid_id not in out:
            out.append(grid_id)
            info = self.grids.get(grid_id)
            grid_id = info.parent_id if info else None
        return tuple(out)

    def subtree(self, roots: set[int]) -> set[int]:
        """The roots and every grid below them (for grid:<id> scopes in list queries)."""
        if not hasattr(self, "_children"):  # built once per snapshot, on first use
            children: dict[int, list[int]] = {}
            for info in self.grids.values():
                if info.parent_id is not None:
                    children.setdefault(info.parent_id, []).append(info.id)
            self._children = children
        found, todo = set(), list(roots)
        while todo:
            grid_id = todo.pop()
            if grid_id not in found:
                found.add(grid_id)
                todo.extend(self._children.get(grid_id, ()))
        return found

    def grid_divisions(self, grid_id: int) -> tuple[str, ...]:
        """Codes of the divisions a grid lies in (community, street, county), from its own
        division or the nearest ancestor's that names one; never from a case's point."""
        for ident in self.chain(grid_id):
            info = self.grids.get(ident)
            if info is None or not info.division_code:
                continue
            codes = [info.division_code]
            division = self.division_by_code.get(info.division_code)
            while division is not None and division.parent_id is not None:
                division = self.divisions.get(division.parent_id)
                if division is None or division.code in codes:
                    break
                codes.append(division.code)
            return tuple(codes)
        return ()

    def divisions_of(self, grid: GridInfo | None, lon: float, lat: float) -> dict[str, str]:
        """{"community": code, "street": code, "county": code} for the place: from the
        grid's division when it names one, else the deepest division containing the point."""
        start = self.division_by_code.get(grid.division_code) if grid and grid.division_code else None
        if start is None and self.division_index is not None:
            hits = [self.divisions[d] for d in self.division_index.locate_one(lon, lat)]
            start = max(hits, key=lambda d: DIVISION_DEPTH.get(d.kind, 0), default=None)
        out: dict[str, str] = {}
        while start is not None and start.kind not in out:
            out[start.kind] = start.code
            start = self.divisions.get(start.parent_id) if start.parent_id is not None else None
        return out


# The statements every case opened runs, built once: building one cost as much as running it.
REVISION = select(ProjectionRevision.revision).where(ProjectionRevision.id == 1)


def read_revision(session: Session) -> int:
    """Read once per transaction (a batch of cases asks once); ``bump_projection`` forgets it."""
    if "projection_revision" not in session.info:
        session.info["projection_revision"] = session.execute(REVISION).scalar_one_or_none() or 0
    return session.info["projection_revision"]


def load_snapshot(session: Session) -> Snapshot:
    snapshot = Snapshot(read_revision(session))
    shapes: dict[str, list] = {}
    for grid in session.execute(select(KnownGrid).where(KnownGrid.retired.is_(False))).scalars():
        snapshot.grids[grid.id] = GridInfo(grid.id, grid.network, grid.level, grid.parent_id,
                                           grid.division_code)
        shapes.setdefault(grid.network, []).append((grid.id, parse_boundary(json.loads(grid.boundary))))
    snapshot.by_network = {network: LocateIndex(items) for network, items in shapes.items()}
    divisions = session.execute(select(KnownDivision)).scalars().all()
    for division in divisions:
        session.expunge(division)
        snapshot.divisions[division.id] = division
        snapshot.division_by_code[division.code] = division
    if divisions:
        snapshot.division_index = LocateIndex(
            (d.id, parse_boundary(json.loads(d.boundary))) for d in divisions)
    return snapshot


class Projection:
    """The per-process snapshot, rebuilt when the projection revision moves."""

    def __init__(self):
        self._current: Snapshot | None = None
        self._lock = threading.Lock()
        self.builds = 0

    def current(self, session: Session) -> Snapshot:
        revision = read_revision(session)
        snapshot = self._current
        if snapshot is not None and snapshot.revision == revision:
            return snapshot
        with self._lock:
            snapshot = self._current
            if snapshot is None or snapshot.revision != revision:
                snapshot = load_snapshot(session)
                self.builds += 1
                self._current = snapshot
        return snapshot


_PROJECTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PROJECTIONS_LOCK = threading.Lock()


def current_snapshot(session: Session) -> Snapshot:
    """The snapshot of the database this session talks to: one Projection per engine,
    so the web app and the worker in one process share it, and two runtimes never mix."""
    engine = session.get_bind()
    with _PROJECTIONS_LOCK:
        projection = _PROJECTIONS.get(engine)
        if projection is None:
            projection = _PROJECTIONS[engine] = Projection()
    return projection.current(session)


# --------------------------------------------------------------------------
# people on the ladder
# --------------------------------------------------------------------------


def enabled(user_id_column):
    """Not disabled in identity: whatever the staffing and grant projections still say (their
    events may come later than identity.user.disabled), a disabled account is on no rung."""
    return ~exists().where(AccountStatus.user_id == user_id_column, AccountStatus.disabled.is_(True))


GRID_STAFF = select(GridStaff.user_id).where(
    GridStaff.grid_id == bindparam("grid_id"), GridStaff.role == bindparam("role"), GridStaff.active.is_(True),
    enabled(GridStaff.user_id))


def grid_staff(session: Session, grid_id: int | None, role: str) -> list[str]:
    if grid_id is None:
        return []
    # Remembered for the transaction (a batch of cases in one grid asks once); the
    # staffing handlers forget it when they change a grid's staff.
    known = session.info.setdefault("grid_staff", {})
    if (grid_id, role) not in known:
        known[grid_id, role] = sorted(set(session.execute(GRID_STAFF, {"grid_id": grid_id, "role": role}).scalars()))
    return list(known[grid_id, role])


def granted(session: Session, role: str, scope: str) -> list[str]:
    return sorted(set(session.execute(select(StaffGrant.user_id).where(
        StaffGrant.role == role, StaffGrant.scope == scope, StaffGrant.revoked.is_(False),
        enabled(StaffGrant.user_id))).scalars()))


def people_on_rung(session: Session, rung: str, grid_id: int | None, divisions: dict[str, str | None]) -> list[str]:
    """User ids standing on a rung of the ladder for a case at this place."""
    if rung in ("grid_worker", "grid_head"):
        return grid_staff(session, grid_id, rung)
    if rung == "community_admin":
        return granted(session, rung, f"division:{divisions['community']}") if divisions.get("community") else []
    if rung == "street_admin":
        return granted(session, rung, f"division:{divisions['street']}") if divisions.get("street") else []
    return granted(session, "county_admin", "county")
