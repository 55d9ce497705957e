"""Every service in ``gridkit.registry.SERVICES`` is deployable by docker-compose.yml:
its web and worker processes, its database, its RabbitMQ user with permissions that fit
what its processes do (and no more), and its scrape targets. A service added to the
registry fails here until ``make stack-files`` and its two compose entries are done.
No containers: the files are read."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from gridkit import registry
from gridkit.bus import DEAD_LETTER_EXCHANGE, dead_letter_queue_name
from gridkit.events import exchange_for

ROOT = Path(__file__).resolve().parents[2]
SERVICES = list(registry.SERVICES)
VHOST = "gridgov"


def stack_files():
    spec = importlib.util.spec_from_file_location("stack_files", ROOT / "deploy" / "stack_files.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


@pytest.fixture(scope="module")
def permissions() -> dict[str, dict]:
    definitions = json.loads((ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text())
    return {p["user"]: p for p in definitions["permissions"] if p["vhost"] == VHOST}


def queues_of(service: str) -> list[str]:
    queues = [sub.queue for sub in registry.load(service).subscriptions.queues.values()]
    return queues + [dead_letter_queue_name(queue) for queue in queues]


def sources_of(service: str) -> set[str]:
    return {exchange for sub in registry.load(service).subscriptions.queues.values() for exchange, _ in sub.bindings}


def allows(permission: dict, kind: str, name: str) -> bool:
    return re.fullmatch(permission[kind], name) is not None


def test_the_files_written_from_the_registry_are_current():
    stale = [str(path.relative_to(ROOT)) for path in stack_files().stale()]
    assert not stale, f"{stale} differ from what the registry gives: run `make stack-files`"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_has_its_web_and_worker_in_compose_on_its_own_database_and_broker_user(service, compose):
    web, worker = compose.get(f"{service}-web"), compose.get(f"{service}-worker")
    assert web and worker, f"docker-compose.yml lacks {service}-web or {service}-worker"
    assert web["command"] == ["gunicorn", f'gridkit.wsgi:create("{service}")', "-c", "deploy/gunicorn.conf.py"]
    assert worker["command"] == ["gridgov", "worker", service]
    for process in (web, worker):
        env = process["environment"]
        bus, database = urlparse(env["GRIDGOV_BUS_URL"]), urlparse(env[f"GRIDGOV_{service.upper()}_DATABASE_URL"])
        assert (bus.username, bus.path) == (service, f"/{VHOST}")
        assert (database.username, database.path) == (service, f"/{service}")
        assert [name for name in env if name.endswith("_DATABASE_URL")] == [f"GRIDGOV_{service.upper()}_DATABASE_URL"]
        assert env[f"GRIDGOV_{service.upper()}_URL"] == f"http://{service}-web:8000"
        assert process["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert process["healthcheck"]["test"] == ["CMD", "python", "/app/deploy/healthcheck.py"]
        assert process["read_only"] is True
    assert "PROMETHEUS_MULTIPROC_DIR" in web["environment"]
    assert "PROMETHEUS_MULTIPROC_DIR" not in worker["environment"]  # a worker's registry is its own


@pytest.mark.parametrize("service", SERVICES)
def test_migrate_reaches_every_database(service, compose):
    migrate = compose["migrate"]
    assert migrate["command"] == ["gridgov", "migrate", "all"]
    assert urlparse(migrate["environment"][f"GRIDGOV_{service.upper()}_DATABASE_URL"]).path == f"/{service}"
    assert urlparse(migrate["environment"]["GRIDGOV_BUS_URL"]).username == "migrate"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_has_its_database_and_role_in_the_postgres_init(service):
    sql = (ROOT / "deploy" / "postgres" / "initdb" / "10-gridgov.sql").read_text()
    assert f"CREATE ROLE {service} LOGIN" in sql
    assert f"CREATE DATABASE {service} OWNER {service};" in sql
    assert f"REVOKE ALL ON DATABASE {service} FROM PUBLIC;" in sql


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_broker_user_may_do_what_its_processes_do(service, permissions):
    assert service in permissions, f"definitions.json has no permissions for {service}"
    mine = permissions[service]
    own = exchange_for(service)
    assert allows(mine, "configure", own) and allows(mine, "write", own)  # the relay declares and publishes
    for queue in queues_of(service):  # declared with a dead-letter exchange, bound, consumed
        assert all(allows(mine, kind, queue) for kind in ("configure", "write", "read")), queue
    for exchange in sources_of(service):  # declared and bound from by the worker
        assert allows(mine, "configure", exchange) and allows(mine, "read", exchange), exchange
    assert all(allows(mine, kind, DEAD_LETTER_EXCHANGE) for kind in ("configure", "write", "read"))
    assert allows(mine, "write", "amq.default")  # a failed message goes back to its queue


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_broker_user_may_not_touch_other_services_things(service, permissions):
    mine = permissions[service]
    for other in SERVICES:
        if other == service:
            continue
        assert not allows(mine, "write", exchange_for(other)), f"{service} may publish as {other}"
        if exchange_for(other) not in sources_of(service):
            assert not allows(mine, "configure", exchange_for(other)), f"{service} may delete {other}'s exchange"
        for queue in queues_of(other):
            assert not any(allows(mine, kind, queue) for kind in ("configure", "write", "read")), \
                f"{service} may touch {queue}"


def test_the_migrate_user_may_declare_every_queue_and_publish_nothing(permissions):
    migrate = permissions["migrate"]
    for service in SERVICES:
        for queue in queues_of(service):
            assert all(allows(migrate, kind, queue) for kind in ("configure", "write", "read")), queue
        for exchange in sources_of(service):
            assert allows(migrate, "configure", exchange) and allows(migrate, "read", exchange)
        assert not allows(migrate, "write", exchange_for(service))
    assert not allows(migrate, "write", "amq.default")


@pytest.mark.parametrize("service", SERVICES)
def test_prometheus_scrapes_both_processes_of_a_service_with_their_labels(service):
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "gridgov")
    scraped = {target: group.get("labels", {}) for group in job["static_configs"] for target in group["targets"]}
    assert scraped.get(f"{service}-web:8000") == {"service": service, "process": "web"}
    assert scraped.get(f"{service}-worker:9000") == {"service": service, "process": "worker"}
    assert config["rule_files"] == ["rules/*.yml"]


def test_no_process_is_scraped_that_compose_does_not_run(compose):
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {target.split(":")[0] for job in config["scrape_configs"] for group in job["static_configs"]
               for target in group["targets"]}
    assert targets <= set(compose), targets - set(compose)
