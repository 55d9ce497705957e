"""What every fault test does around its fault: a small world, a steady stream of
residents' petitions, and the check that every accepted one went all the way.

* :func:`set_up_world`: a county with one grid of the security network and its
  grid worker, residents registered with an SMS code (through identity and
  notify), everything dispatch and intake must know before the first petition.
* :class:`PetitionStream`: residents submitting at a steady rate, each petition
  with its own ``Idempotency-Key`` and retried with it (connection errors, 5xx,
  409) until a final answer, as a phone app does. It keeps every answer's status
  and the first few bodies of each 5xx.
* :func:`wait_until_complete`: every petition that got a 2xx has exactly one case
  in dispatch, exactly one offer notice to the grid worker and one "opened"
  notice to its reporter in notify, and a full timeline in intake (submitted,
  opened, assigned) — :mod:`tests.e2e.reconcile`, plus the submitted step.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gridkit.db import Database
from gridkit.testkit import wait_for
from tests.e2e.journey import Gridgov, Person, wait_until_dispatch_has_the_world
from tests.e2e.reconcile import Report, reconcile

CATEGORY = "neighbour_dispute"  # the security network's (intake's seeded catalogue)
X0, Y0, SIDE = 100.60, 26.10, 0.05  # the county: far from every other test's
PROPAGATION = 90.0  # seconds: events through a loaded 2-core machine


def box(x: float, y: float, w: float, h: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]]}


@dataclass
class World:
    admin: Person
    grid_id: int
    worker_id: str
    residents: list[Person]


def set_up_world(platform, gg: Gridgov, *, residents: int = 3) -> World:
    platform.gridgov("create-sysadmin", "--username", "faults-admin",
                     extra_env={"GRIDGOV_ADMIN_PASSWORD": "faults-admin-password"})
    sysadmin = gg.login("sysadmin", username="faults-admin", password="faults-admin-password")
    admin = gg.create_user(sysadmin, "county admin", name="故障县管理员", username="faults-county",
                           password="a long pass phrase", grants=[("county_admin", "county")])
    county = box(X0, Y0, SIDE, SIDE)
    parent = None
    for kind, code in (("county", "FT"), ("street", "FT-1"), ("community", "FT-1-1")):
        division = gg.post("grids", "/divisions", admin, expect=201, json={
            "code": code, "name": f"故障{kind}", "kind": kind, "parent_code": parent, "boundary": county}).json()
        parent = code
    grid = gg.post("grids", "/grids", admin, expect=201, json={
        "network": "security", "code": "FT-G1", "name": "故障网格", "level": 1,
        "division_id": division["id"], "boundary": county}).json()
    worker = gg.post("identity", "/users", admin, expect=201, json={
        "kind": "staff", "name": "故障网格员", "phone": "13700990001"}).json()
    gg.staff(admin, grid["id"], Person("worker", worker["id"], {}), "grid_worker")
    people = [gg.register_resident(phone=f"1390099{n:04d}", name=f"居民{n}", password="a long pass phrase")
              for n in range(residents)]
    # The marker division comes after the grid and its worker: once dispatch has it, it has them.
    wait_until_dispatch_has_the_world(gg, admin)
    return World(admin, grid["id"], worker["id"], people)


def petition_body(index: int) -> dict:
    lon = X0 + SIDE * (0.1 + 0.8 * ((index * 37) % 100) / 100)
    lat = Y0 + SIDE * (0.1 + 0.8 * ((index * 61) % 100) / 100)
    return {"category": CATEGORY, "description": f"故障测试 #{index}: 邻居装修噪音",
            "place": {"lon": lon, "lat": lat}, "separate": True}


def first_petition(gg: Gridgov, world: World) -> str:
    """intake learns the county from grids' events: until it has, a place is refused (422)."""
    def accepted():
        answer = gg.post("intake", "/petitions", world.residents[0], json=petition_body(0),
                         headers={"Idempotency-Key": f"faults-first-{uuid.uuid4().hex}"})
        if answer.status_code == 422 and "place" in answer.json().get("errors", {}):
            return None
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    return wait_for(accepted, timeout=PROPAGATION, interval=0.3, message="intake to know the county")


@dataclass
class Answer:
    status: int
    content_type: str
    body: str
    at: float


@dataclass
class PetitionStream:
    """Residents submitting petitions at ``rate`` a second between them until :meth:`stop`."""

    gg: Gridgov
    residents: list[Person]
    rate: float = 6.0
    give_up_after: float = 60.0  # per petition: then it counts as unanswered
    accepted: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> petition id
    unanswered: dict[str, str] = field(default_factory=dict)  # key -> the last outcome
    refused: dict[str, str] = field(default_factory=dict)  # key -> a final 4xx
    statuses: Counter = field(default_factory=Counter)  # every answer, retries included
    failures: list[Answer] = field(default_factory=list)  # 5xx answers (the first 50)
    errors: Counter = field(default_factory=Counter)  # connection errors by type
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), name=f"resident-{n}", daemon=True)
                         for n in range(len(self.residents))]
        self.started = time.monotonic()

    def start(self) -> PetitionStream:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """No new petitions; each resident finishes (or gives up) the one under way."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.give_up_after + 30)
        assert not any(t.is_alive() for t in self._threads), "residents still submitting"

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def wait_accepted(self, more: int, message: str, timeout: float = PROPAGATION) -> None:
        """Until ``more`` petitions beyond those accepted now get a 2xx."""
        target = self.count() + more
        wait_for(lambda: self.count() >= target, timeout=timeout, interval=0.05,
                 message=f"{more} more petitions accepted {message}")

    def saw(self, status: int, since: float = 0.0) -> list[Answer]:
        with self.lock:
            return [a for a in self.failures if a.status == status and a.at >= since]

    def _client(self, n: int) -> None:
        interval = len(self.residents) / self.rate
        due = time.monotonic() + n * interval / len(self.residents)
        index = 0
        while not self._stop.is_set():
            self._stop.wait(max(0.0, due - time.monotonic()))  # the steady rate
            if self._stop.is_set():
                return
            due += interval
            index += 1
            self._submit(self.residents[n], 1000 * (n + 1) + index)

    def _submit(self, resident: Person, index: int) -> None:
        key = f"faults-{index}-{uuid.uuid4().hex}"
        give_up = time.monotonic() + self.give_up_after
        outcome = ""
        while time.monotonic() < give_up:
            try:
                answer = self.gg.post("intake", "/petitions", resident, json=petition_body(index),
                                      headers={"Idempotency-Key": key}, timeout=15)
            except requests.RequestException as exc:
                outcome = type(exc).__name__
                with self.lock:
                    self.errors[outcome] += 1
            else:
                status = answer.status_code
                with self.lock:
                    self.statuses[status] += 1
                    if status >= 500 and len(self.failures) < 50:
                        self.failures.append(Answer(status, answer.headers.get("Content-Type", ""),
                                                    answer.text[:500], time.monotonic()))
                    if 200 <= status < 300:
                        self.accepted[key] = answer.json()["id"]
                        return
                    if status < 500 and status != 409:
                        self.refused[key] = f"{status} {answer.text[:300]}"
                        return
                outcome = f"{status} {answer.text[:200]}"
            time.sleep(0.2)  # a phone's retry pacing
        with self.lock:
            self.unanswered[key] = outcome

    def summary(self) -> str:
        return (f"accepted {len(self.accepted)}, refused {len(self.refused)}, unanswered {len(self.unanswered)}; "
                f"answers {dict(sorted(self.statuses.items()))}, connection errors {dict(self.errors)}")


def wait_until_complete(databases: dict[str, str], petition_ids: set[str],
                        timeout: float = PROPAGATION) -> Report:
    """Every petition: one case, its offer and opened notices, its full timeline — or fail
    with what is missing or doubled."""
    def report() -> Report:
        found = reconcile(databases["intake"], databases["dispatch"], databases["notify"], petition_ids)
        for petition_id in sorted(petition_ids - submitted_steps(databases["intake"], petition_ids)):
            found.miss("submitted step", petition_id)
        return found

    def complete() -> Report | None:
        try:
            found = report()
        except OperationalError:  # the test's own probe met a busy server: look again
            return None
        return found if found.clean else None

    try:
        return wait_for(complete, timeout=timeout, interval=1.0,  # type: ignore[return-value]
                        message="every accepted petition's case, notices and timeline")
    except AssertionError:
        raise AssertionError(f"not complete after {timeout}s:\n{report().render()}") from None


def submitted_steps(intake_url: str, petition_ids: set[str]) -> set[str]:
    rows = query(intake_url, "SELECT petition_id FROM timeline WHERE kind = 'submitted' "
                             "AND petition_id = ANY(:ids) GROUP BY petition_id HAVING count(*) = 1",
                 ids=list(petition_ids))
    return {r[0] for r in rows}


def query(url: str, sql: str, **params) -> list:
    """A service's database, read directly (the test's probe; never a service's way)."""
    db = Database(url, pool_size=1)
    try:
        with db.engine.connect() as conn:
            return conn.execute(text(sql), params).all()
    finally:
        db.dispose()


def log_tail(platform, name: str, chars: int = 3000) -> str:
    try:
        return (platform.logs / f"{name}.log").read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def gunicorn_workers(platform, service: str) -> set[int]:
    """The pids of a service's gunicorn workers (a crashed worker comes back with a new one)."""
    master = platform.processes[f"{service}-web"].pid
    try:
        children = open(f"/proc/{master}/task/{master}/children").read().split()
    except OSError:
        return set()
    return {int(pid) for pid in children}
