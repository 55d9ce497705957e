"""HTTP door into the registry: networks, divisions, grids, staffing, housing, locate."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta

import numpy as np
from flask import Response
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from gridkit.auth import authenticated, current_principal, require_roles
from gridkit.db import fetch
from gridkit.problems import Conflict, Forbidden, Invalid, NotFound, Problem
from gridkit.service import runtime
from gridkit.web import Blueprint, Page

from . import domain, geometry, importer
from .events import (
    BUILDING_CREATED,
    DIVISION_CREATED,
    GRID_CREATED,
    GRID_REDRAWN,
    GRID_RETIRED,
    NETWORK_CREATED,
    RESIDENT_BOUND,
    STAFF_ASSIGNED,
    STAFF_UNASSIGNED,
)
from .locate import Registry, locate_batch
from .tables import (
    Building,
    Division,
    Grid,
    GridVersion,
    Household,
    Network,
    Person,
    Resident,
    StaffAssignment,
    Unit,
    bump_revision,
    grid_event,
    lock_registry,
    outbox,
    utcnow,
    version_row,
)

blp = Blueprint("grids", __name__, description="The grid registry: networks, grids, staffing, "
                "buildings and households, and locating points in every network.")

MAX_POINTS = 10_000
CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", error="letters, digits, . _ - only")
NETWORK_CODE = validate.Regexp(r"^[a-z][a-z0-9_-]{1,31}$", error="lowercase letters, digits, _ -")
NAME = validate.Length(min=1, max=200)


# --------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------


class Instant(fields.Field):
    """A date or an ISO datetime (UTC if no offset). A query date means the end
    of that day; a validity bound given as a date starts at its midnight."""

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.end_of_day = end_of_day

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and len(value) <= 40:
            try:
                return domain.instant_of(date.fromisoformat(value), end_of_day=self.end_of_day)
            except ValueError:
                try:
                    return domain.instant_of(datetime.fromisoformat(value))
                except ValueError:
                    pass
        raise ValidationError("expected a date (2025-01-01) or an ISO datetime")


class Points(fields.Field):
    """[[lon, lat], ...] checked as one numpy array (fast for 10,000 points)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("expected an array of [lon, lat] pairs")
        if len(value) > MAX_POINTS:
            raise ValidationError(f"at most {MAX_POINTS} points per request, got {len(value)}")
        if not all(type(p) is list and len(p) == 2 and type(p[0]) in (int, float)
                   and type(p[1]) in (int, float) for p in value):
            raise ValidationError("every point must be [lon, lat] with two numbers")
        xy = np.asarray(value, dtype=float).reshape(-1, 2)
        bad = ~(np.isfinite(xy).all(axis=1) & (np.abs(xy[:, 0]) <= 180) & (np.abs(xy[:, 1]) <= 90))
        if bad.any():
            raise ValidationError(f"point {int(np.flatnonzero(bad)[0])} is outside lon -180..180, lat -90..90")
        return xy


class NetworkIn(Schema):
    code = fields.String(required=True, validate=NETWORK_CODE)
    name = fields.String(required=True, validate=NAME)


class NetworkOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class DivisionIn(Schema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=NAME)
    kind = fields.String(required=True, validate=validate.OneOf(domain.DIVISION_KINDS))
    parent_code = fields.String(load_default=None, allow_none=True)
    boundary = fields.Dict(required=True)


class DivisionOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    parent_id = fields.Integer(allow_none=True)
    boundary = fields.Dict()


class GridIn(Schema):
    network = fields.String(required=True, validate=NETWORK_CODE)
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=NAME)
    level = fields.Integer(load_default=None, validate=validate.Range(1, 10))
    kind = fields.String(load_default="regular", validate=validate.OneOf(domain.GRID_KINDS))
    institution = fields.String(load_default=None, allow_none=True, validate=NAME)
    parent_id = fields.Integer(load_default=None, allow_none=True)
    division_id = fields.Integer(load_default=None, allow_none=True)
    boundary = fields.Dict(required=True)
    valid_from = Instant(load_default=None)

    @validates_schema
    def _institution(self, data, **kwargs):
        if data["kind"] == "dedicated" and not data.get("institution"):
            raise ValidationError("a dedicated grid names its institution", "institution")


class DivisionRef(Schema):
    id = fields.Integer()
    code = fields.String()
    kind = fields.String()


class GridOut(Schema):
    id = fields.Integer()
    network = fields.String()
    code = fields.String()
    name = fields.String()
    level = fields.Integer()
    kind = fields.String()
    institution = fields.String(allow_none=True)
    parent_id = fields.Integer(allow_none=True)
    division = fields.Nested(DivisionRef, allow_none=True)
    version = fields.Integer()
    boundary = fields.Dict()
    valid_from = fields.DateTime()
    valid_to = fields.DateTime(allow_none=True)


class GridPage(Schema):
    items = fields.List(fields.Nested(GridOut))
    next_cursor = fields.String(allow_none=True)


class GridQuery(Page):
    network = fields.String(validate=NETWORK_CODE)
    level = fields.Integer(validate=validate.Range(1, 10))
    parent = fields.Integer()
    kind = fields.String(validate=validate.OneOf(domain.GRID_KINDS))
    code = fields.String(validate=validate.Length(max=128))
    boundary = fields.Boolean(load_default=False, metadata={"description": "include boundaries"})


class RedrawIn(Schema):
    boundary = fields.Dict(required=True)
    valid_from = Instant(load_default=None)


class RetireIn(Schema):
    valid_to = Instant(load_default=None)


class CoverageOut(Schema):
    grid_id = fields.Integer()
    children = fields.Integer()
    fraction = fields.Float()
    uncovered_m2 = fields.Float()


class HistoryOut(Schema):
    grid_id = fields.Integer()
    versions = fields.List(fields.Nested(GridOut))


class StaffIn(Schema):
    user_id = fields.UUID(required=True)
    role = fields.String(required=True, validate=validate.OneOf(domain.STAFF_ROLES))
    building_id = fields.Integer(load_default=None, allow_none=True)

    @validates_schema
    def _building(self, data, **kwargs):
        if (data["role"] == "building_manager") != (data.get("building_id") is not None):
            raise ValidationError("building_id is required for building_manager and only for it",
                                  "building_id")


class StaffOut(Schema):
    id = fields.Integer()
    grid_id = fields.Integer()
    building_id = fields.Integer(allow_none=True)
    user_id = fields.String()
    display_name = fields.String(allow_none=True)
    role = fields.String()
    since = fields.DateTime()
    until = fields.DateTime(allow_none=True)


class StaffList(Schema):
    grid_id = fields.Integer()
    current = fields.List(fields.Nested(StaffOut))
    past = fields.List(fields.Nested(StaffOut))


class BuildingIn(Schema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=NAME)
    grid_id = fields.Integer(required=True)
    location = fields.Dict(required=True)
    outline = fields.Dict(load_default=None, allow_none=True)


class UnitIn(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    name = fields.String(required=True, validate=NAME)


class HouseholdIn(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    floor = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(-10, 300))


class HouseholdOut(Schema):
    id = fields.Integer()
    unit_id = fields.Integer()
    code = fields.String()
    floor = fields.Integer(allow_none=True)
    residents = fields.List(fields.String())


class UnitOut(Schema):
    id = fields.Integer()
    building_id = fields.Integer()
    code = fields.String()
    name = fields.String()
    households = fields.List(fields.Nested(HouseholdOut))


class BuildingOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    grid_id = fields.Integer()
    division_id = fields.Integer(allow_none=True)
    location = fields.Dict()
    outline = fields.Dict(allow_none=True)
    units = fields.List(fields.Nested(UnitOut))


class BuildingQuery(Page):
    grid = fields.Integer()


class BuildingPage(Schema):
    items = fields.List(fields.Nested(BuildingOut))
    next_cursor = fields.String(allow_none=True)


class ResidentIn(Schema):
    user_id = fields.UUID(required=True)


class ResidentOut(Schema):
    household_id = fields.Integer()
    user_id = fields.String()
    since = fields.DateTime()


class LocateQuery(Schema):
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    at = Instant(load_default=None, end_of_day=True)


class LocateBatchIn(Schema):
    points = Points(required=True)
    at = Instant(load_default=None, end_of_day=True)


class FeatureCollectionIn(Schema):
    type = fields.String(required=True, validate=validate.Equal("FeatureCollection"))
    features = fields.List(fields.Dict(), required=True,
                           validate=validate.Length(max=importer.MAX_FEATURES))
    name = fields.String()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def registry() -> Registry:
    return runtime().extras["registry"]


class parent_lookup:  # noqa: N801 - used like the function it was
    """The grid tree as scope checks need it: a grid's parent and its divisions."""

    def __init__(self, session: Session):
        self.session = session

    def __call__(self, grid_id: int) -> int | None:
        grid = self.session.get(Grid, grid_id)
        return grid.parent_id if grid else None

    def divisions(self, grid_id: int) -> list[str]:
        grid = self.session.get(Grid, grid_id)
        return division_chain(self.session, grid.division_id if grid else None)


def division_chain(session: Session, division_id: int | None) -> list[str]:
    """Codes of a division and everything above it (community → street → county)."""
    codes: list[str] = []
    while division_id is not None and len(codes) < 10:
        division = session.get(Division, division_id)
        if division is None:
            break
        codes.append(division.code)
        division_id = division.parent_id
    return codes


def current_grid(session: Session, grid_id: int) -> Grid:
    grid = fetch(session, Grid, grid_id, "grid")
    return grid


def latest_version(session: Session, grid_id: int) -> GridVersion:
    return session.execute(select(GridVersion).where(GridVersion.grid_id == grid_id)
                           .order_by(GridVersion.version.desc()).limit(1)).scalar_one()


def grid_data(session: Session, grid: Grid, version: GridVersion | None = None) -> dict:
    version = version or latest_version(session, grid.id)
    network = session.get(Network, grid.network_id)
    division = session.get(Division, grid.division_id) if grid.division_id else None
    return grid_event(grid, version, network.code, division)


def network_by_code(session: Session, code: str) -> Network:
    network = session.execute(select(Network).where(Network.code == code)).scalar_one_or_none()
    if network is None:
        raise NotFound("network", code)
    return network


def authorize_grid(session: Session, grid_id: int | None, roles=domain.GRID_EDITORS,
                   division_id: int | None = None) -> None:
    if not domain.may_act_on(current_principal(), grid_id, roles, parent_lookup(session),
                             division_codes=division_chain(session, division_id)):
        raise Forbidden("this grid is outside your scope")


def geometry_of(session: Session, version: GridVersion):
    return domain.load(version.boundary)


def current_geom(session: Session, grid_id: int):
    version = session.execute(select(GridVersion).where(
        GridVersion.grid_id == grid_id, GridVersion.valid_to.is_(None))).scalar_one()
    return geometry_of(session, version)


def neighbours(session: Session, network_id: int, level: int, kind: str, geom,
               exclude: int | None = None) -> list[tuple[str, object]]:
    """Current grids of one network, level and kind whose bbox meets ``geom``'s."""
    minx, miny, maxx, maxy = geom.bounds
    rows = session.execute(
        select(Grid.code, GridVersion.boundary)
        .join(GridVersion, and_(GridVersion.grid_id == Grid.id, GridVersion.valid_to.is_(None)))
        .where(Grid.network_id == network_id, Grid.level == level, Grid.kind == kind,
               Grid.retired_at.is_(None), Grid.id != (exclude or 0),
               GridVersion.min_lon <= maxx, GridVersion.max_lon >= minx,
               GridVersion.min_lat <= maxy, GridVersion.max_lat >= miny)).all()
    return [(code, domain.load(boundary)) for code, boundary in rows]


def children_of(session: Session, grid_id: int) -> list[tuple[str, object]]:
    rows = session.execute(
        select(Grid.code, GridVersion.boundary)
        .join(GridVersion, and_(GridVersion.grid_id == Grid.id, GridVersion.valid_to.is_(None)))
        .where(Grid.parent_id == grid_id, Grid.retired_at.is_(None))).all()
    return [(code, domain.load(boundary)) for code, boundary in rows]


def reject(findings: domain.Findings) -> None:
    if findings:
        extra = {"overlaps": findings.overlaps} if findings.overlaps else {}
        raise Problem(422, f"invalid value for {next(iter(findings.errors))}",
                      type="validation-error", title="Unprocessable Content",
                      errors=findings.errors, **extra)


def parse_or_reject(boundary, fieldname: str = "boundary"):
    findings = domain.Findings()
    geom = domain.parse(boundary, findings, fieldname)
    reject(findings)
    return geom


def effective(instant: datetime | None, fieldname: str, after: datetime | None = None) -> datetime:
    """A validity bound: now by default, never in the future, after the last change."""
    now = utcnow()
    instant = instant or now
    if instant > now + timedelta(minutes=1):
        raise Invalid({fieldname: ["must not be in the future"]})
    after = domain.as_utc(after)
    if after is not None and instant <= after:
        raise Invalid({fieldname: [f"must be after the current version's start ({after.isoformat()})"]})
    return instant


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise Invalid({"cursor": ["not a cursor from this API"]}) from None


# --------------------------------------------------------------------------
# networks and divisions
# --------------------------------------------------------------------------


@blp.get("/networks")
@authenticated
@blp.response(200, NetworkOut(many=True))
def list_networks():
    with runtime().db.sessions() as session:
        return session.execute(select(Network).order_by(Network.id)).scalars().all()


@blp.post("/networks")
@require_roles(*domain.COUNTY_WIDE)
@blp.arguments(NetworkIn)
@blp.response(201, NetworkOut)
def create_network(body):
    with runtime().db.transaction() as session:
        lock_registry(session)
        if session.execute(select(Network).where(Network.code == body["code"])).first():
            raise Conflict(f"network {body['code']} already exists")
        network = Network(code=body["code"], name=body["name"])
        session.add(network)
        session.flush()
        outbox.record(session, NETWORK_CREATED, {"id": network.id, "code": network.code,
                                                 "name": network.name}, subject=network.code)
        bump_revision(session)
        return network


@blp.get("/divisions")
@authenticated
@blp.response(200, DivisionOut(many=True))
def list_divisions():
    with runtime().db.sessions() as session:
        divisions = session.execute(select(Division).order_by(Division.id)).scalars().all()
        return [{"id": d.id, "code": d.code, "name": d.name, "kind": d.kind,
                 "parent_id": d.parent_id, "boundary": json.loads(d.boundary)} for d in divisions]


@blp.post("/divisions")
@require_roles(*domain.COUNTY_WIDE)
@blp.arguments(DivisionIn)
@blp.response(201, DivisionOut)
def create_division(body):
    geom = parse_or_reject(body["boundary"])
    with runtime().db.transaction() as session:
        lock_registry(session)
        if session.execute(select(Division).where(Division.code == body["code"])).first():
            raise Conflict(f"division {body['code']} already exists")
        parent = None
        if body["parent_code"]:
            parent = session.execute(select(Division).where(
                Division.code == body["parent_code"])).scalar_one_or_none()
            if parent is None:
                raise Invalid({"parent_code": [f"no division {body['parent_code']}"]})
        if (parent.kind if parent else None) != domain.DIVISION_PARENT[body["kind"]]:
            raise Invalid({"parent_code": [f"a {body['kind']} sits in a "
                                           f"{domain.DIVISION_PARENT[body['kind']] or 'nothing'}"]})
        siblings = session.execute(select(Division).where(
            Division.kind == body["kind"], Division.parent_id == (parent.id if parent else None))).scalars()
        findings = domain.check_boundary(
            body["code"], geom,
            parent=(f"division {parent.code}", domain.load(parent.boundary))
            if parent else None,
            neighbours=[(d.code, domain.load(d.boundary)) for d in siblings])
        reject(findings)
        division = Division(code=body["code"], name=body["name"], kind=body["kind"],
                            parent_id=parent.id if parent else None,
                            boundary=json.dumps(geometry.to_geojson(geom)))
        session.add(division)
        session.flush()
        data = {"id": division.id, "code": division.code, "name": division.name,
                "kind": division.kind, "parent_id": division.parent_id,
                "boundary": json.loads(division.boundary)}
        outbox.record(session, DIVISION_CREATED, data, subject=str(division.id))
        bump_revision(session)
        return data


# --------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------


@blp.get("/grids")
@authenticated
@blp.arguments(GridQuery, location="query", unknown=RAISE)
@blp.response(200, GridPage)
def list_grids(query):
    with runtime().db.sessions() as session:
        stmt = (select(Grid, GridVersion, Network.code, Division)
                .join(Network, Network.id == Grid.network_id)
                .join(GridVersion, and_(GridVersion.grid_id == Grid.id, GridVersion.valid_to.is_(None)))
                .outerjoin(Division, Division.id == Grid.division_id)
                .where(Grid.retired_at.is_(None), Grid.id > decode_cursor(query.get("cursor"))))
        if "network" in query:
            stmt = stmt.where(Network.code == query["network"])
        for name, column in (("level", Grid.level), ("parent", Grid.parent_id),
                             ("kind", Grid.kind), ("code", Grid.code)):
            if name in query:
                stmt = stmt.where(column == query[name])
        rows = session.execute(stmt.order_by(Grid.id).limit(query["limit"] + 1)).all()
        more = len(rows) > query["limit"]
        rows = rows[:query["limit"]]
        items = []
        for grid, version, network, division in rows:
            data = grid_event(grid, version, network, division)
            if not query["boundary"]:
                data.pop("boundary")
            items.append(data)
        return {"items": items, "next_cursor": encode_cursor(rows[-1][0].id) if more else None}


@blp.post("/grids")
@require_roles(*domain.GRID_EDITORS)
@blp.arguments(GridIn)
@blp.response(201, GridOut)
def create_grid(body):
    geom = parse_or_reject(body["boundary"])
    with runtime().db.transaction() as session:
        authorize_grid(session, body["parent_id"], division_id=body["division_id"])
        lock_registry(session)
        network = network_by_code(session, body["network"])
        parent, division = None, None
        if body["parent_id"] is not None:
            parent = session.get(Grid, body["parent_id"])
            if parent is None or parent.retired_at is not None:
                raise Invalid({"parent_id": [f"no current grid {body['parent_id']}"]})
            if parent.network_id != network.id:
                raise Invalid({"parent_id": ["the parent belongs to another network"]})
        level = domain.expected_level(parent.level if parent else None)
        if body["level"] is not None and body["level"] != level:
            raise Invalid({"level": [f"must be {level} (one below the parent)" if parent
                                     else "a grid without a parent is level 1"]})
        division_id = body["division_id"] or (parent.division_id if parent else None)
        if division_id is None:
            raise Invalid({"division_id": ["a level-1 grid names its community"]})
        division = session.get(Division, division_id)
        if division is None:
            raise Invalid({"division_id": [f"no division {division_id}"]})
        if parent and body["division_id"] and body["division_id"] != parent.division_id:
            raise Invalid({"division_id": ["a child grid lies in its parent's community"]})
        if session.execute(select(Grid.id).where(Grid.network_id == network.id, Grid.code == body["code"],
                                                 Grid.retired_at.is_(None))).first():
            raise Conflict(f"network {network.code} already has a current grid {body['code']}")
        container = (f"grid {parent.code}", current_geom(session, parent.id)) if parent else \
            (f"division {division.code}", domain.load(division.boundary))
        reject(domain.check_boundary(body["code"], geom, parent=container,
                                     neighbours=neighbours(session, network.id, level, body["kind"], geom)))
        valid_from = effective(body["valid_from"], "valid_from")
        grid = Grid(network_id=network.id, code=body["code"], name=body["name"], level=level,
                    kind=body["kind"], institution=body["institution"],
                    parent_id=parent.id if parent else None, division_id=division.id)
        session.add(grid)
        session.flush()
        version = GridVersion(**version_row(grid.id, 1, geom, valid_from))
        session.add(version)
        session.flush()
        data = grid_event(grid, version, network.code, division)
        outbox.record(session, GRID_CREATED, data, subject=str(grid.id))
        bump_revision(session)
        return data


@blp.get("/grids/<int:grid_id>")
@authenticated
@blp.response(200, GridOut)
def get_grid(grid_id):
    with runtime().db.sessions() as session:
        return grid_data(session, current_grid(session, grid_id))


@blp.put("/grids/<int:grid_id>/boundary")
@require_roles(*domain.GRID_EDITORS)
@blp.arguments(RedrawIn)
@blp.response(200, GridOut)
def redraw_grid(body, grid_id):
    """Close the current version and open a new one (same grid id)."""
    geom = parse_or_reject(body["boundary"])
    with runtime().db.transaction() as session:
        grid = current_grid(session, grid_id)
        authorize_grid(session, grid.id)
        lock_registry(session)
        if grid.retired_at is not None:
            raise Conflict(f"grid {grid_id} is retired")
        old = session.execute(select(GridVersion).where(
            GridVersion.grid_id == grid.id, GridVersion.valid_to.is_(None)).with_for_update()).scalar_one()
        if grid.parent_id:
            parent = session.get(Grid, grid.parent_id)
            container = (f"grid {parent.code}", current_geom(session, parent.id))
        else:
            division = session.get(Division, grid.division_id)
            container = (f"division {division.code}", domain.load(division.boundary))
        reject(domain.check_boundary(
            grid.code, geom, parent=container,
            neighbours=neighbours(session, grid.network_id, grid.level, grid.kind, geom, exclude=grid.id),
            children=children_of(session, grid.id)))
        valid_from = effective(body["valid_from"], "valid_from", after=old.valid_from)
        old.valid_to = valid_from
        version = GridVersion(**version_row(grid.id, old.version + 1, geom, valid_from))
        session.add(version)
        session.flush()
        data = grid_data(session, grid, version)
        outbox.record(session, GRID_REDRAWN, data, subject=str(grid.id))
        bump_revision(session)
        return data


@blp.post("/grids/<int:grid_id>/retire")
@require_roles(*domain.GRID_EDITORS)
@blp.arguments(RetireIn)
@blp.response(200, GridOut)
def retire_grid(body, grid_id):
    with runtime().db.transaction() as session:
        grid = current_grid(session, grid_id)
        authorize_grid(session, grid.id)
        lock_registry(session)
        if grid.retired_at is not None:
            raise Conflict(f"grid {grid_id} is already retired")
        if session.execute(select(Grid.id).where(Grid.parent_id == grid.id,
                                                 Grid.retired_at.is_(None))).first():
            raise Conflict(f"grid {grid_id} still has current children; retire them first")
        version = session.execute(select(GridVersion).where(
            GridVersion.grid_id == grid.id, GridVersion.valid_to.is_(None))).scalar_one()
        valid_to = effective(body["valid_to"], "valid_to", after=version.valid_from)
        version.valid_to = valid_to
        grid.retired_at = valid_to
        for term in session.execute(select(StaffAssignment).where(
                StaffAssignment.grid_id == grid.id, StaffAssignment.until.is_(None))).scalars():
            end_term(session, term, valid_to)
        session.flush()
        data = grid_data(session, grid, version)
        outbox.record(session, GRID_RETIRED, data, subject=str(grid.id))
        bump_revision(session)
        return data


@blp.get("/grids/<int:grid_id>/history")
@authenticated
@blp.response(200, HistoryOut)
def grid_history(grid_id):
    with runtime().db.sessions() as session:
        grid = current_grid(session, grid_id)
        versions = session.execute(select(GridVersion).where(GridVersion.grid_id == grid.id)
                                   .order_by(GridVersion.version)).scalars()
        return {"grid_id": grid.id, "versions": [grid_data(session, grid, v) for v in versions]}


@blp.get("/grids/<int:grid_id>/coverage")
@authenticated
@blp.response(200, CoverageOut)
def grid_coverage(grid_id):
    """How much of the grid its regular children cover (gaps break 无缝覆盖)."""
    with runtime().db.sessions() as session:
        grid = current_grid(session, grid_id)
        rows = session.execute(
            select(GridVersion.boundary)
            .join(Grid, Grid.id == GridVersion.grid_id)
            .where(Grid.parent_id == grid.id, Grid.kind == "regular", Grid.retired_at.is_(None),
                   GridVersion.valid_to.is_(None))).scalars().all()
        cover = geometry.coverage(geometry_of(session, latest_version(session, grid.id)),
                                  [domain.load(b) for b in rows])
        return {"grid_id": grid.id, "children": len(rows), "fraction": cover.fraction,
                "uncovered_m2": cover.uncovered_m2}


# --------------------------------------------------------------------------
# staffing
# --------------------------------------------------------------------------


def staff_event(session: Session, term: StaffAssignment) -> dict:
    grid = session.get(Grid, term.grid_id)
    return {"assignment_id": term.id, "grid_id": term.grid_id,
            "network": session.get(Network, grid.network_id).code, "building_id": term.building_id,
            "user_id": term.user_id, "role": term.role, "since": term.since, "until": term.until}


def end_term(session: Session, term: StaffAssignment, when: datetime) -> None:
    term.until = when
    session.flush()
    outbox.record(session, STAFF_UNASSIGNED, staff_event(session, term), subject=str(term.grid_id))


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


# --------------------------------------------------------------------------
# buildings, units, households, residents (人屋关联)
# --------------------------------------------------------------------------


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
    return {"id": household.id, "unit_id": household.unit_id, "code": household.code,
            "floor": household.floor, "residents": residents}


@blp.get("/buildings")
@authenticated
@blp.arguments(BuildingQuery, location="query", unknown=RAISE)
@blp.response(200, BuildingPage)
def list_buildings(query):
    with runtime().db.sessions() as session:
        stmt = select(Building).where(Building.id > decode_cursor(query.get("cursor")))
        if "grid" in query:
            stmt = stmt.where(Building.grid_id == query["grid"])
        rows = session.execute(stmt.order_by(Building.id).limit(query["limit"] + 1)).scalars().all()
        more = len(rows) > query["limit"]
        rows = rows[:query["limit"]]
        return {"items": [building_out(session, b, units=False) for b in rows],
                "next_cursor": encode_cursor(rows[-1].id) if more else None}


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
    with runtime().db.sessions() as session:
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
    with runtime().db.sessions() as session:
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


# --------------------------------------------------------------------------
# locate ("which grids, in every network, is this place in?")
# --------------------------------------------------------------------------


def snapshot(at: datetime | None):
    return registry().current() if at is None else registry().at(at)


@blp.get("/locate")
@authenticated
@blp.arguments(LocateQuery, location="query", unknown=RAISE)
@blp.response(200, description="Every grid, division and building at the point")
def locate_point(query):
    index = snapshot(query["at"])
    result = locate_batch(index, [query["lon"]], [query["lat"]])
    head = f'"at":{json.dumps(query["at"].isoformat() if query["at"] else None)},"revision":{index.revision},'
    return Response("{" + head + result.items_json()[0][1:], content_type="application/json")


@blp.post("/locate")
@authenticated
@blp.arguments(LocateBatchIn)
@blp.response(200, description="One result per point, in order")
def locate_points(body):
    index = snapshot(body["at"])
    xy = body["points"]
    result = locate_batch(index, xy[:, 0], xy[:, 1])
    return Response(result.to_json(at=body["at"].isoformat() if body["at"] else None,
                                   revision=index.revision), content_type="application/json")


# --------------------------------------------------------------------------
# bulk import / export
# --------------------------------------------------------------------------


@blp.post("/networks/<code>/import")
@require_roles(*domain.GRID_EDITORS)
@blp.arguments(FeatureCollectionIn)
@blp.response(200, description="The import report")
def import_network(body, code):
    with runtime().db.transaction() as session:
        network = network_by_code(session, code)
        principal = current_principal()
        parent_of = parent_lookup(session)
        report = importer.import_features(
            session, network, body["features"],
            may_write=lambda parent_id: domain.may_act_on(principal, parent_id, domain.GRID_EDITORS, parent_of))
        if report["rejected"]:
            session.rollback()
            raise Problem(422, f"{len(report['rejected'])} of {report['features']} features rejected; "
                          "nothing was imported", type="validation-error", title="Unprocessable Content",
                          errors={"features": [f"{len(report['rejected'])} features rejected"]}, report=report)
        return report


@blp.get("/networks/<code>/export")
@authenticated
@blp.response(200, description="The network's current grids as a GeoJSON FeatureCollection")
def export_network(code):
    with runtime().db.sessions() as session:
        network = network_by_code(session, code)
        return Response(json.dumps(importer.export_features(session, network), ensure_ascii=False),
                        content_type="application/geo+json")

