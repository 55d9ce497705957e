"""The rules of identity, in plain Python (no Flask, no SQLAlchemy).

Who may hold which role where, what counts as a valid phone or national ID,
how personal data is shown to people who are not its owner, and how failed
logins are throttled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridkit.auth import ROLES, Principal
from gridkit.crypto import mask_national_id, mask_phone  # noqa: F401 - identity.domain re-exports them

KINDS = ("resident", "staff", "dept_officer", "volunteer", "service")
STAFF_KINDS = ("staff", "dept_officer", "volunteer")  # created by admins through POST /users
GRID_ADMIN_ROLES = ("community_admin", "street_admin")
# Roles a community/street admin may hand out inside their own grid scope.
GRID_STAFF_ROLES = ("grid_worker", "grid_head", "building_manager", "volunteer")
CONTACT_READERS = ("county_admin", "community_admin")
# Who erases a person who asked in person (PIPL); residents erase themselves.
ERASERS = ("county_admin", "sysadmin")

PHONE = re.compile(r"^1[3-9]\d{9}$")
NATIONAL_ID = re.compile(r"^\d{17}[\dX]$")
SCOPE = re.compile(r"^(county|grid:[A-Za-z0-9_-]{1,64}|division:[A-Za-z0-9_-]{1,64}"
                   r"|network:[a-z0-9_-]{1,64}|department:[a-z0-9_-]{1,64}|supermarket:[0-9]{1,18})$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 128

ACCESS_TOKEN_TTL = timedelta(minutes=10)
# An account without a password confirms its erasure with a token this fresh.
FRESH_LOGIN = timedelta(minutes=5)
REFRESH_TOKEN_TTL = timedelta(days=30)
# A retired key stays published until every token it signed has expired (+ verifier leeway).
KEY_RETIREMENT_DELAY = ACCESS_TOKEN_TTL + timedelta(minutes=1)


class RuleBroken(ValueError):
    """A domain rule said no; ``field`` names the input at fault when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# --- personal data -------------------------------------------------------------------------

def national_id_checksum_ok(number: str) -> bool:
    """GB 11643-1999: ISO 7064 MOD 11-2 over the first 17 digits."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(number[:17], weights, strict=True))
    return "10X98765432"[total % 11] == number[17]


def valid_national_id(number: str) -> bool:
    return bool(NATIONAL_ID.match(number)) and national_id_checksum_ok(number)


def mask_name(name: str) -> str:
    """王小明 → 王**: residents' names stay in identity; events carry this."""
    return name[:1] + "*" * max(len(name) - 1, 1)


def check_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise RuleBroken(f"password must be {PASSWORD_MIN}–{PASSWORD_MAX} characters", "password")
    if password.isdigit() or len(set(password)) < 4:
        raise RuleBroken("password is too easy to guess", "password")


# --- who may grant what --------------------------------------------------------------------

def may_grant(principal: Principal, role: str, scope: str) -> bool:
    """Whether ``principal`` may grant (or revoke) ``role`` at ``scope``.

    * sysadmin: anything; county_admin: anything but sysadmin.
    * community/street admins: grid staff roles only, and only at a scope *equal*
      to one of their own grid scopes. identity does not know the grid tree, so
      it cannot tell whether grid:42 lies under grid:7; the grids service owns
      the tree and validates staffing against it.
    """
    if role not in ROLES or not SCOPE.match(scope):
        return False
    if principal.is_sysadmin:
        return True
    if principal.has_role("county_admin"):
        return role != "sysadmin"
    if role in GRID_STAFF_ROLES and scope.startswith("grid:"):
        return any(g.scope == scope for g in principal.grants_for(*GRID_ADMIN_ROLES))
    return False


def may_create(principal: Principal, kind: str, grants: list[tuple[str, str]]) -> bool:
    """Admins create staff; grid-scoped admins only staff/volunteers they can also grant to."""
    if kind not in STAFF_KINDS:
        return False
    if principal.has_role("sysadmin", "county_admin"):
        return all(may_grant(principal, role, scope) for role, scope in grants)
    if principal.has_role(*GRID_ADMIN_ROLES) and kind in ("staff", "volunteer") and grants:
        return all(may_grant(principal, role, scope) for role, scope in grants)
    return False


def check_status_change(principal: Principal, target_id: str, target_grants: list[tuple[str, str]]) -> None:
    """Whether ``principal`` may disable (or enable again) the account ``target_id`` whose
    grants are (or were, when it was disabled) ``target_grants``; raises when not.

    * Nobody changes their own account (an admin locking themselves out is a mistake).
    * sysadmin: anyone; county_admin: anyone but a sysadmin.
    * community/street admins: the grid staff they could have granted, i.e. an account
      holding at least one grant, every one of them a grid staff role at exactly one of
      the admin's own grid scopes (the same rule as granting, see :func:`may_grant`).
    """
    if principal.subject == target_id:
        raise RuleBroken("you cannot disable or enable your own account", "user_id")
    if any(role == "sysadmin" for role, _ in target_grants) and not principal.is_sysadmin:
        raise RuleBroken("only a sysadmin may disable or enable a sysadmin")
    if principal.has_role("sysadmin", "county_admin"):
        return
    if target_grants and all(may_grant(principal, role, scope) for role, scope in target_grants):
        return
    raise RuleBroken("the account is outside your scope")


def check_erasure(principal: Principal, target_id: str, target_kind: str,
                  target_grants: list[tuple[str, str]]) -> None:
    """Whether ``principal`` (an eraser) may erase the account ``target_id`` for a request
    made in person; raises when not. Not one's own account (residents erase themselves,
    an admin's own goes through another admin), not a service account (no person), and
    a sysadmin only by a sysadmin."""
    if principal.subject == target_id:
        raise RuleBroken("you cannot erase your own account here", "user_id")
    if target_kind == "service":
        raise RuleBroken("a service account holds no person's data; remove its grants instead")
    if any(role == "sysadmin" for role, _ in target_grants) and not principal.is_sysadmin:
        raise RuleBroken("only a sysadmin may erase a sysadmin")
    if not principal.has_role(*ERASERS):
        raise RuleBroken("the account is outside your scope")


def fresh_login(issued_at: float | None, now: float) -> bool:
    """Whether a token issued at ``issued_at`` (its iat) is recent enough to confirm an erasure."""
    return issued_at is not None and 0 <= now - issued_at <= FRESH_LOGIN.total_seconds()


def may_set_password(principal: Principal) -> bool:
    return principal.has_role("sysadmin", "county_admin")


# --- throttling of failed logins -----------------------------------------------------------

@dataclass(frozen=True)
class Limit:
    failures: int
    window: timedelta


ACCOUNT_LIMIT = Limit(10, timedelta(minutes=15))
CLIENT_LIMIT = Limit(100, timedelta(hours=1))


def retry_after(limit: Limit, attempts: list[datetime], now: datetime) -> int | None:
    """Seconds to wait if ``attempts`` (this one included, oldest first) exceed the limit."""
    recent = [t for t in attempts if t > now - limit.window]
    if len(recent) <= limit.failures:
        return None
    # Waiting until the oldest counted failure leaves the window frees one slot.
    oldest = recent[-(limit.failures + 1)]
    return max(1, int((oldest + limit.window - now).total_seconds()) + 1)
