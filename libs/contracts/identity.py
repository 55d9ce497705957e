"""Events identity publishes. They never carry a phone number or national ID.

The account lifecycle (disabled, enabled, erased) is obeyed by every service
through the kit: a disabled account's tokens are refused everywhere
(``gridkit.access``) and an erased person's data is erased or anonymised in
every service that holds some.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridkit.events import Catalogue

catalogue = Catalogue("identity")

KINDS = ("resident", "staff", "dept_officer", "volunteer", "service")


class UserRegistered(Schema):
    user_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    display_name = fields.String(required=True)


class RoleChanged(Schema):
    grant_id = fields.Integer(required=True)
    user_id = fields.String(required=True)
    role = fields.String(required=True)
    scope = fields.String(required=True, metadata={"description": "county, grid:<id>, network:<code> or department:<code>"})
    by = fields.String(allow_none=True, metadata={"description": "Who granted/revoked (user id); null for seeding"})


class AccountChanged(Schema):
    user_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    by = fields.String(allow_none=True, metadata={
        "description": "The admin who did it (user id); null when the person did it themselves"})
    at = fields.DateTime(required=True, metadata={
        "description": "When it took effect: access tokens issued up to this moment are refused"})


USER_REGISTERED = catalogue.declare(
    "identity.user.registered", version=1, schema=UserRegistered,
    description="An account was created: a resident registered or an admin created staff or a service account.")
ROLE_GRANTED = catalogue.declare(
    "identity.role.granted", version=1, schema=RoleChanged,
    description="A role was granted to an account at a scope.")
ROLE_REVOKED = catalogue.declare(
    "identity.role.revoked", version=1, schema=RoleChanged,
    description="A role grant was withdrawn.")
USER_DISABLED = catalogue.declare(
    "identity.user.disabled", version=1, schema=AccountChanged,
    description="An admin disabled the account (someone left): every service refuses its access tokens "
    "issued until `at`, its grants are revoked (each with identity.role.revoked), its staffing ends and "
    "the cases it held go back to a grid head.")
USER_ENABLED = catalogue.declare(
    "identity.user.enabled", version=1, schema=AccountChanged,
    description="An admin enabled a disabled account again; it logs in afresh (tokens from before stay refused) "
    "and gets its roles back only by new grants.")
USER_ERASED = catalogue.declare(
    "identity.user.erased", version=1, schema=AccountChanged,
    description="The person's personal data was erased (PIPL): every service erases or irreversibly "
    "anonymises what it holds about user_id; cases and figures stay, without the person.")
