"""Helpers for tests of dispatch (and of services that drive it): feed a small
world as the events other services would publish, then petitions.

The world: county DL → street DL-01 → communities DL-01-01 (west) and
DL-01-02 (east), each 0.1° square. Two networks:

* ``security``: S-W (level 1, the west community) with S-W-1 (level 2, its
  south-west quarter) inside, and S-E (the east community);
* ``urban``: U-W over the west community only; the east has no urban grid.

North of latitude 25.1 the county has no grid at all (catch-all queue).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from contracts.grids import DIVISION_CREATED, GRID_CREATED, STAFF_ASSIGNED
from contracts.identity import ROLE_GRANTED
from contracts.intake import PETITION_SUBMITTED
from gridgeo.testing import rect
from gridkit.events import Envelope, EventType

from .tables import Case

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


DIVISIONS = [  # id, code, kind, parent, box
    (1, "DL", "county", None, (100.0, 25.0, 100.2, 25.2)),
    (2, "DL-01", "street", 1, (100.0, 25.0, 100.2, 25.1)),
    (3, "DL-01-01", "community", 2, (100.0, 25.0, 100.1, 25.1)),
    (4, "DL-01-02", "community", 2, (100.1, 25.0, 100.2, 25.1)),
]
GRIDS = [  # id, network, code, level, parent, division id, box
    (11, "security", "S-W", 1, None, 3, (100.0, 25.0, 100.1, 25.1)),
    (12, "security", "S-W-1", 2, 11, 3, (100.0, 25.0, 100.05, 25.05)),
    (13, "security", "S-E", 1, None, 4, (100.1, 25.0, 100.2, 25.1)),
    (21, "urban", "U-W", 1, None, 3, (100.0, 25.0, 100.1, 25.1)),
]
STAFF = [  # grid, user, role
    (12, "worker-sw1-a", "grid_worker"), (12, "worker-sw1-b", "grid_worker"), (12, "head-sw1", "grid_head"),
    (11, "worker-sw", "grid_worker"), (11, "head-sw", "grid_head"),
    (13, "worker-se", "grid_worker"), (13, "head-se", "grid_head"),
    (21, "worker-uw", "grid_worker"), (21, "head-uw", "grid_head"),
]
GRANTS = [  # user, role, scope
    ("admin-west", "community_admin", "division:DL-01-01"),
    ("admin-east", "community_admin", "division:DL-01-02"),
    ("admin-street", "street_admin", "division:DL-01"),
    ("admin-county", "county_admin", "county"),
    ("officer-police", "dept_officer", "department:police"),
    ("officer-urban", "dept_officer", "department:urban_mgmt"),
]
# Places: the deepest security grid S-W-1, S-W outside S-W-1, the east, the grid-less north.
SW1 = (100.02, 25.02)
SW = (100.08, 25.08)
EAST = (100.15, 25.05)
NORTH = (100.1, 25.15)


@dataclass
class World:
    divisions: dict[str, int] = field(default_factory=dict)
    grids: dict[str, int] = field(default_factory=dict)


def queue_for(spec, event_type: EventType, queue: str | None = None) -> Any:
    for sub in spec.subscriptions.queues.values():
        if event_type.type in sub.handlers and (queue is None or sub.queue == queue):
            return sub
    raise LookupError(f"dispatch does not subscribe to {event_type.type}")


def feed(runtime, event_type: EventType, data: dict, subject: str | None = None, *,
         queue: str | None = None, envelope: Envelope | None = None) -> str:
    """Hand one event to dispatch's worker as if it came off the bus (on ``queue`` when several
    handle it; the same ``envelope`` again is a redelivery); returns the outcome."""
    worker = runtime.extras.get("feeder") or runtime.extras.setdefault("feeder", runtime.worker())
    body = json.dumps((envelope or Envelope.new(event_type, data, subject=subject)).to_json())
    return worker.handle(queue_for(runtime.spec, event_type, queue), body, {}, {})


def seed_world(runtime) -> World:
    world = World()
    for ident, code, kind, parent, box in DIVISIONS:
        feed(runtime, DIVISION_CREATED, {"id": ident, "code": code, "name": code, "kind": kind,
                                         "parent_id": parent, "boundary": rect(*box)})
        world.divisions[code] = ident
    kinds = {ident: (code, kind) for ident, code, kind, _, _ in DIVISIONS}
    for ident, network, code, level, parent, division, box in GRIDS:
        feed(runtime, GRID_CREATED, grid_data(ident, network, code, level, parent, box,
                                              division=(division, *kinds[division])))
        world.grids[code] = ident
    for n, (grid, user, role) in enumerate(STAFF, start=1):
        feed(runtime, STAFF_ASSIGNED, {"assignment_id": n, "grid_id": grid, "network": "security",
                                       "building_id": None, "user_id": user, "role": role,
                                       "since": EPOCH, "until": None})
    for n, (user, role, scope) in enumerate(GRANTS, start=1):
        feed(runtime, ROLE_GRANTED, {"grant_id": n, "user_id": user, "role": role, "scope": scope, "by": None})
    return world


def grid_data(ident: int, network: str, code: str, level: int, parent: int | None, box: tuple,
              *, division: tuple | None = None, version: int = 1) -> dict:
    return {"id": ident, "network": network, "code": code, "name": code, "level": level, "kind": "regular",
            "institution": None, "parent_id": parent,
            "division": None if division is None else dict(zip(("id", "code", "kind"), division, strict=True)),
            "version": version, "boundary": rect(*box), "valid_from": EPOCH, "valid_to": None}


def petition(at: tuple[float, float] = SW1, **overrides) -> dict:
    data = {"petition_id": str(uuid.uuid4()), "category": "drainage", "network": "security", "channel": "app",
            "place": {"lon": at[0], "lat": at[1], "building_id": None}, "reporter_id": "resident-1",
            "submitted_by": None, "anonymous": False, "claim_minutes": 30, "handle_hours": 24,
            "working_hours": False, "closed_on_spot": False, "photos": 0, "submitted_at": datetime.now(UTC)}
    return data | overrides


def submit(runtime, at: tuple[float, float] = SW1, **overrides) -> str:
    """Submit a petition (as intake would) and return the case id dispatch opened for it."""
    data = petition(at, **overrides)
    feed(runtime, PETITION_SUBMITTED, data, subject=data["petition_id"])
    return case_of(runtime, data["petition_id"])


def case_of(runtime, petition_id: str) -> str:
    with runtime.db.sessions() as session:
        return session.execute(select(Case.id).where(Case.petition_id == petition_id)).scalar_one()


def grants_of(user: str) -> list[tuple[str, str]]:
    """The grants identity would put in the user's token, matching the fed world."""
    staffed = [(role, f"grid:{grid}") for grid, who, role in STAFF if who == user]
    granted = [(role, scope) for who, role, scope in GRANTS if who == user]
    return staffed + granted


def headers(tokens, user: str) -> dict[str, str]:
    return tokens.header(*grants_of(user), sub=user)
