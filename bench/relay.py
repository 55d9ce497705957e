"""How fast the outbox relay publishes, against kombu's own confirmed publish.

    .venv/bin/python bench/relay.py [N]

creates a throwaway RabbitMQ vhost and PostgreSQL database, measures, drops
them, and prints (a) the relay's rate: N outbox rows inserted, then the time
of ``Relay.drain()`` (every row published with a publisher confirm and
marked sent), and (b) the baseline: ``kombu.Connection(url,
transport_options={"confirm_publish": True})`` + ``Producer.publish`` one
message at a time, each waiting for its confirm, same message size. The
relay batches confirms, so the ratio should be well above 1.

``run(amqp_url, pg_url, n)`` does the same on a vhost and database you give it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import kombu
import psycopg
from marshmallow import Schema, fields
from sqlalchemy import insert

from gridkit.bus import Bus, topic_exchange
from gridkit.db import Database, declarative_base
from gridkit.events import Catalogue, Envelope
from gridkit.outbox import Outbox, Relay, utcnow


class TickSchema(Schema):
    tick_id = fields.Integer(required=True)
    note = fields.String(required=True)


catalogue = Catalogue("benchrelay")
TICKED = catalogue.declare("benchrelay.tick.ticked", version=1, schema=TickSchema, description="A tick.")
Base = declarative_base()
outbox = Outbox(Base.metadata)
SINK = "benchrelay.sink"


def _declare_sink(amqp_url: str) -> None:
    with kombu.Connection(amqp_url, connect_timeout=5) as conn:
        queue = kombu.Queue(SINK, exchange=topic_exchange(TICKED.exchange), routing_key="#",
                            durable=True, auto_delete=False)
        queue(conn.default_channel).declare()
        queue(conn.default_channel).purge()


def _delete_sink(amqp_url: str) -> None:
    with kombu.Connection(amqp_url, connect_timeout=5) as conn:
        conn.default_channel.queue_delete(SINK)


def _rows(n: int) -> list[dict]:
    rows = []
    now = utcnow()
    for i in range(n):
        envelope = Envelope.new(TICKED, {"tick_id": i, "note": "x" * 64}, subject=str(i))
        rows.append({"event_id": envelope.id, "exchange": TICKED.exchange, "routing_key": TICKED.type,
                     "body": json.dumps(envelope.to_json(), separators=(",", ":")),
                     "created_at": now, "status": "pending", "attempts": 0})
    return rows


def relay_rate(amqp_url: str, pg_url: str, n: int, **relay_options) -> tuple[float, int]:
    db = Database(pg_url)
    try:
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        rows = _rows(n)
        with db.engine.begin() as conn:
            conn.execute(insert(outbox.table), rows)
        bus = Bus(amqp_url)
        relay = Relay("benchrelay", db, outbox, bus, **relay_options)
        started = time.perf_counter()
        settled = relay.drain(timeout=600)
        elapsed = time.perf_counter() - started
        bus.close()
        assert settled == n, f"relay settled {settled} of {n}"
        return n / elapsed, len(rows[0]["body"])
    finally:
        db.dispose()


def raw_confirm_rate(amqp_url: str, n: int, size: int) -> float:
    body = json.dumps({"pad": "x" * max(size - 11, 0)}).encode()[:size]
    with kombu.Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        producer = kombu.Producer(conn.default_channel, exchange=topic_exchange(TICKED.exchange))
        started = time.perf_counter()
        for i in range(n):
            producer.publish(body, routing_key=TICKED.type, content_type="application/json",
                             content_encoding="utf-8", delivery_mode=2, message_id=str(i))
        return n / (time.perf_counter() - started)


def run(amqp_url: str, pg_url: str, n: int = 5000) -> dict:
    _declare_sink(amqp_url)
    try:
        relay_per_s, size = relay_rate(amqp_url, pg_url, n)
        raw_per_s = raw_confirm_rate(amqp_url, n, size)
    finally:
        _delete_sink(amqp_url)
    return {"n": n, "message_bytes": size, "relay_events_per_s": round(relay_per_s, 1),
            "raw_confirm_per_s": round(raw_per_s, 1), "ratio": round(relay_per_s / raw_per_s, 2)}


def bench(*, pg_url: str, amqp_url: str, scale: float = 1.0) -> list:
    """The ``python -m bench`` suite: one figure, the relay next to raw confirmed publishing."""
    from .common import Figure

    result = run(amqp_url, pg_url, n=max(1000, int(5000 * scale)))
    print(f"relay {result['relay_events_per_s']:,.0f} events/s, raw confirm-publish "
          f"{result['raw_confirm_per_s']:,.0f} messages/s", flush=True)
    return [Figure("relay_vs_raw_confirm", result["relay_events_per_s"], "events/s",
                   result["raw_confirm_per_s"], ">= 1.0",
                   notes=[f"{result['n']} outbox rows of {result['message_bytes']} bytes, Relay.drain() with "
                          "batched confirms on PostgreSQL; baseline: kombu confirm_publish, one message "
                          "at a time"])]


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 5000
    tag = uuid.uuid4().hex[:8]
    host = os.environ.get("GRIDGOV_BENCH_AMQP_HOST", "127.0.0.1:5672")
    admin_url = os.environ.get("GRIDGOV_BENCH_PG", "postgresql://root@127.0.0.1:5432/postgres")
    vhost, database = f"bench-relay-{tag}", f"bench_relay_{tag}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    admin = psycopg.connect(admin_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{database}"')
    try:
        result = run(f"amqp://guest:guest@{host}/{vhost}", f"{admin_url.rsplit('/', 1)[0]}/{database}", n)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
