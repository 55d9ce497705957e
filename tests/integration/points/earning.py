"""Helpers for the earning tests: events handed to points' worker as if they came off the
bus (the same envelope again is a redelivery), the events points itself recorded handed
back to it, a community's grids and residents, and balances by holder."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from contracts.grids import GRID_CREATED, RESIDENT_BOUND
from gridkit.events import Envelope, EventType
from points import ledger
from points.tables import Account, Transfer, outbox
from points.testing import COMMUNITY

GRID = 501  # a grid of COMMUNITY
OTHER_GRID = 502  # a grid of OTHER_COMMUNITY


def worker_of(runtime):
    return runtime.extras.get("test_worker") or runtime.extras.setdefault("test_worker", runtime.worker())


def queue_for(runtime, event_type: EventType):
    return next(q for q in runtime.spec.subscriptions.queues.values() if event_type.type in q.handlers)


def deliver(runtime, event_type: EventType, body: str) -> str:
    return worker_of(runtime).handle(queue_for(runtime, event_type), body, {}, {})


def feed(runtime, event_type: EventType, data: dict, *, subject: str | None = None) -> str:
    """One event under a new envelope: its body (deliver it again for a redelivery)."""
    body = json.dumps(Envelope.new(event_type, data, subject=subject).to_json())
    assert deliver(runtime, event_type, body) == "processed"
    return body


def recorded(runtime, event_type: EventType) -> list[str]:
    """The bodies of the events of this type points recorded, oldest first."""
    with runtime.db.sessions() as session:
        return list(session.scalars(select(outbox.table.c.body).where(outbox.table.c.routing_key == event_type.type)
                                    .order_by(outbox.table.c.id)))


def data_of(runtime, event_type: EventType) -> list[dict]:
    return [json.loads(body)["data"] for body in recorded(runtime, event_type)]


def loop_back(runtime, event_type: EventType, times: int = 2) -> list[str]:
    """points' own events handed to its worker, each ``times`` (redelivered): the outcomes."""
    return [deliver(runtime, event_type, body) for body in recorded(runtime, event_type) for _ in range(times)]


def grid(runtime, grid_id: int, community: str) -> None:
    feed(runtime, GRID_CREATED, {
        "id": grid_id, "network": "security", "code": f"G{grid_id}", "name": f"grid {grid_id}", "level": 5,
        "kind": "regular", "institution": None, "parent_id": None, "version": 1,
        "division": {"id": 9, "code": community, "kind": "community"},
        "boundary": {"type": "Polygon", "coordinates": [[[100, 25], [100.1, 25], [100.1, 25.1], [100, 25]]]},
        "valid_from": datetime.now(UTC), "valid_to": None})


def bind(runtime, user_id: str, household: int, grid_id: int = GRID) -> None:
    feed(runtime, RESIDENT_BOUND, {"household_id": household, "unit_id": 1, "building_id": 1, "grid_id": grid_id,
                                   "user_id": user_id, "since": datetime.now(UTC)})


def rule(client, headers, event: str, points: int, *, community: str = COMMUNITY, condition: dict | None = None,
         cap: int | None = None, period: str | None = None):
    body = {"id": str(uuid.uuid4()), "event": event, "points": points, "condition": condition or {}}
    if cap is not None:
        body |= {"cap": cap, "period": period}
    return client.post(f"/communities/{community}/award-rules", json=body, headers=headers)


def balance(runtime, kind: str, holder: str, community: str = COMMUNITY) -> int | None:
    """The balance of ``holder``'s account of ``kind`` (None: no such account)."""
    with runtime.db.sessions() as session:
        row = session.execute(select(Account.__table__).where(
            Account.community == community, Account.kind == kind, Account.holder == holder)).first()
        return None if row is None else ledger.totals_of(row).balance


def account_of(runtime, kind: str, holder: str, community: str = COMMUNITY):
    with runtime.db.sessions() as session:
        return session.execute(select(Account).where(Account.community == community, Account.kind == kind,
                                                     Account.holder == holder)).scalar_one()


def transfers(runtime, code: str | None = None) -> list:
    with runtime.db.sessions() as session:
        stmt = select(Transfer)
        if code:
            stmt = stmt.where(Transfer.code == code)
        return list(session.scalars(stmt.order_by(Transfer.at)))
