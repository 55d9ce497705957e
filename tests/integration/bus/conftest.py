"""Fixtures of the bus tests: the ledger producer, the effects consumer, workers and a wiretap."""

from __future__ import annotations

import threading

import pytest
from bustools import Outcomes, Wiretap, declare_consumer_queues, delete_queues
from ledger_service import QUEUE, effects_spec, ledger_spec

from gridkit.bus import Bus, dead_letter_queue_name
from gridkit.consumer import Worker
from gridkit.testkit import wait_for


@pytest.fixture
def clean_queues(amqp_url):
    """The consumer queue and its dead letters start (and end) empty and undeclared."""
    names = (QUEUE, dead_letter_queue_name(QUEUE))
    delete_queues(amqp_url, *names)
    yield names
    delete_queues(amqp_url, *names)


@pytest.fixture
def ledger(make_runtime):
    """The producer on its own PostgreSQL database and the run's RabbitMQ vhost."""
    return make_runtime(ledger_spec, db="postgres", bus="amqp")


@pytest.fixture
def effects(make_runtime, clean_queues):
    """The consumer; its queue is declared at once, so nothing the producer publishes is unroutable."""
    runtime = make_runtime(effects_spec, db="postgres", bus="amqp", max_delivery_attempts=3)
    declare_consumer_queues(runtime)
    return runtime


@pytest.fixture
def start_worker():
    """Start a runtime's worker in a thread; it is stopped and joined after the test."""
    started: list[tuple[Worker, threading.Thread]] = []

    def start(runtime, **kwargs) -> tuple[Worker, Outcomes]:
        outcomes = Outcomes()
        worker = runtime.worker(on_outcome=outcomes, **kwargs)
        thread = worker.start_in_thread()
        started.append((worker, thread))
        wait_for(worker.ready.is_set, message="the worker to consume")
        return worker, outcomes

    yield start
    for worker, _ in started:
        worker.stop()
    for _, thread in started:
        thread.join(timeout=15)


@pytest.fixture
def wiretap(amqp_url):
    tap = Wiretap(amqp_url)
    yield tap
    tap.delete()


@pytest.fixture
def dead_bus() -> Bus:
    return Bus("amqp://guest:guest@127.0.0.1:1//", timeout=1.0)
