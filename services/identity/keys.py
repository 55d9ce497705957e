"""Signing keys and access tokens.

One Ed25519 key signs at a time. Rotation without downtime, in three steps:

1. the new key is published in the JWKS at once but signs only ``publish_lead``
   later (default 10 s, longer than the verifiers' minimum re-fetch interval, so a
   verifier meeting the new kid can always fetch it);
2. from then on it signs every new token;
3. the old key stays published until every token it signed has expired, then it
   leaves the JWKS and its private half is destroyed at the next rotation.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from gridkit.auth import TOKEN_TYPE
from gridkit.crypto import DataKey

from .domain import ACCESS_TOKEN_TTL, KEY_RETIREMENT_DELAY
from .tables import SigningKey, User


def utcnow() -> datetime:
    return datetime.now(UTC)


class Keyring:
    def __init__(self, db, data_key: DataKey, *, issuer: str, audience: str):
        self.db = db
        self.data_key = data_key
        self.issuer = issuer
        self.audience = audience
        self.publish_lead = timedelta(seconds=10)
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._lock = threading.Lock()

    def ensure_active(self) -> str:
        """The newest kid, creating the first key (signing at once) if there is none."""
        with self.db.transaction() as session:
            kid = session.scalar(select(SigningKey.kid).where(SigningKey.active.is_(True)))
            if kid:
                return kid
        try:
            with self.db.transaction() as session:
                return self._new_key(session, signs_from=utcnow()).kid
        except IntegrityError:  # another worker created it first
            return self.ensure_active()

    def rotate(self) -> tuple[SigningKey, str | None]:
        """Publish a new key that signs after ``publish_lead``; return (new key, previous kid)."""
        now = utcnow()
        with self.db.transaction() as session:
            current = session.scalars(select(SigningKey).where(SigningKey.active.is_(True))
                                      .with_for_update()).first()
            # Keys whose tokens have all expired lose their private half for good.
            session.execute(update(SigningKey).where(SigningKey.retire_at <= now)
                            .values(private_sealed=None))
            signs_from = now + self.publish_lead
            if current:
                current.active = None
                current.retire_at = signs_from + KEY_RETIREMENT_DELAY
                session.flush()
            new = self._new_key(session, signs_from=signs_from)
            return new, current.kid if current else None

    def jwks(self) -> dict:
        """Public keys a verifier may meet: the newest (published before it signs) and those retiring."""
        with self.db.transaction() as session:
            rows = session.scalars(select(SigningKey).where(or_(
                SigningKey.active.is_(True), SigningKey.retire_at > utcnow()))
                .order_by(SigningKey.created_at.desc())).all()
            return {"keys": [json.loads(row.public_jwk) for row in rows]}

    def issue(self, session, user: User, *, now: datetime | None = None) -> tuple[str, int]:
        """An access token for ``user`` with their current grants; returns (token, expires_in).

        Runs in the caller's session: a second transaction would wait on SQLite's one writer."""
        now = now or utcnow()
        kid, key = self._signing_key(session)
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": user.id,
            "iat": now, "exp": now + ACCESS_TOKEN_TTL, "jti": str(uuid.uuid4()),
            "kind": "service" if user.kind == "service" else "user",
            "name": user.display_name,
            "grants": [{"role": g.role, "scope": g.scope} for g in user.grants],
        }
        token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": TOKEN_TYPE})
        return token, int(ACCESS_TOKEN_TTL.total_seconds())

    def _signing_key(self, session) -> tuple[str, Ed25519PrivateKey]:
        now = utcnow()
        row = session.scalars(select(SigningKey).where(
            SigningKey.signs_from <= now, or_(SigningKey.retire_at.is_(None), SigningKey.retire_at > now))
            .order_by(SigningKey.signs_from.desc()).limit(1)).first()
        if row is None:
            raise RuntimeError("no active signing key")
        with self._lock:
            if row.kid not in self._private:
                pem = self.data_key.open(row.private_sealed, f"signing-key:{row.kid}")
                self._private[row.kid] = serialization.load_pem_private_key(pem.encode(), None)
        return row.kid, self._private[row.kid]

    def _new_key(self, session, *, signs_from: datetime) -> SigningKey:
        key = Ed25519PrivateKey.generate()
        kid = f"{utcnow():%Y%m%d}-{uuid.uuid4().hex[:12]}"
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
        row = SigningKey(kid=kid, private_sealed=self.data_key.seal(pem, f"signing-key:{kid}"),
                         public_jwk=json.dumps(jwk | {"kid": kid, "use": "sig", "alg": "EdDSA"}),
                         active=True, created_at=utcnow(), signs_from=signs_from)
        session.add(row)
        session.flush()
        return row
