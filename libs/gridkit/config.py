"""Settings from environment variables, with embedded defaults.

Embedded mode (the default) needs no servers: kombu's in-memory transport
and one SQLite file per service under ``GRIDGOV_DATA_DIR``. Production sets
``GRIDGOV_BUS_URL`` to RabbitMQ and ``GRIDGOV_<SERVICE>_DATABASE_URL`` to
PostgreSQL; nothing else changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    service: str
    database_url: str
    bus_url: str = "memory://localhost/"
    data_dir: Path = Path("data")
    # identity's JWKS: other services verify tokens locally against it.
    identity_url: str = "http://127.0.0.1:8001"
    jwks_url: str = ""
    token_issuer: str = "gridgov-identity"
    token_audience: str = "gridgov"
    # Symmetric key (urlsafe base64, 32 bytes) for personal data at rest.
    data_key: str = ""
    # Older data keys, comma-separated: they still open what they sealed, never seal
    # (a rotation's window, until `gridgov rekey` has re-sealed everything; gridkit.crypto).
    data_key_previous: str = ""
    queue_type: str = "classic"  # "quorum" in production RabbitMQ clusters
    max_delivery_attempts: int = 5
    broker_timeout: float = 3.0
    log_level: str = "INFO"
    max_request_bytes: int = 16 * 1024 * 1024
    # Reverse proxies in front of the service (X-Forwarded-For is trusted this
    # many hops deep); per-client limits need the real client address.
    trusted_proxies: int = 0
    # Published events stay in the outbox this long (to see what went out), then go.
    outbox_retention_days: float = 7.0
    # Processed event ids stay this long (redeliveries are skipped), then go; longer
    # than the outbox's, since a producer may replay what it still keeps.
    inbox_retention_days: float = 30.0
    # Where the people live: times written for them (notices, timelines) and working
    # hours are local to this IANA zone; every stored and API time stays an instant.
    timezone: str = "Asia/Shanghai"
    # Figures measured at scrape time (outbox backlog, queue depths, business figures)
    # are read at most this often, however often Prometheus scrapes.
    metrics_cache_seconds: float = 15.0
    # Where `gridgov worker` serves /metrics, /healthz and /readyz (host:port).
    worker_bind: str = "0.0.0.0:9000"
    # On SIGTERM the worker finishes what it holds within this (Kubernetes'
    # terminationGracePeriodSeconds must be longer; gunicorn's graceful_timeout is the same).
    worker_grace_seconds: float = 20.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, service: str, **overrides) -> Settings:
        data_dir = Path(_env("GRIDGOV_DATA_DIR", "data"))  # type: ignore[arg-type]
        key = service.upper()
        db_default = f"sqlite:///{(data_dir / f'{service}.db').absolute()}"
        identity_url = _env("GRIDGOV_IDENTITY_URL", "http://127.0.0.1:8001")
        settings = cls(
            service=service,
            database_url=_env(f"GRIDGOV_{key}_DATABASE_URL", _env("GRIDGOV_DATABASE_URL", db_default)),  # type: ignore[arg-type]
            bus_url=_env("GRIDGOV_BUS_URL", "memory://localhost/"),  # type: ignore[arg-type]
            data_dir=data_dir,
            identity_url=identity_url,  # type: ignore[arg-type]
            jwks_url=_env("GRIDGOV_JWKS_URL", f"{identity_url}/.well-known/jwks.json"),  # type: ignore[arg-type]
            token_issuer=_env("GRIDGOV_TOKEN_ISSUER", "gridgov-identity"),  # type: ignore[arg-type]
            token_audience=_env("GRIDGOV_TOKEN_AUDIENCE", "gridgov"),  # type: ignore[arg-type]
            data_key=_env("GRIDGOV_DATA_KEY", "") or "",
            data_key_previous=_env("GRIDGOV_DATA_KEY_PREVIOUS", "") or "",
            queue_type=_env("GRIDGOV_QUEUE_TYPE", "classic"),  # type: ignore[arg-type]
            max_delivery_attempts=int(_env("GRIDGOV_MAX_DELIVERY_ATTEMPTS", "5")),  # type: ignore[arg-type]
            broker_timeout=float(_env("GRIDGOV_BROKER_TIMEOUT", "3")),  # type: ignore[arg-type]
            log_level=_env("GRIDGOV_LOG_LEVEL", "INFO"),  # type: ignore[arg-type]
            trusted_proxies=int(_env("GRIDGOV_TRUSTED_PROXIES", "0")),  # type: ignore[arg-type]
            outbox_retention_days=float(_env("GRIDGOV_OUTBOX_RETENTION_DAYS", "7")),  # type: ignore[arg-type]
            inbox_retention_days=float(_env("GRIDGOV_INBOX_RETENTION_DAYS", "30")),  # type: ignore[arg-type]
            timezone=_env("GRIDGOV_TIMEZONE", "Asia/Shanghai"),  # type: ignore[arg-type]
            metrics_cache_seconds=float(_env("GRIDGOV_METRICS_CACHE_SECONDS", "15")),  # type: ignore[arg-type]
            worker_bind=_env("GRIDGOV_WORKER_BIND", "0.0.0.0:9000"),  # type: ignore[arg-type]
            worker_grace_seconds=float(_env("GRIDGOV_WORKER_GRACE_SECONDS", "20")),  # type: ignore[arg-type]
        )
        return replace(settings, **overrides) if overrides else settings

    def __post_init__(self) -> None:
        if self.inbox_retention_days < self.outbox_retention_days:
            # A replay of a producer's kept events would then apply forgotten ones twice.
            raise ValueError(f"GRIDGOV_INBOX_RETENTION_DAYS ({self.inbox_retention_days:g}) must be at least "
                             f"GRIDGOV_OUTBOX_RETENTION_DAYS ({self.outbox_retention_days:g})")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"GRIDGOV_TIMEZONE ({self.timezone!r}) is not an IANA time zone, "
                             "e.g. Asia/Shanghai") from None

    @property
    def tz(self) -> ZoneInfo:
        """The local time zone (``GRIDGOV_TIMEZONE``); ZoneInfo keeps one instance per name."""
        return ZoneInfo(self.timezone)

    @property
    def embedded(self) -> bool:
        return self.bus_url.startswith("memory://")
