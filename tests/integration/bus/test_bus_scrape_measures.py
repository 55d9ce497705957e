"""What a worker's /metrics measures at scrape time, on real PostgreSQL and RabbitMQ: the
outbox's backlog and the age of its oldest event (growing while nothing publishes), each
consumer queue's depth and its dead letters."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from ledger_service import FAILING_MEMOS, QUEUE, ledger_spec, record_entries
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from gridkit.outbox import utcnow
from gridkit.testkit import wait_for


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, through the text exposition Prometheus reads."""
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_outbox_backlog_and_its_oldest_event_s_age_are_read_from_the_table(ledger):
    measure = ledger.outbox.measure("ledgertest", ledger.db)
    record_entries(ledger.db, 3)
    with ledger.db.transaction() as session:  # nothing published them for ten minutes
        session.execute(update(ledger.outbox.table).values(created_at=utcnow() - timedelta(minutes=10)))

    pending, age = measure()
    assert (pending.name, pending.samples[0].labels, pending.samples[0].value) == (
        "gridgov_outbox_pending", {"service": "ledgertest"}, 3)
    assert age.name == "gridgov_outbox_oldest_pending_seconds" and 600 <= age.samples[0].value < 900

    ledger.relay().drain()
    pending, age = measure()
    assert (pending.samples[0].value, age.samples[0].value) == (0, 0)


def test_each_queue_s_depth_and_dead_letters_are_measured_by_the_worker(ledger, effects, start_worker):
    effects.settings = replace(effects.settings, metrics_cache_seconds=0)  # measured at every scrape
    registry = CollectorRegistry()
    effects.measure_at_scrape(registry)
    ready = ("gridgov_queue_messages_ready", (("queue", QUEUE),))
    dead = ("gridgov_queue_dead_letters", (("queue", QUEUE),))
    assert samples(registry)[ready] == 0 and samples(registry)[dead] == 0

    record_entries(ledger.db, 4)
    ledger.relay().drain()
    effects_pending = ("gridgov_outbox_pending", (("service", "effectstest"),))
    wait_for(lambda: samples(registry)[ready] == 4, timeout=30, interval=0.2, message="four messages waiting")
    assert samples(registry)[effects_pending] == 0

    FAILING_MEMOS.add("poison-scrape")
    try:
        start_worker(effects)
        record_entries(ledger.db, 2, memo="poison-scrape")
        ledger.relay().drain()
        wait_for(lambda: samples(registry)[dead] == 2 and samples(registry)[ready] == 0, timeout=60,
                 interval=0.2, message="two dead letters, nothing waiting")
    finally:
        FAILING_MEMOS.discard("poison-scrape")


def test_a_measure_that_fails_gives_nothing_and_the_scrape_goes_on(make_runtime):
    runtime = make_runtime(ledger_spec, db="sqlite", metrics_cache_seconds=0)
    registry = CollectorRegistry()
    runtime.measure_at_scrape(registry)
    pending = ("gridgov_outbox_pending", (("service", "ledgertest"),))
    assert samples(registry)[pending] == 0
    runtime.db.dispose()
    Path(runtime.db.engine.url.database).unlink()  # the next query finds an empty database: it fails
    after = samples(registry)
    assert pending not in after and after  # the rest of the registry is still served
