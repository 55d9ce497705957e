"""The outbox and its relay on real PostgreSQL and RabbitMQ (and embedded, on SQLite in memory)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from bustools import declare_consumer_queues
from ledger_service import (
    Entry,
    applied_counts,
    effects_spec,
    ledger_spec,
    outbox_status,
    reconcile,
    record_entries,
    record_entry,
    reset_outbox_to_pending,
)
from sqlalchemy import event, func, select, update

from gridkit.bus import Bus
from gridkit.outbox import Relay, utcnow
from gridkit.testkit import wait_for


def test_every_recorded_event_is_published_and_applied_exactly_once(ledger, effects, start_worker, wiretap):
    _, outcomes = start_worker(effects)
    ids = record_entries(ledger.db, 300)

    ledger.relay().drain()

    wait_for(lambda: len(applied_counts(effects.db)) == len(ids), message="every effect")
    assert outbox_status(ledger.db) == {"sent": 300}
    assert set(wiretap.collect()) == set(ids)
    assert reconcile(ledger.db, effects.db) == {
        "recorded": 300, "applied": 300, "lost": 0, "duplicated": 0, "unexpected": 0}
    assert outcomes.count("processed") == 300


def test_a_rolled_back_transaction_publishes_nothing(ledger, effects, wiretap):
    record_entries(ledger.db, 5)
    with pytest.raises(RuntimeError):
        with ledger.db.transaction() as session:
            record_entry(session, memo="never")
            raise RuntimeError("business rule broken after the event was recorded")

    ledger.relay().drain()

    with ledger.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Entry).where(Entry.memo == "never")).scalar() == 0
    assert outbox_status(ledger.db) == {"sent": 5}
    assert sum(wiretap.collect().values()) == 5


def test_the_relay_publishes_as_soon_as_a_transaction_commits(ledger, effects, start_worker):
    start_worker(effects)
    relay = ledger.relay(poll_interval=30)  # the NOTIFY wakes it long before the poll would
    thread = threading.Thread(target=relay.run_forever, daemon=True)
    thread.start()
    try:
        wait_for(lambda: relay._listener is not None, message="the relay to LISTEN")
        ids = record_entries(ledger.db, 20, per_transaction=1)
        wait_for(lambda: len(applied_counts(effects.db)) == len(ids), message="every effect")
    finally:
        relay.stop()
        thread.join(timeout=10)
    assert reconcile(ledger.db, effects.db)["duplicated"] == 0


def test_events_committed_faster_than_the_linger_go_out_together(ledger, effects, start_worker, wiretap):
    start_worker(effects)
    relay = ledger.relay(poll_interval=30, linger=0.05)
    batches: list[int] = []
    run_once = relay.run_once
    relay.run_once = lambda: batches.append(run_once()) or batches[-1]  # type: ignore[method-assign]
    thread = threading.Thread(target=relay.run_forever, daemon=True)
    thread.start()
    try:
        wait_for(lambda: relay._listener is not None, message="the relay to LISTEN")
        ids = record_entries(ledger.db, 200, per_transaction=1)  # 200 commits, ~1 ms apart
        wait_for(lambda: len(applied_counts(effects.db)) == len(ids), message="every effect")
    finally:
        relay.stop()
        thread.join(timeout=10)
    published = [n for n in batches if n]
    assert sum(published) == 200 and sum(wiretap.collect().values()) == 200
    assert len(published) <= 200 / 4, f"{len(published)} batches for 200 events: the relay did not linger"


def test_a_commit_in_the_relays_own_process_wakes_it_once(ledger, effects, start_worker, wiretap):
    # Such a commit sets the process's event a moment after its NOTIFY reaches the relay: a
    # wake-up for each found nothing the second time (three statements for nothing).
    start_worker(effects)
    relay = ledger.relay(poll_interval=30)
    batches: list[int] = []
    run_once = relay.run_once
    relay.run_once = lambda: batches.append(run_once()) or batches[-1]  # type: ignore[method-assign]
    thread = threading.Thread(target=relay.run_forever, daemon=True)
    thread.start()
    try:
        wait_for(lambda: relay._listener is not None, message="the relay to LISTEN")
        ids = []
        for _ in range(40):  # one commit every 30 ms, each published before the next
            ids += record_entries(ledger.db, 1)
            time.sleep(0.03)
        wait_for(lambda: len(applied_counts(effects.db)) == len(ids), message="every effect")
    finally:
        relay.stop()
        thread.join(timeout=10)
    published = [n for n in batches if n]
    assert sum(published) == 40 and sum(wiretap.collect().values()) == 40
    assert batches.count(0) <= 4, f"{batches.count(0)} empty takes for {len(published)} batches"


def test_under_a_heavy_stream_with_a_stretching_wait_every_event_goes_out_once(ledger, effects, start_worker,
                                                                            wiretap):
    # A long stretched wait (up to 160 ms) must not lose or repeat events that commit
    # meanwhile. How much the wait cuts the relay's cost is measured by `make bench`; the
    # loop's choice of wait is tested without timing in tests/unit/kit/test_kit_bus.py.
    start_worker(effects)
    relay = ledger.relay(poll_interval=30, linger=0.01, max_linger=0.16, full_enough=2)
    batches: list[int] = []
    run_once = relay.run_once
    relay.run_once = lambda: batches.append(run_once()) or batches[-1]  # type: ignore[method-assign]
    thread = threading.Thread(target=relay.run_forever, daemon=True)
    thread.start()
    try:
        wait_for(lambda: relay._listener is not None, message="the relay to LISTEN")
        ids = record_entries(ledger.db, 300, per_transaction=1)  # 300 commits, 1–3 ms apart
        wait_for(lambda: len(applied_counts(effects.db)) == len(ids), message="every effect")
    finally:
        relay.stop()
        thread.join(timeout=10)
    assert sum(batches) == 300 and sum(wiretap.collect().values()) == 300
    assert set(applied_counts(effects.db).values()) == {1}
    assert outbox_status(ledger.db) == {"sent": 300}


def test_an_event_whose_transaction_commits_after_later_ones_went_out_is_still_published(ledger, wiretap):
    # Its row's id comes before theirs, but the relay has moved its floor past that id.
    relay = ledger.relay(batch_size=5, rescan_every=0.5)
    held, go, late = threading.Event(), threading.Event(), []

    def commit_late() -> None:
        with ledger.db.transaction() as session:
            late.append(record_entry(session, memo="late"))
            # Runs after the kit's hook has written the outbox row: its id is given, its commit held.
            event.listen(session, "before_commit", lambda _session: held.set() or go.wait(10))

    committer = threading.Thread(target=commit_late)
    committer.start()
    assert held.wait(10)
    record_entries(ledger.db, 30, per_transaction=1)
    while relay.run_once():  # six batches: the floor moves up with them
        pass
    go.set()
    committer.join(timeout=10)

    wait_for(lambda: relay.run_once() == 1, timeout=5, message="the rescan to find the late event")
    assert outbox_status(ledger.db) == {"sent": 31}
    assert late[0] in wiretap.collect()


def test_publishing_everything_twice_applies_no_effect_twice(ledger, effects, start_worker, wiretap):
    _, outcomes = start_worker(effects)
    ids = record_entries(ledger.db, 200)
    relay = ledger.relay()
    relay.drain()
    wait_for(lambda: len(applied_counts(effects.db)) == len(ids), message="every effect")

    assert reset_outbox_to_pending(ledger.db) == 200
    relay.drain()

    wait_for(lambda: outcomes.count("duplicate") == 200, message="every duplicate to be skipped")
    assert all(n == 2 for n in wiretap.collect().values()) and len(wiretap.received) == 200
    assert reconcile(ledger.db, effects.db) == {
        "recorded": 200, "applied": 200, "lost": 0, "duplicated": 0, "unexpected": 0}


def test_concurrent_relays_never_send_the_same_row_twice(ledger, effects, wiretap):
    ids = record_entries(ledger.db, 3000, per_transaction=200)
    relays = [Relay("ledgertest", ledger.db, ledger.outbox, Bus(ledger.bus.url), batch_size=100)
              for _ in range(3)]
    settled = [0] * len(relays)
    errors: list[BaseException] = []

    def drain(i: int) -> None:
        try:
            settled[i] = relays[i].drain(timeout=120)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(relays))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for relay in relays:
        relay.bus.close()

    assert not errors
    wire = wiretap.collect()
    assert set(wire) == set(ids)
    assert max(wire.values()) == 1, "a row was sent twice"
    assert sum(settled) == 3000
    assert sum(1 for n in settled if n) >= 2, f"the relays did not share the work: {settled}"


def test_embedded_mode_delivers_every_event_once_on_sqlite_and_the_memory_transport(
        make_runtime, start_worker):
    ledger = make_runtime(ledger_spec, db="sqlite", bus="memory")
    effects = make_runtime(effects_spec, db="sqlite", bus="memory")
    _, outcomes = start_worker(effects)
    ledger.start_background()

    ids = record_entries(ledger.db, 100, per_transaction=10)

    wait_for(lambda: len(applied_counts(effects.db)) == len(ids), message="every effect")
    ledger.stop_background()
    assert reconcile(ledger.db, effects.db) == {
        "recorded": 100, "applied": 100, "lost": 0, "duplicated": 0, "unexpected": 0}
    assert outbox_status(ledger.db) == {"sent": 100}

    reset_outbox_to_pending(ledger.db)
    ledger.relay().drain()
    wait_for(lambda: outcomes.count("duplicate") == 100, message="every duplicate to be skipped")
    assert reconcile(ledger.db, effects.db)["duplicated"] == 0


def test_an_event_no_queue_is_bound_for_is_settled_as_unroutable(ledger, clean_queues):
    record_entries(ledger.db, 3)

    assert ledger.relay().drain() == 3

    assert outbox_status(ledger.db) == {"unroutable": 3}


def test_a_backlog_is_applied_in_batches_one_commit_each_and_every_effect_once(ledger, effects, start_worker):
    ids = record_entries(ledger.db, 300)
    ledger.relay().drain()  # all waiting in the queue before the consumer starts
    commits: list[int] = []
    event.listen(effects.db.sessions, "after_commit", lambda session: commits.append(1))

    _, outcomes = start_worker(effects)

    wait_for(lambda: len(applied_counts(effects.db)) == len(ids), message="every effect")
    # Outcomes are reported after the commit and the acks: the last batch's may still be coming.
    wait_for(lambda: len(outcomes.seen) >= 300, message="every outcome")
    assert outcomes.count("processed") == 300
    assert reconcile(ledger.db, effects.db)["duplicated"] == 0
    assert len(commits) <= 300 / 8, f"{len(commits)} commits for 300 waiting events: not taken in batches"


def age_settled_rows(db, ids: list[int], days: float) -> None:
    t = ledger_spec.outbox.table
    with db.engine.begin() as conn:
        conn.execute(update(t).where(t.c.id.in_(ids)).values(sent_at=utcnow() - timedelta(days=days)))


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_settled_events_are_deleted_after_the_retention_and_pending_ones_never(make_runtime, clean_queues, db):
    ledger = make_runtime(ledger_spec, db=db, bus="amqp")  # no queue bound: they settle unroutable
    declare_consumer_queues(make_runtime(effects_spec, db=db, bus="amqp"))  # now they are sent
    record_entries(ledger.db, 7)
    relay = ledger.relay()
    assert relay.retention == timedelta(days=7)  # GRIDGOV_OUTBOX_RETENTION_DAYS' default
    relay.drain()
    t = ledger_spec.outbox.table
    with ledger.db.engine.begin() as conn:
        ids = [r.id for r in conn.execute(select(t.c.id).order_by(t.c.id))]
        conn.execute(update(t).where(t.c.id == ids[5]).values(status="unroutable"))
    age_settled_rows(ledger.db, ids[:4] + ids[5:6], days=8)  # four sent and one unroutable, 8 days ago
    age_settled_rows(ledger.db, ids[4:5], days=6)  # sent within the retention
    record_entries(ledger.db, 2)  # pending: never purged, however old
    with ledger.db.engine.begin() as conn:
        conn.execute(update(t).where(t.c.status == "pending").values(created_at=utcnow() - timedelta(days=30)))

    assert relay.purge(chunk=2) == 5  # several chunks

    with ledger.db.engine.begin() as conn:
        left = conn.execute(select(t.c.id, t.c.status).order_by(t.c.id)).all()
    assert [(r.id, r.status) for r in left[:2]] == [(ids[4], "sent"), (ids[6], "sent")]
    assert [r.status for r in left[2:]] == ["pending", "pending"]
    assert relay.purge() == 0


def test_the_running_relay_purges_what_it_settled_once_the_retention_is_over(ledger, effects):
    relay = ledger.relay(retention=timedelta(0), purge_every=0.05)
    thread = threading.Thread(target=relay.run_forever, daemon=True)
    thread.start()
    try:
        record_entries(ledger.db, 20, per_transaction=5)
        wait_for(lambda: ledger.outbox.pending_count(ledger.db) == 0, message="publishing")
        wait_for(lambda: not outbox_status(ledger.db), message="the settled rows to be purged")
    finally:
        relay.stop()
        thread.join(timeout=10)
