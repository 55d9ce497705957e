"""Events identity publishes. They never carry a phone number or national ID."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridkit.events import Catalogue

catalogue = Catalogue("identity")


class UserRegistered(Schema):
    user_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(
        ("resident", "staff", "dept_officer", "volunteer", "service")))
    display_name = fields.String(required=True)


class RoleChanged(Schema):
    grant_id = fields.Integer(required=True)
    user_id = fields.String(required=True)
    role = fields.String(required=True)
    scope = fields.String(required=True, metadata={"description": "county, grid:<id>, network:<code> or department:<code>"})
    by = fields.String(allow_none=True, metadata={"description": "Who granted/revoked (user id); null for seeding"})


USER_REGISTERED = catalogue.declare(
    "identity.user.registered", version=1, schema=UserRegistered,
    description="An account was created: a resident registered or an admin created staff or a service account.")
ROLE_GRANTED = catalogue.declare(
    "identity.role.granted", version=1, schema=RoleChanged,
    description="A role was granted to an account at a scope.")
ROLE_REVOKED = catalogue.declare(
    "identity.role.revoked", version=1, schema=RoleChanged,
    description="A role grant was withdrawn.")
