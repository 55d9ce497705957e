"""One-time codes by SMS: residents register, log in and reset a forgotten password.

``request_code`` answers the same whether or not the phone has an account: it
always counts the request against the throttle, always writes a code row and
always does the same work. What differs is invisible to the caller: a usable
code exists (and notify texts it, through ``identity.code.issued``) only for
registering an unknown phone, or logging in to / resetting a resident's account;
registering a known phone texts its owner that the number already has an
account; anything else texts nobody.

A code is six digits from ``secrets``, stored only as an HMAC keyed with the
data key's index subkey, valid ``GRIDGOV_CODE_TTL_SECONDS`` (300), used once,
replaced by the next code for the same phone and purpose, and locked by its
sixth wrong attempt. Every failure (wrong, expired, used, locked, no such
account) gives the same answer.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gridkit.crypto import DataKey
from gridkit.db import delete_in_chunks, keep_tidy
from gridkit.problems import Problem, Unauthorized

from . import accounts, domain
from .events import CODE_ISSUED, CODE_PURPOSE, RECIPIENT_PURPOSE, TRANSIT_CONTEXT
from .tables import CodeRequest, OneTimeCode, User, outbox
from .throttle import Throttle

log = logging.getLogger(__name__)

# The sixth wrong attempt locks a code: even the right one fails afterwards.
LOCKED_AFTER = 6
INVALID_CODE = ("the code is not valid: wrong, expired, already used, or locked after too many "
                "attempts; ask for a new one")


@dataclass(frozen=True)
class CodeRules:
    """Lifetime and throttling of codes (``Settings.extra`` overrides, for tests)."""

    ttl: timedelta = timedelta(minutes=5)
    resend: timedelta = timedelta(seconds=60)  # at most one code per phone this often
    per_phone_hour: int = 5
    per_client_hour: int = 30

    @classmethod
    def from_settings(cls, settings) -> CodeRules:
        def get(name: str, default: str) -> str:
            return str(settings.extra.get(name) or os.environ.get(name) or default)

        return cls(ttl=timedelta(seconds=float(get("GRIDGOV_CODE_TTL_SECONDS", "300"))),
                   resend=timedelta(seconds=float(get("GRIDGOV_CODE_RESEND_SECONDS", "60"))),
                   per_phone_hour=int(get("GRIDGOV_CODES_PER_PHONE_HOUR", "5")),
                   per_client_hour=int(get("GRIDGOV_CODES_PER_IP_HOUR", "30")))

    @property
    def phone_limits(self) -> list[domain.Limit]:
        limits = [domain.Limit(self.per_phone_hour, timedelta(hours=1))]
        if self.resend > timedelta(0):
            limits.append(domain.Limit(1, self.resend))
        return limits

    @property
    def client_limit(self) -> domain.Limit:
        return domain.Limit(self.per_client_hour, timedelta(hours=1))

    @property
    def longest_window(self) -> timedelta:
        return max(timedelta(hours=1), self.resend)


def setup(runtime) -> None:
    """identity's share of the transit key (notify derives the same) and the code rules."""
    runtime.extras.update(transit_key=DataKey.from_settings(runtime.settings, context=TRANSIT_CONTEXT),
                          code_rules=CodeRules.from_settings(runtime.settings))


def invalid_code() -> Problem:
    return Problem(422, INVALID_CODE, type="invalid-code", title="Unprocessable Content",
                   errors={"code": [INVALID_CODE]})


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def code_hash(key: DataKey, phone_key: str, purpose: str, code: str) -> str:
    return key.index(f"{phone_key}:{purpose}:{code}", "one-time-code")


# --- asking for a code ---------------------------------------------------------------------

def reserve_request(db, rules: CodeRules, phone_key: str, client_ip: str) -> None:
    """Requests for codes per phone and per client address, counted like failed logins."""
    Throttle(db, CodeRequest, at="requested_at", detail="too many codes asked for; try again later",
             type="too-many-requests").reserve(
        {"phone_key": phone_key, "client_ip": client_ip},
        [(limit, "phone_key") for limit in rules.phone_limits] + [(rules.client_limit, "client_ip")])


def request_code(runtime, *, phone: str, purpose: str, language: str, client_ip: str) -> timedelta:
    """Issue a code for ``phone`` and ``purpose`` if it may have one; answer the code's
    lifetime either way (the caller cannot tell which happened)."""
    key: DataKey = runtime.extras["data_key"]
    rules: CodeRules = runtime.extras["code_rules"]
    phone_key = key.index(phone, "phone")
    reserve_request(runtime.db, rules, phone_key, client_ip)
    code = new_code()
    now = accounts.utcnow()
    expires_at = now + rules.ttl
    with runtime.db.transaction() as session:
        account = session.execute(select(User.kind, User.disabled)
                                  .where(User.phone_index.in_(key.indexes(phone, "phone")))).first()
        if purpose == "register":
            usable, message = account is None, ("code" if account is None else "account_exists")
        else:
            # Residents help themselves; staff accounts are an admin's business.
            usable = account is not None and account.kind == "resident" and not account.disabled
            message = "code" if usable else None
        # The newest row is the one that counts; the older ones for this phone and purpose go.
        row = OneTimeCode(phone_key=phone_key, purpose=purpose, wrong_attempts=0, created_at=now,
                          expires_at=expires_at,
                          code_hash=code_hash(key, phone_key, purpose, code) if usable else None)
        session.add(row)
        session.flush()
        session.execute(delete(OneTimeCode).where(OneTimeCode.phone_key == phone_key,
                                                  OneTimeCode.purpose == purpose, OneTimeCode.id < row.id))
        if message:
            transit: DataKey = runtime.extras["transit_key"]
            outbox.record(session, CODE_ISSUED, {
                "recipient_sealed": transit.seal(phone, RECIPIENT_PURPOSE),
                "code_sealed": transit.seal(code, CODE_PURPOSE) if usable else None,
                "purpose": purpose, "message": message, "language": language, "expires_at": expires_at})
    return rules.ttl


# --- using a code --------------------------------------------------------------------------

def redeem(session: Session, key: DataKey, phone: str, purpose: str, code: str) -> bool:
    """Whether ``code`` is the live code for ``phone`` and ``purpose``. A right code is
    used up (the caller's transaction commits that); a wrong one counts an attempt, which
    the caller must commit too, even though it then refuses."""
    phone_key = key.index(phone, "phone")
    row = session.scalars(select(OneTimeCode).where(OneTimeCode.phone_key == phone_key,
                                                    OneTimeCode.purpose == purpose)
                          .order_by(OneTimeCode.id.desc()).limit(1).with_for_update()).first()
    if row is None or row.wrong_attempts >= LOCKED_AFTER or accounts.aware(row.expires_at) <= accounts.utcnow():
        return False
    given = code_hash(key, phone_key, purpose, code)
    if row.code_hash is not None and hmac.compare_digest(row.code_hash, given):
        session.execute(delete(OneTimeCode).where(OneTimeCode.phone_key == phone_key,
                                                  OneTimeCode.purpose == purpose))
        return True
    row.wrong_attempts += 1
    return False


def _resident(session: Session, key: DataKey, phone: str) -> User | None:
    user = accounts.find_by_phone(session, key, phone)
    return user if user is not None and user.kind == "resident" and not user.disabled else None


def login(runtime, *, phone: str, code: str, client_ip: str) -> dict:
    """The ``otp`` grant: tokens like the password grant's, counted by the same login throttle."""
    key: DataKey = runtime.extras["data_key"]
    throttle, attempt = accounts.reserve_login(runtime.db, key.index(f"phone:{phone}", "login"), client_ip)
    with runtime.db.transaction() as session:
        user = _resident(session, key, phone)
        if redeem(session, key, phone, "login", code) and user is not None:
            throttle.release(session, attempt)
            return accounts.issue_tokens(session, runtime.extras["keyring"], user)
    # Committed above: the wrong attempt counts.
    raise Unauthorized("the phone or the code is not valid (a code is single use, short-lived and "
                       "locked after too many attempts)")


def reset_password(runtime, *, phone: str, code: str, password: str) -> None:
    """A new password for the resident who proved the phone; every session of theirs ends."""
    key: DataKey = runtime.extras["data_key"]
    with runtime.db.transaction() as session:
        user = _resident(session, key, phone)
        done = redeem(session, key, phone, "reset", code) and user is not None
        if done:
            accounts.set_password(session, user, password)
    if not done:
        raise invalid_code()


def register(runtime, *, phone: str, code: str, name: str, password: str,
             national_id: str | None = None) -> User:
    """A resident registers with a "register" code proving the phone is theirs."""
    key: DataKey = runtime.extras["data_key"]
    with runtime.db.transaction() as session:
        proved = redeem(session, key, phone, "register", code)
        if proved:
            # Raises 409 (rolling the code back) if the phone got an account meanwhile:
            # its owner proved the phone, so they may know.
            return accounts.create_user(session, key, kind="resident", name=name, phone=phone,
                                        national_id=national_id, password=password,
                                        grants=[("resident", "county")])
    raise invalid_code()


# --- housekeeping --------------------------------------------------------------------------

def forget_old_codes(runtime, stop: threading.Event, *, chunk: int = 5000) -> None:
    """The worker's loop: expired codes and requests older than every throttle window go."""
    rules: CodeRules = runtime.extras["code_rules"]

    def tidy() -> int:
        now = accounts.utcnow()
        codes = select(OneTimeCode.id).where(OneTimeCode.expires_at < now).limit(chunk)
        requests = select(CodeRequest.id).where(
            CodeRequest.requested_at < now - rules.longest_window).limit(chunk)
        return (delete_in_chunks(runtime.db, delete(OneTimeCode).where(OneTimeCode.id.in_(codes)), chunk)
                + delete_in_chunks(runtime.db, delete(CodeRequest).where(CodeRequest.id.in_(requests)), chunk))

    keep_tidy(stop, runtime.extras.get("codes_purge_seconds", 300.0), tidy, "expired one-time codes")
