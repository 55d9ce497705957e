"""Grids: drawing, redrawing, retiring, history and coverage."""

from __future__ import annotations

from marshmallow import RAISE
from sqlalchemy import and_, select

import gridgeo as geometry
from gridkit.auth import authenticated, require_roles
from gridkit.problems import Conflict, Invalid
from gridkit.service import runtime

from .. import domain
from ..events import GRID_CREATED, GRID_REDRAWN, GRID_RETIRED
from ..tables import (
    Division,
    Grid,
    GridVersion,
    Network,
    StaffAssignment,
    bump_revision,
    grid_event,
    lock_registry,
    outbox,
    version_row,
)
from .common import (
    authorize_grid,
    blp,
    children_of,
    current_geom,
    current_grid,
    effective,
    geometry_of,
    grid_data,
    latest_version,
    neighbours,
    network_by_code,
    parse_or_reject,
    reject,
)
from .schemas import (
    BY_ID,
    CoverageOut,
    GridIn,
    GridOut,
    GridPage,
    GridQuery,
    HistoryOut,
    RedrawIn,
    RetireIn,
)
from .staffing import end_term


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
                .where(Grid.retired_at.is_(None)))
        if query.get("cursor"):
            stmt = stmt.where(Grid.id > query["cursor"][0])
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
        return {"items": items, "next_cursor": BY_ID.encode(rows[-1][0].id) if more else None}


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
