"""Factories for tests of intake (and of services that drive it).

``seed_places`` feeds intake the grids events a real registry would publish
(one county, a street, two communities, a grid and a building), through the
same handlers the worker runs, so tests exercise the projections.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from contracts import dispatch as dispatch
from contracts.grids import BUILDING_CREATED, DIVISION_CREATED, GRID_CREATED
from gridgeo.testing import COMMUNITY, COMMUNITY_EAST, COUNTY, STREET
from gridkit.events import Envelope

INSIDE = {"lon": 100.05, "lat": 25.05}  # in 龙溪社区 (DL-01-01)
OUTSIDE = {"lon": 101.5, "lat": 26.5}
GRID_ID, BUILDING_ID = 11, 21
# Smallest files whose magic bytes say what they are.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64


def feed(runtime, event_type, data: dict, *, queue: str | None = None) -> str:
    """Hand one event to intake's worker as if it came off the bus; returns the outcome."""
    body = json.dumps(Envelope.new(event_type, data, subject=str(data.get("petition_id", data.get("id")))).to_json())
    subs = runtime.spec.subscriptions.queues
    queue = queue or next(q for q, s in subs.items() if event_type.type in s.handlers)
    worker = runtime.extras.get("test_worker") or runtime.worker()
    runtime.extras["test_worker"] = worker
    return worker.handle(subs[queue], body, {}, {})


def seed_places(runtime) -> None:
    divisions = [(1, "DL", "大理市", "county", None, COUNTY), (2, "DL-01", "下关街道", "street", 1, STREET),
                 (3, "DL-01-01", "龙溪社区", "community", 2, COMMUNITY),
                 (4, "DL-01-02", "洱滨社区", "community", 2, COMMUNITY_EAST)]
    for id_, code, name, kind, parent, boundary in divisions:
        feed(runtime, DIVISION_CREATED, {"id": id_, "code": code, "name": name, "kind": kind,
                                         "parent_id": parent, "boundary": boundary})
    feed(runtime, GRID_CREATED, {
        "id": GRID_ID, "network": "urban", "code": "LX-01", "name": "龙溪社区1号网格", "level": 1,
        "kind": "regular", "institution": None, "parent_id": None,
        "division": {"id": 3, "code": "DL-01-01", "kind": "community"}, "version": 1,
        "boundary": COMMUNITY, "valid_from": datetime(2025, 1, 1, tzinfo=UTC), "valid_to": None})
    feed(runtime, BUILDING_CREATED, {
        "id": BUILDING_ID, "code": "LX-B1", "name": "龙溪小区1栋", "grid_id": GRID_ID, "division_id": 3,
        "location": {"type": "Point", "coordinates": [100.06, 25.06]}, "outline": None})


CASE_EVENTS = {
    "opened": dispatch.CASE_OPENED, "assigned": dispatch.CASE_ASSIGNED, "claimed": dispatch.CASE_CLAIMED,
    "progressed": dispatch.CASE_PROGRESSED, "escalated": dispatch.CASE_ESCALATED,
    "whistled": dispatch.CASE_WHISTLED, "reported_in": dispatch.CASE_REPORTED_IN,
    "resolved": dispatch.CASE_RESOLVED, "reopened": dispatch.CASE_REOPENED, "closed": dispatch.CASE_CLOSED,
    "deadline_missed": dispatch.DEADLINE_MISSED, "handed_back": dispatch.CASE_HANDED_BACK,
    "reassigned": dispatch.CASE_REASSIGNED,
}


def case_data(kind: str, petition: dict, *, at: datetime | None = None, **extra) -> dict:
    """Data of a dispatch event about ``petition`` (an intake answer), with sensible defaults."""
    at = at or datetime.now(UTC)
    base = {"case_id": f"case-{petition['id'][:8]}", "petition_id": petition["id"],
            "reporter_id": (petition.get("reporter") or {}).get("id") or "someone",
            "network": petition["network"], "grid_id": GRID_ID, "level": "grid", "at": at}
    defaults = {
        "opened": {"category": petition["category"], "catch_all": False, "needs_approval": False,
                   "approvers": []},
        "assigned": {"offered_to": [], "claim_due": at + timedelta(minutes=30), "by": None},
        "claimed": {"by": "worker", "claim_seconds": 3.0, "handle_due": at + timedelta(hours=24)},
        "progressed": {"by": "worker", "kind": "note", "text": "已联系物业", "handle_due": None},
        "escalated": {"from_level": "grid", "level": "community", "reason": "claim_deadline",
                      "division_code": "DL-01-01", "offered_to": [], "claim_due": at + timedelta(hours=1)},
        "whistled": {"whistle_id": str(uuid.uuid4()), "departments": ["police"], "by": "admin",
                     "report_in_due": at + timedelta(hours=2)},
        "reported_in": {"whistle_id": str(uuid.uuid4()), "department": "police", "by": "officer",
                        "late": False},
        "resolved": {"by": "worker", "result": "已修复漏水管道"},
        "reopened": {"reason": "居民不满意"},
        "closed": {"outcome": "rated", "rating": None},
        "deadline_missed": {"step": "claim", "due": at, "department": None, "notify": []},
        "handed_back": {"handler": "worker", "reason": "handler_left", "offered_to": ["head"],
                        "claim_due": at + timedelta(minutes=30)},
        "reassigned": {"by": "head", "from_handler": None, "to_handler": "worker-2", "reason": "熟悉情况",
                       "handle_due": at + timedelta(hours=24)},
    }
    return base | defaults[kind] | extra


def feed_case(runtime, kind: str, petition: dict, **extra) -> str:
    return feed(runtime, CASE_EVENTS[kind], case_data(kind, petition, **extra))
