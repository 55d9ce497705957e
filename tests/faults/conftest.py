"""Fault tests: the platform as real processes while a broker node or its database goes away.

One platform serves every test here (starting one is most of their cost): each
service as its gunicorn and its worker, on

* a private three-node RabbitMQ cluster (``gridkit.rabbitnode.RabbitCluster``) with
  quorum queues, the bus URL listing the three nodes;
* for intake, a private PostgreSQL primary with a streaming replica
  (``gridkit.pgnode``), reached through one multi-host URL with
  ``target_session_attrs=read-write``; the other services use the machine's
  PostgreSQL like every other test.

The machine's own RabbitMQ node and PostgreSQL server are never stopped or
touched. Each test breaks one thing under its own stream of petitions and checks
only its own petitions, so the order they run in does not matter: a cluster that
lost a node still has a quorum, and intake on a promoted replica is still intake.
"""

from __future__ import annotations

import pytest

from gridkit import registry
from gridkit.pgnode import PrivatePostgres, multi_host_url
from gridkit.processes import start_platform
from gridkit.rabbitnode import RabbitCluster
from notify.testing import SmsGatewayFake
from tests.e2e.journey import Gridgov

from .petitions import World, first_petition, set_up_world

DATA_KEY = "ZmF1bHRzLWRhdGEta2V5LTAxMjM0NTY3ODlhYmNkZWY="  # 32 bytes, urlsafe base64


@pytest.fixture(scope="package")
def cluster():
    with RabbitCluster.started() as cluster:
        yield cluster


@pytest.fixture(scope="package")
def primary():
    with PrivatePostgres.started() as server:
        server.create_database("intake")
        yield server


@pytest.fixture(scope="package")
def replica(primary):
    standby = primary.replica()
    try:
        yield standby
    finally:
        standby.remove()


@pytest.fixture(scope="package")
def databases(fresh_pg_database, primary, replica) -> dict[str, str]:
    urls = {name: fresh_pg_database(f"faults_{name}") for name in registry.available() if name != "intake"}
    return urls | {"intake": multi_host_url([primary, replica], "intake")}


@pytest.fixture(scope="package")
def sms_gateway():
    """Where notify texts residents' registration codes."""
    fake = SmsGatewayFake()
    yield fake
    fake.close()


@pytest.fixture(scope="package")
def platform(cluster, databases, tmp_path_factory, sms_gateway):
    platform = start_platform(registry.available(), database_url=databases.__getitem__, bus_url=cluster.url,
                              logs=tmp_path_factory.mktemp("faults"), data_key=DATA_KEY, web_workers=1,
                              extra_env={"GRIDGOV_QUEUE_TYPE": "quorum", "GRIDGOV_SMS_URL": sms_gateway.url})
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="package")
def gg(platform, sms_gateway) -> Gridgov:
    return Gridgov(platform.urls, sms_gateway)


@pytest.fixture(scope="package")
def world(platform, gg) -> World:
    """A county, its grid and grid worker, residents; intake and dispatch know them all."""
    world = set_up_world(platform, gg)
    first_petition(gg, world)
    return world
