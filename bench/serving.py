"""Start a service (grids, points) under gunicorn for latency figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from gridkit.config import Settings
from gridkit.processes import free_port
from gridkit.service import Runtime
from gridkit.testkit import Tokens

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKENS = Tokens()
_session = requests.Session()


@contextmanager
def jwks_server() -> Iterator[str]:
    """Serve the bench's signing key the way identity serves its JWKS."""
    body = json.dumps(TOKENS.jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()


@contextmanager
def grids_server(pg_url: str, county) -> Iterator[str]:
    from grids.importer import import_county
    from grids.service import spec

    settings = Settings(service="grids", database_url=pg_url, bus_url="memory://")
    runtime = Runtime.build(spec, settings, verifier=TOKENS.verifier(), migrate=True)
    started = time.perf_counter()
    import_county(runtime, county)
    print(f"county imported into PostgreSQL ({time.perf_counter() - started:.1f} s)", flush=True)
    runtime.db.dispose()
    with service_server("grids", pg_url, [("grid_worker", "county")]) as base:
        yield base


@contextmanager
def service_server(service: str, pg_url: str, grants: list[tuple[str, str]]) -> Iterator[str]:
    """``service`` under gunicorn (deploy/gunicorn.conf.py) on its migrated database; the
    requests of :func:`latencies` carry a token with ``grants``."""
    port = free_port()
    with jwks_server() as jwks_url, tempfile.TemporaryDirectory() as metrics_dir:
        env = dict(os.environ) | {
            f"GRIDGOV_{service.upper()}_DATABASE_URL": pg_url, "GRIDGOV_BUS_URL": "memory://",
            "GRIDGOV_JWKS_URL": jwks_url, "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
            "GRIDGOV_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), f'gridkit.wsgi:create("{service}")', "-c", "deploy/gunicorn.conf.py",
             "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(base + "/healthz", timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{service} did not start under gunicorn")
                time.sleep(0.2)
            _session.headers["Authorization"] = f"Bearer {TOKENS.issue(grants, ttl=3600)}"
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def latencies(base: str, paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        started = time.perf_counter()
        response = _session.get(base + path, timeout=10)
        out.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
    return out
