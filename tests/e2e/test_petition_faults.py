"""Faults under load: 1,000 petitions at a steady rate while RabbitMQ is killed (-9) and
restarted twice and the dispatch worker is killed and restarted. Every petition that got
a 2xx has exactly one case, one offer notice per worker of its grid, and a complete
timeline; the reconcile script finds nothing lost and nothing duplicated.

Every service runs as its own gunicorn and worker process on real PostgreSQL, on a
private RabbitMQ node of this test's own (the machine's shared broker is never touched).
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
import requests
from sqlalchemy import text

from gridkit.db import Database
from gridkit.processes import ROOT, start_platform
from gridkit.rabbitnode import PrivateRabbit
from gridkit.testkit import wait_for
from notify.testing import SmsGatewayFake

from .conftest import DATA_KEY
from .reconcile import reconcile

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PETITIONS = 1000
RATE = 18.0  # petitions per second, all client threads together
CLIENTS = 4
OUTAGE = 4.0  # seconds each fault lasts at least
CATEGORY = "neighbour_dispute"  # handled by the security network (intake's seeded catalogue)

# The county: a 0.1° square cut into four grid quadrants of the security network.
X0, Y0, SIDE = 100.20, 25.60, 0.10
HALF = SIDE / 2


def box(x: float, y: float, w: float, h: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]]}


QUADRANTS = [(X0 + i * HALF, Y0 + j * HALF) for j in (0, 1) for i in (0, 1)]


@dataclass
class World:
    admin: dict
    grids: list[int]  # by quadrant
    workers: dict[int, frozenset[str]]  # grid id -> its grid workers
    residents: list[dict]  # auth headers


@dataclass
class Submissions:
    """What the clients saw: petition id per index for every 2xx, and what went wrong on the way."""

    accepted: dict[int, str] = field(default_factory=dict)
    quadrant: dict[int, int] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)


# --------------------------------------------------------------------------------------------
# the platform on a private broker
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rabbit():
    with PrivateRabbit.started(name=f"gridgov-faults-{uuid.uuid4().hex[:8]}") as node:
        yield node


@pytest.fixture(scope="module")
def databases(fresh_pg_database):
    from gridkit import registry

    return {name: fresh_pg_database(f"faults_{name}") for name in registry.available()}


@pytest.fixture(scope="module")
def faulty_platform(rabbit, databases, tmp_path_factory):
    sms = SmsGatewayFake()  # where residents' registration codes are texted
    platform = start_platform(list(databases), database_url=databases.__getitem__, bus_url=rabbit.url,
                              logs=tmp_path_factory.mktemp("faults-platform"), data_key=DATA_KEY,
                              extra_env={"GRIDGOV_SMS_URL": sms.url})
    platform.sms = sms
    try:
        yield platform
    finally:
        platform.stop()
        sms.close()
        for db in _engines.values():
            db.engine.dispose()  # before the session drops the databases
        _engines.clear()


def log_tail(platform, name: str, chars: int = 3000) -> str:
    try:
        return (platform.logs / f"{name}.log").read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


_engines: dict[str, Database] = {}


def count(url: str, sql: str) -> int:
    """A figure straight from a service's database (the test's own probe, read-only)."""
    db = _engines.get(url) or _engines.setdefault(url, Database(url, pool_size=1))
    with db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


# --------------------------------------------------------------------------------------------
# the world, through the public APIs
# --------------------------------------------------------------------------------------------


def login(platform, **credentials) -> dict:
    answer = requests.post(platform.url("identity", "/tokens"), json={"grant_type": "password", **credentials},
                           timeout=10)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def created(answer: requests.Response) -> dict:
    assert answer.status_code == 201, answer.text
    return answer.json()


def set_up_world(platform, databases) -> World:
    platform.gridgov("create-sysadmin", "--username", "faults-admin",
                     extra_env={"GRIDGOV_ADMIN_PASSWORD": "faults-admin-password"})
    admin = login(platform, username="faults-admin", password="faults-admin-password")
    grids = platform.url("grids")
    county = box(X0, Y0, SIDE, SIDE)
    created(requests.post(grids + "/divisions", headers=admin, timeout=10, json={
        "code": "F", "name": "故障县", "kind": "county", "boundary": county}))
    created(requests.post(grids + "/divisions", headers=admin, timeout=10, json={
        "code": "F-1", "name": "故障街道", "kind": "street", "parent_code": "F", "boundary": county}))
    community = created(requests.post(grids + "/divisions", headers=admin, timeout=10, json={
        "code": "F-1-1", "name": "故障社区", "kind": "community", "parent_code": "F-1", "boundary": county}))

    grid_ids, workers = [], {}
    for n, (x, y) in enumerate(QUADRANTS, start=1):
        grid = created(requests.post(grids + "/grids", headers=admin, timeout=10, json={
            "network": "security", "code": f"F-G{n}", "name": f"{n}号网格", "level": 1,
            "division_id": community["id"], "boundary": box(x, y, HALF, HALF)}))
        grid_ids.append(grid["id"])
        staffed = set()
        for k in range(2):
            user = created(requests.post(platform.url("identity", "/users"), headers=admin, timeout=10, json={
                "kind": "staff", "name": f"网格员{n}{k}", "phone": f"1370000{n:02d}{k:02d}"}))
            created(requests.post(f"{grids}/grids/{grid['id']}/staff", headers=admin, timeout=10,
                                  json={"user_id": user["id"], "role": "grid_worker"}))
            staffed.add(user["id"])
        workers[grid["id"]] = frozenset(staffed)

    residents = []
    for n in range(CLIENTS):
        phone, password = f"1391234{n:04d}", "a long pass phrase"
        asked = requests.post(platform.url("identity", "/codes"), timeout=10,
                              json={"phone": phone, "purpose": "register"})
        assert asked.status_code == 202, asked.text
        created(requests.post(platform.url("identity", "/residents"), timeout=10, json={
            "phone": phone, "code": platform.sms.code_for(phone), "name": f"居民{n}", "password": password}))
        residents.append(login(platform, phone=phone, password=password))

    # Routing needs dispatch's projection of the grids and their staff, and intake must know
    # the county (it refuses places outside every county it has heard of).
    wait_for(lambda: count(databases["dispatch"], "SELECT count(*) FROM known_grids "
                           "WHERE network = 'security' AND NOT retired") == len(QUADRANTS)
             and count(databases["dispatch"], "SELECT count(*) FROM grid_staff WHERE active") == 2 * len(QUADRANTS),
             timeout=60, interval=0.2, message="dispatch's projection of the grids and their staff")
    wait_for(lambda: count(databases["intake"], "SELECT count(*) FROM divisions WHERE kind = 'county'") == 1,
             timeout=60, interval=0.2, message="intake to know the county")
    return World(admin, grid_ids, workers, residents)


# --------------------------------------------------------------------------------------------
# steady clients
# --------------------------------------------------------------------------------------------


def submit_one(platform, resident: dict, index: int, quadrant: int, subs: Submissions, rng: random.Random,
               give_up_at: float) -> None:
    """POST one petition with its own Idempotency-Key; retry with the same key on
    connection errors, 5xx and "still in progress" until a final answer."""
    x, y = QUADRANTS[quadrant]
    margin = HALF * 0.1
    body = {"category": CATEGORY, "description": f"故障测试 #{index}: 邻居装修噪音纠纷",
            "place": {"lon": rng.uniform(x + margin, x + HALF - margin),
                      "lat": rng.uniform(y + margin, y + HALF - margin)},
            "separate": True}
    headers = resident | {"Idempotency-Key": f"faults-{index}-{uuid.uuid4().hex}"}
    while True:
        try:
            answer = requests.post(platform.url("intake", "/petitions"), json=body, headers=headers, timeout=15)
        except requests.RequestException as exc:
            outcome = f"{type(exc).__name__}"
        else:
            if 200 <= answer.status_code < 300:
                with subs.lock:
                    subs.accepted[index] = answer.json()["id"]
                    subs.quadrant[index] = quadrant
                return
            if answer.status_code < 500 and answer.status_code != 409:
                with subs.lock:
                    subs.refused[index] = f"{answer.status_code} {answer.text[:300]}"
                return
            outcome = f"{answer.status_code} {answer.text[:300]}"
        if time.monotonic() > give_up_at:
            with subs.lock:
                subs.refused[index] = f"gave up: {outcome}"
            return
        with subs.lock:
            subs.retries += 1
        time.sleep(0.2)  # pacing of the retry


def client(platform, world: World, n: int, subs: Submissions, start: float) -> None:
    rng = random.Random(n)
    interval = CLIENTS / RATE
    for k, index in enumerate(range(n, PETITIONS, CLIENTS)):
        due = start + k * interval
        time.sleep(max(0.0, due - time.monotonic()))  # the steady rate
        submit_one(platform, world.residents[n], index, index % len(QUADRANTS), subs, rng,
                   give_up_at=time.monotonic() + 120)


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------


def test_a_thousand_petitions_survive_broker_kills_and_a_dispatch_worker_crash_without_loss_or_duplicates(
        faulty_platform, rabbit, databases):
    platform = faulty_platform
    world = set_up_world(platform, databases)
    subs = Submissions()
    began = time.monotonic()
    faults: list[str] = []

    def note(what: str) -> None:
        faults.append(f"{time.monotonic() - began:6.1f}s  {subs.count():4d} accepted  {what}")

    def relay_failures() -> int:
        return count(databases["intake"], "SELECT coalesce(sum(attempts), 0) FROM outbox")

    def cases() -> int:
        return count(databases["dispatch"], "SELECT count(*) FROM cases")

    def broker_outage() -> None:
        felt = relay_failures()
        assert subs.count() < PETITIONS, "the faults must strike while petitions are still coming in"
        rabbit.kill()
        note("RabbitMQ killed (-9)")
        down = time.monotonic()
        # The outage lasts until intake's relay has felt it, and at least OUTAGE seconds.
        wait_for(lambda: relay_failures() > felt, timeout=60, interval=0.1,
                 message="intake's relay to fail while the broker is down")
        note("intake's relay failed to publish; the outbox keeps the events")
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))  # fault timing
        rabbit.start()
        note("RabbitMQ restarted")

    def dispatch_busy_again() -> None:
        opened = cases()
        wait_for(lambda: cases() >= opened + 20, timeout=90, interval=0.05,
                 message="dispatch to open cases again")
        note("dispatch opening cases again")

    def at(accepted: int) -> None:
        wait_for(lambda: subs.count() >= accepted or not any(t.is_alive() for t in clients), timeout=120,
                 interval=0.05, message=f"{accepted} petitions accepted")

    clients = [threading.Thread(target=client, args=(platform, world, n, subs, began), daemon=True)
               for n in range(CLIENTS)]
    for t in clients:
        t.start()
    try:
        at(120)
        broker_outage()
        # Kill the dispatch worker in the thick of it: draining the backlog of the outage,
        # handlers mid-transaction, prefetched messages unacked, its relay mid-batch.
        dispatch_busy_again()
        platform.kill("dispatch-worker")
        note("dispatch worker killed (-9)")
        time.sleep(OUTAGE)  # fault timing: petitions pile up for dispatch meanwhile
        platform.start_worker("dispatch")
        note("dispatch worker restarted")
        # And the broker again while the fresh worker is catching up.
        dispatch_busy_again()
        broker_outage()
    finally:
        for t in clients:
            t.join(timeout=300)
    note("all petitions submitted")
    assert not any(t.is_alive() for t in clients), "clients still submitting"
    assert subs.refused == {}, f"petitions refused: {dict(list(subs.refused.items())[:5])}"
    assert len(subs.accepted) == PETITIONS
    assert len(set(subs.accepted.values())) == PETITIONS

    petition_ids = set(subs.accepted.values())
    urls = databases["intake"], databases["dispatch"], databases["notify"]

    def converged():
        report = reconcile(*urls, petition_ids)
        return report if report.clean else None

    try:
        report = wait_for(converged, timeout=300, interval=2.0, message="every case, notice and step")
    except AssertionError:
        report = reconcile(*urls, petition_ids)
        raise AssertionError(f"not converged:\n{report.render()}\n\n--- dispatch worker ---\n"
                             f"{log_tail(platform, 'dispatch-worker')}\n--- notify worker ---\n"
                             f"{log_tail(platform, 'notify-worker')}") from None
    note("converged")

    # Still clean a moment later (nothing trickling in twice), and the CLI agrees.
    cli = subprocess.run([sys.executable, "-m", "tests.e2e.reconcile", "--intake-db", urls[0],
                          "--dispatch-db", urls[1], "--notify-db", urls[2]],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    print("\nfaults:\n" + "\n".join(faults))
    print(f"client retries: {subs.retries}")
    print("reconcile:\n" + cli.stdout)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "lost: 0" in cli.stdout and "duplicated: 0" in cli.stdout

    # Each case went to the grid under its place, offered to exactly that grid's workers.
    report = reconcile(*urls, petition_ids)
    assert report.clean, report.render()
    assert report.cases == PETITIONS
    for index, petition_id in subs.accepted.items():
        grid_id, offered = report.offers[report.case_of[petition_id]]
        expected_grid = world.grids[subs.quadrant[index]]
        assert (grid_id, offered) == (expected_grid, world.workers[expected_grid]), petition_id
    assert report.offer_notices == 2 * PETITIONS

    # Every petition follows its case in intake; the resident sees the steps in plain words.
    assert count(databases["intake"], "SELECT count(*) FROM petitions WHERE status <> 'assigned'") == 0
    some = subs.accepted[PETITIONS - 1]
    timeline = requests.get(platform.url("intake", f"/petitions/{some}/timeline"),
                            headers=world.residents[(PETITIONS - 1) % CLIENTS], timeout=10).json()
    assert [s["kind"] for s in timeline["steps"]][:3] == ["submitted", "opened", "assigned"]
    assert timeline["status"] == "assigned"

    # Nothing was dead-lettered on the way.
    queues = rabbit.ctl("list_queues", "name", "messages", "--no-table-headers").stdout.split("\n")
    dead = {q.split()[0]: int(q.split()[1]) for q in queues if q.strip() and ".dead-letters" in q}
    assert dead and not any(dead.values()), dead
