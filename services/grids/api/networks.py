"""Networks (党建, 综治, 城管, …) and administrative divisions (county → street → community)."""

from __future__ import annotations

import json

from sqlalchemy import select

import gridgeo as geometry
from gridkit.auth import authenticated, require_roles
from gridkit.problems import Conflict, Invalid
from gridkit.service import runtime

from .. import domain
from ..events import DIVISION_CREATED, NETWORK_CREATED
from ..tables import Division, Network, bump_revision, lock_registry, outbox
from .common import blp, parse_or_reject, reject
from .schemas import DivisionIn, DivisionOut, NetworkIn, NetworkOut


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
