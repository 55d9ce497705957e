"""notify's tables: notices (the inbox), deliveries (one per notice and channel),
people's own contacts and preferences, and two small projections of other
services' events (department officers, case handlers)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)

from gridkit.db import declarative_base
from gridkit.outbox import ID, Inbox, Outbox

Base = declarative_base()
outbox = Outbox(Base.metadata)
inbox = Inbox(Base.metadata)

When = DateTime(timezone=True)
UserId = String(64)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Notice(Base):
    """One line in a user's inbox, rendered in their language when it was written."""

    __tablename__ = "notices"
    id = Column(ID, primary_key=True, autoincrement=True)
    recipient_id = Column(UserId, nullable=False)
    kind = Column(String(32), nullable=False)
    critical = Column(Boolean, nullable=False, default=False)
    title = Column(String(200), nullable=False)
    body = Column(Text, nullable=False)
    case_id = Column(String(64))
    petition_id = Column(String(64))
    event_id = Column(String(200), nullable=False)
    created_at = Column(When, nullable=False, default=utcnow)
    read_at = Column(When)
    __table_args__ = (
        # Belt and braces beside the kit's inbox: one notice per event and person.
        UniqueConstraint("event_id", "recipient_id", "kind", name="uq_notices_event_recipient_kind"),
        Index("ix_notices_recipient_id", "recipient_id", "id"),
        Index("ix_notices_recipient_unread", "recipient_id", "read_at"),
        Index("ix_notices_created_at", "created_at"),
    )


class Delivery(Base):
    """A notice on its way over one outside channel (email, sms)."""

    __tablename__ = "deliveries"
    id = Column(ID, primary_key=True, autoincrement=True)
    notice_id = Column(ID, ForeignKey("notices.id"), nullable=False, index=True)
    recipient_id = Column(UserId, nullable=False)
    kind = Column(String(32), nullable=False)
    channel = Column(String(16), nullable=False)
    status = Column(String(16), nullable=False, default="pending")  # pending | sent | dead
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(When, nullable=False, default=utcnow)
    last_error = Column(Text)
    provider_ref = Column(String(200))
    created_at = Column(When, nullable=False, default=utcnow)
    sent_at = Column(When)
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_channel_status", "channel", "status", "id"),
    )


class Contact(Base):
    """Where a user wants to be reached, registered by themselves; sealed at rest."""

    __tablename__ = "contacts"
    user_id = Column(UserId, primary_key=True)
    email_sealed = Column(Text)
    phone_sealed = Column(Text)
    updated_at = Column(When, nullable=False, default=utcnow)


class Preference(Base):
    __tablename__ = "preferences"
    user_id = Column(UserId, primary_key=True)
    language = Column(String(8), nullable=False, default="zh-CN")
    channels = Column(Text, nullable=False, default="{}")  # JSON {"email": true, ...}
    muted_kinds = Column(Text, nullable=False, default="[]")  # JSON list of kinds
    updated_at = Column(When, nullable=False, default=utcnow)
    # The person was erased (PIPL): nothing more is written for them (see personal_data.py).
    erased_at = Column(When)


class DepartmentOfficer(Base):
    """Projection of identity's dept_officer grants (scope department:<code>)."""

    __tablename__ = "department_officers"
    grant_id = Column(ID, primary_key=True, autoincrement=False)
    user_id = Column(UserId, nullable=False)
    department = Column(String(64), nullable=False, index=True)


class CaseHandler(Base):
    """Projection of dispatch.case.opened and claimed: each petition's case (notices name
    it) and who handles it, once claimed (told of ratings and rework)."""

    __tablename__ = "case_handlers"
    case_id = Column(String(64), primary_key=True)
    petition_id = Column(String(64), nullable=False, index=True)
    handler_id = Column(UserId)


class CodeText(Base):
    """A one-time code's text message on its way (identity.code.issued): the number and
    the text (which holds the code) sealed with notify's key, deleted once sent, refused
    for good, or expired."""

    __tablename__ = "code_texts"
    id = Column(ID, primary_key=True, autoincrement=True)
    event_id = Column(String(200), nullable=False, unique=True)
    recipient_sealed = Column(Text, nullable=False)
    text_sealed = Column(Text, nullable=False)
    expires_at = Column(When, nullable=False)
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(When, nullable=False, default=utcnow)
    last_error = Column(Text)
    created_at = Column(When, nullable=False, default=utcnow)
    __table_args__ = (Index("ix_code_texts_due", "next_attempt_at"),)
