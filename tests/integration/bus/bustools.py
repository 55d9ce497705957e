"""Helpers of the bus tests (kept out of conftest.py so scripts and tests can import them)."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import uuid
from pathlib import Path

import kombu
from ledger_service import ENTRY_RECORDED

from gridkit.bus import topic_exchange

HERE = Path(__file__).resolve().parent


def delete_queues(amqp_url: str, *names: str) -> None:
    with kombu.Connection(amqp_url, connect_timeout=5) as conn:
        for name in names:
            channel = conn.channel()
            try:
                channel.queue_delete(name)
            finally:
                channel.close()


class Outcomes:
    """Every outcome a worker reports, by message id (thread-safe enough for counting)."""

    def __init__(self):
        self.seen: list[tuple[str, str]] = []

    def __call__(self, queue: str, message_id: str, outcome: str) -> None:
        self.seen.append((message_id, outcome))

    def count(self, outcome: str) -> int:
        return sum(1 for _, o in list(self.seen) if o == outcome)


class Wiretap:
    """A queue of its own bound to every ledger event: counts what went over the wire, duplicates included."""

    def __init__(self, amqp_url: str):
        self.url = amqp_url
        self.name = f"wiretap.{uuid.uuid4().hex[:8]}"
        self.received: collections.Counter[str] = collections.Counter()
        with kombu.Connection(amqp_url, connect_timeout=5) as conn:
            self._queue()(conn.default_channel).declare()

    def _queue(self) -> kombu.Queue:
        return kombu.Queue(self.name, exchange=topic_exchange(ENTRY_RECORDED.exchange),
                           routing_key="ledgertest.#", durable=True, auto_delete=False)

    def collect(self) -> collections.Counter[str]:
        """Take everything the tap holds now; returns the running count per event id."""
        with kombu.Connection(self.url, connect_timeout=5) as conn:
            queue = self._queue()(conn.default_channel)
            while (message := queue.get(no_ack=True)) is not None:
                self.received[json.loads(message.body)["id"]] += 1
        return self.received

    def delete(self) -> None:
        delete_queues(self.url, self.name)


def run_script(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / name), *args], capture_output=True,
                          text=True, timeout=timeout)


def declare_consumer_queues(runtime) -> None:
    runtime.bus.declare_queues({name: sub.bindings
                                for name, sub in runtime.spec.subscriptions.queues.items()})
