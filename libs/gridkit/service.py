"""A service is declared once; the kit builds its app, worker and migrations.

Each service's ``service.py`` holds a :class:`ServiceSpec`::

    spec = ServiceSpec(name="grids", description=..., base=Base, catalogue=catalogue,
                       subscriptions=subscriptions, blueprints=lambda: [api.blp],
                       migrations=Path(__file__).parent / "migrations", port=8002)

:class:`Runtime` is the composition root: settings, database, bus, outbox,
inbox, token verifier, and whatever the service adds in ``setup``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from flask import current_app
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric

from . import access, metrics, migrations, privacy
from .access import RevokedAccess
from .auth import TokenVerifier
from .bus import Bus
from .config import Settings
from .consumer import Subscriptions, Worker
from .crypto import Sealed
from .db import METADATA, Database
from .events import Catalogue
from .outbox import Inbox, Outbox, Relay

log = logging.getLogger(__name__)


@dataclass
class ServiceSpec:
    name: str
    description: str
    base: Any  # the service's declarative base (its metadata holds outbox + inbox)
    catalogue: Catalogue
    blueprints: Callable[[], list]
    migrations: Path
    port: int
    outbox: Outbox
    inbox: Inbox
    subscriptions: Subscriptions | None = None
    # Called with the Runtime once it is built (e.g. load signing keys, build an index).
    setup: Callable[[Runtime], None] | None = None
    # Loops that run beside the relay and the consumers in `gridgov worker` (and in
    # embedded mode), e.g. a deadline sweep or a delivery loop: each is called as
    # ``loop(runtime, stop)`` in its own thread and returns once ``stop`` is set.
    background: list[Callable[[Runtime, threading.Event], None]] = field(default_factory=list)
    # What the service holds about people, to export and to erase (gridkit.privacy);
    # privacy.HOLDS_NOTHING when it keeps nothing. Every registered service declares one.
    personal_data: privacy.PersonalData | None = None
    # The service's own figures from its database, for Prometheus (the business figures
    # of "一屏知社区"): each is called as ``collector(runtime)`` when the worker process is
    # scraped, at most every GRIDGOV_METRICS_CACHE_SECONDS, and returns metric families
    # (prometheus_client.core.GaugeMetricFamily, …) with bounded labels only.
    collectors: list[Callable[[Runtime], Iterable[Metric]]] = field(default_factory=list)
    # Every column (or value inside one) holding values sealed with a data key: what
    # `gridgov rekey` re-seals under the current key after a rotation (gridkit.rekey).
    sealed: Sequence[Sealed] = ()
    # The service's share of the demo county (``make run``, gridkit.demo): called once the
    # places and people exist as ``demo(runtime, context)`` with context {"communities":
    # [{"code", "name"}], "resident_id"}; returns {"people": [...]} for identity to create
    # (identity.demo.seed's shape) and {"accounts": [...]} to show in the banner.
    demo: Callable[[Runtime, dict], dict] | None = None

    def __post_init__(self) -> None:
        # Every service obeys identity's account lifecycle: the kit subscribes it.
        self.subscriptions = self.subscriptions or Subscriptions(self.name)
        access.subscribe(self.subscriptions, self.base.metadata)
        privacy.subscribe(self)
        for sealed in self.sealed:  # a misspelt column fails at import, not in the middle of a rotation
            table = self.base.metadata.tables.get(sealed.table)
            if table is None or any(name not in table.c for name in sealed.columns):
                raise ValueError(f"{self.name}: sealed {sealed.label} names a table or column it does not have")


@dataclass
class Runtime:
    spec: ServiceSpec
    settings: Settings
    db: Database
    bus: Bus
    verifier: TokenVerifier
    revoked_access: RevokedAccess
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, spec: ServiceSpec, settings: Settings | None = None, *,
              verifier: TokenVerifier | None = None, migrate: bool = False) -> Runtime:
        settings = settings or Settings.from_env(spec.name)
        db = Database(settings.database_url)
        runtime = cls(
            spec=spec,
            settings=settings,
            db=db,
            bus=Bus(settings.bus_url, timeout=settings.broker_timeout, queue_type=settings.queue_type),
            verifier=verifier or TokenVerifier.from_url(
                settings.jwks_url, issuer=settings.token_issuer, audience=settings.token_audience),
            revoked_access=RevokedAccess(spec.name, db, spec.base.metadata),
        )
        # Kit helpers find the service's tables (audit trail, revocations) through the session,
        # and the handlers the kit runs for every service (erasure) the runtime.
        runtime.share_with_sessions(**{METADATA: spec.base.metadata, privacy.RUNTIME: runtime})
        if migrate:
            runtime.migrate()
        if spec.setup:
            spec.setup(runtime)
        return runtime

    def share_with_sessions(self, **values: Any) -> None:
        """Put ``values`` in the ``info`` of every session this runtime opens, beside what is
        there already: event handlers get only a session, and find what they need in it."""
        self.db.sessions.configure(info={**(self.db.sessions.kw.get("info") or {}), **values})

    @property
    def outbox(self) -> Outbox:
        return self.spec.outbox

    def migrate(self) -> None:
        """Bring the database to the latest schema and declare this service's queues.

        Declaring queues at deploy time, before any worker runs, means nothing
        published meanwhile is unroutable for this consumer.
        """
        migrations.upgrade(self.spec.migrations, self.settings.database_url)
        if self.spec.subscriptions and self.spec.subscriptions.queues:
            self.bus.declare_queues({q.queue: q.bindings for q in self.spec.subscriptions.queues.values()})

    def relay(self, **kwargs) -> Relay:
        kwargs.setdefault("retention", timedelta(days=self.settings.outbox_retention_days))
        return Relay(self.spec.name, self.db, self.spec.outbox, self.bus, **kwargs)

    def worker(self, **kwargs) -> Worker | None:
        if not self.spec.subscriptions or not self.spec.subscriptions.queues:
            return None
        return Worker(self.spec.subscriptions, self.db, self.spec.inbox, self.bus,
                      max_attempts=self.settings.max_delivery_attempts, **kwargs)

    def measure_at_scrape(self, registry: CollectorRegistry = REGISTRY) -> None:
        """What the worker process's ``/metrics`` reads when scraped: the outbox's backlog,
        the depth and dead letters of each of the service's queues, and the service's own
        figures (``ServiceSpec.collectors``). Web processes measure none of these: they
        would each run the same queries, and their counters are aggregated from files."""
        name, ttl = self.spec.name, self.settings.metrics_cache_seconds
        metrics.measure_at_scrape(f"{name} outbox", self.outbox.measure(name, self.db), ttl=ttl, registry=registry)
        if self.spec.subscriptions and self.spec.subscriptions.queues:
            metrics.measure_at_scrape(f"{name} queues", self.spec.subscriptions.measure(self.bus), ttl=ttl,
                                      registry=registry)
        for collector in self.spec.collectors:
            metrics.measure_at_scrape(f"{name} {getattr(collector, '__name__', 'collector')}",
                                      partial(collector, self), ttl=ttl, registry=registry)

    def app(self, testing: bool = False):
        from .web import create_app

        return create_app(self.spec, self, testing=testing)

    def start_background(self) -> list[threading.Thread]:
        """Relay and worker as daemon threads (`gridgov worker`, embedded mode, tests)."""
        threads = []
        relay = self.relay()
        self.extras["relay"] = relay
        t = threading.Thread(target=relay.run_forever, name=f"relay-{self.spec.name}", daemon=True)
        t.start()
        threads.append(t)
        self.extras["relay_thread"] = t
        worker = self.worker()
        if worker:
            self.extras["worker"] = worker
            self.extras["worker_thread"] = worker.start_in_thread()
            threads.append(self.extras["worker_thread"])
        stop = self.extras.setdefault("stop", threading.Event())
        loops = list(self.spec.background)
        if worker:
            loops.append(self.spec.inbox.forget_processed)  # every consumer's inbox, kept bounded
            loops.append(access.forget_old)
        for loop in loops:
            t = threading.Thread(target=loop, args=(self, stop), name=f"{self.spec.name}-{loop.__name__}",
                                 daemon=True)
            t.start()
            threads.append(t)
        self.extras["threads"] = threads
        return threads

    def stop_background(self, grace: float = 5.0) -> None:
        """Stop in the order that loses nothing, within ``grace`` seconds in all.

        The consumer first: it takes no new message, and settles (handles and acks) what
        it holds; messages prefetched but not yet taken go back to the queue when its
        connection closes. Then the loops beside it (sweeps, deliveries) finish their
        round. The relay last: it finishes its batch and publishes what is pending, so
        the events the last handlers recorded go out now rather than with the next
        worker. Whatever is still running at the deadline is left to die with the process:
        unacked messages are redelivered (the inbox skips what was handled) and
        unpublished events wait in the outbox."""
        deadline = time.monotonic() + grace

        def join(thread: threading.Thread | None) -> bool:
            if thread is not None:
                thread.join(timeout=max(deadline - time.monotonic(), 0))
                return not thread.is_alive()
            return True

        threads = self.extras.pop("threads", [])
        if worker := self.extras.get("worker"):
            worker.stop()
            if not join(self.extras.get("worker_thread")):
                log.warning("the consumer did not stop within the grace period", extra={"grace_seconds": grace})
        if stop := self.extras.get("stop"):
            stop.set()
        relay = self.extras.get("relay")
        relay_thread = self.extras.get("relay_thread")
        for thread in threads:
            if thread is not relay_thread:
                join(thread)
        if relay:
            relay.stop()
            if join(relay_thread):
                relay.flush(deadline)
            relay.close()


def runtime() -> Runtime:
    """The running service's Runtime, inside a request."""
    return current_app.extensions["gridgov"]
