"""The registry's tables. Boundaries are GeoJSON text (no PostGIS): shapely
geometries live in memory (see locate.py), the database stays portable."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from gridkit.db import declarative_base
from gridkit.outbox import ID, Inbox, Outbox

Base = declarative_base()
outbox = Outbox(Base.metadata)
inbox = Inbox(Base.metadata)

When = DateTime(timezone=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Network(Base):
    __tablename__ = "networks"
    id = Column(ID, primary_key=True, autoincrement=True)
    code = Column(String(32), nullable=False, unique=True)
    name = Column(String(200), nullable=False)
    created_at = Column(When, nullable=False, default=utcnow)


class Division(Base):
    """The administrative tree: county → street/town → community/village."""

    __tablename__ = "divisions"
    id = Column(ID, primary_key=True, autoincrement=True)
    code = Column(String(64), nullable=False, unique=True)
    name = Column(String(200), nullable=False)
    kind = Column(String(16), nullable=False)  # county | street | community
    parent_id = Column(ID, ForeignKey("divisions.id"), index=True)
    boundary = Column(Text, nullable=False)  # GeoJSON geometry


class Grid(Base):
    """A grid's stable identity; its boundary lives in versions."""

    __tablename__ = "grids"
    id = Column(ID, primary_key=True, autoincrement=True)
    network_id = Column(ID, ForeignKey("networks.id"), nullable=False)
    code = Column(String(128), nullable=False)
    name = Column(String(200), nullable=False)
    level = Column(Integer, nullable=False)
    kind = Column(String(16), nullable=False, default="regular")  # regular | dedicated
    institution = Column(String(200))
    parent_id = Column(ID, ForeignKey("grids.id"), index=True)
    division_id = Column(ID, ForeignKey("divisions.id"), index=True)
    created_at = Column(When, nullable=False, default=utcnow)
    retired_at = Column(When)  # null while current
    __table_args__ = (
        # A code is unique per network among current grids; retired codes may be reused.
        Index("uq_grids_current_code", "network_id", "code", unique=True,
              postgresql_where=text("retired_at IS NULL"),
              sqlite_where=text("retired_at IS NULL")),
        Index("ix_grids_network_level", "network_id", "level", "id"),
    )


class GridVersion(Base):
    """One boundary of a grid over [valid_from, valid_to)."""

    __tablename__ = "grid_versions"
    id = Column(ID, primary_key=True, autoincrement=True)
    grid_id = Column(ID, ForeignKey("grids.id"), nullable=False)
    version = Column(Integer, nullable=False)
    boundary = Column(Text, nullable=False)  # GeoJSON geometry, snapped to 1e-7°
    area_m2 = Column(Float, nullable=False)
    # Bounding box: a cheap SQL prefilter for overlap checks on writes.
    min_lon = Column(Float, nullable=False)
    min_lat = Column(Float, nullable=False)
    max_lon = Column(Float, nullable=False)
    max_lat = Column(Float, nullable=False)
    valid_from = Column(When, nullable=False)
    valid_to = Column(When)
    __table_args__ = (
        UniqueConstraint("grid_id", "version", name="uq_grid_versions_grid_version"),
        Index("ix_grid_versions_valid", "valid_to", "valid_from"),
    )


class RegistryRevision(Base):
    """One row, bumped in every registry write: locate indexes rebuild when it moves.
    Updating it first also serialises writers, so overlap checks cannot race."""

    __tablename__ = "registry_revision"
    id = Column(Integer, primary_key=True)
    revision = Column(ID, nullable=False, default=0)


class Building(Base):
    __tablename__ = "buildings"
    id = Column(ID, primary_key=True, autoincrement=True)
    code = Column(String(64), nullable=False, unique=True)
    name = Column(String(200), nullable=False)
    grid_id = Column(ID, ForeignKey("grids.id"), nullable=False, index=True)
    division_id = Column(ID, ForeignKey("divisions.id"))
    location = Column(Text, nullable=False)  # GeoJSON Point
    outline = Column(Text)  # GeoJSON Polygon, optional
    created_at = Column(When, nullable=False, default=utcnow)


class Unit(Base):
    __tablename__ = "units"
    id = Column(ID, primary_key=True, autoincrement=True)
    building_id = Column(ID, ForeignKey("buildings.id"), nullable=False)
    code = Column(String(32), nullable=False)
    name = Column(String(200), nullable=False)
    __table_args__ = (UniqueConstraint("building_id", "code", name="uq_units_building_code"),)


class Household(Base):
    __tablename__ = "households"
    id = Column(ID, primary_key=True, autoincrement=True)
    unit_id = Column(ID, ForeignKey("units.id"), nullable=False)
    code = Column(String(32), nullable=False)
    floor = Column(Integer)
    __table_args__ = (UniqueConstraint("unit_id", "code", name="uq_households_unit_code"),)


class Resident(Base):
    """A person (identity user id) bound to a household (人屋关联)."""

    __tablename__ = "residents"
    id = Column(ID, primary_key=True, autoincrement=True)
    household_id = Column(ID, ForeignKey("households.id"), nullable=False, index=True)
    user_id = Column(String(64), nullable=False, index=True)
    since = Column(When, nullable=False, default=utcnow)
    until = Column(When)


class StaffAssignment(Base):
    """Who staffs a grid (or a building) and when; ended terms keep their row."""

    __tablename__ = "staff_assignments"
    id = Column(ID, primary_key=True, autoincrement=True)
    grid_id = Column(ID, ForeignKey("grids.id"), nullable=False)
    building_id = Column(ID, ForeignKey("buildings.id"))
    user_id = Column(String(64), nullable=False, index=True)
    role = Column(String(32), nullable=False)
    since = Column(When, nullable=False, default=utcnow)
    until = Column(When)
    assigned_by = Column(String(64))
    __table_args__ = (Index("ix_staff_grid_current", "grid_id", "until"),)


class Person(Base):
    """Projection of identity's accounts (identity.user.registered)."""

    __tablename__ = "people"
    user_id = Column(String(64), primary_key=True)
    kind = Column(String(32), nullable=False)
    display_name = Column(String(200), nullable=False)
    registered_at = Column(When, nullable=False, default=utcnow)


class RoleGrant(Base):
    """Projection of identity's role grants (identity.role.granted / revoked)."""

    __tablename__ = "role_grants"
    grant_id = Column(ID, primary_key=True, autoincrement=False)
    user_id = Column(String(64), nullable=False, index=True)
    role = Column(String(32), nullable=False)
    scope = Column(String(100), nullable=False)
    revoked = Column(Integer, nullable=False, default=0)


# --------------------------------------------------------------------------
# helpers every write path shares (HTTP routes, importer)
# --------------------------------------------------------------------------


def lock_registry(session: Session) -> int:
    """Take the registry's write lock (the revision row) and return the revision.
    Writers are serialised, so validating against current rows cannot race.
    (SQLite serialises writers with BEGIN IMMEDIATE already.)"""
    row = session.execute(select(RegistryRevision).where(RegistryRevision.id == 1)
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        session.add(RegistryRevision(id=1, revision=0))
        session.flush()
        return 0
    return row.revision


def bump_revision(session: Session) -> None:
    """Every process's locate index rebuilds when it sees the new revision."""
    session.execute(update(RegistryRevision).where(RegistryRevision.id == 1)
                    .values(revision=RegistryRevision.revision + 1))


def version_row(grid_id: int, version: int, geom, valid_from: datetime) -> dict:
    from gridgeo import area_m2, to_geojson

    minx, miny, maxx, maxy = geom.bounds
    return {"grid_id": grid_id, "version": version,
            "boundary": json.dumps(to_geojson(geom), separators=(",", ":")),
            "area_m2": area_m2(geom), "min_lon": minx, "min_lat": miny, "max_lon": maxx,
            "max_lat": maxy, "valid_from": valid_from, "valid_to": None}


def grid_event(grid: Grid | dict, version: GridVersion | dict, network: str,
               division: Division | dict | None) -> dict:
    """The data of grids.grid.* events (and the shape GET /grids/<id> answers with)."""
    def get(obj, name):
        return obj[name] if isinstance(obj, dict) else getattr(obj, name)

    return {
        "id": get(grid, "id"), "network": network, "code": get(grid, "code"),
        "name": get(grid, "name"), "level": get(grid, "level"), "kind": get(grid, "kind"),
        "institution": get(grid, "institution"), "parent_id": get(grid, "parent_id"),
        "division": None if division is None else {
            "id": get(division, "id"), "code": get(division, "code"), "kind": get(division, "kind")},
        "version": get(version, "version"), "boundary": json.loads(get(version, "boundary")),
        "valid_from": get(version, "valid_from"), "valid_to": get(version, "valid_to"),
    }


def record_events(session: Session, event_type, items: list[tuple[dict, str]]) -> None:
    outbox.record_many(session, event_type, items)
