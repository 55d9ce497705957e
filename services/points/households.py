"""Which households a community has, and who lives in each, from grids' events (points
reads no other service's tables): points' one projection of grids.

* ``known_grids``: from ``grids.grid.created`` / ``redrawn`` / ``retired``, the community
  each grid lies in (its division, when that is a community); a grid's older version
  arriving late changes nothing.
* ``residents``: from ``grids.household.resident_bound``, who is bound to which household
  (人屋关联), by the household's id as the ledger names it (``str(household_id)``). A
  resident bound before her grid is known is kept by grid id and counts once it comes.

Both arrive on one queue (``points.grids``, handlers.py), so a grid usually comes before
the residents bound in it. Earning reads it (whose account counts towards which
household, whom a household's award is told to, which community an inspected household
is in), and so do the supermarkets (a resident's household, the households a community
has for the programme's figures).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .tables import KnownGrid, Resident


def grid_seen(session: Session, data: dict) -> None:
    """A grid created, redrawn or retired: the community it is in now."""
    grid = session.get(KnownGrid, data["id"])
    if grid is not None and grid.version > data["version"]:
        return  # an older version arriving late
    division = data.get("division") or {}
    community = division.get("code") if division.get("kind") == "community" else None
    if grid is None:
        session.add(KnownGrid(id=data["id"], community=community, version=data["version"]))
    else:
        grid.community, grid.version = community, data["version"]
    session.flush()


def resident_bound(session: Session, data: dict) -> str:
    """grids bound a person to a household: remembered (once); the household's id."""
    household = str(data["household_id"])
    if session.get(Resident, (data["user_id"], household)) is None:
        session.add(Resident(user_id=data["user_id"], household=household, grid_id=data["grid_id"],
                             since=data["since"]))
        session.flush()
    return household


def known_communities(session: Session, community: str | None = None) -> list[str]:
    """The communities grids has grids in (or ``community``, if it is one of them)."""
    query = select(KnownGrid.community).where(KnownGrid.community.is_not(None)).distinct()
    if community is not None:
        query = query.where(KnownGrid.community == community)
    return list(session.execute(query).scalars())


def community_of_grid(session: Session, grid_id: int) -> str | None:
    return session.execute(select(KnownGrid.community).where(KnownGrid.id == grid_id)).scalar()


def any_grid_in(session: Session, grid_ids: list[int], community: str) -> bool:
    return bool(grid_ids) and session.execute(select(KnownGrid.id).where(
        KnownGrid.id.in_(grid_ids), KnownGrid.community == community).limit(1)).first() is not None


def household_of(session: Session, user_id: str, community: str) -> str | None:
    """The household ``user_id`` is bound to in ``community`` (the latest binding)."""
    return session.execute(select(Resident.household).join(KnownGrid, KnownGrid.id == Resident.grid_id)
                           .where(Resident.user_id == user_id, KnownGrid.community == community)
                           .order_by(Resident.since.desc()).limit(1)).scalar()


def members_of(session: Session, household: str, community: str) -> list[str]:
    return list(session.scalars(select(Resident.user_id).join(KnownGrid, KnownGrid.id == Resident.grid_id)
                                .where(Resident.household == household, KnownGrid.community == community)
                                .order_by(Resident.user_id)))


def communities_of_household(session: Session, household: str) -> set[str]:
    return set(session.scalars(select(KnownGrid.community).join(Resident, KnownGrid.id == Resident.grid_id)
                               .where(Resident.household == household, KnownGrid.community.is_not(None))))


def households_per_community(session: Session, community: str | None = None) -> dict[str, int]:
    """{community: households with at least one resident bound} (every community, or one)."""
    where = [KnownGrid.community.is_not(None)] if community is None else [KnownGrid.community == community]
    return dict(session.execute(select(KnownGrid.community, func.count(func.distinct(Resident.household)))
                                .join(Resident, Resident.grid_id == KnownGrid.id).where(*where)
                                .group_by(KnownGrid.community)).all())
