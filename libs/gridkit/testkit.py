"""pytest plugin: real PostgreSQL and RabbitMQ for every test run.

Loaded for the whole suite (``-p gridkit.testkit`` in pyproject). It never
skips: if PostgreSQL or RabbitMQ cannot be reached the tests that need them
fail, loudly.

* ``make_runtime(spec, db="postgres"|"sqlite", bus="amqp"|"memory")`` builds a
  migrated :class:`~gridkit.service.Runtime` on a fresh database (one per
  call; ``db=<another runtime's database_url>`` to share one) and, for AMQP, on
  this run's own vhost.
* ``tokens`` signs access tokens with a test key that every runtime built
  here trusts: ``tokens.issue(grants=[("grid_worker", "grid:7")])``.
* ``wait_for(predicate)`` polls with a deadline instead of sleeping.
* ``gridgov(settings, *args)`` runs the ``gridgov`` command in its own process,
  configured like a runtime built here (``make_runtime(...).settings``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .auth import TokenVerifier
from .config import Settings

PG_ADMIN_URL = os.environ.get("GRIDGOV_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("GRIDGOV_TEST_AMQP_HOST", "127.0.0.1:5672")
RUN_ID = uuid.uuid4().hex[:8]


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.02,
             message: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def gridgov(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``gridgov <args>`` as an operator runs it, against ``settings``' database and data keys."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GRIDGOV_")}
    env |= {f"GRIDGOV_{settings.service.upper()}_DATABASE_URL": settings.database_url,
            "GRIDGOV_BUS_URL": settings.bus_url, "GRIDGOV_DATA_DIR": str(settings.data_dir),
            "GRIDGOV_DATA_KEY": settings.data_key, "GRIDGOV_DATA_KEY_PREVIOUS": settings.data_key_previous,
            "GRIDGOV_LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "gridkit.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def pg_admin():
    try:
        conn = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL}: {exc}", pytrace=False)
    created: list[str] = []
    yield conn, created
    for name in created:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def fresh_pg_database(pg_admin) -> Callable[[str], str]:
    conn, created = pg_admin
    counter = iter(range(1_000_000))

    def make(label: str = "db") -> str:
        name = f"gt_{RUN_ID}_{label}_{next(counter)}"
        conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{name}"

    return make


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def amqp_url():
    """A vhost of this test run's own on the real RabbitMQ."""
    vhost = f"gridgov-test-{RUN_ID}"
    try:
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (subprocess.SubprocessError, FileNotFoundError) as exc:
        pytest.fail(f"RabbitMQ is required on {AMQP_HOST} (rabbitmqctl failed: {exc})", pytrace=False)
    url = f"amqp://guest:guest@{AMQP_HOST}/{vhost}"
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=2)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"RabbitMQ is required at {url}: {exc}", pytrace=False)
    yield url
    try:
        rabbitmqctl("delete_vhost", vhost)
    except subprocess.SubprocessError:
        pass


class Tokens:
    """Signs access tokens the way identity does, with a key the test runtimes trust."""

    issuer = "gridgov-identity"
    audience = "gridgov"

    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        self.kid = f"test-{RUN_ID}"
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks = {"keys": [jwk | {"kid": self.kid, "use": "sig", "alg": "EdDSA"}]}

    def verifier(self) -> TokenVerifier:
        return TokenVerifier.from_jwks(lambda: self.jwks, issuer=self.issuer, audience=self.audience)

    def issue(self, grants: list[tuple[str, str]] | tuple = (), *, sub: str | None = None,
              kind: str = "user", ttl: int = 600, **overrides) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": sub or str(uuid.uuid4()),
            "iat": now, "exp": now + timedelta(seconds=ttl), "kind": kind,
            "grants": [{"role": role, "scope": scope} for role, scope in grants],
        } | overrides
        return jwt.encode(claims, self.key, algorithm="EdDSA",
                          headers={"kid": self.kid, "typ": "at+jwt"})

    def header(self, *grants: tuple[str, str], sub: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.issue(list(grants), sub=sub)}"}


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def make_runtime(fresh_pg_database, tokens, tmp_path, request):
    """Build migrated runtimes; relays/workers started through them are stopped afterwards."""
    from kombu.transport import memory

    from .service import Runtime

    # The in-memory broker is process-global: start every test with it empty.
    memory.Transport.global_state.clear()
    memory.Channel.queues.clear()
    built = []

    def make(spec, *, db: str = "postgres", bus: str = "memory", verifier=None, **overrides):
        if db == "postgres":
            database_url = fresh_pg_database(spec.name)
        elif db == "sqlite":
            database_url = f"sqlite:///{tmp_path / (spec.name + '-' + uuid.uuid4().hex[:6] + '.db')}"
        else:  # a URL: another runtime's database, e.g. the same service after its settings changed
            database_url = db
        bus_url = request.getfixturevalue("amqp_url") if bus == "amqp" else f"memory://{RUN_ID}"
        settings = Settings(service=spec.name, database_url=database_url, bus_url=bus_url,
                            data_dir=tmp_path, **overrides)
        runtime = Runtime.build(spec, settings, verifier=verifier or tokens.verifier(), migrate=True)
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.stop_background()
        runtime.bus.close()
        runtime.db.dispose()
