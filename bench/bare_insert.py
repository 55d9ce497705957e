"""The baselines for intake's POST throughput, served by gunicorn with the same
settings as the services (deploy/gunicorn.conf.py).

* ``create()``: a bare Flask endpoint that parses JSON and inserts one row
  into PostgreSQL (the issue's baseline).
* ``create_with_event()``: the same, plus what a petition's event costs at
  the least: an outbox row and the ``NOTIFY`` that wakes the relay, in the same
  statement, and a relay (``python -m bench.bare_insert relay``, gridkit's own)
  publishing every row to RabbitMQ with confirms. Nothing else: no
  authentication, validation, timeline or answer. What it reaches next to the
  bare insert is the most any request that keeps the outbox's guarantee can.

    gunicorn 'bench.bare_insert:create()' -c deploy/gunicorn.conf.py
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import UTC, datetime

from flask import Flask, request
from sqlalchemy import create_engine, text

from gridkit.db import OUTBOX_CHANNEL, new_metadata
from gridkit.outbox import Outbox

DDL = """CREATE TABLE IF NOT EXISTS bare_petitions (
    id uuid PRIMARY KEY, category text NOT NULL, description text NOT NULL,
    lon double precision NOT NULL, lat double precision NOT NULL, body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())"""
INSERT = ("INSERT INTO bare_petitions (id, category, description, lon, lat, body) "
          "VALUES (:id, :category, :description, :lon, :lat, CAST(:body AS jsonb))")
EXCHANGE, EVENT = "gridgov.bare.events", "bare.petition.submitted.v1"
INSERT_WITH_EVENT = (
    f"WITH p AS ({INSERT}), e AS (INSERT INTO outbox (event_id, exchange, routing_key, body, created_at, "
    f"status, attempts) VALUES (:event_id, '{EXCHANGE}', '{EVENT}', :event, :at, 'pending', 0)) "
    f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")
metadata = new_metadata()
OUTBOX = Outbox(metadata)


def _engine():
    url = os.environ["BARE_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    return create_engine(url, pool_size=10, max_overflow=10)  # as gridkit.db does


def create(with_event: bool = False) -> Flask:
    engine = _engine()
    statement = text(INSERT_WITH_EVENT if with_event else INSERT)
    app = Flask("bare")

    @app.post("/petitions")
    def submit():
        body = request.get_json()
        petition_id = uuid.uuid4()
        row = {"id": petition_id, "category": body["category"], "description": body["description"],
               "lon": body["place"]["lon"], "lat": body["place"]["lat"], "body": json.dumps(body)}
        if with_event:
            event_id = str(uuid.uuid4())
            row |= {"event_id": event_id, "at": datetime.now(UTC), "event": json.dumps(
                {"id": event_id, "type": EVENT, "data": {"petition_id": str(petition_id), **body}})}
        with engine.begin() as conn:
            conn.execute(statement, row)
        return {"id": str(petition_id)}, 201

    return app


def create_with_event() -> Flask:
    return create(with_event=True)


def prepare(database_url: str, *, with_event: bool = False) -> None:
    """The tables, created once before gunicorn starts (two workers racing CREATE TABLE
    IF NOT EXISTS can both miss it and one fails to boot)."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(DDL))
    if with_event:
        metadata.create_all(engine)
    engine.dispose()


def relay(database_url: str, amqp_url: str) -> None:
    """gridkit's relay on the baseline's outbox, into a queue of its own (bound, so that
    every event is routed and stored as a petition's is)."""
    import kombu

    from gridkit.bus import Bus, topic_exchange
    from gridkit.db import Database
    from gridkit.outbox import Relay

    with kombu.Connection(amqp_url, connect_timeout=5) as conn:
        kombu.Queue("bare.sink", exchange=topic_exchange(EXCHANGE), routing_key="#",
                    durable=True)(conn.default_channel).declare()
    Relay("bare", Database(database_url), OUTBOX, Bus(amqp_url)).run_forever()


if __name__ == "__main__":  # python -m bench.bare_insert relay <database url> <amqp url>
    if sys.argv[1:2] != ["relay"] or len(sys.argv) != 4:
        sys.exit("usage: python -m bench.bare_insert relay DATABASE_URL AMQP_URL")
    relay(sys.argv[2], sys.argv[3])
