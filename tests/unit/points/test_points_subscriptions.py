"""points listens on one Subscriptions: award sources on one queue, and grids' events on one
other, into its one projection of where people live (households.py)."""

from contracts.grids import GRID_CREATED, GRID_REDRAWN, GRID_RETIRED, RESIDENT_BOUND
from points import awards
from points.service import spec


def test_grids_events_feed_one_queue_and_award_sources_another():
    queues = {name: set(sub.handlers) for name, sub in spec.subscriptions.queues.items()}
    assert set(queues) == {"points.awards", "points.grids", "points.accounts"}
    assert queues["points.grids"] == {e.type for e in (GRID_CREATED, GRID_REDRAWN, GRID_RETIRED, RESIDENT_BOUND)}
    assert queues["points.awards"] == {source.event.type for source in awards.SOURCES.values()}
