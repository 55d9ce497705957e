"""Every process of a running platform observable, and stopped without loss.

Each web and each worker is scraped for the metric families docs/operating.md names, on
the process it names, with bounded labels; one resident's W3C trace is followed from her
request through the bus into the logs of the consumers that handle what it caused. Last,
rolling updates: SIGTERM (what Kubernetes sends a pod) to `gridgov worker` in the middle
of a stream of events, and to gunicorn with a request in flight. One platform for all
(real processes, RabbitMQ and PostgreSQL): starting one is most of the cost."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import socket
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import kombu
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from gridkit import registry
from gridkit.bus import topic_exchange
from gridkit.db import Database
from gridkit.events import exchange_for
from gridkit.processes import ROOT, Platform, start_platform
from gridkit.testkit import wait_for

from .conftest import DATA_KEY
from .journey import PROPAGATION, Gridgov, small_world_cast, wait_until_dispatch_has_the_world

TRACE_ID = uuid.uuid4().hex
TRACEPARENT = f"00-{TRACE_ID}-{uuid.uuid4().hex[:16]}-01"
# Any label value that looks like an identifier: a uuid, a long number, a long hex string.
ID_LIKE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-|\d{8,}|[0-9a-f]{16,}", re.IGNORECASE)
NUMERIC_LABELS = {"le", "quantile", "version"}  # numbers by design
MAX_SERIES = 2500  # per process; a few hundred today
STAFF = 40  # accounts made in the stream a SIGTERM interrupts
GRACE = 20  # GRIDGOV_WORKER_GRACE_SECONDS and gunicorn's graceful_timeout


@pytest.fixture(scope="module")
def observed(fresh_pg_database, amqp_url, tmp_path_factory, sms_gateway):
    """The platform, its workers logging at debug (a line per handled event)."""
    platform = start_platform(registry.available(), database_url=lambda name: fresh_pg_database(f"obs_{name}"),
                              bus_url=amqp_url, logs=tmp_path_factory.mktemp("observed"), data_key=DATA_KEY,
                              extra_env={"GRIDGOV_SMS_URL": sms_gateway.url}, web_workers=1,
                              worker_env={"GRIDGOV_LOG_LEVEL": "DEBUG"})
    try:
        yield platform
    finally:
        platform.stop()


class Wiretap:
    """A queue of the test's own bound to everything intake publishes."""

    def __init__(self, url: str):
        self.url = url
        self.queue = kombu.Queue(f"observe-tap.{uuid.uuid4().hex[:8]}", exchange=topic_exchange(exchange_for("intake")),
                                 routing_key="#", durable=False, auto_delete=False)
        with kombu.Connection(url, connect_timeout=5) as conn:
            self.queue(conn.default_channel).declare()

    def envelopes(self) -> list[dict]:
        with kombu.Connection(self.url, connect_timeout=5) as conn:
            queue = self.queue(conn.default_channel)
            taken = []
            while (message := queue.get(no_ack=True)) is not None:
                taken.append(json.loads(message.body))
            return taken

    def delete(self) -> None:
        with kombu.Connection(self.url, connect_timeout=5) as conn:
            self.queue(conn.default_channel).delete()


@pytest.fixture(scope="module")
def journey(observed, sms_gateway, amqp_url):
    """A small journey: a county from nothing, a resident's petition submitted with a known
    traceparent, routed to a grid and claimed by one of its workers."""
    tap = Wiretap(amqp_url)
    try:
        observed.gridgov("create-sysadmin", "--username", "obs-root",
                         extra_env={"GRIDGOV_ADMIN_PASSWORD": "obs-root-password"})
        gg = Gridgov(observed.urls, sms=sms_gateway)
        cast = small_world_cast(gg, gg.login("sysadmin", username="obs-root", password="obs-root-password"))
        wait_until_dispatch_has_the_world(gg, cast.county)
        body = {"category": cast.category, "description": "路灯不亮了", "place": cast.place}

        def submitted():
            answer = gg.post("intake", "/petitions", cast.resident, json=body, headers={"traceparent": TRACEPARENT})
            if answer.status_code == 422 and "place" in answer.json().get("errors", {}):
                return None  # intake has not heard of the place from grids yet
            assert answer.status_code == 201, answer.text
            return answer.json()

        petition = wait_for(submitted, timeout=PROPAGATION, interval=0.5, message="intake to accept the place")

        def assigned():
            p = gg.get("intake", f"/petitions/{petition['id']}", cast.resident, expect=200).json()
            return p if p["status"] == "assigned" and p["case_id"] else None

        case_id = wait_for(assigned, timeout=PROPAGATION, interval=0.2, message="the case to be offered")["case_id"]
        gg.post("dispatch", f"/cases/{case_id}/claim", cast.workers[0], expect=201)
        yield {"petition_id": petition["id"], "case_id": case_id, "tap": tap}
    finally:
        tap.delete()


# --------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------


def documented_metrics() -> dict[str, set[str]]:
    """docs/operating.md's "What to watch": metric family → the processes it lives on."""
    text = (ROOT / "docs" / "operating.md").read_text()
    section = text[text.index("## What to watch"):]
    section = section[:section.index("\n## ", 1)]
    found = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (m := re.fullmatch(r"`(gridgov_\w+)(\{.*\})?`", cells[0])):
            found[m.group(1)] = {p.strip() for p in cells[1].split(",")}
    return found


def scrape(url: str) -> dict[str, list]:
    """family name (as exposed, counters with ``_total``) → its samples."""
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text[:500]
    families = {}
    for family in text_string_to_metric_families(answer.text):
        name = family.name + "_total" if family.type == "counter" else family.name
        families[name] = family.samples
    return families


def owner(metric: str) -> str | None:
    """The service a ``gridgov_<service>_…`` metric belongs to (None: every service's)."""
    return next((s for s in registry.SERVICES if metric.startswith(f"gridgov_{s}_")), None)


def every_process(platform: Platform) -> list[tuple[str, str, str]]:
    return [(service, process, url) for service in platform.urls
            for process, url in (("web", platform.url(service, "/metrics")),
                                 ("worker", platform.worker_url(service, "/metrics")))]


def test_every_documented_metric_is_exposed_by_the_process_the_docs_name(observed, journey):
    documented = documented_metrics()
    assert {"gridgov_http_requests_total", "gridgov_events_consumed_total", "gridgov_outbox_published_total",
            "gridgov_service_info", "gridgov_dispatch_unattended_total"} <= set(documented)
    missing = []
    for service, process, url in every_process(observed):
        exposed = scrape(url)
        for metric, processes in documented.items():
            if process in processes and owner(metric) in (None, service) and metric not in exposed:
                missing.append(f"{metric} on {service} {process}")
        info = [s for s in exposed["gridgov_service_info"] if s.value == 1]
        assert [s.labels["service"] for s in info] == [service], (service, process, info)
    assert not missing, "documented metrics not exposed:\n" + "\n".join(missing)


def test_workers_count_what_they_do_and_webs_what_they_serve(observed, journey):
    dispatch_worker = scrape(observed.worker_url("dispatch", "/metrics"))
    handled = {s.labels["queue"]: s.value for s in dispatch_worker["gridgov_events_consumed_total"]
               if s.labels["outcome"] == "processed" and s.name.endswith("_total")}
    assert handled.get("dispatch.petitions", 0) >= 1, handled
    intake_worker = scrape(observed.worker_url("intake", "/metrics"))
    assert sum(s.value for s in intake_worker["gridgov_outbox_published_total"] if s.name.endswith("_total")) >= 1
    claims = scrape(observed.url("dispatch", "/metrics"))["gridgov_dispatch_claims_total"]
    assert any(s.labels["outcome"] == "won" and s.value >= 1 for s in claims), claims
    for service in observed.urls:  # a worker's registry is its own, not its web's
        worker = scrape(observed.worker_url(service, "/metrics"))
        assert not worker.get("gridgov_http_requests_total"), service


def test_labels_are_bounded_on_every_process(observed, journey):
    for service, process, url in every_process(observed):
        families = scrape(url)
        series = [s for samples in families.values() for s in samples]
        assert len(series) < MAX_SERIES, f"{service} {process}: {len(series)} series"
        for sample in series:
            for label, value in sample.labels.items():
                if label in NUMERIC_LABELS:
                    continue
                assert not ID_LIKE.search(value), f"{service} {process}: {sample.name}{{{label}={value!r}}}"
                if label == "route":
                    assert value == "unmatched" or value.startswith("/"), value
        routes = {s.labels["route"] for s in families.get("gridgov_http_requests_total", [])}
        if service == "dispatch" and process == "web":
            assert "/cases/<case_id>/claim" in routes, sorted(routes)  # the URL rule, not the path


def test_every_process_answers_its_probes(observed):
    for service in observed.urls:
        for url in (observed.url(service), observed.worker_urls[service]):
            assert requests.get(url + "/healthz", timeout=10).status_code == 200, url
            ready = requests.get(url + "/readyz", timeout=10)
            assert ready.status_code == 200 and set(ready.json()["checks"].values()) == {"ok"}, ready.text


# --------------------------------------------------------------------------
# logs and the trace
# --------------------------------------------------------------------------


def log_lines(path: Path) -> list[dict]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def test_a_residents_trace_travels_from_her_request_through_the_bus_into_every_consumer(observed, journey):
    submitted = [e for e in journey["tap"].envelopes() if e["type"] == "intake.petition.submitted.v1"
                 and e["data"].get("petition_id") == journey["petition_id"]]
    assert len(submitted) == 1
    assert submitted[0]["traceparent"].split("-")[1] == TRACE_ID  # CloudEvents distributed tracing

    intake_web = [line for line in log_lines(observed.logs / "intake-web.log") if line.get("trace_id") == TRACE_ID]
    assert any(line.get("route") == "/petitions" and line.get("status") == 201 for line in intake_web), intake_web

    def handled_in_trace(service: str) -> list[dict]:
        return [line for line in log_lines(observed.logs / f"{service}-worker.log")
                if line.get("trace_id") == TRACE_ID and line.get("message") == "event handled"]

    dispatch = wait_for(lambda: handled_in_trace("dispatch") or None, timeout=30, message="dispatch's log line")
    assert {line["event_type"] for line in dispatch} >= {"intake.petition.submitted.v1"}
    assert all(line["process"] == "worker" and line["service"] == "dispatch" and line["span_id"]
               for line in dispatch)
    # notify hears of the case from dispatch's events, recorded while dispatch handled intake's
    notify = wait_for(lambda: handled_in_trace("notify") or None, timeout=30, message="notify's log line")
    assert any(line["event_type"].startswith("dispatch.case.") for line in notify), notify
    assert all(line["outcome"] == "processed" and line["event_id"] and line["queue"].startswith("notify.")
               for line in notify)


def test_every_process_logs_its_start_as_one_json_line(observed):
    for service in observed.urls:
        web = [line for line in log_lines(observed.logs / f"{service}-web.log") if line.get("message") == "web started"]
        worker = [line for line in log_lines(observed.logs / f"{service}-worker.log")
                  if line.get("message") == "worker started"]
        for line, process in ((web[0] if web else None, "web"), (worker[0] if worker else None, "worker")):
            assert line is not None, f"{service} {process} logged no start line"
            assert (line["service"], line["process"]) == (service, process)
            assert line["version"] and line["bind"] and line["pid"]
        # gunicorn's own lines are JSON too
        assert any(line.get("logger") == "gunicorn.error" and "Booting worker" in line["message"]
                   for line in log_lines(observed.logs / f"{service}-web.log"))


# --------------------------------------------------------------------------
# graceful shutdown (last: these stop processes)
# --------------------------------------------------------------------------


def terminate(platform, name: str) -> int:
    """SIGTERM to the process itself (as a container runtime sends it to PID 1); its exit code."""
    proc = platform.processes[name]
    os.kill(proc.pid, signal.SIGTERM)
    return proc.wait(timeout=GRACE + 30)


def lines_of(platform: Platform, name: str) -> list[dict]:
    return log_lines(platform.logs / f"{name}.log")


def column(platform, service: str, query: str) -> list[str]:
    db = Database(platform.env[f"GRIDGOV_{service.upper()}_DATABASE_URL"])
    try:
        with db.engine.connect() as conn:
            return [row[0] for row in conn.execute(text(query))]
    finally:
        db.dispose()


def test_workers_stopped_during_a_stream_of_events_lose_none_and_handle_none_twice(observed, journey):
    platform = observed
    token = requests.post(platform.url("identity", "/tokens"), timeout=30, json={
        "grant_type": "password", "username": "obs-root", "password": "obs-root-password"}).json()
    admin = {"Authorization": f"Bearer {token['access_token']}"}
    registrations = "SELECT event_id FROM outbox WHERE routing_key = 'identity.user.registered.v1'"
    before = set(column(platform, "identity", registrations))
    created: list[str] = []
    refused: list[str] = []

    def stream() -> None:  # identity records a user.registered per account; grids' worker applies each
        for i in range(STAFF):
            answer = requests.post(platform.url("identity", "/users"), headers=admin, timeout=30,
                                   json={"kind": "staff", "name": f"员工{i}", "phone": f"1370010{i:04d}"})
            (created if answer.status_code == 201 else refused).append(answer.text[:300])

    streaming = threading.Thread(target=stream)
    streaming.start()
    try:
        wait_for(lambda: len(created) >= STAFF // 3, timeout=120, message="the stream to be under way")
        # Both ends of the stream at once: identity's relay publishing, grids' consumer handling.
        assert terminate(platform, "identity-worker") == 0
        assert terminate(platform, "grids-worker") == 0
        platform.start_worker("identity")
        platform.start_worker("grids")
    finally:
        streaming.join(timeout=300)
    assert not refused and len(created) == STAFF, refused[:3]

    registered = set(column(platform, "identity", registrations)) - before
    assert len(registered) == STAFF

    def all_applied():
        return registered <= set(column(platform, "grids", "SELECT event_id FROM inbox "
                                                           "WHERE consumer = 'grids.people'")) or None

    wait_for(all_applied, timeout=120, message="every registration to reach grids")  # none lost

    def logged() -> collections.Counter:  # written after the commit and the ack
        return collections.Counter((line["event_id"], line["outcome"]) for line in lines_of(platform, "grids-worker")
                                   if line.get("message") == "event handled" and line["event_id"] in registered)

    handled = wait_for(lambda: (h := logged()) and {event_id for event_id, _ in h} == registered and h,
                       timeout=30, interval=0.2, message="a log line for every registration grids handled")
    assert all(handled[(event_id, "processed")] == 1 for event_id in registered)  # none twice
    # Nothing handled was left unacknowledged by the stopped worker to come back again.
    assert not [key for key in handled if key[1] != "processed"], handled
    for name in ("identity-worker", "grids-worker"):
        messages = [line.get("message") or "" for line in lines_of(platform, name)]
        assert "worker stopped" in messages, name
        assert not [m for m in messages if "within the grace period" in m or "not flushed" in m], name


def read_response(conn: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, from a connection that stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(rest) < length:
        rest += conn.recv(65536)
    return head


def test_gunicorn_stopped_with_a_request_in_flight_still_answers_it(observed):
    platform = observed
    web = urlsplit(platform.url("identity"))
    body = json.dumps({"phone": "13912349999", "purpose": "register"}).encode()
    with socket.create_connection((web.hostname, web.port), timeout=30) as conn:
        # A gunicorn worker holds this connection (kept alive after a first answer) ...
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: identity\r\n\r\n")
        assert read_response(conn).startswith(b"HTTP/1.1 200")
        # ... and is reading a request's body, half sent, when the signal comes.
        conn.sendall(b"POST /codes HTTP/1.1\r\nHost: identity\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[:10])
        master = platform.processes["identity-web"]
        os.kill(master.pid, signal.SIGTERM)
        wait_for(lambda: any(line.get("message") == "Handling signal: term"
                             for line in lines_of(platform, "identity-web")),
                 timeout=30, message="gunicorn to take the signal")
        conn.sendall(body[10:])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.split(b" ", 2)[1] == b"202", answer[:500]
    assert master.wait(timeout=GRACE + 30) == 0
