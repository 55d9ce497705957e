"""On real RabbitMQ through the real worker and relay: a closed case published twice under
one event id and once more under another awards once; an attendance points records goes
out through its outbox, comes back to its own award consumer, and awards once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from contracts.dispatch import CASE_CLOSED
from contracts.points import ACTIVITY_ATTENDED
from gridkit.bus import Outgoing
from gridkit.events import Envelope
from gridkit.testkit import wait_for
from points.service import spec
from points.tables import inbox, outbox
from points.testing import ADMIN, COMMUNITY, assert_sound

from .earning import balance, rule, transfers


def test_award_events_published_twice_and_redelivered_award_once(make_runtime, tokens):
    runtime = make_runtime(spec, db="postgres", bus="amqp")
    client = runtime.app(testing=True).test_client()
    admin = tokens.header(ADMIN)
    rule(client, admin, "dispatch.case.closed", 25, condition={"rating": {"gte": 4}})
    rule(client, admin, "points.activity.attended", 5)
    runtime.start_background()
    assert runtime.extras["worker"].ready.wait(15)

    case = {"case_id": str(uuid.uuid4()), "petition_id": str(uuid.uuid4()), "reporter_id": "reporter-1",
            "network": "security", "grid_id": 12, "level": "grid", "at": datetime.now(UTC), "outcome": "rated",
            "rating": 5, "community": COMMUNITY}
    first, second = (Envelope.new(CASE_CLOSED, case, subject=case["case_id"]) for _ in range(2))
    messages = [Outgoing(e.id, CASE_CLOSED.exchange, CASE_CLOSED.type, json.dumps(e.to_json()).encode())
                for e in (first, first, second)]  # one envelope twice, the same fact under a new id
    assert set(runtime.bus.publish_batch(messages).confirmed) == {first.id, second.id}

    made = client.post(f"/communities/{COMMUNITY}/activities", headers=admin, json={
        "title": "清洁家园", "places": 5, "starts_at": datetime.now(UTC).isoformat(),
        "ends_at": datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).isoformat()}).get_json()
    resident = tokens.header(sub="resident-7")
    client.post(f"/activities/{made['id']}/signups", headers=resident)
    assert client.post(f"/activities/{made['id']}/attendance", json={"code": made["attendance_code"]},
                       headers=resident).status_code == 201

    # The run's vhost is shared: the queue may hold other tests' events before these, so wait
    # for these by id (and for the attendance this test's outbox published), not for a count.
    def handled() -> bool:
        with runtime.db.sessions() as session:
            seen = set(session.execute(select(inbox.table.c.event_id)).scalars())
            attended = set(session.execute(select(outbox.table.c.event_id).where(
                outbox.table.c.routing_key == ACTIVITY_ATTENDED.type)).scalars())
            pending = session.execute(select(outbox.table.c.status)
                                      .where(outbox.table.c.status == "pending")).first()
        return {first.id, second.id} <= seen and pending is None and bool(attended) and attended <= seen
    wait_for(handled, timeout=30, message="both case events and the attendance handled, the outbox empty")
    assert balance(runtime, "person", "reporter-1") == 25
    assert balance(runtime, "person", "resident-7") == 5
    assert len(transfers(runtime, "award")) == 2
    assert_sound(runtime)
