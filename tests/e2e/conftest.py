"""Each service as its own gunicorn process (and its own worker process) on
real PostgreSQL and RabbitMQ, the way production runs them."""

from __future__ import annotations

import pytest

from gridkit.processes import BIN, ROOT, free_port, start_platform
from notify.testing import SmsGatewayFake

DATA_KEY = "ZTJlLWRhdGEta2V5LTAxMjM0NTY3ODlhYmNkZWYwMTI="  # 32 bytes, urlsafe base64

__all__ = ["BIN", "ROOT", "free_port"]


@pytest.fixture(scope="module")
def sms_gateway():
    """Where notify texts one-time codes (residents read theirs with ``code_for``)."""
    fake = SmsGatewayFake()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def platform(fresh_pg_database, amqp_url, tmp_path_factory, sms_gateway):
    from gridkit import registry

    platform = start_platform(registry.available(), database_url=lambda name: fresh_pg_database(f"e2e_{name}"),
                              bus_url=amqp_url, logs=tmp_path_factory.mktemp("platform"), data_key=DATA_KEY,
                              extra_env={"GRIDGOV_SMS_URL": sms_gateway.url})
    try:
        yield platform
    finally:
        platform.stop()
