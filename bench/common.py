"""Shared bench plumbing: figures, scratch databases and vhosts."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

PG_ADMIN_URL = os.environ.get("GRIDGOV_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("GRIDGOV_TEST_AMQP_HOST", "127.0.0.1:5672")


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None
    target: str  # e.g. ">= 10" (ratio), "< 50" or "<= 15" (value)
    notes: list[str] = field(default_factory=list)
    target_on: str = "ratio"  # which number the target applies to

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]

    @property
    def met(self) -> bool | None:
        number = self.ratio if self.target_on == "ratio" else self.value
        if number is None:
            return None
        op, bound = self.target.split()
        return {">=": number >= float(bound), "<=": number <= float(bound), "<": number < float(bound)}[op]

    def as_json(self) -> dict:
        return {"value": round(self.value, 3), "unit": self.unit,
                "baseline": None if self.baseline is None else round(self.baseline, 3),
                "ratio": None if self.ratio is None else round(self.ratio, 3),
                "target": f"{self.target_on} {self.target}", "met": self.met, "notes": self.notes}


@contextmanager
def scratch_database(label: str = "bench") -> Iterator[str]:
    name = f"gridgov_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_amqp() -> Iterator[str]:
    vhost = f"gridgov-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    try:
        yield f"amqp://guest:guest@{AMQP_HOST}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)
