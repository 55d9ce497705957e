"""Which households a community has, from grids' events (points reads no other
service's tables): the community of every grid (``grids.grid.created`` /
``redrawn``, whose division is the community for a community's grids) and who is
bound to which household (``grids.household.resident_bound``). The programme's
figures count a community's households from it, and a redemption finds the
household a resident's points count towards.

Both arrive on one queue, ``points.places``; a resident bound before her grid is
known is kept by grid id and counted once the grid comes.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.grids import GRID_CREATED, GRID_REDRAWN, RESIDENT_BOUND
from gridkit.consumer import Event, Subscriptions

from .tables import BoundResident, GridCommunity

subscriptions = Subscriptions("points")


@subscriptions.on(GRID_CREATED, purpose="places")
@subscriptions.on(GRID_REDRAWN, purpose="places")
def on_grid(session: Session, event: Event) -> None:
    division = event.data.get("division") or {}
    if division.get("kind") != "community":
        return
    remember_grid(session, event.data["id"], division["code"])


def remember_grid(session: Session, grid_id: int, community: str) -> None:
    found = session.get(GridCommunity, grid_id)
    if found is None:
        session.add(GridCommunity(grid_id=grid_id, community=community))
    else:
        found.community = community
    session.flush()


@subscriptions.on(RESIDENT_BOUND, purpose="places")
def on_resident_bound(session: Session, event: Event) -> None:
    data = event.data
    bind_resident(session, data["user_id"], data["household_id"], data["grid_id"], data["since"])


def bind_resident(session: Session, user_id: str, household_id: int, grid_id: int, since) -> None:
    found = session.execute(select(BoundResident).where(BoundResident.user_id == user_id,
                                                        BoundResident.household_id == household_id)).scalar()
    if found is None:
        session.add(BoundResident(user_id=user_id, household_id=household_id, grid_id=grid_id, since=since))
        session.flush()
