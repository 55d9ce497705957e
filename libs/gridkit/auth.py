"""Access tokens: verified locally against identity's JWKS (RFC 8725 rules).

* Only ``EdDSA`` is accepted (no ``none``, no HMAC with a public key).
* ``typ`` must be ``at+jwt`` (RFC 9068); ``iss``, ``aud``, ``exp``, ``iat``
  and ``sub`` are required and checked.
* Keys are cached and the JWKS re-fetched when an unknown ``kid`` shows up
  (at most every few seconds, so random kids cannot hammer identity).

A token carries the bearer's role grants, each with a scope::

    {"sub": "…", "kind": "user", "grants": [{"role": "grid_worker", "scope": "grid:42"}]}

Scope is ``county``, ``grid:<id>`` (that grid's subtree), ``division:<code>``
(a street's or community's area: every grid in it), ``network:<code>``,
``department:<code>`` or ``supermarket:<id>`` (a points supermarket's keeper).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import wraps

import jwt
from flask import g, request

from .problems import Forbidden, Unauthorized

ALGORITHMS = ["EdDSA"]
TOKEN_TYPE = "at+jwt"

ROLES = (
    "resident", "grid_worker", "grid_head", "community_admin", "street_admin", "county_admin",
    "dept_officer", "volunteer", "building_manager", "sysadmin", "auditor", "supermarket_keeper",
)
# Roles that administer: they see personal data of the people they handle.
ADMIN_ROLES = ("community_admin", "street_admin", "county_admin", "sysadmin")


@dataclass(frozen=True)
class Grant:
    role: str
    scope: str = "county"

    @property
    def scope_type(self) -> str:
        return self.scope.split(":", 1)[0]

    @property
    def scope_id(self) -> str | None:
        return self.scope.split(":", 1)[1] if ":" in self.scope else None


@dataclass(frozen=True)
class Principal:
    subject: str
    kind: str  # "user" or "service"
    grants: tuple[Grant, ...] = field(default_factory=tuple)
    name: str | None = None
    issued_at: float | None = None  # the token's iat: a disabled account's older tokens are refused

    def has_role(self, *roles: str) -> bool:
        return any(grant.role in roles for grant in self.grants)

    def grants_for(self, *roles: str) -> list[Grant]:
        return [grant for grant in self.grants if grant.role in roles]

    @property
    def is_sysadmin(self) -> bool:
        return self.has_role("sysadmin")


class JwksCache:
    def __init__(self, fetch: Callable[[], dict], *, ttl: float = 300, min_refresh: float = 5):
        self.fetch = fetch
        self.ttl = ttl
        self.min_refresh = min_refresh
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    @property
    def fetched_at(self) -> float:
        """When the keys were last read (time.monotonic()); tokens verified with them are
        remembered until the next read."""
        return self._fetched_at

    def key(self, kid: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        stale = now - self._fetched_at > self.ttl
        if stale or (kid not in self._keys and now - self._fetched_at > self.min_refresh):
            self._refresh()
        return self._keys.get(kid)

    def _refresh(self) -> None:
        with self._lock:
            try:
                jwks = self.fetch()
                keys = {}
                for data in jwks.get("keys", []):
                    if data.get("kid") and data.get("kty") == "OKP":
                        keys[data["kid"]] = jwt.PyJWK(data, algorithm="EdDSA")
                self._keys = keys
            finally:
                self._fetched_at = time.monotonic()


class TokenVerifier:
    """Verifies access tokens, and remembers the ones it verified.

    A client sends the same token with every request until it expires; checking its
    signature each time was a tenth of a busy route's CPU. A verified token is
    remembered until it expires, but only as long as the keys it was checked with:
    when the JWKS is read again (every ``ttl`` seconds, or for an unknown key id) it
    is checked again, so a key withdrawn from identity stops working as soon as it
    would without this memory."""

    MEMORY = 10_000  # tokens remembered at most; past that the memory starts afresh

    def __init__(self, jwks: JwksCache, *, issuer: str, audience: str, leeway: float = 5):
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._verified: dict[str, tuple[Principal, float, float]] = {}  # token → (principal, exp, keys read at)

    @classmethod
    def from_url(cls, url: str, **kwargs) -> TokenVerifier:
        import requests

        def fetch() -> dict:
            response = requests.get(url, timeout=3)
            response.raise_for_status()
            return response.json()

        return cls(JwksCache(fetch), **kwargs)

    @classmethod
    def from_jwks(cls, jwks: Callable[[], dict], **kwargs) -> TokenVerifier:
        return cls(JwksCache(jwks, ttl=1), **kwargs)

    def verify(self, token: str) -> Principal:
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, expires, keys_read_at = remembered
            if time.time() < expires + self.leeway and keys_read_at == self.jwks.fetched_at \
                    and time.monotonic() - keys_read_at < self.jwks.ttl:
                return principal
            self._verified.pop(token, None)
        principal, expires = self._verify(token)
        if len(self._verified) >= self.MEMORY:
            self._verified.clear()
        self._verified[token] = (principal, expires, self.jwks.fetched_at)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized("token algorithm not allowed")
        if header.get("typ") != TOKEN_TYPE:
            raise Unauthorized("token type must be at+jwt")
        kid = header.get("kid")
        try:
            key = self.jwks.key(kid) if isinstance(kid, str) else None
        except Exception:  # noqa: BLE001 - identity unreachable
            raise Unauthorized("signing keys are unavailable; try again") from None
        if key is None:
            raise Unauthorized("unknown signing key")
        try:
            claims = jwt.decode(
                token, key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        grants = tuple(Grant(g_["role"], g_.get("scope", "county"))
                       for g_ in claims.get("grants", []) if isinstance(g_, dict) and "role" in g_)
        iat = claims.get("iat")
        principal = Principal(claims["sub"], claims.get("kind", "user"), grants, claims.get("name"),
                              float(iat) if isinstance(iat, int | float) else None)
        return principal, float(claims["exp"])


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def current_principal(required: bool = True) -> Principal | None:
    if "principal" not in g:
        token = bearer_token()
        if token is None:
            if required:
                raise Unauthorized()
            return None
        from .service import runtime

        rt = runtime()
        principal = rt.verifier.verify(token)
        if rt.revoked_access.refuses(principal):
            raise Unauthorized("this account was disabled; its access tokens no longer work")
        g.principal = principal
    return g.principal


def authenticated(view):
    """Any valid token."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        current_principal()
        return view(*args, **kwargs)

    wrapper._gridgov_auth = True  # type: ignore[attr-defined]
    return wrapper


def require_roles(*roles: str):
    """A valid token holding one of ``roles`` (scope is checked by the view)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if not principal.has_role(*roles):
                raise Forbidden(f"requires one of the roles: {', '.join(roles)}")
            return view(*args, **kwargs)

        wrapper._gridgov_auth = True  # type: ignore[attr-defined]
        return wrapper

    return decorator


def scopes_of(principal: Principal, roles: Iterable[str]) -> list[str]:
    return [grant.scope for grant in principal.grants if grant.role in roles]


def dumps_grants(grants: Iterable[Grant]) -> list[dict]:
    return [{"role": grant.role, "scope": grant.scope} for grant in grants]


__all__ = ["Grant", "Principal", "TokenVerifier", "JwksCache", "authenticated", "require_roles",
           "current_principal", "json"]
