"""On real RabbitMQ through the real worker: a petition from intake's exchange
becomes a case, its events leave through the outbox, and the sweep thread runs."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from contracts.dispatch import CASE_ASSIGNED, CASE_ESCALATED
from contracts.intake import PETITION_SUBMITTED
from dispatch.service import spec
from dispatch.tables import Case, outbox
from dispatch.testing import SW1, petition, seed_world
from gridkit.bus import Outgoing
from gridkit.events import Envelope
from gridkit.testkit import wait_for


def test_a_petition_on_the_bus_becomes_an_offered_case_and_escalates_in_the_background(make_runtime):
    runtime = make_runtime(spec, db="postgres", bus="amqp")
    seed_world(runtime)
    listener = f"dispatch-test.{uuid.uuid4().hex[:6]}"
    runtime.bus.declare_queues({listener: [(CASE_ASSIGNED.exchange, CASE_ASSIGNED.type),
                                           (CASE_ESCALATED.exchange, CASE_ESCALATED.type)]})
    runtime.extras["sweep_seconds"] = 0.1
    runtime.start_background()
    assert runtime.extras["worker"].ready.wait(15)

    data = petition(SW1)
    envelope = Envelope.new(PETITION_SUBMITTED, data, subject=data["petition_id"])
    published = runtime.bus.publish_batch([Outgoing(envelope.id, PETITION_SUBMITTED.exchange, PETITION_SUBMITTED.type,
                                                    json.dumps(envelope.to_json()).encode())])
    assert envelope.id in published.confirmed

    def case():
        with runtime.db.sessions() as session:
            return session.execute(select(Case).where(Case.petition_id == data["petition_id"])).scalar_one_or_none()
    opened = wait_for(case, message="the case opened by the worker")
    assert (opened.grid_id, opened.state) == (12, "offered")

    with runtime.bus.connect() as conn:
        message = wait_for(lambda: conn.default_channel.basic_get(listener, no_ack=True),
                           message="dispatch.case.assigned on the bus")
        assigned = json.loads(message.body)
        assert assigned["type"] == CASE_ASSIGNED.type
        assert assigned["data"]["offered_to"] == ["worker-sw1-a", "worker-sw1-b"]

        # the claim deadline passes: the sweep thread beside the worker re-offers to the grid head
        with runtime.db.transaction() as session:
            session.execute(update(Case).where(Case.id == opened.id)
                            .values(step_due_at=datetime.now(UTC) - timedelta(seconds=1)))
        message = wait_for(lambda: conn.default_channel.basic_get(listener, no_ack=True), timeout=20,
                           message="dispatch.case.escalated on the bus")
        escalated = json.loads(message.body)
        assert escalated["type"] == CASE_ESCALATED.type and escalated["data"]["offered_to"] == ["head-sw1"]

    def all_sent():
        with runtime.db.sessions() as session:
            statuses = set(session.execute(select(outbox.table.c.status)).scalars())
            return statuses <= {"sent", "unroutable"} and "sent" in statuses
    wait_for(all_sent, message="the relay to settle every event")
