"""HTTP routes of identity. Phone and national ID leave unmasked only to their owner
(and through the audited contact route)."""

from __future__ import annotations

import secrets
import time

from flask import request
from marshmallow import ValidationError, fields, validate, validates, validates_schema
from sqlalchemy import select

from gridkit import audit, privacy
from gridkit.auth import (
    ADMIN_ROLES,
    ROLES,
    Principal,
    authenticated,
    current_principal,
    require_roles,
)
from gridkit.pagination import Cursor, Uuid
from gridkit.problems import Forbidden, NotFound
from gridkit.schemas import Schema
from gridkit.service import runtime
from gridkit.web import Blueprint, Page, no_store

from . import accounts, codes, domain
from .events import CODE_PURPOSES, LANGUAGES
from .tables import RoleGrant, StatusChange, User

blp = Blueprint("identity", __name__, description="People, accounts, role grants and tokens")
# Accounts are listed in id order; a page's cursor is the last account's id.
USERS = Cursor(Uuid())

Name = lambda: fields.String(required=True, validate=validate.Length(1, 50))  # noqa: E731
Phone = lambda **kw: fields.String(validate=validate.Regexp(domain.PHONE, error="not a mainland mobile number"), **kw)  # noqa: E731
Password = lambda **kw: fields.String(validate=validate.Length(domain.PASSWORD_MIN, domain.PASSWORD_MAX), load_only=True, **kw)  # noqa: E731
Code = lambda **kw: fields.String(validate=validate.Regexp(r"^[0-9]{6}$", error="six digits"), load_only=True, **kw)  # noqa: E731


class NationalId(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        number = super()._deserialize(value, attr, data, **kwargs).upper()
        if not domain.valid_national_id(number):
            raise ValidationError("not a valid 18-character national ID")
        return number


class GrantIn(Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    scope = fields.String(required=True, validate=validate.Regexp(
        domain.SCOPE, error="scope is county, grid:<id>, division:<code>, network:<code> or department:<code>"))


class GrantOut(GrantIn):
    id = fields.Integer()
    granted_by = fields.String(allow_none=True)
    granted_at = fields.DateTime()


class ResidentIn(Schema):
    phone = Phone(required=True)
    code = Code(required=True, metadata={"description": "The \"register\" code texted to the phone (POST /codes)"})
    name = Name()
    password = Password(required=True)
    national_id = NationalId(validate=validate.Length(max=18))

    @validates("password")
    def _policy(self, value, **_):
        _check_policy(value)


class UserIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(domain.STAFF_KINDS))
    name = Name()
    phone = Phone()
    national_id = NationalId(validate=validate.Length(max=18))
    username = fields.String(validate=validate.Regexp(domain.USERNAME, error="3–64 of a-z 0-9 . _ -"))
    password = Password(metadata={"description": "Omit to create an account that cannot log in yet"})
    grants = fields.List(fields.Nested(GrantIn), load_default=list, validate=validate.Length(max=50))

    @validates("password")
    def _policy(self, value, **_):
        _check_policy(value)

    @validates_schema
    def _login_name(self, data, **_):
        if not data.get("phone") and not data.get("username"):
            raise ValidationError("a phone or a username is required", "phone")


class UserOut(Schema):
    id = fields.String()
    kind = fields.String()
    name = fields.String(attribute="display_name")
    username = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "Masked (138****5678) unless it is your own"})
    national_id = fields.String(allow_none=True, metadata={"description": "Masked unless it is your own"})
    can_log_in = fields.Boolean()
    disabled = fields.Boolean(metadata={"description": "Disabled by an admin (someone who left)"})
    created_at = fields.DateTime()
    grants = fields.List(fields.Nested(GrantOut))


class UserQuery(Page):
    cursor = USERS.field()
    kind = fields.String(validate=validate.OneOf(domain.KINDS))


class UserPage(Schema):
    items = fields.List(fields.Nested(UserOut))
    next_cursor = fields.String(allow_none=True)


class StatusChangeIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(5, 200),
                           metadata={"description": "Why (left the job, on leave, back): kept with the change"})


class StatusChangeOut(Schema):
    action = fields.String(metadata={"description": "disabled | enabled"})
    reason = fields.String()
    by = fields.String()
    at = fields.DateTime()


class ContactQuery(Schema):
    reason = fields.String(required=True, validate=validate.Length(5, 200),
                           metadata={"description": "Why you need it; kept in the audit trail"})


class ContactOut(Schema):
    id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)


class OwnErasureIn(Schema):
    password = fields.String(load_only=True, validate=validate.Length(max=domain.PASSWORD_MAX), metadata={
        "description": "Your password, to confirm. An account without a password confirms by "
                       "logging in afresh (an access token at most 5 minutes old)"})


class ErasureIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(5, 200), metadata={
        "description": "How the request was verified in person (document seen, form number); "
                       "kept in the audit trail"})


class ErasureOut(Schema):
    user_id = fields.String()
    erased_at = fields.DateTime()
    detail = fields.String()


class Download(Schema):
    user_id = fields.String()
    exported_at = fields.String(metadata={"description": "ISO 8601 with its offset"})
    about = fields.String()
    services = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={
        "description": "Each service's part, as its own GET /me/personal-data answers it"})


class TokenIn(Schema):
    grant_type = fields.String(required=True, validate=validate.OneOf(
        ("password", "refresh_token", "client_credentials", "otp")))
    phone = fields.String(validate=validate.Length(max=20))
    username = fields.String(validate=validate.Length(max=64))
    password = fields.String(load_only=True, validate=validate.Length(max=domain.PASSWORD_MAX))
    refresh_token = fields.String(load_only=True, validate=validate.Length(max=200))
    client_id = fields.String(validate=validate.Length(max=64))
    client_secret = fields.String(load_only=True, validate=validate.Length(max=200))
    code = Code(metadata={"description": "otp: the \"login\" code texted to the phone (POST /codes)"})

    @validates_schema
    def _fields_for_grant(self, data, **_):
        needs = {"password": ["password"], "refresh_token": ["refresh_token"],
                 "client_credentials": ["client_id", "client_secret"],
                 "otp": ["phone", "code"]}[data["grant_type"]]
        missing = {f: ["required for this grant_type"] for f in needs if not data.get(f)}
        if data["grant_type"] == "password" and bool(data.get("phone")) == bool(data.get("username")):
            missing["phone"] = ["give exactly one of phone or username"]
        if missing:
            raise ValidationError(missing)


class TokenOut(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    refresh_token = fields.String()


class RevokeIn(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(max=200))


class PasswordIn(Schema):
    password = Password(required=True)

    @validates("password")
    def _policy(self, value, **_):
        _check_policy(value)


class OwnPasswordIn(PasswordIn):
    current_password = fields.String(required=True, load_only=True,
                                     validate=validate.Length(max=domain.PASSWORD_MAX))


class ServiceAccountIn(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 100))
    grants = fields.List(fields.Nested(GrantIn), load_default=list, validate=validate.Length(max=50))


class ServiceAccountOut(Schema):
    id = fields.String()
    name = fields.String()
    client_id = fields.String()
    client_secret = fields.String(metadata={"description": "Shown once; store it now"})
    grants = fields.List(fields.Nested(GrantOut))


class Jwks(Schema):
    keys = fields.List(fields.Dict())


class Rotated(Schema):
    kid = fields.String()
    signs_from = fields.DateTime(metadata={"description": "When the new key starts signing"})
    previous_kid = fields.String(allow_none=True)


def _check_policy(value: str) -> None:
    try:
        domain.check_password(value)
    except domain.RuleBroken as exc:
        raise ValidationError(str(exc)) from None


# --- helpers -------------------------------------------------------------------------------

def _key():
    return runtime().extras["data_key"]


def present(user: User, viewer: Principal | None) -> dict:
    """A user as ``viewer`` may see them: personal data masked unless it is their own."""
    contact = accounts.contact_of(user, _key())
    own = viewer is not None and viewer.subject == user.id
    return {
        "id": user.id, "kind": user.kind, "display_name": user.display_name,
        "username": user.username, "created_at": user.created_at, "grants": user.grants,
        "can_log_in": user.password_hash is not None and not user.disabled, "disabled": user.disabled,
        "phone": contact.phone if own else domain.mask_phone(contact.phone),
        "national_id": contact.national_id if own else domain.mask_national_id(contact.national_id),
    }


def _user(session, user_id: str) -> User:
    user = session.get(User, user_id) if len(user_id) <= 36 else None
    if user is None:
        raise NotFound("user", user_id)
    return user


def _admin_or_self(user_id: str) -> Principal:
    principal = current_principal()
    if principal.subject != user_id and not principal.has_role(*ADMIN_ROLES):
        raise Forbidden()
    return principal


def _refuse_unless(allowed: bool, what: str) -> None:
    if not allowed:
        raise Forbidden(what)


def _audit_names(session, principal: Principal, users: list[User]) -> None:
    """A resident's name is personal; staff names are their work identity. Every resident
    an admin sees (masked phone and ID, their name in clear) is a line of the trail."""
    for user in users:
        if user.kind == "resident" and user.id != principal.subject and user.erased_at is None:
            audit.record_at_commit(session, principal, "read_account", subject_id=user.id,
                                   resource=f"user:{user.id}")


def _client_ip() -> str:
    # Behind a proxy, wrap the app in werkzeug's ProxyFix so this is the real client.
    return (request.remote_addr or "unknown")[:64]


# --- registration and accounts -------------------------------------------------------------

@blp.post("/residents")
@blp.arguments(ResidentIn)
@blp.response(201, UserOut)
def register_resident(body):
    """Self-registration of a resident (no token needed), with the "register" code texted
    to the phone. A wrong, expired or used code is a 422 naming ``code``."""
    user = codes.register(runtime(), phone=body["phone"], code=body["code"], name=body["name"],
                          password=body["password"], national_id=body.get("national_id"))
    return present(user, Principal(user.id, "user"))


@blp.post("/users")
@require_roles(*ADMIN_ROLES)
@blp.arguments(UserIn)
@blp.response(201, UserOut)
def create_user(body):
    """Create staff, department officers and volunteers.

    county_admin/sysadmin: any of them with any grants they may give. community and
    street admins: staff or volunteers with grid staff roles at exactly their own grid
    scope (identity does not know the grid tree; grids validates the subtree)."""
    principal = current_principal()
    grants = [(g["role"], g["scope"]) for g in body["grants"]]
    _refuse_unless(domain.may_create(principal, body["kind"], grants),
                   "your role and scope do not allow creating this account")
    with runtime().db.transaction() as session:
        user = accounts.create_user(session, _key(), kind=body["kind"], name=body["name"],
                                    phone=body.get("phone"), national_id=body.get("national_id"),
                                    username=body.get("username"), password=body.get("password"),
                                    grants=grants, by=principal.subject)
    return present(user, principal)


@blp.get("/users")
@require_roles(*ADMIN_ROLES)
@blp.arguments(UserQuery, location="query")
@blp.response(200, UserPage)
def list_users(query):
    """Accounts in id order, masked; ``next_cursor`` fetches the following page."""
    stmt = select(User).order_by(User.id).limit(query["limit"] + 1)
    if query.get("kind"):
        stmt = stmt.where(User.kind == query["kind"])
    if query.get("cursor"):
        stmt = stmt.where(User.id > query["cursor"][0])
    principal = current_principal()
    with runtime().db.transaction() as session:
        users = session.scalars(stmt).all()
        page = users[:query["limit"]]
        _audit_names(session, principal, page)
    more = len(users) > query["limit"]
    return {"items": [present(u, principal) for u in page],
            "next_cursor": USERS.encode(page[-1].id) if more else None}


@blp.get("/users/<user_id>")
@no_store
@blp.response(200, UserOut)
def get_user(user_id):
    """One account, masked (admins, or the person themselves)."""
    principal = _admin_or_self(user_id)
    with runtime().db.transaction() as session:
        user = _user(session, user_id)
        _audit_names(session, principal, [user])
        return present(user, principal)


@blp.get("/me")
@no_store
@authenticated
@blp.response(200, UserOut)
def me():
    """Your own account, unmasked."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        return present(_user(session, principal.subject), principal)


@blp.get("/users/<user_id>/contact")
@no_store
@require_roles(*domain.CONTACT_READERS)
@blp.arguments(ContactQuery, location="query")
@blp.response(200, ContactOut)
def read_contact(query, user_id):
    """The unmasked phone number, for county and community admins. Every read is audited
    with who, whom, when and the required ``reason``."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        user = _user(session, user_id)
        audit.record(session, principal, "read_contact", subject_id=user.id, resource=f"user:{user.id}",
                     reason=query["reason"])
        contact = accounts.contact_of(user, _key())
    return {"id": user.id, "name": user.display_name, "phone": contact.phone}


@blp.put("/users/<user_id>/password")
@require_roles("sysadmin", "county_admin")
@blp.arguments(PasswordIn)
@blp.response(204)
def set_user_password(body, user_id):
    """Set (or reset) someone's password; their sessions are revoked."""
    with runtime().db.transaction() as session:
        user = _user(session, user_id)
        _refuse_unless(user.kind != "service", "service accounts have secrets, not passwords")
        if any(g.role == "sysadmin" for g in user.grants) and not current_principal().is_sysadmin:
            raise Forbidden("only a sysadmin may set a sysadmin's password")
        accounts.set_password(session, user, body["password"])


@blp.put("/me/password")
@authenticated
@blp.arguments(OwnPasswordIn)
@blp.response(204)
def change_own_password(body):
    """Change your password (the current one is required); other sessions are revoked."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        user = _user(session, principal.subject)
        if not accounts._verify(user.password_hash, body["current_password"]):
            raise Forbidden("the current password is not right")
        accounts.set_password(session, user, body["password"])


@blp.post("/service-accounts")
@no_store
@require_roles("sysadmin")
@blp.arguments(ServiceAccountIn)
@blp.response(201, ServiceAccountOut)
def create_service_account(body):
    """A department system's account; it gets tokens with the client-credentials grant."""
    principal = current_principal()
    secret = accounts.new_client_secret()
    with runtime().db.transaction() as session:
        user = accounts.create_user(
            session, _key(), kind="service", name=body["name"],
            username=f"svc-{secrets.token_hex(8)}", password_hash=accounts.hasher.hash(secret),
            grants=[(g["role"], g["scope"]) for g in body["grants"]], by=principal.subject)
    return {"id": user.id, "name": user.display_name, "client_id": user.username,
            "client_secret": secret, "grants": user.grants}


# --- offboarding ---------------------------------------------------------------------------

def _change_status(user_id: str, reason: str, change) -> dict:
    principal = current_principal()
    with runtime().db.transaction() as session:
        user = accounts.lock_user(session, user_id) if len(user_id) <= 36 else None
        if user is None:
            raise NotFound("user", user_id)
        try:
            domain.check_status_change(principal, user.id, accounts.held_grants(session, user))
        except domain.RuleBroken as exc:
            raise Forbidden(str(exc)) from None
        change(session, user, by=principal.subject, reason=reason)
        return present(user, principal)


@blp.post("/users/<user_id>/disable")
@require_roles(*ADMIN_ROLES)
@blp.arguments(StatusChangeIn)
@blp.response(200, UserOut)
def disable_user(body, user_id):
    """Offboarding: the account can no longer log in, its sessions end, its grants are
    revoked, and every service refuses its access tokens within seconds; its staffing
    ends and the cases it held go back to a grid head. sysadmin: anyone; county_admin:
    anyone but a sysadmin; community/street admins: grid staff at their own grid scopes.
    Nobody disables their own account."""
    return _change_status(user_id, body["reason"], accounts.disable)


@blp.post("/users/<user_id>/enable")
@require_roles(*ADMIN_ROLES)
@blp.arguments(StatusChangeIn)
@blp.response(200, UserOut)
def enable_user(body, user_id):
    """The account may log in again (same rule as disabling, judged on the grants it held).
    A resident gets the resident role back; staff get roles by new grants."""
    return _change_status(user_id, body["reason"], accounts.enable)


@blp.get("/users/<user_id>/status-changes")
@require_roles(*ADMIN_ROLES)
@blp.response(200, StatusChangeOut(many=True))
def status_changes(user_id):
    """When the account was disabled and enabled, by whom and why, oldest first."""
    with runtime().db.transaction() as session:
        user = _user(session, user_id)
        return session.scalars(select(StatusChange).where(StatusChange.user_id == user.id)
                               .order_by(StatusChange.id)).all()


# --- personal data rights (PIPL) -------------------------------------------------------------

ERASURE_DETAIL = ("identity erased the account; every other service erases what it holds about "
                  "this person within moments (identity.user.erased)")


@blp.post("/me/erasure")
@authenticated
@blp.arguments(OwnErasureIn)
@blp.response(202, ErasureOut)
def erase_me(body):
    """Erase everything the platform holds about you. Your name, phone, national ID and
    password go at once and you cannot log in again; every other service erases or
    anonymises what it holds within moments. Your cases and the figures stay, without you.
    Confirm with your password (residents; staff ask an admin)."""
    principal = current_principal()
    rt = runtime()
    key = _key()
    with rt.db.transaction() as session:
        user = _user(session, principal.subject)
        has_password = user.password_hash is not None
        _refuse_unless(user.kind == "resident", "staff accounts are erased by an admin (POST /users/{id}/erasure)")
    if "password" in body:
        throttle, attempt = accounts.reserve_login(rt.db, key.index(f"erasure:{principal.subject}", "login"),
                                                   _client_ip())
        with rt.db.transaction() as session:
            if not accounts._verify(session.get(User, principal.subject).password_hash, body["password"]):
                raise Forbidden("the password is not right")
            throttle.release(session, attempt)
    elif has_password or not domain.fresh_login(principal.issued_at, time.time()):
        raise Forbidden("confirm with your password" if has_password else
                        "log in again (a token at most 5 minutes old) to confirm")
    with rt.db.transaction() as session:
        user = accounts.lock_user(session, principal.subject)
        at = accounts.erase(session, key, user, by=None, reason="requested by the person",
                            transit=runtime().extras["transit_key"])
    return {"user_id": principal.subject, "erased_at": at, "detail": ERASURE_DETAIL}


@blp.post("/users/<user_id>/erasure")
@require_roles(*domain.ERASERS)
@blp.arguments(ErasureIn)
@blp.response(202, ErasureOut)
def erase_user(body, user_id):
    """Erase a person who asked in person (identity verified at a service window, or a
    former employee): as ``POST /me/erasure``, recorded in the audit trail with how the
    request was verified. county_admin: anyone but a sysadmin; sysadmin: anyone. Not your
    own account, not a service account."""
    principal = current_principal()
    key = _key()
    with runtime().db.transaction() as session:
        user = accounts.lock_user(session, user_id) if len(user_id) <= 36 else None
        if user is None:
            raise NotFound("user", user_id)
        try:
            domain.check_erasure(principal, user.id, user.kind, accounts.held_grants(session, user))
        except domain.RuleBroken as exc:
            raise Forbidden(str(exc)) from None
        reason = privacy.redact(body["reason"], accounts.known_values(user, key))
        at = accounts.erase(session, key, user, by=principal.subject, reason=reason or "",
                            transit=runtime().extras["transit_key"])
        audit.record(session, principal, "erase", subject_id=user.id, resource=f"user:{user.id}", reason=reason)
    return {"user_id": user_id, "erased_at": at, "detail": ERASURE_DETAIL}


@blp.get("/me/personal-data/download")
@authenticated
@blp.response(200, Download)
def download_personal_data():
    """Everything the platform holds about you, one JSON document: identity's part and
    every other service's, each fetched from that service's own ``GET /me/personal-data``
    with your token. 503 naming the services that did not answer (retry shortly)."""
    principal = current_principal()
    document = privacy.collect(runtime(), principal.subject)
    day = document["exported_at"][:10]
    return document, 200, {"Content-Disposition": f'attachment; filename="gridgov-personal-data-{day}.json"'}


# --- grants --------------------------------------------------------------------------------

@blp.get("/users/<user_id>/grants")
@blp.response(200, GrantOut(many=True))
def list_grants(user_id):
    """Role grants of an account (admins, or the person themselves)."""
    _admin_or_self(user_id)
    with runtime().db.transaction() as session:
        return _user(session, user_id).grants


@blp.post("/users/<user_id>/grants")
@require_roles(*ADMIN_ROLES)
@blp.arguments(GrantIn)
@blp.response(201, GrantOut)
def add_grant(body, user_id):
    """Grant a role at a scope. sysadmin: any; county_admin: any but sysadmin; community and
    street admins: grid_worker, grid_head, building_manager or volunteer at a scope equal to
    their own (identity does not know the grid tree; the grids service validates it)."""
    principal = current_principal()
    _refuse_unless(domain.may_grant(principal, body["role"], body["scope"]),
                   f"you may not grant {body['role']} at {body['scope']}")
    with runtime().db.transaction() as session:
        return accounts.grant(session, _user(session, user_id), body["role"], body["scope"],
                              by=principal.subject)


@blp.delete("/users/<user_id>/grants/<int:grant_id>")
@require_roles(*ADMIN_ROLES)
@blp.response(204)
def remove_grant(user_id, grant_id):
    """Withdraw a grant (same rules as granting it). Takes effect at the next token refresh."""
    principal = current_principal()
    with runtime().db.transaction() as session:
        row = session.get(RoleGrant, grant_id)
        if row is None or row.user_id != user_id:
            raise NotFound("grant", grant_id)
        _refuse_unless(domain.may_grant(principal, row.role, row.scope),
                       f"you may not revoke {row.role} at {row.scope}")
        accounts.revoke_grant(session, row, by=principal.subject)


# --- tokens and keys -----------------------------------------------------------------------

@blp.post("/tokens")
@no_store
@blp.arguments(TokenIn)
@blp.response(200, TokenOut)
def issue_token(body):
    """Log in. ``password`` (phone or username), ``otp`` (phone and a "login" code texted to
    it; residents), ``refresh_token`` (rotates it) or ``client_credentials`` (service
    accounts). Too many failures answer 429 with Retry-After."""
    rt = runtime()
    if body["grant_type"] == "otp":
        return codes.login(rt, phone=body["phone"], code=body["code"], client_ip=_client_ip())
    if body["grant_type"] == "refresh_token":
        return accounts.refresh(rt, body["refresh_token"])
    if body["grant_type"] == "client_credentials":
        return accounts.login(rt, by="client_id", identifier=body["client_id"],
                              password=body["client_secret"], client_ip=_client_ip())
    by = "phone" if body.get("phone") else "username"
    return accounts.login(rt, by=by, identifier=body[by], password=body["password"],
                          client_ip=_client_ip())


@blp.post("/tokens/revoke")
@blp.arguments(RevokeIn)
@blp.response(204)
def revoke_token(body):
    """Log out: revoke the refresh token and every token rotated from the same login."""
    accounts.revoke(runtime(), body["refresh_token"])


@blp.get("/.well-known/jwks.json")
@blp.response(200, Jwks)
def jwks():
    """Public keys that verify access tokens (the active one and those still retiring)."""
    return runtime().extras["keyring"].jwks()


@blp.post("/keys/rotate")
@require_roles("sysadmin")
@blp.response(200, Rotated)
def rotate_keys():
    """Publish a new signing key; it signs from ``signs_from`` (a few seconds later, so every
    verifier can fetch it first). The old key stays published until its tokens expire."""
    key, previous = runtime().extras["keyring"].rotate()
    return {"kid": key.kid, "signs_from": key.signs_from, "previous_kid": previous}



# --- one-time codes ------------------------------------------------------------------------

class CodeRequestIn(Schema):
    phone = Phone(required=True)
    purpose = fields.String(required=True, validate=validate.OneOf(CODE_PURPOSES))
    language = fields.String(validate=validate.OneOf(LANGUAGES), metadata={
        "description": "Of the text message; default from Accept-Language, else zh-CN"})


class CodeRequested(Schema):
    detail = fields.String()
    expires_in = fields.Integer(metadata={"description": "Seconds a code sent now stays valid"})


class PasswordResetIn(Schema):
    phone = Phone(required=True)
    code = Code(required=True, metadata={"description": "The \"reset\" code texted to the phone"})
    password = Password(required=True)

    @validates("password")
    def _policy(self, value, **_):
        _check_policy(value)


@blp.post("/codes")
@blp.arguments(CodeRequestIn)
@blp.response(202, CodeRequested)
def request_code(body):
    """Text a one-time code to a phone (no token needed), to register, log in or reset the
    password. The answer is the same whether or not the phone has an account; only its
    owner learns anything. Throttled per phone and per client address (429, Retry-After)."""
    language = body.get("language") or request.accept_languages.best_match(LANGUAGES) or "zh-CN"
    ttl = codes.request_code(runtime(), phone=body["phone"], purpose=body["purpose"], language=language,
                             client_ip=_client_ip())
    return {"detail": "if this number may use a code for this, one is on its way by SMS",
            "expires_in": int(ttl.total_seconds())}


@blp.post("/password-reset")
@blp.arguments(PasswordResetIn)
@blp.response(204)
def reset_password(body):
    """A resident sets a new password with the "reset" code texted to their phone; every
    refresh token of the account is revoked. A wrong code or an unknown phone: the same 422."""
    codes.reset_password(runtime(), phone=body["phone"], code=body["code"], password=body["password"])
