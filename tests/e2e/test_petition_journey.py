"""Issue #3's proof: one resident's petition from report to rating, through every
service — on real RabbitMQ and PostgreSQL with each service as its own gunicorn and
worker processes, and on the embedded platform `make run` starts, on its demo data.

The steps live in ``journey.py``; each test builds its cast and runs them. The
handling deadline is one minute (the category's ``handle_minutes``) and dispatch
sweeps every second, so the deadline passes within the test.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import requests

from gridkit import registry
from gridkit.processes import BIN, ROOT, free_port, start_platform
from gridkit.testkit import wait_for

from .conftest import DATA_KEY
from .journey import (
    EXPECTED_STEPS,
    Gridgov,
    demo_accounts,
    demo_cast,
    run_journey,
    small_world_cast,
)

FAST = {
    "GRIDGOV_DISPATCH_SWEEP_SECONDS": "1",  # deadlines are noticed within a second
    "GRIDGOV_NOTIFY_HEARTBEAT_SECONDS": "2",  # a closed stream lets go of its thread quickly
}
SERVICES = ("identity", "grids", "intake", "dispatch", "notify")


def log_tails(directory, names, chars: int = 2500) -> str:
    out = []
    for name in names:
        path = directory / name
        if path.exists():
            out.append(f"--- {name} ---\n{path.read_text(errors='replace')[-chars:]}")
    return "\n".join(out)


@pytest.fixture(scope="module")
def journey_platform(fresh_pg_database, amqp_url, tmp_path_factory, sms_gateway):
    """Every service as gunicorn + `gridgov worker`, each on a fresh PostgreSQL database,
    on this run's RabbitMQ vhost, with a one-second deadline sweep; notify texts codes to
    the fake SMS gateway."""
    platform = start_platform(registry.available(), database_url=lambda name: fresh_pg_database(f"journey_{name}"),
                              bus_url=amqp_url, logs=tmp_path_factory.mktemp("journey"), data_key=DATA_KEY,
                              extra_env=FAST | {"GRIDGOV_WEB_THREADS": "8", "GRIDGOV_SMS_URL": sms_gateway.url})
    try:
        yield platform
    finally:
        platform.stop()


def test_a_petition_travels_from_report_to_rating_across_every_service_as_its_own_process(journey_platform,
                                                                                            sms_gateway):
    platform = journey_platform
    assert set(SERVICES) <= set(platform.urls)
    platform.gridgov("create-sysadmin", "--username", "journey-root",
                     extra_env={"GRIDGOV_ADMIN_PASSWORD": "journey-root-password"})
    gg = Gridgov(platform.urls, sms=sms_gateway)
    sysadmin = gg.login("sysadmin", username="journey-root", password="journey-root-password")
    try:
        cast = small_world_cast(gg, sysadmin)
        story = run_journey(gg, cast)
    except (AssertionError, requests.RequestException) as exc:
        logs = log_tails(platform.logs, [f"{s}-worker.log" for s in ("intake", "dispatch", "notify")])
        raise AssertionError(f"{exc}\n{logs}") from exc
    assert [s["kind"] for s in story["timeline"]] == EXPECTED_STEPS
    assert story["winner"] in cast.workers and story["loser"] in cast.workers


def test_the_embedded_platform_carries_the_same_journey_on_its_demo_county(tmp_path):
    ports = {name: free_port() for name in SERVICES}
    env = dict(os.environ) | FAST | {"GRIDGOV_DATA_DIR": str(tmp_path),
                                     "GRIDGOV_IDENTITY_URL": f"http://127.0.0.1:{ports['identity']}"}
    env |= {f"GRIDGOV_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    for name in list(env):  # embedded means no broker and no PostgreSQL from the environment
        if name.endswith("_DATABASE_URL") or name in ("GRIDGOV_BUS_URL", "GRIDGOV_JWKS_URL", "GRIDGOV_SERVICES"):
            env.pop(name)
    log_path = tmp_path / "run.log"
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([str(BIN / "gridgov"), "run", "--scale", "0.01"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        def up():
            if proc.poll() is not None:
                return True
            try:
                return all(requests.get(url + "/readyz", timeout=2).status_code == 200 for url in urls.values()) \
                    and "Press Ctrl+C" in log_path.read_text()
            except requests.RequestException:
                return False

        wait_for(up, timeout=240, interval=0.5, message="the embedded platform with its demo county")
        banner = log_path.read_text()
        assert proc.poll() is None, banner[-3000:]
        assert {"resident", "grid_worker", "grid_head", "community_admin", "county_admin"} <= set(demo_accounts(banner))

        gg = Gridgov(urls)
        try:
            cast = demo_cast(gg, banner)
            story = run_journey(gg, cast)
        except (AssertionError, requests.RequestException) as exc:
            alive = "running" if proc.poll() is None else f"exited with {proc.returncode}"
            raise AssertionError(f"{exc}\n--- gridgov run ({alive}) ---\n"
                                 f"{log_path.read_text(errors='replace')[-4000:]}") from exc
        assert story["winner"] in cast.workers
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
