"""What dispatch listens to.

* ``dispatch.petitions``: intake's petitions become cases and follow the resident.
* ``dispatch.grids``: grids, divisions and staffing, kept as a local projection.
* ``dispatch.roles``: identity's role grants (who approves, who is up the ladder,
  which officers a department has), and accounts disabled and enabled again (someone
  left: their offers and cases go back to a grid head).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from contracts.grids import (
    DIVISION_CREATED,
    GRID_CREATED,
    GRID_REDRAWN,
    GRID_RETIRED,
    STAFF_ASSIGNED,
    STAFF_UNASSIGNED,
)
from contracts.identity import ROLE_GRANTED, ROLE_REVOKED, USER_DISABLED, USER_ENABLED
from contracts.intake import (
    PETITION_MERGED,
    PETITION_RATED,
    PETITION_REOPENED,
    PETITION_SUBMITTED,
    PETITION_WITHDRAWN,
)
from gridkit.consumer import Event, Subscriptions

from . import cases
from .projection import current_snapshot
from .tables import GridStaff, KnownDivision, KnownGrid, StaffGrant, bump_projection

subscriptions = Subscriptions("dispatch")


def snapshot(session: Session):
    return current_snapshot(session)


def now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------
# petitions
# --------------------------------------------------------------------------


@subscriptions.on(PETITION_SUBMITTED, purpose="petitions")
def open_case(session: Session, event: Event) -> None:
    # Nothing opening a case reads depends on rows it (or the batch before it) wrote: they
    # all go in at commit, each case complete in one INSERT. (The same petition twice in one
    # batch breaks cases' unique petition_id; the batch is then redone one message at a
    # time, and the duplicate check sees the first case.)
    with session.no_autoflush:
        cases.open_case(session, snapshot(session), event.data, now())


@subscriptions.on(PETITION_WITHDRAWN, purpose="petitions")
def withdraw(session: Session, event: Event) -> None:
    cases.withdraw(session, event.data, now())


@subscriptions.on(PETITION_MERGED, purpose="petitions")
def merge(session: Session, event: Event) -> None:
    cases.merge(session, event.data, now())


@subscriptions.on(PETITION_RATED, purpose="petitions")
def rate(session: Session, event: Event) -> None:
    cases.rate(session, event.data, now())


@subscriptions.on(PETITION_REOPENED, purpose="petitions")
def reopen(session: Session, event: Event) -> None:
    cases.reopen(session, event.data, now())


# --------------------------------------------------------------------------
# grids, divisions, staffing
# --------------------------------------------------------------------------


def keep_grid(session: Session, data: dict, *, retired: bool) -> None:
    grid = session.get(KnownGrid, data["id"])
    if grid is not None and grid.version > data["version"]:
        return  # an older version arriving late
    grid = grid or KnownGrid(id=data["id"])
    grid.network, grid.code, grid.level, grid.parent_id = data["network"], data["code"], data["level"], data["parent_id"]
    grid.division_code = (data.get("division") or {}).get("code")
    grid.version, grid.boundary, grid.retired = data["version"], json.dumps(data["boundary"]), retired
    session.add(grid)
    bump_projection(session)


@subscriptions.on(GRID_CREATED, purpose="grids")
def grid_created(session: Session, event: Event) -> None:
    keep_grid(session, event.data, retired=False)


@subscriptions.on(GRID_REDRAWN, purpose="grids")
def grid_redrawn(session: Session, event: Event) -> None:
    keep_grid(session, event.data, retired=False)


@subscriptions.on(GRID_RETIRED, purpose="grids")
def grid_retired(session: Session, event: Event) -> None:
    keep_grid(session, event.data, retired=True)


@subscriptions.on(DIVISION_CREATED, purpose="grids")
def division_created(session: Session, event: Event) -> None:
    data = event.data
    division = session.get(KnownDivision, data["id"]) or KnownDivision(id=data["id"])
    division.code, division.kind, division.parent_id = data["code"], data["kind"], data["parent_id"]
    division.boundary = json.dumps(data["boundary"])
    session.add(division)
    bump_projection(session)


@subscriptions.on(STAFF_ASSIGNED, purpose="grids")
def staff_assigned(session: Session, event: Event) -> None:
    data = event.data
    staff = session.get(GridStaff, data["assignment_id"]) or GridStaff(assignment_id=data["assignment_id"])
    staff.grid_id, staff.user_id, staff.role = data["grid_id"], data["user_id"], data["role"]
    staff.active = data.get("until") is None
    session.add(staff)
    session.info.pop("grid_staff", None)
    if staff.active:
        cases.attend_unattended(session, now())


@subscriptions.on(STAFF_UNASSIGNED, purpose="grids")
def staff_unassigned(session: Session, event: Event) -> None:
    data = event.data
    staff = session.get(GridStaff, data["assignment_id"]) or GridStaff(
        assignment_id=data["assignment_id"], grid_id=data["grid_id"], user_id=data["user_id"], role=data["role"])
    staff.active = False
    session.add(staff)
    session.info.pop("grid_staff", None)


# --------------------------------------------------------------------------
# role grants
# --------------------------------------------------------------------------


@subscriptions.on(ROLE_GRANTED, purpose="roles")
def role_granted(session: Session, event: Event) -> None:
    data = event.data
    grant = session.get(StaffGrant, data["grant_id"]) or StaffGrant(grant_id=data["grant_id"])
    grant.user_id, grant.role, grant.scope, grant.revoked = data["user_id"], data["role"], data["scope"], False
    session.add(grant)
    cases.attend_unattended(session, now())


@subscriptions.on(ROLE_REVOKED, purpose="roles")
def role_revoked(session: Session, event: Event) -> None:
    data = event.data
    grant = session.get(StaffGrant, data["grant_id"]) or StaffGrant(
        grant_id=data["grant_id"], user_id=data["user_id"], role=data["role"], scope=data["scope"])
    grant.revoked = True
    session.add(grant)


# --------------------------------------------------------------------------
# accounts: someone left, or came back
# --------------------------------------------------------------------------


@subscriptions.on(USER_DISABLED, purpose="roles")
def account_disabled(session: Session, event: Event) -> None:
    cases.offboard(session, event.data["user_id"], event.data["at"], now())


@subscriptions.on(USER_ENABLED, purpose="roles")
def account_enabled(session: Session, event: Event) -> None:
    cases.account_enabled(session, event.data["user_id"], event.data["at"], now())
