"""The bus's bookkeeping of confirms, and the relay and worker on the in-memory transport."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
from marshmallow import Schema, fields
from sqlalchemy import select

from gridkit.bus import BatchResult, Bus, Outgoing
from gridkit.consumer import (
    ATTEMPTS_HEADER,
    REASON_HEADER,
    Incoming,
    Outcome,
    Subscriptions,
    Worker,
)
from gridkit.db import Database, declarative_base
from gridkit.events import Catalogue
from gridkit.outbox import Inbox, Outbox, Relay, next_linger


class NoteSchema(Schema):
    text = fields.String(required=True)


catalogue = Catalogue("kitbus")
NOTE_TAKEN = catalogue.declare("kitbus.note.taken", version=1, schema=NoteSchema, description="A note.")

Base = declarative_base()
outbox = Outbox(Base.metadata)
inbox = Inbox(Base.metadata)
subscriptions = Subscriptions("kitbusreader")
handled: list[str] = []


@subscriptions.on(NOTE_TAKEN, purpose="notes")
def read_note(session, event):
    if event.data["text"] == "boom":
        raise RuntimeError("cannot read that")
    handled.append(event.id)


def pending_bus() -> Bus:
    bus = Bus("amqp://unused")
    bus._pending = {1: "a", 2: "b", 3: "c", 4: "d"}
    bus._result = BatchResult()
    return bus


def test_a_multiple_ack_settles_every_earlier_tag_and_no_later_one():
    bus = pending_bus()

    bus._on_ack(2, True)
    bus._on_nack(3, False)

    assert bus._result.confirmed == {"a", "b"}
    assert bus._result.failed == {"c": "nacked by broker"}
    assert bus._pending == {4: "d"}


def test_a_returned_message_is_unroutable_not_confirmed():
    bus = pending_bus()
    bus._on_return(Exception("NO_ROUTE"), "ex", "key", SimpleNamespace(properties={"message_id": "b"}))
    bus._on_ack(4, True)

    assert "b" in bus._result.returned
    assert bus._result.confirmed == {"a", "b", "c", "d"}  # the publisher subtracts returns after the wait


def test_an_empty_batch_needs_no_broker():
    assert Bus("amqp://guest:guest@127.0.0.1:1//").publish_batch([]) == BatchResult()


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'bus.db'}")
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def worker(db):
    from kombu.transport import memory

    memory.Transport.global_state.clear()
    memory.Channel.queues.clear()
    handled.clear()
    return Worker(subscriptions, db, inbox, Bus("memory://kitbus"), max_attempts=2)


def body(text: str, event_id: str = "n-1") -> bytes:
    return json.dumps({"specversion": "1.0", "id": event_id, "type": NOTE_TAKEN.type, "source": "t",
                       "time": "2024-01-01T00:00:00Z", "data": {"text": text}}).encode()


def test_the_worker_processes_an_event_once_and_skips_its_redelivery(worker, db):
    sub = subscriptions.queues["kitbusreader.notes"]

    first = worker.handle(sub, body("hello"), {}, {})
    again = worker.handle(sub, body("hello"), {}, {})

    assert (first, again) == (Outcome.PROCESSED, Outcome.DUPLICATE)
    assert handled == ["n-1"]
    with db.engine.connect() as conn:
        assert conn.execute(select(inbox.table.c.event_id)).scalars().all() == ["n-1"]


def commits_of(db) -> list[int]:
    from sqlalchemy import event

    commits: list[int] = []
    event.listen(db.sessions, "after_commit", lambda session: commits.append(1))
    return commits


def inbox_ids(db) -> list[str]:
    with db.engine.connect() as conn:
        return sorted(conn.execute(select(inbox.table.c.event_id)).scalars())


def test_a_batch_is_handled_in_order_in_one_transaction(worker, db):
    sub = subscriptions.queues["kitbusreader.notes"]
    worker.handle(sub, body("before", "n-0"), {}, {})  # already processed: a redelivery below
    commits = commits_of(db)
    batch = [Incoming(sub, body(f"note {i}", f"n-{i}"), {}) for i in range(5)] + [Incoming(sub, body("x", "n-2"), {})]

    outcomes = worker.handle_batch(batch)

    assert outcomes == [Outcome.DUPLICATE] + [Outcome.PROCESSED] * 4 + [Outcome.DUPLICATE]
    assert handled == ["n-0", "n-1", "n-2", "n-3", "n-4"]
    assert len(commits) == 1
    assert inbox_ids(db) == ["n-0", "n-1", "n-2", "n-3", "n-4"]


def test_a_failing_message_rolls_its_batch_back_and_costs_only_itself(worker, db, monkeypatch):
    sub = subscriptions.queues["kitbusreader.notes"]
    retried = []
    monkeypatch.setattr(worker, "_publish", lambda body, headers, **kw: retried.append(headers))
    monkeypatch.setattr("gridkit.consumer.time.sleep", lambda s: None)
    batch = [Incoming(sub, body("a", "n-1"), {}), Incoming(sub, body("boom", "n-2"), {}),
             Incoming(sub, b"{not json", {}), Incoming(sub, body("c", "n-3"), {})]

    outcomes = worker.handle_batch(batch)

    assert outcomes == [Outcome.PROCESSED, Outcome.RETRIED, Outcome.DEAD_LETTERED, Outcome.PROCESSED]
    assert inbox_ids(db) == ["n-1", "n-3"]  # nothing of the rolled-back batch stayed
    assert handled[-2:] == ["n-1", "n-3"]  # handled again one by one, in order
    dead, retry = (h[REASON_HEADER] for h in retried)  # the unreadable one is dead-lettered first, unopened
    assert dead.startswith("invalid event: body is not JSON") and retry == "RuntimeError: cannot read that"


def test_the_worker_dead_letters_a_failing_event_after_its_last_attempt(worker, monkeypatch):
    sub = subscriptions.queues["kitbusreader.notes"]
    published = []
    monkeypatch.setattr(worker, "_publish", lambda body, headers, **kw: published.append((headers, kw)))
    monkeypatch.setattr("gridkit.consumer.time.sleep", lambda s: None)

    retried = worker.handle(sub, body("boom"), {}, {}, message_id="n-1")
    dead = worker.handle(sub, body("boom"), published[0][0], {}, message_id="n-1")

    assert (retried, dead) == (Outcome.RETRIED, Outcome.DEAD_LETTERED)
    (retry_headers, retry_to), (dead_headers, dead_to) = published
    assert retry_to == {"exchange": "", "routing_key": "kitbusreader.notes", "message_id": "n-1"}
    assert dead_to == {"exchange": "gridgov.dead-letters", "routing_key": "kitbusreader.notes", "message_id": "n-1"}
    assert dead_headers[ATTEMPTS_HEADER] == 2
    assert dead_headers[REASON_HEADER].startswith("handler failed 2 times: RuntimeError: cannot read that")


def test_a_garbled_attempts_header_counts_as_a_first_attempt(worker, monkeypatch):
    sub = subscriptions.queues["kitbusreader.notes"]
    monkeypatch.setattr(worker, "_publish", lambda *a, **kw: None)

    assert worker.handle(sub, body("hi"), {ATTEMPTS_HEADER: "lots"}, {}) == Outcome.PROCESSED


def test_the_relay_marks_rows_sent_only_for_what_the_broker_confirmed(db):
    with db.transaction() as session:
        ids = [outbox.record(session, NOTE_TAKEN, {"text": str(i)}).id for i in range(3)]

    class HalfBus(Bus):
        def publish_batch(self, messages: list[Outgoing]) -> BatchResult:
            return BatchResult(confirmed={messages[0].message_id},
                               returned={messages[1].message_id: "unroutable"},
                               failed={messages[2].message_id: "nacked by broker"})

    settled = Relay("kitbus", db, outbox, HalfBus("memory://")).run_once()

    t = outbox.table
    with db.engine.connect() as conn:
        rows = {r.event_id: r for r in conn.execute(select(t))}
    assert settled == 2
    assert [rows[i].status for i in ids] == ["sent", "unroutable", "pending"]
    assert rows[ids[2]].attempts == 1 and rows[ids[2]].last_error == "nacked by broker"


def test_the_events_of_a_transaction_are_written_at_commit_in_one_insert_in_their_order(db):
    from sqlalchemy import event

    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda conn, cursor, statement, *a: statements.append(statement))
    with db.transaction() as session:
        ids = [outbox.record(session, NOTE_TAKEN, {"text": str(i)}).id for i in range(3)]
        before_commit = [s for s in statements if "INSERT INTO outbox" in s]

    assert before_commit == []
    assert len([s for s in statements if "INSERT INTO outbox" in s]) == 1
    with db.engine.connect() as conn:
        assert conn.execute(select(outbox.table.c.event_id).order_by(outbox.table.c.id)).scalars().all() == ids


def test_an_event_breaking_its_schema_is_refused_when_recorded_not_at_commit(db):
    from gridkit.events import InvalidEvent

    with db.transaction() as session, pytest.raises(InvalidEvent):
        outbox.record(session, NOTE_TAKEN, {"words": "no text"})


def test_the_relay_waits_longer_only_while_events_come_fast():
    wait = 0.01
    waits = []
    # 8 per 10 ms is the rate that stretches: 16 in 20 ms, 32 in 40 ms, 40 in 50 ms …
    for taken in (1, 8, 16, 32, 40, 50, 39, 8, 15):
        wait = next_linger(wait, taken, shortest=0.01, longest=0.05, full_enough=8)
        waits.append(wait)
    # doubled while the rate holds, up to the longest; back to the shortest once it drops
    assert waits == [0.01, 0.02, 0.04, 0.05, 0.05, 0.05, 0.01, 0.02, 0.01]


def test_the_relay_loop_waits_as_next_linger_says_after_each_batch(db):
    # The loop's side of the stretching linger, without timing: each batch's size decides
    # the wait before the next take (the sizes a real stream gives are for `make bench`).
    relay = Relay("kitbus", db, outbox, Bus("memory://"), linger=0.01, max_linger=0.05, full_enough=8,
                  poll_interval=0.001)
    sizes = [1, 8, 16, 32, 3]
    waits: list[float] = []

    class Recorded(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            return super().wait(0)

    relay._stop = Recorded()

    def run_once() -> int:
        if not sizes:
            relay._stop.set()
            return 0
        return sizes.pop(0)

    relay.run_once = run_once  # type: ignore[method-assign]
    relay.run_forever()
    assert waits[:5] == [0.01, 0.02, 0.04, 0.05, 0.01]
