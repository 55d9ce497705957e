"""Staffing: grid heads, grid workers, instructors and building managers, with their terms."""

from __future__ import annotations

from sqlalchemy import select

from gridkit.auth import authenticated, current_principal, require_roles
from gridkit.problems import Conflict, Forbidden, Invalid, NotFound
from gridkit.service import runtime

from .. import domain
from ..events import STAFF_ASSIGNED
from ..staffing import end_term, staff_event
from ..tables import Building, Person, StaffAssignment, outbox, utcnow
from .common import blp, current_grid, parent_lookup
from .schemas import StaffIn, StaffList, StaffOut


def staff_out(term: StaffAssignment, names: dict[str, str]) -> dict:
    return {"id": term.id, "grid_id": term.grid_id, "building_id": term.building_id,
            "user_id": term.user_id, "display_name": names.get(term.user_id), "role": term.role,
            "since": term.since, "until": term.until}


@blp.get("/grids/<int:grid_id>/staff")
@authenticated
@blp.response(200, StaffList)
def list_staff(grid_id):
    with runtime().db.sessions() as session:
        current_grid(session, grid_id)
        terms = session.execute(select(StaffAssignment).where(StaffAssignment.grid_id == grid_id)
                                .order_by(StaffAssignment.id)).scalars().all()
        names = dict(session.execute(select(Person.user_id, Person.display_name).where(
            Person.user_id.in_({t.user_id for t in terms}))).all())
        return {"grid_id": grid_id,
                "current": [staff_out(t, names) for t in terms if t.until is None],
                "past": [staff_out(t, names) for t in terms if t.until is not None]}


@blp.post("/grids/<int:grid_id>/staff")
@require_roles(*domain.STAFFERS)
@blp.arguments(StaffIn)
@blp.response(201, StaffOut)
def assign_staff(body, grid_id):
    """A second grid head (or building manager) ends the first one's term."""
    user_id, role = str(body["user_id"]), body["role"]
    with runtime().db.transaction() as session:
        grid = current_grid(session, grid_id)
        if not domain.may_staff(current_principal(), grid.id, role, parent_lookup(session)):
            raise Forbidden("you may not staff this grid in that role")
        if grid.retired_at is not None:
            raise Conflict(f"grid {grid_id} is retired")
        if body["building_id"] is not None:
            building = session.get(Building, body["building_id"])
            if building is None or building.grid_id != grid.id:
                raise Invalid({"building_id": [f"no building {body['building_id']} in grid {grid_id}"]})
        current = session.execute(select(StaffAssignment).where(
            StaffAssignment.grid_id == grid.id, StaffAssignment.until.is_(None),
            StaffAssignment.role == role, StaffAssignment.building_id.is_(None)
            if body["building_id"] is None else StaffAssignment.building_id == body["building_id"]
        ).with_for_update()).scalars().all()
        if any(t.user_id == user_id for t in current):
            raise Conflict(f"{user_id} is already {role} here")
        now = utcnow()
        if role in ("grid_head", "building_manager"):  # one at a time
            for term in current:
                end_term(session, term, now)
        term = StaffAssignment(grid_id=grid.id, building_id=body["building_id"], user_id=user_id,
                               role=role, since=now, assigned_by=current_principal().subject)
        session.add(term)
        session.flush()
        outbox.record(session, STAFF_ASSIGNED, staff_event(session, term), subject=str(grid.id))
        return staff_out(term, {})


@blp.delete("/grids/<int:grid_id>/staff/<int:assignment_id>")
@require_roles(*domain.STAFFERS)
@blp.response(200, StaffOut)
def unassign_staff(grid_id, assignment_id):
    """Ends the term; the row stays as history."""
    with runtime().db.transaction() as session:
        term = session.get(StaffAssignment, assignment_id)
        if term is None or term.grid_id != grid_id:
            raise NotFound("staff assignment", assignment_id)
        if not domain.may_staff(current_principal(), grid_id, term.role, parent_lookup(session)):
            raise Forbidden("you may not change this grid's staff in that role")
        if term.until is not None:
            raise Conflict(f"assignment {assignment_id} already ended")
        end_term(session, term, utcnow())
        return staff_out(term, {})
