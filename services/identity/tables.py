"""identity's tables. Personal data is stored sealed (see crypto.py) beside a blind index."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gridkit.db import declarative_base
from gridkit.outbox import ID, Inbox, Outbox

Base = declarative_base()
outbox = Outbox(Base.metadata)
inbox = Inbox(Base.metadata)

TS = DateTime(timezone=True)


class User(Base):
    """A person or a department system (kind="service")."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    display_name: Mapped[str] = mapped_column(String(100))
    username: Mapped[str | None] = mapped_column(String(64), unique=True)  # staff login; client id of services
    phone_sealed: Mapped[str | None] = mapped_column(Text)
    phone_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    national_id_sealed: Mapped[str | None] = mapped_column(Text)
    national_id_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    # None = cannot log in until an admin sets one (bulk-seeded staff).
    password_hash: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(TS)
    # Set when the person's data was erased (PIPL): the row stays so that cases keep
    # their reference, with a neutral name and nothing else about the person.
    erased_at: Mapped[datetime | None] = mapped_column(TS)

    grants: Mapped[list[RoleGrant]] = relationship(back_populates="user", order_by="RoleGrant.id",
                                                   lazy="selectin")


class RoleGrant(Base):
    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "scope", name="uq_role_grants_user_role_scope"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(80))
    granted_by: Mapped[str | None] = mapped_column(String(36))
    granted_at: Mapped[datetime] = mapped_column(TS)

    user: Mapped[User] = relationship(back_populates="grants")


class StatusChange(Base):
    """An account disabled or enabled again: who, when, why, and the grants it held."""

    __tablename__ = "account_status_changes"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # disabled | enabled
    reason: Mapped[str] = mapped_column(String(200))
    by: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(TS)
    # The grants revoked by a disable, as JSON [[role, scope], …]: who may enable it again.
    grants: Mapped[str] = mapped_column(Text, default="[]")


class RefreshToken(Base):
    """Only the SHA-256 of the token is kept. A family is one login and its rotations."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS)
    rotated_at: Mapped[datetime | None] = mapped_column(TS)
    revoked_at: Mapped[datetime | None] = mapped_column(TS)


class SigningKey(Base):
    """Ed25519 keys. The private half is sealed with the data key."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_sealed: Mapped[str | None] = mapped_column(Text)  # dropped once retired
    public_jwk: Mapped[str] = mapped_column(Text)
    # True on the newest key, NULL on the others: the unique constraint (NULLs never
    # collide) keeps two workers from both creating a key.
    active: Mapped[bool | None] = mapped_column(Boolean, unique=True)
    created_at: Mapped[datetime] = mapped_column(TS)
    signs_from: Mapped[datetime] = mapped_column(TS)  # published before it signs (see keys.py)
    retire_at: Mapped[datetime | None] = mapped_column(TS)  # leaves the JWKS from then on


class LoginAttempt(Base):
    """A login attempt in progress or failed; successful ones are deleted.

    Kept in the database so every gunicorn worker (and pod) counts the same failures.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_account_at", "account_key", "attempted_at"),
                      Index("ix_login_attempts_client_at", "client_ip", "attempted_at"))

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    account_key: Mapped[str] = mapped_column(String(64))  # blind index of the login name
    client_ip: Mapped[str] = mapped_column(String(64))
    attempted_at: Mapped[datetime] = mapped_column(TS)


class OneTimeCode(Base):
    """The code last issued for a phone and purpose (see codes.py): only its keyed hash.

    A row is written for every request, known phone or not; ``code_hash`` is NULL when
    no usable code was made (login or reset of an unknown phone, registration of a
    known one), so such a row fails every attempt like a wrong code does.
    """

    __tablename__ = "one_time_codes"
    __table_args__ = (Index("ix_one_time_codes_phone_purpose", "phone_key", "purpose", "id"),
                      Index("ix_one_time_codes_expires_at", "expires_at"))

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    phone_key: Mapped[str] = mapped_column(String(64))  # blind index of the phone
    purpose: Mapped[str] = mapped_column(String(16))  # register | login | reset
    code_hash: Mapped[str | None] = mapped_column(String(64))
    wrong_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS)


class CodeRequest(Base):
    """A request for a code, counted per phone and per client address (throttling)."""

    __tablename__ = "code_requests"
    __table_args__ = (Index("ix_code_requests_phone_at", "phone_key", "requested_at"),
                      Index("ix_code_requests_client_at", "client_ip", "requested_at"))

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    phone_key: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(TS)

