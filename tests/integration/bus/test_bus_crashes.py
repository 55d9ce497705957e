"""kill -9 at the worst moments: between commit and publish, and between commit and ack."""

from __future__ import annotations

import signal

from bustools import run_script
from ledger_service import applied_counts, outbox_status, reconcile, record_entries

from gridkit.testkit import wait_for


def test_a_publisher_killed_after_commit_loses_nothing_once_a_fresh_relay_runs(
        ledger, effects, start_worker, wiretap):
    died = run_script("crash_publisher.py", ledger.settings.database_url, ledger.settings.bus_url,
                      "after-commit", "200")
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert outbox_status(ledger.db) == {"pending": 200}
    assert not wiretap.collect()

    start_worker(effects)
    ledger.relay().drain()

    wait_for(lambda: len(applied_counts(effects.db)) == 200, message="every effect")
    assert reconcile(ledger.db, effects.db) == {
        "recorded": 200, "applied": 200, "lost": 0, "duplicated": 0, "unexpected": 0}


def test_a_relay_killed_between_confirm_and_marking_sent_republishes_and_nothing_applies_twice(
        ledger, effects, start_worker, wiretap):
    died = run_script("crash_publisher.py", ledger.settings.database_url, ledger.settings.bus_url,
                      "after-confirm", "500")
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert "killed after confirm of batch 3" in died.stdout
    # Two batches were marked sent; the third reached the broker but its rows are still pending.
    assert outbox_status(ledger.db) == {"sent": 100, "pending": 400}
    assert sum(wiretap.collect().values()) == 150

    _, outcomes = start_worker(effects)
    ledger.relay().drain()

    wait_for(lambda: len(applied_counts(effects.db)) == 500, message="every effect")
    wait_for(lambda: outcomes.count("duplicate") == 50, message="the re-sent batch to be skipped")
    wire = wiretap.collect()
    assert len(wire) == 500 and sum(wire.values()) == 550
    assert reconcile(ledger.db, effects.db) == {
        "recorded": 500, "applied": 500, "lost": 0, "duplicated": 0, "unexpected": 0}


def test_a_consumer_killed_between_commit_and_ack_gets_the_message_again_and_skips_it(
        ledger, effects, start_worker):
    record_entries(ledger.db, 100)
    ledger.relay().drain()

    died = run_script("crash_worker.py", effects.settings.database_url, effects.settings.bus_url, "40")
    assert died.returncode == -signal.SIGKILL, died.stderr
    killed_on = died.stdout.split("killed after commit of ")[1].strip()
    assert applied_counts(effects.db).get(killed_on) == 1
    assert len(applied_counts(effects.db)) == 40

    _, outcomes = start_worker(effects)

    wait_for(lambda: len(applied_counts(effects.db)) == 100, message="every effect")
    wait_for(lambda: (killed_on, "duplicate") in outcomes.seen, message="the redelivery to be skipped")
    assert reconcile(ledger.db, effects.db) == {
        "recorded": 100, "applied": 100, "lost": 0, "duplicated": 0, "unexpected": 0}
