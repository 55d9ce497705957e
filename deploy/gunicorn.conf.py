"""gunicorn settings shared by every gridgov service.

Prometheus multiprocess mode: each worker writes its samples under
PROMETHEUS_MULTIPROC_DIR and /metrics aggregates them, so counters are right
whichever worker answers the scrape.

No ``Server`` header: gunicorn writes one on every answer and has no setting to
leave it out, so this file drops it (the workers inherit the change).

gunicorn's own lines (booting workers, signals, timeouts) are JSON in the same shape
as the app's (gridkit.logs.JsonFormatter), and the master logs one line when it is
ready: service, process, version, bind, pid.

Graceful shutdown: on SIGTERM gunicorn stops accepting and lets in-flight requests
finish for up to ``graceful_timeout`` seconds (Kubernetes' terminationGracePeriodSeconds
must be longer).
"""

import os
import re
import shutil
import sys
import tempfile
from importlib import metadata

from gunicorn import glogging

bind = os.environ.get("GRIDGOV_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GRIDGOV_WEB_WORKERS", "2"))
threads = int(os.environ.get("GRIDGOV_WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs each request as JSON
limit_request_line = 8190
# No control socket (gunicorn 25+ makes one under $HOME): the root filesystem of a pod is
# read-only, and processes are managed by signals from Kubernetes or compose.
control_socket_disable = True


def _without_server_banner() -> None:
    from gunicorn.http import wsgi

    default_headers = wsgi.Response.default_headers

    def headers_without_server(self):
        return [line for line in default_headers(self) if not line.lower().startswith("server:")]

    wsgi.Response.default_headers = headers_without_server


_without_server_banner()


def _service() -> str:
    """The service this gunicorn serves, from its app argument ``gridkit.wsgi:create("grids")``."""
    for arg in sys.argv[1:]:
        if match := re.search(r"""create\(\s*["'](\w+)["']""", arg):
            return match.group(1)
    return "gridgov"


class _JsonLogger(glogging.Logger):
    """gunicorn's logger, without its access line: the app logs each request itself, as
    JSON with its route, request id and trace (and a logging config turns gunicorn's on)."""

    access_log_enabled = False

    def access(self, resp, req, environ, request_time):
        pass


logger_class = _JsonLogger
SERVICE = _service()
_LEVEL = os.environ.get("GRIDGOV_LOG_LEVEL", "INFO").upper()
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "gridkit.logs.JsonFormatter", "service": SERVICE, "process": "web"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"level": _LEVEL, "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": _LEVEL, "handlers": ["stderr"], "propagate": False},
    },
}

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gridgov-metrics-")


def on_starting(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def when_ready(server):
    try:
        version = metadata.version("gridgov")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    server.log.info("web started", extra={"version": version, "bind": ",".join(server.cfg.bind),
                                          "pid": os.getpid(), "workers": server.cfg.workers})
