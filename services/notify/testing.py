"""Factories for notify's tests (and for anyone who wants to feed it events)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import func, select

from gridkit.events import Envelope, EventType

from .tables import Notice


def case_data(**overrides) -> dict:
    """The fields every dispatch case event carries."""
    return {"case_id": str(uuid.uuid4()), "petition_id": str(uuid.uuid4()), "reporter_id": str(uuid.uuid4()),
            "network": "security", "grid_id": 7, "level": "grid", "at": datetime.now(UTC)} | overrides


def soon(minutes: int = 30) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def envelope_body(event_type: EventType, data: dict, envelope: Envelope | None = None) -> tuple[str, Envelope]:
    envelope = envelope or Envelope.new(event_type, data, subject=data.get("case_id") or data.get("petition_id"))
    return json.dumps(envelope.to_json()), envelope


def queue_for(spec, event_type: EventType) -> str:
    return next(q for q in spec.subscriptions.queues.values() if event_type.type in q.handlers).queue


def feed(runtime, event_type: EventType, data: dict, *, envelope: Envelope | None = None) -> Envelope:
    """Hand one event to notify's worker as if it came off the queue; returns the envelope."""
    body, envelope = envelope_body(event_type, data, envelope)
    worker = runtime.extras.get("test_worker") or runtime.extras.setdefault("test_worker", runtime.worker())
    queue = runtime.spec.subscriptions.queues[queue_for(runtime.spec, event_type)]
    outcome = worker.handle(queue, body, {}, {})
    assert outcome in ("processed", "duplicate"), outcome
    return envelope


def notices_of(runtime, user_id: str) -> list[Notice]:
    with runtime.db.sessions() as session:
        return list(session.scalars(select(Notice).where(Notice.recipient_id == user_id).order_by(Notice.id)))


def notice_count(runtime) -> int:
    with runtime.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(Notice))


class SmsGatewayFake:
    """A tiny HTTP SMS provider on loopback, speaking what ``HttpSmsGateway`` sends: records
    every request; fails the next N, or always (503). Point ``GRIDGOV_SMS_URL`` at ``url``.

    Tests, end-to-end runs and benchmarks read the one-time codes it received with
    :meth:`code_for`, the way a resident reads their phone."""

    CODE = re.compile(r"(?<![0-9])([0-9]{6})(?![0-9])")

    def __init__(self):
        self.requests: list[dict] = []
        self.fail_next = 0
        self.fail_always = False
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"headers": dict(self.headers), "body": body})
                    count = len(fake.requests)
                    failing = fake.fail_always or fake.fail_next > 0
                    fake.fail_next = max(fake.fail_next - 1, 0)
                if failing:
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"try later")
                    return
                answer = json.dumps({"id": f"sms-{count}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/messages"
        threading.Thread(target=self.server.serve_forever, name="sms-gateway-fake", daemon=True).start()

    def to(self, phone: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["body"]["to"] == phone]

    def texts_to(self, phone: str) -> list[str]:
        return [r["body"]["text"] for r in self.to(phone)]

    def code_for(self, phone: str, *, after: int = 0, timeout: float = 60.0) -> str:
        """The code in the first text to ``phone`` beyond the first ``after`` of them,
        waiting up to ``timeout`` seconds for it to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            for text in self.texts_to(phone)[after:]:
                if found := self.CODE.search(text):
                    return found.group(1)
            if time.monotonic() > deadline:
                raise AssertionError(f"no code texted to {phone} within {timeout:.0f} s")
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
