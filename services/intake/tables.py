"""intake's tables. The reporter's contact is stored sealed (gridkit.crypto);
photo bytes live in the PhotoStore, only their metadata here."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)

from gridkit.db import declarative_base
from gridkit.idempotency import Idempotency
from gridkit.outbox import ID, Inbox, Outbox

Base = declarative_base()
outbox = Outbox(Base.metadata)
inbox = Inbox(Base.metadata)
idempotency = Idempotency(Base.metadata)

When = DateTime(timezone=True)
UserId = String(64)


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


class Category(Base):
    __tablename__ = "categories"
    code = Column(String(64), primary_key=True)
    name_zh = Column(String(100), nullable=False)
    name_en = Column(String(100), nullable=False)
    network = Column(String(32), nullable=False)  # the grid network that handles it
    claim_minutes = Column(Integer, nullable=False)
    handle_hours = Column(Integer, nullable=False)
    handle_minutes = Column(Integer)  # when set, wins over handle_hours (urgent categories)
    working_hours = Column(Boolean, nullable=False, default=False)
    active = Column(Boolean, nullable=False, default=True)


class Petition(Base):
    __tablename__ = "petitions"
    id = Column(String(36), primary_key=True)
    channel = Column(String(16), nullable=False)
    category = Column(String(64), ForeignKey("categories.code"), nullable=False)
    network = Column(String(32), nullable=False)
    description = Column(Text, nullable=False)
    lon = Column(Float, nullable=False)
    lat = Column(Float, nullable=False)
    building_id = Column(ID)
    county_code = Column(String(64))
    street_code = Column(String(64))
    community_code = Column(String(64))
    reporter_id = Column(UserId, nullable=False)  # looked up through ix_petitions_reporter_order
    submitted_by = Column(UserId)
    anonymous = Column(Boolean, nullable=False, default=False)
    # The reporter lets followers see the description and photos (never the contact).
    public = Column(Boolean, nullable=False, default=False, server_default=false())
    contact_name = Column(Text)  # sealed
    contact_phone = Column(Text)  # sealed
    closed_on_spot = Column(Boolean, nullable=False, default=False)
    status = Column(String(16), nullable=False, default="submitted")
    case_id = Column(String(64))
    grid_id = Column(ID)
    # User ids of the staff handling the case (offered, claimed, escalated to): they see the contact.
    handlers = Column(Text, nullable=False, default="[]")
    result = Column(Text)
    merged_into = Column(String(36), ForeignKey("petitions.id"))
    rating = Column(Integer)
    rating_comment = Column(Text)
    rated_at = Column(When)
    resolved_at = Column(When)
    submitted_at = Column(When, nullable=False, default=utcnow)
    updated_at = Column(When, nullable=False, default=utcnow)
    __table_args__ = (
        Index("ix_petitions_reporter_order", "reporter_id", "submitted_at", "id"),
        Index("ix_petitions_status_order", "status", "submitted_at", "id"),
        # Duplicate search: same category, open, nearby, recent.
        Index("ix_petitions_nearby", "category", "lat", "lon"),
    )

    @property
    def handler_ids(self) -> set[str]:
        return set(json.loads(self.handlers or "[]"))

    def add_handlers(self, ids) -> None:
        self.handlers = json.dumps(sorted(self.handler_ids | set(ids)))


class Photo(Base):
    __tablename__ = "photos"
    id = Column(String(36), primary_key=True)
    sha256 = Column(String(64), nullable=False)  # the PhotoStore's address
    content_type = Column(String(32), nullable=False)
    size = Column(Integer, nullable=False)
    uploaded_by = Column(UserId, nullable=False)
    petition_id = Column(String(36), ForeignKey("petitions.id"), index=True)
    position = Column(Integer)
    uploaded_at = Column(When, nullable=False, default=utcnow)


class Follower(Base):
    """Residents who follow a petition: "me too", or reporters of a duplicate merged into it."""

    __tablename__ = "followers"
    petition_id = Column(String(36), ForeignKey("petitions.id"), primary_key=True)
    user_id = Column(UserId, primary_key=True)
    via = Column(String(16), nullable=False)  # me_too | merge
    since = Column(When, nullable=False, default=utcnow)


class Step(Base):
    """One line of the resident's timeline: a kind and its params, put in words when read."""

    __tablename__ = "timeline"
    id = Column(ID, primary_key=True, autoincrement=True)
    petition_id = Column(String(36), ForeignKey("petitions.id"), nullable=False)
    kind = Column(String(32), nullable=False)
    params = Column(Text, nullable=False, default="{}")
    at = Column(When, nullable=False)
    __table_args__ = (Index("ix_timeline_petition", "petition_id", "at", "id"),)


# --- projections of grids' events ----------------------------------------------------------

class Division(Base):
    """grids.division.created: counties bound where petitions are accepted."""

    __tablename__ = "divisions"
    id = Column(ID, primary_key=True, autoincrement=False)
    code = Column(String(64), nullable=False)
    name = Column(String(200), nullable=False)
    kind = Column(String(16), nullable=False)
    boundary = Column(Text, nullable=False)


class Building(Base):
    """grids.building.created: a petition may name a building instead of a point."""

    __tablename__ = "buildings"
    id = Column(ID, primary_key=True, autoincrement=False)
    name = Column(String(200), nullable=False)
    grid_id = Column(ID, nullable=False)
    lon = Column(Float, nullable=False)
    lat = Column(Float, nullable=False)


class GridName(Base):
    """grids.grid.created/redrawn: the timeline says "已分派至 龙溪社区1号网格"."""

    __tablename__ = "grid_names"
    id = Column(ID, primary_key=True, autoincrement=False)
    name = Column(String(200), nullable=False)
    network = Column(String(32), nullable=False)
    division_code = Column(String(64))

