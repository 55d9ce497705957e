"""Prometheus metrics, correct under gunicorn with several workers.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn, see deploy/gunicorn.conf.py)
every worker writes its samples there and ``/metrics`` aggregates them.
"""

from __future__ import annotations

import os
from importlib import metadata

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter("gridgov_http_requests_total", "HTTP requests handled",
                        ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("gridgov_http_request_duration_seconds", "HTTP request latency",
                         ["service", "method", "route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
try:
    VERSION = metadata.version("gridgov")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.0.0"

SERVICE_INFO = Gauge("gridgov_service_info", "Service build information", ["service", "version"],
                     multiprocess_mode="max")


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
