"""On real RabbitMQ through the real worker: an offer published by dispatch
reaches the worker's inbox once, even when the broker delivers it twice."""

import json

from contracts.dispatch import CASE_ASSIGNED
from gridkit.bus import Outgoing
from gridkit.events import Envelope
from gridkit.testkit import wait_for
from notify.service import spec
from notify.testing import case_data, notices_of, soon


def test_an_offer_on_the_broker_reaches_each_offered_workers_inbox_exactly_once(make_runtime, person_ids):
    runtime = make_runtime(spec, db="postgres", bus="amqp")
    runtime.start_background()
    assert runtime.extras["worker"].ready.wait(15)
    outcomes = []
    runtime.extras["worker"].on_outcome = lambda queue, message_id, outcome: outcomes.append((message_id, outcome))
    workers = person_ids(2)
    envelope = Envelope.new(CASE_ASSIGNED, case_data() | {"offered_to": workers, "claim_due": soon(), "by": None})
    message = Outgoing(envelope.id, CASE_ASSIGNED.exchange, CASE_ASSIGNED.type, json.dumps(envelope.to_json()).encode())
    assert envelope.id in runtime.bus.publish_batch([message]).confirmed
    assert envelope.id in runtime.bus.publish_batch([message]).confirmed  # redelivered
    # Only this message's outcomes count: the run's vhost may hold other tests' events.
    mine = lambda: sorted(outcome for message_id, outcome in outcomes if message_id == envelope.id)  # noqa: E731
    try:
        wait_for(lambda: mine() == ["duplicate", "processed"], message="both deliveries handled")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; outcomes seen: {outcomes}") from None
    assert all(len(notices_of(runtime, w)) == 1 for w in workers)
