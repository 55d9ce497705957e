"""Buildings → units → households → residents (人屋关联)."""

from __future__ import annotations

import json

from marshmallow import RAISE
from sqlalchemy import select
from sqlalchemy.orm import Session

import gridgeo as geometry
from gridkit import audit
from gridkit.auth import authenticated, current_principal, require_roles
from gridkit.db import fetch
from gridkit.problems import Conflict, Forbidden, Invalid
from gridkit.service import runtime

from .. import domain
from ..events import BUILDING_CREATED, RESIDENT_BOUND
from ..tables import (
    Building,
    Grid,
    Household,
    Resident,
    StaffAssignment,
    Unit,
    bump_revision,
    lock_registry,
    outbox,
    utcnow,
)
from .common import (
    authorize_grid,
    blp,
    current_geom,
    parent_lookup,
    reject,
)
from .schemas import (
    BY_ID,
    BuildingIn,
    BuildingOut,
    BuildingPage,
    BuildingQuery,
    HouseholdIn,
    HouseholdOut,
    ResidentIn,
    ResidentOut,
    UnitIn,
    UnitOut,
)


def manages(session: Session, user_id: str, building_id: int) -> bool:
    return session.execute(select(StaffAssignment.id).where(
        StaffAssignment.user_id == user_id, StaffAssignment.building_id == building_id,
        StaffAssignment.role == "building_manager", StaffAssignment.until.is_(None))).first() is not None


def authorize_building(session: Session, building: Building, *, managers: bool) -> None:
    principal = current_principal()
    if domain.may_act_on(principal, building.grid_id, domain.GRID_EDITORS, parent_lookup(session)):
        return
    if managers and principal.has_role("building_manager") and manages(session, principal.subject, building.id):
        return
    raise Forbidden("this building is outside your scope")


def building_out(session: Session, building: Building, *, units: bool = True) -> dict:
    data = {"id": building.id, "code": building.code, "name": building.name,
            "grid_id": building.grid_id, "division_id": building.division_id,
            "location": json.loads(building.location),
            "outline": json.loads(building.outline) if building.outline else None, "units": []}
    if units:
        reveal = may_see_residents(session, building)
        for unit in session.execute(select(Unit).where(Unit.building_id == building.id)
                                    .order_by(Unit.id)).scalars():
            data["units"].append({"id": unit.id, "building_id": building.id, "code": unit.code,
                                  "name": unit.name, "households": [
                                      household_out(session, h, reveal=reveal) for h in session.execute(
                                          select(Household).where(Household.unit_id == unit.id)
                                          .order_by(Household.id)).scalars()]})
    return data


def may_see_residents(session: Session, building: Building) -> bool:
    """Who lives where is personal: only staff in scope of the building's grid (and admins)."""
    return domain.may_act_on(current_principal(), building.grid_id, domain.RESIDENT_READERS,
                             parent_lookup(session))


def household_out(session: Session, household: Household, *, reveal: bool | None = None) -> dict:
    if reveal is None:
        unit = session.get(Unit, household.unit_id)
        reveal = may_see_residents(session, session.get(Building, unit.building_id))
    residents = session.execute(select(Resident.user_id).where(
        Resident.household_id == household.id, Resident.until.is_(None))).scalars().all() if reveal else []
    principal = current_principal()
    for user_id in residents:  # who lives where is personal: each one seen is a line of the trail
        if user_id != principal.subject:
            audit.record_at_commit(session, principal, "read_residents", subject_id=user_id,
                                   resource=f"household:{household.id}")
    return {"id": household.id, "unit_id": household.unit_id, "code": household.code,
            "floor": household.floor, "residents": residents}


@blp.get("/buildings")
@authenticated
@blp.arguments(BuildingQuery, location="query", unknown=RAISE)
@blp.response(200, BuildingPage)
def list_buildings(query):
    with runtime().db.sessions() as session:
        stmt = select(Building)
        if query.get("cursor"):
            stmt = stmt.where(Building.id > query["cursor"][0])
        if "grid" in query:
            stmt = stmt.where(Building.grid_id == query["grid"])
        rows = session.execute(stmt.order_by(Building.id).limit(query["limit"] + 1)).scalars().all()
        more = len(rows) > query["limit"]
        rows = rows[:query["limit"]]
        return {"items": [building_out(session, b, units=False) for b in rows],
                "next_cursor": BY_ID.encode(rows[-1].id) if more else None}


@blp.post("/buildings")
@require_roles(*domain.GRID_EDITORS)
@blp.arguments(BuildingIn)
@blp.response(201, BuildingOut)
def create_building(body):
    findings = domain.Findings()
    try:
        point = domain.floating(geometry.parse_point_geojson(body["location"], "location"))
    except geometry.GeometryError as exc:
        findings.add(exc.field, exc.message)
        point = None
    outline = domain.parse(body["outline"], findings, "outline") if body["outline"] else None
    reject(findings)
    with runtime().db.transaction() as session:
        grid = session.get(Grid, body["grid_id"])
        if grid is None or grid.retired_at is not None:
            raise Invalid({"grid_id": [f"no current grid {body['grid_id']}"]})
        authorize_grid(session, grid.id)
        lock_registry(session)
        if session.execute(select(Building.id).where(Building.code == body["code"])).first():
            raise Conflict(f"building {body['code']} already exists")
        area = current_geom(session, grid.id)
        if not area.covers(point):
            raise Invalid({"location": [f"outside grid {grid.code}"]})
        if outline is not None and geometry.check_inside_parent(outline, area, "outline"):
            raise Invalid({"outline": [f"sticks out of grid {grid.code}"]})
        building = Building(code=body["code"], name=body["name"], grid_id=grid.id,
                            division_id=grid.division_id,
                            location=json.dumps(geometry.to_geojson(point)),
                            outline=json.dumps(geometry.to_geojson(outline)) if outline else None)
        session.add(building)
        session.flush()
        data = building_out(session, building, units=False)
        outbox.record(session, BUILDING_CREATED, data, subject=str(building.id))
        bump_revision(session)  # outlines are part of the locate index
        return data


@blp.get("/buildings/<int:building_id>")
@authenticated
@blp.response(200, BuildingOut)
def get_building(building_id):
    """A building with its units and households; who lives in each only to staff in scope
    (each resident shown is recorded in the audit trail)."""
    with runtime().db.transaction() as session:
        building = fetch(session, Building, building_id, "building")
        return building_out(session, building)


@blp.post("/buildings/<int:building_id>/units")
@require_roles(*domain.GRID_EDITORS)
@blp.arguments(UnitIn)
@blp.response(201, UnitOut)
def create_unit(body, building_id):
    with runtime().db.transaction() as session:
        building = fetch(session, Building, building_id, "building")
        authorize_building(session, building, managers=False)
        if session.execute(select(Unit.id).where(Unit.building_id == building.id,
                                                 Unit.code == body["code"])).first():
            raise Conflict(f"unit {body['code']} already exists in building {building_id}")
        unit = Unit(building_id=building.id, code=body["code"], name=body["name"])
        session.add(unit)
        session.flush()
        return {"id": unit.id, "building_id": building.id, "code": unit.code, "name": unit.name,
                "households": []}


@blp.post("/units/<int:unit_id>/households")
@require_roles(*domain.HOUSING_EDITORS)
@blp.arguments(HouseholdIn)
@blp.response(201, HouseholdOut)
def create_household(body, unit_id):
    with runtime().db.transaction() as session:
        unit = fetch(session, Unit, unit_id, "unit")
        authorize_building(session, session.get(Building, unit.building_id), managers=True)
        if session.execute(select(Household.id).where(Household.unit_id == unit.id,
                                                      Household.code == body["code"])).first():
            raise Conflict(f"household {body['code']} already exists in unit {unit_id}")
        household = Household(unit_id=unit.id, code=body["code"], floor=body["floor"])
        session.add(household)
        session.flush()
        return household_out(session, household)


@blp.get("/households/<int:household_id>")
@authenticated
@blp.response(200, HouseholdOut)
def get_household(household_id):
    """A household and who lives there (staff in scope; each resident shown is recorded
    in the audit trail)."""
    with runtime().db.transaction() as session:
        household = fetch(session, Household, household_id, "household")
        return household_out(session, household)


@blp.post("/households/<int:household_id>/residents")
@require_roles(*domain.HOUSING_EDITORS)
@blp.arguments(ResidentIn)
@blp.response(201, ResidentOut)
def bind_resident(body, household_id):
    user_id = str(body["user_id"])
    with runtime().db.transaction() as session:
        household = fetch(session, Household, household_id, "household")
        unit = session.get(Unit, household.unit_id)
        building = session.get(Building, unit.building_id)
        authorize_building(session, building, managers=True)
        if session.execute(select(Resident.id).where(Resident.household_id == household.id,
                                                     Resident.user_id == user_id,
                                                     Resident.until.is_(None))).first():
            raise Conflict(f"{user_id} is already bound to household {household_id}")
        resident = Resident(household_id=household.id, user_id=user_id, since=utcnow())
        session.add(resident)
        session.flush()
        outbox.record(session, RESIDENT_BOUND, {
            "household_id": household.id, "unit_id": unit.id, "building_id": building.id,
            "grid_id": building.grid_id, "user_id": user_id, "since": resident.since},
            subject=str(household.id))
        return {"household_id": household.id, "user_id": user_id, "since": resident.since}
