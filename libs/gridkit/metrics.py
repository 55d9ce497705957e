"""Prometheus metrics, correct under gunicorn with several workers.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn, see deploy/gunicorn.conf.py)
every worker writes its samples there and ``/metrics`` aggregates them.

Figures whose truth is in a database or in the broker (an outbox's backlog, a
queue's depth, a service's business figures) are measured when Prometheus
scrapes the worker process (:class:`AtScrape`), not counted in memory.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
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
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------
# measured at scrape time: figures that live in a database or the broker
# --------------------------------------------------------------------------

Measure = Callable[[], Iterable[Metric]]


class AtScrape(Collector):
    """Metric families read from where the truth is (a database, the broker) when
    Prometheus scrapes, rather than kept in the process: they are right after a restart,
    and an outbox whose relay has stopped still shows its age growing.

    Each measure runs at most once per ``ttl`` seconds whatever the scrape rate (several
    Prometheus servers, a dashboard refreshing), so a scrape stays cheap. A measure that
    fails (database down) is logged and gives nothing until it next succeeds: a stale
    figure would lie, and the process-down and readiness alerts say what is wrong.
    Families of the same name from several measures (embedded mode: every service in
    one process) are merged into one, as the exposition format requires."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._measures: list[tuple[str, Measure]] = []
        self._cache: dict[int, tuple[float, list[Metric]]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, measure: Measure) -> None:
        with self._lock:
            self._measures.append((name, measure))

    def describe(self) -> list[Metric]:
        return []  # no query when registering; names are the measures' own business

    def collect(self) -> list[Metric]:
        merged: dict[str, Metric] = {}
        with self._lock:  # one scrape measures at a time; the next finds the cache
            for index, (name, measure) in enumerate(self._measures):
                for family in self._measured(index, name, measure):
                    if family.name in merged:
                        merged[family.name].samples.extend(family.samples)
                    else:
                        merged[family.name] = copy.copy(family)
                        merged[family.name].samples = list(family.samples)
        return list(merged.values())

    def _measured(self, index: int, name: str, measure: Measure) -> list[Metric]:
        now = time.monotonic()
        cached = self._cache.get(index)
        if cached and now < cached[0]:
            return cached[1]
        try:
            families = list(measure())
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail for one measure
            log.warning("metrics not measured", extra={"measure": name, "error": f"{type(exc).__name__}: {exc}"})
            families = []
        self._cache[index] = (now + self.ttl, families)
        return families


_at_scrape: dict[int, AtScrape] = {}


def measure_at_scrape(name: str, measure: Measure, *, ttl: float,
                      registry: CollectorRegistry = REGISTRY) -> None:
    """Add ``measure`` to the registry's :class:`AtScrape` collector (made on first use)."""
    collector = _at_scrape.get(id(registry))
    if collector is None:
        collector = _at_scrape[id(registry)] = AtScrape(ttl)
        registry.register(collector)
    collector.add(name, measure)
