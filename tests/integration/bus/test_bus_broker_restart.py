"""RabbitMQ restarted in the middle of publishing: nothing lost, nothing applied twice."""

from __future__ import annotations

import threading
import uuid

import pytest
from ledger_service import applied_counts, outbox_status, reconcile, record_entries
from sqlalchemy import func, select

from gridkit.rabbitnode import PrivateRabbit
from gridkit.testkit import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rabbit():
    """A RabbitMQ node of this test's own: restarting it disturbs nobody else."""
    with PrivateRabbit.started(name=f"gridgov-restart-{uuid.uuid4().hex[:8]}") as node:
        yield node


@pytest.fixture(scope="module")
def amqp_url(rabbit):
    return rabbit.url


def failed_attempts(runtime) -> int:
    t = runtime.outbox.table
    with runtime.db.engine.connect() as conn:
        return conn.execute(select(func.count()).where(t.c.attempts > 0)).scalar_one()


def test_a_broker_restart_while_publishing_loses_nothing_and_applies_nothing_twice(
        rabbit, ledger, effects, start_worker, wiretap):
    _, outcomes = start_worker(effects)
    relay = ledger.relay(batch_size=50, poll_interval=0.2)
    relay_thread = threading.Thread(target=relay.run_forever, daemon=True)
    relay_thread.start()
    broker_back = threading.Event()
    recorded: list[str] = []

    def keep_recording() -> None:
        # Before, during and after the outage, and at least a few thousand events in all.
        while not broker_back.is_set() or len(recorded) < 3000:
            recorded.extend(record_entries(ledger.db, 25, per_transaction=25))
        recorded.extend(record_entries(ledger.db, 200))

    recorder = threading.Thread(target=keep_recording, daemon=True)
    recorder.start()
    try:
        wait_for(lambda: outbox_status(ledger.db).get("sent", 0) >= 300, message="publishing under way")
        rabbit.ctl("stop_app")
        wait_for(lambda: failed_attempts(ledger) > 0, message="the relay to fail while the broker is down")
    finally:
        rabbit.ctl("start_app")
        rabbit.ctl("await_startup")
        broker_back.set()
    recorder.join(timeout=120)
    try:
        wait_for(lambda: outbox_status(ledger.db) == {"sent": len(recorded)}, timeout=90,
                 message="the relay to publish everything")
        wait_for(lambda: len(applied_counts(effects.db)) == len(recorded), timeout=90,
                 message="every effect")
    finally:
        relay.stop()
        relay_thread.join(timeout=10)

    assert len(recorded) >= 3000
    report = reconcile(ledger.db, effects.db)
    assert report["lost"] == 0 and report["duplicated"] == 0 and report["unexpected"] == 0
    wire = wiretap.collect()
    assert set(wire) == set(recorded)
    print(f"wire duplicates: {sum(wire.values()) - len(wire)}, "
          f"skipped by the inbox: {outcomes.count('duplicate')}")
