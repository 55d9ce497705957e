"""`gridgov worker`'s own /healthz, /readyz and /metrics (gridkit.probes), on the sample service."""

import threading

import pytest
from werkzeug.test import Client

from gridkit import probes
from gridkit.config import Settings
from gridkit.service import Runtime

from .sample_service import spec


@pytest.fixture
def runtime(tmp_path, tokens):
    settings = Settings(service="sample", database_url=f"sqlite:///{tmp_path}/sample.db")
    runtime = Runtime.build(spec, settings, verifier=tokens.verifier())
    return runtime


def thread(name: str, alive: bool) -> threading.Thread:
    done = threading.Event()
    t = threading.Thread(target=done.wait, name=name, daemon=True)
    if alive:
        t.start()
    return t


def test_a_worker_is_ready_when_its_database_bus_and_threads_are(runtime):
    client = Client(probes.worker_app(runtime, lambda: [thread("relay-sample", True)]))
    assert client.get("/healthz").json == {"status": "ok", "service": "sample", "process": "worker"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "bus": "ok", "relay-sample": "ok"}


def test_a_worker_whose_relay_stopped_is_not_ready_and_says_so_in_a_problem(runtime):
    client = Client(probes.worker_app(runtime, lambda: [thread("relay-sample", False)]))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.content_type == "application/problem+json"
    assert answer.json["type"].endswith("/not-ready")
    assert answer.json["checks"]["relay-sample"] == "stopped"
    assert "relay-sample" in answer.json["detail"]


def test_a_worker_that_has_not_started_its_threads_is_not_ready(runtime):
    answer = Client(probes.worker_app(runtime, lambda: [])).get("/readyz")
    assert answer.status_code == 503 and answer.json["checks"]["threads"] == "not started"


def test_a_worker_serves_its_process_metrics_and_nothing_else(runtime):
    client = Client(probes.worker_app(runtime, lambda: []))
    text = client.get("/metrics").get_data(as_text=True)
    assert "# TYPE gridgov_events_consumed_total counter" in text
    missing = client.get("/cases")
    assert missing.status_code == 404 and missing.content_type == "application/problem+json"


@pytest.mark.parametrize("bind, expected", [("0.0.0.0:9000", ("0.0.0.0", 9000)), ("[::]:9100", ("::", 9100)),
                                            (":9000", ("0.0.0.0", 9000))])
def test_the_worker_bind_is_host_and_port(bind, expected):
    assert probes.parse_bind(bind) == expected


def test_a_worker_bind_without_a_port_is_refused():
    with pytest.raises(ValueError, match="GRIDGOV_WORKER_BIND"):
        probes.parse_bind("0.0.0.0")
