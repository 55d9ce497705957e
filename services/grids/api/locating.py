"""Locating points in every network ("多网合一"), and bulk import/export as GeoJSON."""

from __future__ import annotations

import json
from datetime import datetime

from flask import Response
from marshmallow import RAISE

from gridkit.auth import authenticated, current_principal, require_roles
from gridkit.problems import Problem
from gridkit.service import runtime

from .. import domain, importer
from ..locate import locate_batch
from .common import blp, network_by_code, parent_lookup, registry
from .schemas import FeatureCollectionIn, LocateBatchIn, LocateQuery


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
