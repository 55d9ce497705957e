"""Embedded mode: every service in one process, no servers needed.

Each service keeps its own SQLite database under ``GRIDGOV_DATA_DIR`` and its
own HTTP port; they talk over kombu's in-memory transport exactly as they do
over RabbitMQ in production (same exchanges, queues, outbox and inbox).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from werkzeug.serving import WSGIRequestHandler, make_server

from . import logs, registry
from .config import Settings
from .service import Runtime

log = logging.getLogger("gridgov.embedded")


class QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's handler without its ``Server: Werkzeug/x.y Python/x.y`` banner."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())


def build_runtimes() -> dict[str, Runtime]:
    runtimes = {}
    for name in registry.available():
        settings = Settings.from_env(name)
        runtimes[name] = Runtime.build(registry.load(name), settings, migrate=True)
    return runtimes


def run_embedded(*, scale: float = 0.05, demo: bool = True, host: str = "127.0.0.1",
                 exit_after_start: bool = False) -> int:
    os.environ.setdefault("GRIDGOV_BUS_URL", "memory://localhost/")
    logs.configure("embedded", os.environ.get("GRIDGOV_LOG_LEVEL", "WARNING"))
    print("gridgov: preparing databases …", flush=True)
    runtimes = build_runtimes()
    for runtime in runtimes.values():
        runtime.measure_at_scrape()  # one process: every service's /metrics shows them all
        runtime.start_background()
    accounts: list[dict] = []
    if demo:
        from .demo import seed_demo

        accounts = seed_demo(runtimes, scale=scale)
    servers = []
    for name, runtime in runtimes.items():
        server = make_server(host, port_of(runtime), runtime.app(), threaded=True,
                             request_handler=QuietRequestHandler)
        threading.Thread(target=server.serve_forever, name=f"http-{name}", daemon=True).start()
        servers.append(server)
    _banner(runtimes, accounts, host)
    if exit_after_start:
        _shutdown(servers, runtimes)
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(1)
    _shutdown(servers, runtimes)
    return 0


def port_of(runtime: Runtime) -> int:
    return int(os.environ.get(f"GRIDGOV_{runtime.spec.name.upper()}_PORT", runtime.spec.port))


def _shutdown(servers, runtimes) -> None:
    for server in servers:
        server.shutdown()
    for runtime in runtimes.values():
        runtime.stop_background()
    time.sleep(0.2)


def _banner(runtimes: dict[str, Runtime], accounts: list[dict], host: str) -> None:
    print("\ngridgov is running (embedded: in-memory bus, SQLite under "
          f"{Settings.from_env('x').data_dir.absolute()})\n")
    for name, runtime in runtimes.items():
        base = f"http://{host}:{port_of(runtime)}"
        print(f"  {name:<9} {base}   (API doc {base}/openapi.json, metrics {base}/metrics)")
    if accounts:
        print("\nDemo accounts (log in with POST /tokens on identity):")
        for account in accounts:
            print(f"  {account['role']:<18} phone {account['phone']}  password {account['password']}"
                  f"  {account.get('note', '')}")
    print("\nPress Ctrl+C to stop.\n", flush=True)
