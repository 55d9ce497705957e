"""Events identity publishes. They never carry a phone number or national ID in clear:
the one that asks notify to text a one-time code carries the number sealed with a
subkey only identity and notify derive (``TRANSIT_CONTEXT``).

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


# --- one-time codes ------------------------------------------------------------------------

# identity and notify derive the same subkey of GRIDGOV_DATA_KEY under this context
# (``DataKey.from_settings(settings, context=TRANSIT_CONTEXT)``): what identity seals
# for the text message opens only there, never on the bus or in a dead-letter queue.
TRANSIT_CONTEXT = "transit"
RECIPIENT_PURPOSE = "identity.code.recipient"  # associated data of recipient_sealed
CODE_PURPOSE = "identity.code.code"  # associated data of code_sealed
CODE_PURPOSES = ("register", "login", "reset")
CODE_MESSAGES = ("code", "account_exists")
LANGUAGES = ("zh-CN", "en")


class CodeIssued(Schema):
    recipient_sealed = fields.String(required=True, metadata={
        "description": "The number to text, sealed (AES-256-GCM) with the transit subkey of the data key "
                       "(context `transit`, associated data `identity.code.recipient`)"})
    code_sealed = fields.String(required=True, allow_none=True, metadata={
        "description": "The six digits, sealed likewise (associated data `identity.code.code`); "
                       "null when message is account_exists"})
    purpose = fields.String(required=True, validate=validate.OneOf(CODE_PURPOSES))
    message = fields.String(required=True, validate=validate.OneOf(CODE_MESSAGES), metadata={
        "description": "code: text the code; account_exists: tell the owner the number already has an "
                       "account (someone asked to register it) and how to log in or reset the password"})
    language = fields.String(required=True, validate=validate.OneOf(LANGUAGES))
    expires_at = fields.DateTime(required=True, metadata={
        "description": "When the code stops working: a text not sent by then is not sent at all"})


CODE_ISSUED = catalogue.declare(
    "identity.code.issued", version=1, schema=CodeIssued,
    description="Someone asked for a one-time code to register, log in or reset a password: notify texts it "
    "at once. Only the number's owner learns anything; whoever asked gets the same answer either way, and "
    "an unknown number (login, reset) gets no text at all.")
