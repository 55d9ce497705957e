"""Factories for notify's tests (and for anyone who wants to feed it events)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from gridkit.events import Envelope, EventType

from .tables import Notice


def case_data(**overrides) -> dict:
    """The fields every dispatch case event carries."""
    return {"case_id": str(uuid.uuid4()), "petition_id": str(uuid.uuid4()), "reporter_id": str(uuid.uuid4()),
            "network": "security", "grid_id": 7, "level": "grid", "at": datetime.now(UTC)} | overrides


def soon(minutes: int = 30) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def envelope_body(event_type: EventType, data: dict, envelope: Envelope | None = None) -> tuple[str, Envelope]:
    envelope = envelope or Envelope.new(event_type, data, subject=data.get("case_id") or data.get("petition_id"))
    return json.dumps(envelope.to_json()), envelope


def queue_for(spec, event_type: EventType) -> str:
    return next(q for q in spec.subscriptions.queues.values() if event_type.type in q.handlers).queue


def feed(runtime, event_type: EventType, data: dict, *, envelope: Envelope | None = None) -> Envelope:
    """Hand one event to notify's worker as if it came off the queue; returns the envelope."""
    body, envelope = envelope_body(event_type, data, envelope)
    worker = runtime.extras.get("test_worker") or runtime.extras.setdefault("test_worker", runtime.worker())
    queue = runtime.spec.subscriptions.queues[queue_for(runtime.spec, event_type)]
    outcome = worker.handle(queue, body, {}, {})
    assert outcome in ("processed", "duplicate"), outcome
    return envelope


def notices_of(runtime, user_id: str) -> list[Notice]:
    with runtime.db.sessions() as session:
        return list(session.scalars(select(Notice).where(Notice.recipient_id == user_id).order_by(Notice.id)))


def notice_count(runtime) -> int:
    with runtime.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(Notice))
