"""The baseline for intake's POST throughput: a bare Flask endpoint that parses
JSON and inserts one row into PostgreSQL, served by gunicorn with the same
settings as the services (deploy/gunicorn.conf.py).

    gunicorn 'bench.bare_insert:create()' -c deploy/gunicorn.conf.py
"""

from __future__ import annotations

import json
import os
import uuid

from flask import Flask, request
from sqlalchemy import create_engine, text

DDL = """CREATE TABLE IF NOT EXISTS bare_petitions (
    id uuid PRIMARY KEY, category text NOT NULL, description text NOT NULL,
    lon double precision NOT NULL, lat double precision NOT NULL, body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())"""


def create() -> Flask:
    url = os.environ["BARE_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, pool_size=10, max_overflow=10)  # as gridkit.db does
    with engine.begin() as conn:
        conn.execute(text(DDL))
    insert = text("INSERT INTO bare_petitions (id, category, description, lon, lat, body) "
                  "VALUES (:id, :category, :description, :lon, :lat, CAST(:body AS jsonb))")
    app = Flask("bare")

    @app.post("/petitions")
    def submit():
        body = request.get_json()
        petition_id = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(insert, {"id": petition_id, "category": body["category"],
                                  "description": body["description"], "lon": body["place"]["lon"],
                                  "lat": body["place"]["lat"], "body": json.dumps(body)})
        return {"id": str(petition_id)}, 201

    return app
