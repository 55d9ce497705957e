"""Events the grid registry publishes. Grid events carry the whole version
(boundary included) so subscribers can keep their own locate projection."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridkit.events import Catalogue

catalogue = Catalogue("grids")


class NetworkData(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)


class DivisionData(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("county", "street", "community")))
    parent_id = fields.Integer(allow_none=True)
    boundary = fields.Dict(required=True, metadata={"description": "GeoJSON Polygon/MultiPolygon, WGS84"})


class DivisionRef(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    kind = fields.String(required=True)


class GridData(Schema):
    id = fields.Integer(required=True)
    network = fields.String(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    level = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("regular", "dedicated")))
    institution = fields.String(allow_none=True)
    parent_id = fields.Integer(allow_none=True)
    division = fields.Nested(DivisionRef, allow_none=True)
    version = fields.Integer(required=True)
    boundary = fields.Dict(required=True, metadata={"description": "GeoJSON Polygon/MultiPolygon, WGS84"})
    valid_from = fields.DateTime(required=True)
    valid_to = fields.DateTime(allow_none=True)


class StaffData(Schema):
    assignment_id = fields.Integer(required=True)
    grid_id = fields.Integer(required=True)
    network = fields.String(required=True)
    building_id = fields.Integer(allow_none=True)
    user_id = fields.String(required=True)
    role = fields.String(required=True)
    since = fields.DateTime(required=True)
    until = fields.DateTime(allow_none=True)


class BuildingData(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    grid_id = fields.Integer(required=True)
    division_id = fields.Integer(allow_none=True)
    location = fields.Dict(required=True, metadata={"description": "GeoJSON Point"})
    outline = fields.Dict(allow_none=True)


class ResidentData(Schema):
    household_id = fields.Integer(required=True)
    unit_id = fields.Integer(required=True)
    building_id = fields.Integer(required=True)
    grid_id = fields.Integer(required=True)
    user_id = fields.String(required=True)
    since = fields.DateTime(required=True)


NETWORK_CREATED = catalogue.declare(
    "grids.network.created", version=1, schema=NetworkData,
    description="A grid network (party, security, urban, or a department's own) was registered.")
DIVISION_CREATED = catalogue.declare(
    "grids.division.created", version=1, schema=DivisionData,
    description="An administrative division (county, street/town, community/village) was drawn; "
                "the ladder grid → community → street → county climbs these.")
GRID_CREATED = catalogue.declare(
    "grids.grid.created", version=1, schema=GridData,
    description="A grid was drawn: its first version, valid from valid_from.")
GRID_REDRAWN = catalogue.declare(
    "grids.grid.redrawn", version=1, schema=GridData,
    description="A grid got a new boundary: the previous version closed at valid_from; same grid id.")
GRID_RETIRED = catalogue.declare(
    "grids.grid.retired", version=1, schema=GridData,
    description="A grid was retired: its last version closed at valid_to.")
STAFF_ASSIGNED = catalogue.declare(
    "grids.staff.assigned", version=1, schema=StaffData,
    description="A person started as grid head, grid worker, grid instructor or building manager.")
STAFF_UNASSIGNED = catalogue.declare(
    "grids.staff.unassigned", version=1, schema=StaffData,
    description="A person's term on a grid (or building) ended.")
BUILDING_CREATED = catalogue.declare(
    "grids.building.created", version=1, schema=BuildingData,
    description="A building was registered in a grid.")
RESIDENT_BOUND = catalogue.declare(
    "grids.household.resident_bound", version=1, schema=ResidentData,
    description="A resident (identity user id) was bound to a household (人屋关联).")
