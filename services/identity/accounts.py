"""Service layer: the unit-of-work operations the HTTP routes and the demo seeding share.

Each function takes an open session (the caller commits) except the login flows,
which need their own transactions for the throttle (see ``throttle.Throttle``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridkit import privacy
from gridkit.crypto import DataKey
from gridkit.outbox import SETTLED
from gridkit.problems import Conflict, Problem, Unauthorized

from . import domain
from .events import (
    CODE_ISSUED,
    RECIPIENT_PURPOSE,
    ROLE_GRANTED,
    ROLE_REVOKED,
    USER_DISABLED,
    USER_ENABLED,
    USER_ERASED,
    USER_REGISTERED,
)
from .keys import Keyring
from .tables import (
    CodeRequest,
    LoginAttempt,
    OneTimeCode,
    RefreshToken,
    RoleGrant,
    StatusChange,
    User,
    outbox,
)
from .throttle import Throttle

# OWASP's argon2id baseline (19 MiB, t=2, p=1).
hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the account does not exist, so timing does not reveal which phones have accounts.
_DUMMY_HASH = hasher.hash("not-a-real-password")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- accounts ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Contact:
    phone: str | None
    national_id: str | None


def contact_of(user: User, key: DataKey) -> Contact:
    return Contact(
        key.open(user.phone_sealed, "phone") if user.phone_sealed else None,
        key.open(user.national_id_sealed, "national_id") if user.national_id_sealed else None,
    )


def find_by_phone(session: Session, key: DataKey, phone: str) -> User | None:
    # Every key's index: after a rotation, rows not re-indexed yet (`gridgov rekey`) still count.
    return session.scalar(select(User).where(User.phone_index.in_(key.indexes(phone, "phone"))).limit(1))


def create_user(session: Session, key: DataKey, *, kind: str, name: str, phone: str | None = None,
                national_id: str | None = None, username: str | None = None,
                password: str | None = None, password_hash: str | None = None,
                grants: list[tuple[str, str]] = (), by: str | None = None) -> User:
    """Create an account (+ grants) and record its events. ``password=None``: cannot log in yet."""
    user = User(id=str(uuid.uuid4()), kind=kind, display_name=name, username=username,
                created_at=utcnow(), disabled=False, grants=[],
                password_hash=password_hash or (hasher.hash(password) if password else None))
    if phone:
        user.phone_index = key.index(phone, "phone")
        user.phone_sealed = key.seal(phone, "phone")
        if session.scalar(select(User.id).where(User.phone_index.in_(key.indexes(phone, "phone"))).limit(1)):
            raise Conflict("an account with this phone number already exists", field="phone")
    if national_id:
        user.national_id_index = key.index(national_id, "national_id")
        user.national_id_sealed = key.seal(national_id, "national_id")
        if session.scalar(select(User.id).where(
                User.national_id_index.in_(key.indexes(national_id, "national_id"))).limit(1)):
            raise Conflict("an account with this national ID already exists", field="national_id")
    if username and session.scalar(select(User.id).where(User.username == username)):
        raise Conflict("this username is taken", field="username")
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # lost a race with a concurrent registration
        raise Conflict("an account with this phone, national ID or username already exists") from None
    # Staff names are work identities other services show; residents' are personal.
    display_name = domain.mask_name(name) if kind == "resident" else name
    outbox.record(session, USER_REGISTERED,
                  {"user_id": user.id, "kind": kind, "display_name": display_name}, subject=user.id)
    for role, scope in grants:
        grant(session, user, role, scope, by=by)
    return user


def grant(session: Session, user: User, role: str, scope: str, *, by: str | None) -> RoleGrant:
    if any(g.role == role and g.scope == scope for g in user.grants):
        raise Conflict(f"{role} at {scope} is already granted", field="role")
    row = RoleGrant(role=role, scope=scope, granted_by=by, granted_at=utcnow())
    user.grants.append(row)
    session.flush()
    outbox.record(session, ROLE_GRANTED, {"grant_id": row.id, "user_id": user.id, "role": role,
                                          "scope": scope, "by": by}, subject=user.id)
    return row


def revoke_grant(session: Session, row: RoleGrant, *, by: str | None) -> None:
    outbox.record(session, ROLE_REVOKED, {"grant_id": row.id, "user_id": row.user_id,
                                          "role": row.role, "scope": row.scope, "by": by},
                  subject=row.user_id)
    session.delete(row)


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hasher.hash(password)
    revoke_all_refresh_tokens(session, user.id)


# --- offboarding ---------------------------------------------------------------------------

def lock_user(session: Session, user_id: str) -> User | None:
    """The account, its row locked for the rest of the transaction (see :func:`issue_tokens`)."""
    return session.scalar(select(User).where(User.id == user_id).with_for_update())


def last_disable(session: Session, user_id: str) -> StatusChange | None:
    return session.scalar(select(StatusChange).where(StatusChange.user_id == user_id,
                                                     StatusChange.action == "disabled")
                          .order_by(StatusChange.id.desc()).limit(1))


def held_grants(session: Session, user: User) -> list[tuple[str, str]]:
    """The grants that decide who may change the account's status: its current ones, or
    those a disable took away."""
    if not user.disabled:
        return [(g.role, g.scope) for g in user.grants]
    change = last_disable(session, user.id)
    return [tuple(pair) for pair in json.loads(change.grants)] if change else []  # type: ignore[misc]


def disable(session: Session, user: User, *, by: str, reason: str) -> None:
    """Someone left (or must be stopped): at once their sessions end, their grants are
    revoked, and every service refuses their access tokens (``identity.user.disabled``);
    grids ends their staffing and dispatch hands their cases back to a grid head."""
    if user.disabled:
        raise Conflict("the account is already disabled")
    now = utcnow()
    grants = [[g.role, g.scope] for g in user.grants]
    user.disabled = True
    revoke_all_refresh_tokens(session, user.id)
    for row in list(user.grants):
        revoke_grant(session, row, by=by)
        user.grants.remove(row)
    session.add(StatusChange(user_id=user.id, action="disabled", reason=reason, by=by, at=now,
                             grants=json.dumps(grants)))
    outbox.record(session, USER_DISABLED, {"user_id": user.id, "kind": user.kind, "by": by, "at": now},
                  subject=user.id)


def enable(session: Session, user: User, *, by: str, reason: str) -> None:
    """The account may log in again. Its old tokens stay refused; a resident gets the
    resident role back, staff get roles only by new grants (a returning worker may have
    another job)."""
    if not user.disabled:
        raise Conflict("the account is not disabled")
    now = utcnow()
    user.disabled = False
    session.add(StatusChange(user_id=user.id, action="enabled", reason=reason, by=by, at=now))
    outbox.record(session, USER_ENABLED, {"user_id": user.id, "kind": user.kind, "by": by, "at": now},
                  subject=user.id)
    if user.kind == "resident":
        grant(session, user, "resident", "county", by=by)


# --- erasure (PIPL) ---------------------------------------------------------------------------

def erase(session: Session, key: DataKey, user: User, *, by: str | None, reason: str,
          transit: DataKey) -> datetime:
    """Erase the person (``by`` None: they asked themselves; else the admin who verified
    the request in person). Their account keeps its id, so that the cases and figures of
    every service keep their references, and holds nothing about them any more: a
    neutral name, no phone, national ID, username or password, no sessions, no grants,
    disabled for good. ``identity.user.erased`` makes every other service erase what it
    holds; an account that was still active is first disabled (``identity.user.disabled``),
    so that what offboarding does elsewhere (staffing ends, held cases go back) happens too.
    Returns the moment it took effect."""
    if user.erased_at is not None:
        raise Conflict("this person's data was already erased")
    now = utcnow()
    values = known_values(user, key)
    for row in list(user.grants):
        revoke_grant(session, row, by=by)
        user.grants.remove(row)
    session.add(StatusChange(user_id=user.id, action="erased", reason=privacy.redact(reason, values) or "",
                             by=by or user.id, at=now))
    if not user.disabled:
        outbox.record(session, USER_DISABLED, {"user_id": user.id, "kind": user.kind, "by": by, "at": now},
                      subject=user.id)
    scrub(session, key, user, now, transit)
    outbox.record(session, USER_ERASED, {"user_id": user.id, "kind": user.kind, "by": by, "at": now},
                  subject=user.id)
    return now


def known_values(user: User, key: DataKey) -> list[str]:
    """The clear values that identify the person: what free text must not keep."""
    contact = contact_of(user, key)
    return [v for v in (user.display_name, user.username, contact.phone, contact.national_id) if v]


def scrub(session: Session, key: DataKey, user: User, at: datetime, transit: DataKey) -> None:
    """What identity holds about the person, gone (idempotent; no events): the account's
    personal fields, its sessions and failed logins, the codes texted to the phone (``transit``
    opens the ones still in the outbox), the reasons admins wrote about it (redacted), and
    the published events about it still kept in the outbox."""
    if user.erased_at is not None:
        return
    values = known_values(user, key)
    contact = contact_of(user, key)
    # Under every key of the ring: what was counted or asked for before a rotation goes too.
    logins = key.indexes(f"username:{user.username}", "login") if user.username else []
    if contact.phone:
        logins += key.indexes(f"phone:{contact.phone}", "login")
        forget_codes(session, key.indexes(contact.phone, "phone"), contact.phone, transit)
    if logins:
        session.execute(delete(LoginAttempt).where(LoginAttempt.account_key.in_(logins)))
    session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id))
    for change in session.scalars(select(StatusChange).where(StatusChange.user_id == user.id)):
        change.reason = privacy.redact(change.reason, values) or ""
    # Settled events stay a few days for operators to look at; the registration named the
    # person (a staff member in clear). Pending ones must still go out.
    t = outbox.table
    session.execute(delete(t).where(t.c.status.in_(SETTLED), t.c.body.contains(user.id, autoescape=True)))
    user.display_name = privacy.ERASED_NAME
    user.username = None
    user.phone_sealed = user.phone_index = None
    user.national_id_sealed = user.national_id_index = None
    user.password_hash = None
    user.disabled = True
    user.erased_at = at


def forget_codes(session: Session, phone_keys: list[str], phone: str, transit: DataKey) -> None:
    """Every code of the phone and the requests for them, and the texts of them the outbox
    still keeps (sealed for notify: only the transit key tells whose they are)."""
    session.execute(delete(OneTimeCode).where(OneTimeCode.phone_key.in_(phone_keys)))
    session.execute(delete(CodeRequest).where(CodeRequest.phone_key.in_(phone_keys)))
    t = outbox.table
    texts = [row_id for row_id, body in session.execute(
        select(t.c.id, t.c.body).where(t.c.routing_key == CODE_ISSUED.type))
        if transit.open(json.loads(body)["data"]["recipient_sealed"], RECIPIENT_PURPOSE) == phone]
    if texts:
        session.execute(delete(t).where(t.c.id.in_(texts)))


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


# --- throttling ----------------------------------------------------------------------------

def reserve_login(db, account_key: str, client_ip: str) -> tuple[Throttle, int]:
    """A login attempt, counted per login name and per client address (429 past the limits);
    the caller releases it when the login succeeds."""
    throttle = Throttle(db, LoginAttempt, at="attempted_at", detail="too many failed logins; try again later",
                        type="too-many-attempts")
    return throttle, throttle.reserve({"account_key": account_key, "client_ip": client_ip},
                                      [(domain.ACCOUNT_LIMIT, "account_key"), (domain.CLIENT_LIMIT, "client_ip")])


# --- tokens --------------------------------------------------------------------------------

def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _bad_credentials() -> Problem:
    return Unauthorized("the credentials are not valid")


def login(runtime, *, by: str, identifier: str, password: str, client_ip: str) -> dict:
    """Password grant (people) or client-credentials grant (service accounts, by="client_id")."""
    key: DataKey = runtime.extras["data_key"]
    throttle, attempt = reserve_login(runtime.db, key.index(f"{by}:{identifier}", "login"), client_ip)
    with runtime.db.transaction() as session:
        if by == "phone":
            user = find_by_phone(session, key, identifier)
        else:
            user = session.scalar(select(User).where(User.username == identifier))
        service = by == "client_id"
        ok = _verify(user.password_hash if user else None, password) and not user.disabled \
            and (user.kind == "service") == service
        if ok:
            throttle.release(session, attempt)
            if hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hasher.hash(password)
            return issue_tokens(session, runtime.extras["keyring"], user, refresh=not service)
    raise _bad_credentials()


def issue_tokens(session: Session, keyring: Keyring, user: User, *, refresh: bool = True,
                 family: str | None = None) -> dict:
    # The account's row is locked as a disable locks it: a token is issued either before
    # the disable's moment (and refused everywhere from then on) or not at all.
    if session.scalar(select(User.disabled).where(User.id == user.id).with_for_update()):
        raise _bad_credentials()
    access, expires_in = keyring.issue(session, user)
    answer = {"access_token": access, "token_type": "Bearer", "expires_in": expires_in}
    if refresh:
        token = secrets.token_urlsafe(32)
        now = utcnow()
        session.add(RefreshToken(token_hash=sha256(token), family=family or str(uuid.uuid4()),
                                 user_id=user.id, issued_at=now,
                                 expires_at=now + domain.REFRESH_TOKEN_TTL))
        answer["refresh_token"] = token
    return answer


def refresh(runtime, token: str) -> dict:
    """Rotate a refresh token. Presenting one already rotated revokes its whole family:
    either the client or a thief holds a copy, and we cannot tell which."""
    reused = False
    with runtime.db.transaction() as session:
        row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == sha256(token)))
        if row is None or aware(row.expires_at) <= utcnow():
            raise _bad_credentials()
        # Claim it atomically: of two concurrent uses exactly one wins.
        claimed = session.execute(update(RefreshToken).where(
            RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None),
            RefreshToken.revoked_at.is_(None)).values(rotated_at=utcnow())).rowcount
        if not claimed:
            reused = row.revoked_at is None or row.rotated_at is not None
            _revoke_family(session, row.family)
        else:
            user = session.get(User, row.user_id)
            if user is None or user.disabled:
                raise _bad_credentials()
            return issue_tokens(session, runtime.extras["keyring"], user, family=row.family)
    raise Unauthorized("refresh token reuse detected; the session was revoked" if reused
                       else "the refresh token was revoked")


def revoke(runtime, token: str) -> None:
    """Logout: revoke the token's family (RFC 7009: unknown tokens are not an error)."""
    with runtime.db.transaction() as session:
        family = session.scalar(select(RefreshToken.family)
                                .where(RefreshToken.token_hash == sha256(token)))
        if family:
            _revoke_family(session, family)


def _revoke_family(session: Session, family: str) -> None:
    session.execute(update(RefreshToken).where(RefreshToken.family == family,
                                               RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))


def revoke_all_refresh_tokens(session: Session, user_id: str) -> None:
    session.execute(update(RefreshToken).where(RefreshToken.user_id == user_id,
                                               RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
