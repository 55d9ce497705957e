"""Live push over Server-Sent Events from a real HTTP server."""

import json
import queue
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server

from contracts.dispatch import CASE_ASSIGNED
from gridkit.config import Settings
from gridkit.service import Runtime
from gridkit.testkit import wait_for
from notify.service import spec
from notify.stream import NOTICES_CHANNEL, notify_payloads
from notify.tables import Notice
from notify.testing import case_data, feed, soon


@pytest.fixture
def notify_runtime(make_runtime, channel_settings):
    # Short heartbeats: a client that hangs up is noticed at the next write.
    return make_runtime(spec, db="postgres", extra=channel_settings | {"GRIDGOV_NOTIFY_HEARTBEAT_SECONDS": "0.2"})


@pytest.fixture
def server(notify_runtime):
    http = make_server("127.0.0.1", 0, notify_runtime.app(), threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()


class StreamReader:
    """Reads an SSE response in a thread; events land in a queue with their arrival time."""

    def __init__(self, url, headers):
        self.events: queue.Queue = queue.Queue()
        self.comments: list[str] = []
        self.response = requests.get(url, headers=headers, stream=True, timeout=10)
        self.connected = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.connected.wait(5), "stream never opened"

    def _read(self):
        try:
            self._parse()
        except Exception:  # noqa: BLE001 - the test hung up
            pass

    def _parse(self):
        fields = {}
        for line in self.response.iter_lines(decode_unicode=True):
            if line.startswith(":"):
                self.comments.append(line)
                self.connected.set()
            elif line == "":
                if "data" in fields:
                    self.events.put((time.monotonic(), fields))
                fields = {}
            else:
                key, _, value = line.partition(": ")
                fields[key] = value

    def next(self, timeout=3.0):
        arrived, fields = self.events.get(timeout=timeout)
        return arrived, fields["event"], int(fields["id"]), json.loads(fields["data"])


def offer(runtime, worker):
    return feed(runtime, CASE_ASSIGNED, case_data() | {"offered_to": [worker], "claim_due": soon(), "by": None})


def test_a_connected_worker_receives_an_offer_within_a_second(server, notify_runtime, person):
    worker, headers = person()
    stream = StreamReader(f"{server}/me/notifications/stream", headers)
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    offer(notify_runtime, worker)
    handled = time.monotonic()
    arrived, event, event_id, notice = stream.next()
    assert event == "notice" and notice["kind"] == "case_offered" and notice["id"] == event_id
    assert arrived - handled < 1.0
    stream.response.close()


def test_a_notice_written_by_another_process_reaches_the_stream_within_a_second(
        server, notify_runtime, person, tokens):
    # A second runtime on the same database stands for the worker process: no
    # in-process wake-up reaches this server's broadcaster, only its poll.
    other = Runtime.build(spec, Settings(service="notify", database_url=notify_runtime.settings.database_url,
                                         bus_url=notify_runtime.settings.bus_url,
                                         data_dir=notify_runtime.settings.data_dir),
                          verifier=tokens.verifier())
    try:
        worker, headers = person()
        stream = StreamReader(f"{server}/me/notifications/stream", headers)
        offer(other, worker)
        handled = time.monotonic()
        arrived, _, _, notice = stream.next()
        assert notice["kind"] == "case_offered" and arrived - handled < 1.0
        stream.response.close()
    finally:
        other.db.dispose()


def test_a_stream_sends_only_its_own_users_notices_and_resumes_after_last_event_id(
        server, notify_runtime, person):
    worker, headers = person()
    other, _ = person()
    stream = StreamReader(f"{server}/me/notifications/stream", headers)
    offer(notify_runtime, other)
    offer(notify_runtime, worker)
    _, _, first_id, _ = stream.next()
    with pytest.raises(queue.Empty):
        stream.next(timeout=0.5)
    stream.response.close()
    offer(notify_runtime, worker)  # while disconnected
    resumed = StreamReader(f"{server}/me/notifications/stream", headers | {"Last-Event-ID": str(first_id)})
    _, _, missed_id, _ = resumed.next()
    assert missed_id > first_id
    resumed.response.close()


def test_an_idle_stream_sends_heartbeats_and_ends_so_the_client_reconnects(make_runtime, channel_settings,
                                                                           person, tokens):
    runtime = make_runtime(spec, db="postgres", extra=channel_settings | {
        "GRIDGOV_NOTIFY_STREAM_SECONDS": "1.2", "GRIDGOV_NOTIFY_HEARTBEAT_SECONDS": "0.3"})
    client = runtime.app(testing=True).test_client()
    response = client.get("/me/notifications/stream", headers=tokens.header(("resident", "county")))
    body = response.get_data(as_text=True)  # returns once the stream's lifetime is over
    assert body.startswith("retry: 3000") and body.count(": heartbeat") >= 2


def send_payload(runtime, notices: list[dict]) -> None:
    import psycopg

    with psycopg.connect(runtime.settings.database_url, autocommit=True) as conn:
        for payload in notify_payloads(notices):
            conn.execute("SELECT pg_notify(%s, %s)", (NOTICES_CHANNEL, payload))


def test_a_notice_in_a_payload_is_pushed_as_it_came_and_a_bare_id_is_read_from_the_inbox(
        server, notify_runtime, person):
    worker, headers = person()
    stream = StreamReader(f"{server}/me/notifications/stream", headers)
    wait_for(lambda: notify_runtime.extras["broadcaster"]._listener is not None, message="the broadcaster to LISTEN")
    # Not in the table at all: only the payload can have brought it.
    carried = {"id": 10**9, "recipient_id": worker, "kind": "case_offered", "critical": False, "title": "t",
               "body": "b", "case_id": "c", "petition_id": "p", "created_at": "2026-01-01T00:00:00+00:00",
               "read": False}
    send_payload(notify_runtime, [carried])
    _, _, event_id, notice = stream.next()
    assert event_id == 10**9 and notice == {k: v for k, v in carried.items() if k != "recipient_id"}

    # Written without a payload (as if too large to carry): its bare id makes the stream read it.
    with notify_runtime.db.transaction() as session:
        quiet = Notice(recipient_id=worker, kind="case_offered", critical=False, title="t", body="b",
                       event_id="quiet-1")
        session.add(quiet)
    send_payload(notify_runtime, [{"id": quiet.id, "recipient_id": worker}])
    arrived, _, event_id, notice = stream.next(timeout=2)
    assert event_id == quiet.id and notice["title"] == "t"  # long before a backstop scan (5 s)
    stream.response.close()


def test_payloads_stay_under_the_notify_limit_and_oversized_notices_travel_as_ids():
    small = [{"id": i, "recipient_id": "u", "body": "网格" * 100} for i in range(40)]
    huge = {"id": 99, "recipient_id": "u", "body": "x" * 9000}

    payloads = notify_payloads(small + [huge])

    assert all(len(p.encode()) < 8000 for p in payloads) and len(payloads) > 1
    carried = [n for p in payloads for n in json.loads(p)]
    assert carried[:40] == small and carried[40] == {"id": 99, "recipient_id": "u"}


def test_the_worker_sends_every_notice_of_a_commit_in_its_payloads(notify_runtime):
    # What the streams of every process hear: a commit's notices, each as the table holds it,
    # in payloads (more than one when many are written at once) sent with the commit.
    import psycopg

    supervisors = [f"supervisor-{i}" for i in range(60)]
    with psycopg.connect(notify_runtime.settings.database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTICES_CHANNEL}")
        feed(notify_runtime, CASE_ASSIGNED, case_data() | {"offered_to": supervisors, "claim_due": soon(), "by": None})
        payloads: list[str] = []
        deadline = time.monotonic() + 5
        while sum(len(json.loads(p)) for p in payloads) < 60 and time.monotonic() < deadline:
            payloads += [n.payload for n in listener.notifies(timeout=0.5)]
    carried = [notice for payload in payloads for notice in json.loads(payload)]
    assert len(payloads) > 1 and len(carried) == 60
    with notify_runtime.db.sessions() as session:
        written = {n.id: n for n in session.query(Notice)}
    for notice in carried:
        row = written[notice["id"]]
        assert (notice["recipient_id"], notice["title"], notice["body"]) == (row.recipient_id, row.title, row.body)
    assert "认领" in carried[0]["title"]
