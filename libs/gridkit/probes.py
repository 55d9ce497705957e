"""What every process answers to Kubernetes and Prometheus: ``/healthz``, ``/readyz``, ``/metrics``.

The web app serves them through Flask (:mod:`gridkit.web`); ``gridgov worker``
through the tiny WSGI app here, on ``GRIDGOV_WORKER_BIND`` (``0.0.0.0:9000``).
Both use :func:`readiness`, so "ready" means the same thing everywhere: the
service's database and broker answer, and, in a worker, every thread it runs
(outbox relay, consumer, sweeps) is alive, the consumer consuming.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, make_wsgi_app

from .problems import PROBLEM_CONTENT_TYPE, Problem

log = logging.getLogger(__name__)

OK = "ok"


def readiness(runtime, threads: Iterable[threading.Thread] | None = None) -> dict[str, str]:
    """Each check by name: ``"ok"`` or what is wrong (never raises).

    A web process (``threads`` None) needs only its database: what it changes goes out
    through the outbox, which keeps events while the broker is away, so a broker outage
    must not take every web pod out of service (nor cost an AMQP connection per probe).
    A worker (its ``threads`` given) needs the broker too, and every thread alive."""
    checks: dict[str, str] = {}
    needs = [("database", runtime.db.ping)] + ([("bus", runtime.bus.ping)] if threads is not None else [])
    for name, check in needs:
        try:
            check()
            checks[name] = OK
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks[name] = f"unavailable: {type(exc).__name__}"
    if threads is not None:
        threads = list(threads)
        if not threads:
            checks["threads"] = "not started"
        for thread in threads:
            checks[thread.name] = OK if thread.is_alive() else "stopped"
        consumer = runtime.extras.get("worker")
        if consumer is not None and not consumer.ready.is_set():
            checks["consuming"] = "not consuming: connecting to the broker"
    return checks


def not_ready(checks: dict[str, str]) -> Problem:
    """The RFC 7807 answer to a failed readiness probe, naming what is not ready."""
    down = sorted(name for name, value in checks.items() if value != OK)
    return Problem(503, f"not ready: {', '.join(down)}", type="not-ready", checks=checks,
                   headers={"Retry-After": "5"})


def worker_app(runtime, threads: Callable[[], Iterable[threading.Thread]]):
    """The worker's WSGI app: ``/healthz``, ``/readyz`` and its own process's ``/metrics``."""
    metrics = make_wsgi_app(REGISTRY)
    service = runtime.spec.name

    def app(environ: dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            return _json(start_response, 200, {"status": "ok", "service": service, "process": "worker"})
        if path == "/readyz":
            checks = readiness(runtime, threads())
            if all(value == OK for value in checks.values()):
                return _json(start_response, 200, {"status": "ready", "checks": checks})
            problem = not_ready(checks)
            return _json(start_response, 503, problem.body(instance=path), PROBLEM_CONTENT_TYPE,
                         problem.headers)
        missing = Problem(404, f"{path} is not served by a worker (/healthz, /readyz, /metrics)",
                          type="not-found")
        return _json(start_response, 404, missing.body(instance=path), PROBLEM_CONTENT_TYPE)

    return app


def _json(start_response, status: int, body: dict[str, Any], content_type: str = "application/json",
          headers: dict[str, str] | None = None) -> list[bytes]:
    data = json.dumps(body, ensure_ascii=False).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(data))),
                                          ("Cache-Control", "no-store"), *(headers or {}).items()])
    return [data]


class ProbeServer:
    """A threaded HTTP server for :func:`worker_app`, in a daemon thread."""

    def __init__(self, app, bind: str):
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Handler(WSGIRequestHandler):
            def version_string(self) -> str:  # no server name and version to whoever asks
                return "gridgov"

        host, port = parse_bind(bind)
        self.server = make_server(host, port, app, threaded=True, request_handler=Handler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name="probes", daemon=True)

    def start(self) -> ProbeServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def parse_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[::]:9000`` for IPv6) → ``(host, port)``."""
    host, _, port = bind.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"GRIDGOV_WORKER_BIND ({bind!r}) must be host:port, e.g. 0.0.0.0:9000")
    return host.strip("[]") or "0.0.0.0", int(port)
