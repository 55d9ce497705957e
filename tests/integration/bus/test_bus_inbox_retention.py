"""The consumers' inbox is kept for a retention, then forgotten by the worker."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from ledger_service import effects_spec
from sqlalchemy import select, update

from gridkit.outbox import utcnow
from gridkit.testkit import wait_for


def processed(runtime, ages_in_days: list[float]) -> list[str]:
    """Inbox rows processed that many days ago; returns their event ids, in that order."""
    ids = [str(uuid.uuid4()) for _ in ages_in_days]
    t = effects_spec.inbox.table
    with runtime.db.transaction() as session:
        effects_spec.inbox.remember(session, [("effects", event_id, "test.v1") for event_id in ids])
    with runtime.db.engine.begin() as conn:
        for event_id, days in zip(ids, ages_in_days, strict=True):
            conn.execute(update(t).where(t.c.event_id == event_id).values(
                processed_at=utcnow() - timedelta(days=days)))
    return ids


def kept(runtime) -> set[str]:
    t = effects_spec.inbox.table
    with runtime.db.engine.connect() as conn:
        return set(conn.execute(select(t.c.event_id)).scalars())


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_rows_processed_before_the_cutoff_are_forgotten_oldest_first_in_chunks(make_runtime, db):
    effects = make_runtime(effects_spec, db=db)
    ids = processed(effects, [45, 31, 40, 29, 1, 0])

    assert effects_spec.inbox.forget(effects.db, utcnow() - timedelta(days=30), chunk=2) == 3

    assert kept(effects) == set(ids[3:])
    assert effects_spec.inbox.forget(effects.db, utcnow() - timedelta(days=30)) == 0


def test_every_consuming_worker_forgets_its_old_inbox_rows_by_itself(make_runtime, clean_queues):
    # effects' spec registers no background loop: the kit adds this one to every consumer.
    assert effects_spec.background == []
    effects = make_runtime(effects_spec, db="postgres", bus="amqp")
    assert effects.settings.inbox_retention_days == 30  # GRIDGOV_INBOX_RETENTION_DAYS' default
    ids = processed(effects, [31, 60, 29, 0])
    effects.extras["inbox_purge_seconds"] = 0.05

    effects.start_background()

    wait_for(lambda: kept(effects) == set(ids[2:]), message="the rows older than 30 days to be forgotten")
    recent = processed(effects, [40])  # and again, a moment later
    wait_for(lambda: kept(effects) == set(ids[2:]), message=f"{recent} to be forgotten in turn")
