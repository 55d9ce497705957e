"""A dead or silent broker never hangs the publisher; the outbox keeps the events."""

from __future__ import annotations

import socket
import threading

import pytest
from ledger_service import outbox_status, record_entries
from sqlalchemy import select

from gridkit.bus import Bus, BusUnavailable, Outgoing
from gridkit.outbox import Relay

pytestmark = pytest.mark.timeout(60)

MESSAGE = Outgoing("00000000-0000-0000-0000-000000000001", "gridgov.ledgertest.events",
                   "ledgertest.entry.recorded.v1", b"{}")


@pytest.fixture
def silent_broker():
    """A port that accepts connections and never says a word."""
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
    yield Bus(f"amqp://guest:guest@127.0.0.1:{server.getsockname()[1]}//", timeout=1.0)
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_publishing_to_a_closed_port_raises_bus_unavailable(dead_bus):
    with pytest.raises(BusUnavailable):
        dead_bus.publish_batch([MESSAGE])
    with pytest.raises(BusUnavailable):
        dead_bus.ping()


def test_publishing_to_a_broker_that_never_answers_raises_bus_unavailable(silent_broker):
    with pytest.raises(BusUnavailable):
        silent_broker.publish_batch([MESSAGE])


def test_events_recorded_while_the_broker_is_down_stay_in_the_outbox(ledger, dead_bus):
    record_entries(ledger.db, 10)
    relay = Relay("ledgertest", ledger.db, ledger.outbox, dead_bus)

    with pytest.raises(BusUnavailable):
        relay.run_once()

    assert outbox_status(ledger.db) == {"pending": 10}
    t = ledger.outbox.table
    with ledger.db.engine.connect() as conn:
        rows = conn.execute(select(t.c.attempts, t.c.last_error)).all()
    assert all(r.attempts == 1 and r.last_error for r in rows)


def test_a_relay_running_against_a_dead_broker_stops_when_asked(ledger, dead_bus):
    record_entries(ledger.db, 3)
    relay = Relay("ledgertest", ledger.db, ledger.outbox, dead_bus)
    thread = threading.Thread(target=relay.run_forever, daemon=True)
    thread.start()
    relay.stop()
    thread.join(timeout=30)

    assert not thread.is_alive()
    assert outbox_status(ledger.db) == {"pending": 3}


def test_while_the_broker_is_down_each_waiting_event_is_logged_once_with_its_id_and_type(ledger, dead_bus, caplog):
    from prometheus_client import REGISTRY

    from gridkit.testkit import wait_for

    record_entries(ledger.db, 7)
    relay = Relay("ledgerdown", ledger.db, ledger.outbox, dead_bus)
    thread = threading.Thread(target=relay.run_forever, daemon=True)
    with caplog.at_level("WARNING", logger="gridkit.outbox"):
        thread.start()
        try:
            wait_for(lambda: (REGISTRY.get_sample_value("gridgov_outbox_publish_failures_total",
                                                        {"service": "ledgerdown"}) or 0) >= 14,
                     timeout=30, message="a second failed attempt of every event")
        finally:
            relay.stop()
            thread.join(timeout=30)

    failed = [r for r in caplog.records if r.getMessage().startswith("publish failed")]
    assert sorted(r.event_type for r in failed) == ["ledgertest.entry.recorded.v1"] * 7  # once per event
    assert len({r.event_id for r in failed}) == 7
