"""What points listens to: its one ``Subscriptions`` (the spec's), two queues.

* ``points.awards``: the events award rules can name (``awards.SOURCES``): dispatch's
  closed cases, and points' own attendances and hygiene inspections. The kit's inbox
  drops a redelivered event; the ledger's unique source drops the same fact under
  another event id.
* ``points.grids``: grids' grids (which community each is in) and residents bound to
  households, into points' projection of them (households.py), one queue so a grid
  usually arrives before the residents bound in it. Earning and the supermarkets both
  read that projection.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from contracts.grids import GRID_CREATED, GRID_REDRAWN, GRID_RETIRED, RESIDENT_BOUND
from gridkit.consumer import Event, Subscriptions

from . import awards, households

subscriptions = Subscriptions("points")


def award(session: Session, event: Event) -> None:
    awards.award_for(session, event.type.rsplit(".v", 1)[0], event.data)


for _source in awards.SOURCES.values():
    subscriptions.on(_source.event, purpose="awards")(award)


@subscriptions.on(GRID_CREATED, purpose="grids")
@subscriptions.on(GRID_REDRAWN, purpose="grids")
@subscriptions.on(GRID_RETIRED, purpose="grids")
def grid_changed(session: Session, event: Event) -> None:
    households.grid_seen(session, event.data)


@subscriptions.on(RESIDENT_BOUND, purpose="grids")
def resident_bound(session: Session, event: Event) -> None:
    household = households.resident_bound(session, event.data)
    awards.count_towards_household(session, event.data["user_id"], household, event.data["grid_id"])
