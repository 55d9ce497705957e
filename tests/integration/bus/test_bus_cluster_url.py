"""A bus URL naming several nodes (a cluster) reaches a living one, and a nacked batch is
sent again on a fresh connection. Losing a real cluster node under load is
tests/faults/test_broker_node_loss.py."""

from __future__ import annotations

import socket
import threading
import uuid

import kombu
import pytest

from gridkit.bus import Bus, BusUnavailable, Outgoing, topic_exchange
from gridkit.processes import free_port

pytestmark = pytest.mark.timeout(60)


def message(exchange: str) -> Outgoing:
    return Outgoing(str(uuid.uuid4()), exchange, "clustertest.thing.happened.v1", b"{}")


@pytest.fixture
def silent_node():
    """A port that accepts connections and never says a word (a node that hangs); counts them."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"amqp://guest:guest@127.0.0.1:{server.getsockname()[1]}//", accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def dead_node() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}//"  # nothing listens there


def test_a_cluster_url_publishes_through_the_living_node_when_the_others_are_dead(amqp_url):
    bus = Bus(f"{dead_node()};{dead_node()};{amqp_url}", timeout=1.0)
    try:
        bus.ping()
        result = bus.publish_batch([message(f"gridgov.clustertest-{uuid.uuid4().hex[:6]}.events")])
        assert len(result.confirmed) + len(result.returned) == 1 and not result.failed
    finally:
        bus.close()


def test_every_node_dead_is_bus_unavailable():
    bus = Bus(f"{dead_node()};{dead_node()};{dead_node()}", timeout=1.0)
    with pytest.raises(BusUnavailable):
        bus.ping()
    with pytest.raises(BusUnavailable):
        bus.publish_batch([message("gridgov.clustertest.events")])


def test_after_a_node_hangs_the_bus_starts_with_the_node_that_answered(amqp_url, silent_node):
    hanging, accepted = silent_node
    bus = Bus(f"{hanging};{amqp_url}", timeout=0.5)
    bus.ping()
    assert len(accepted) == 1  # tried first, timed out
    for _ in range(3):
        bus.ping()
    assert len(accepted) == 1  # not tried again while the other node answers


def test_a_nacked_batch_is_failed_and_the_next_goes_out_on_a_fresh_connection(amqp_url):
    exchange = f"gridgov.clustertest-{uuid.uuid4().hex[:6]}.events"
    full = f"clustertest.full-{uuid.uuid4().hex[:6]}"
    with kombu.Connection(amqp_url) as conn:
        # A queue that refuses every message: the broker nacks what is routed to it.
        queue = kombu.Queue(full, topic_exchange(exchange), routing_key="#", auto_delete=False,
                            queue_arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
        queue(conn.default_channel).declare()
    bus = Bus(amqp_url)
    try:
        refused = bus.publish_batch([message(exchange)])
        assert list(refused.failed.values()) == ["nacked by broker"] and not refused.confirmed
        assert bus._publisher is None  # let go of: the next batch opens a fresh channel
        with kombu.Connection(amqp_url) as conn:
            queue(conn.default_channel).delete()
        accepted = bus.publish_batch([message(exchange)])
        assert len(accepted.returned) == 1 and not accepted.failed  # settled (nobody listens now)
    finally:
        bus.close()
