"""Request and response schemas of the registry's HTTP API."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
from marshmallow import ValidationError, fields, validate, validates_schema

from gridkit.pagination import Cursor, RowId
from gridkit.schemas import Id, Schema
from gridkit.web import Page

from .. import domain, importer

MAX_POINTS = 10_000
CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", error="letters, digits, . _ - only")
NETWORK_CODE = validate.Regexp(r"^[a-z][a-z0-9_-]{1,31}$", error="lowercase letters, digits, _ -")
NAME = validate.Length(min=1, max=200)
# Grids and buildings are listed in id order: a page's cursor is the last id given out.
BY_ID = Cursor(RowId())




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
    parent_id = Id(load_default=None, allow_none=True)
    division_id = Id(load_default=None, allow_none=True)
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
    cursor = BY_ID.field()
    network = fields.String(validate=NETWORK_CODE)
    level = fields.Integer(validate=validate.Range(1, 10))
    parent = Id()
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
    building_id = Id(load_default=None, allow_none=True)

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
    grid_id = Id(required=True)
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
    cursor = BY_ID.field()
    grid = Id()


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
