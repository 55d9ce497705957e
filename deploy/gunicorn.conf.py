"""gunicorn settings shared by every gridgov service.

Prometheus multiprocess mode: each worker writes its samples under
PROMETHEUS_MULTIPROC_DIR and /metrics aggregates them, so counters are right
whichever worker answers the scrape.

No ``Server`` header: gunicorn writes one on every answer and has no setting to
leave it out, so this file drops it (the workers inherit the change).
"""

import os
import shutil
import tempfile

bind = os.environ.get("GRIDGOV_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GRIDGOV_WEB_WORKERS", "2"))
threads = int(os.environ.get("GRIDGOV_WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs each request as JSON
limit_request_line = 8190


def _without_server_banner() -> None:
    from gunicorn.http import wsgi

    default_headers = wsgi.Response.default_headers

    def headers_without_server(self):
        return [line for line in default_headers(self) if not line.lower().startswith("server:")]

    wsgi.Response.default_headers = headers_without_server


_without_server_banner()

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gridgov-metrics-")


def on_starting(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
