"""The petition journey, step by step, against any gridgov base URLs.

One resident's problem from report to rating, through every service's public
HTTP API only: identity (accounts, tokens), grids (the world), intake (the
petition, its photo, the resident's timeline and rating), dispatch (routing,
the claim race, the deadline, the whistle, resolution, figures) and notify
(inboxes and the live SSE stream).

Both end-to-end tests use it: ``test_petition_journey.py`` against every
service as its own processes on RabbitMQ and PostgreSQL, and against the
embedded platform (``gridgov run``) on its demo county. Each builds a
:class:`Cast` its own way and hands it to :func:`run_journey`.

Nothing here sleeps: every wait is a :func:`gridkit.testkit.wait_for` with a
generous deadline (a loaded 2-core machine runs these).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from gridkit.testkit import wait_for

# Event propagation (outbox → bus → inbox) on a loaded machine: seconds, not minutes.
PROPAGATION = 90.0
# The handling deadline is one minute after the claim; the sweep runs every second.
DEADLINE = 180.0

CLAIM_MINUTES = 10  # time enough for two workers to race on a loaded machine
HANDLE_MINUTES = 1  # the deadline that passes within the test
DEPARTMENT = "dept-housing"
NOTE = "已到现场查看，燃气管道接口松动，已关闭总阀"
RESULT = "燃气公司已更换接口并试压合格"
COMMENT = "处理及时，谢谢网格员"


# --------------------------------------------------------------------------
# talking to the platform
# --------------------------------------------------------------------------


@dataclass
class Person:
    label: str
    id: str
    headers: dict[str, str]

    def __repr__(self) -> str:  # keeps tokens out of assertion messages
        return f"Person({self.label}, {self.id})"


class Gridgov:
    """The platform as base URLs per service (identity, grids, intake, dispatch, notify), and
    the SMS gateway notify texts one-time codes to (a ``notify.testing.SmsGatewayFake``)."""

    def __init__(self, urls: dict[str, str], sms=None):
        self.urls = urls
        self.sms = sms

    def call(self, method: str, service: str, path: str, who: Person | None = None, *,
             expect: int | None = None, timeout: float = 30, **kwargs) -> requests.Response:
        headers = (who.headers if who else {}) | kwargs.pop("headers", {})
        answer = requests.request(method, self.urls[service] + path, headers=headers, timeout=timeout, **kwargs)
        if expect is not None:
            assert answer.status_code == expect, (
                f"{method} {service}{path} as {who.label if who else 'nobody'}: "
                f"{answer.status_code} {answer.text[:2000]}")
        return answer

    def get(self, service: str, path: str, who: Person | None = None, **kwargs) -> requests.Response:
        return self.call("GET", service, path, who, **kwargs)

    def post(self, service: str, path: str, who: Person | None = None, **kwargs) -> requests.Response:
        return self.call("POST", service, path, who, **kwargs)

    def login(self, label: str, **credentials) -> Person:
        token = self.post("identity", "/tokens", json={"grant_type": "password", **credentials}, expect=200)
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        me = self.get("identity", "/me", headers=headers, expect=200).json()
        return Person(label, me["id"], headers)

    def create_user(self, admin: Person, label: str, *, name: str, grants: list[tuple[str, str]],
                    kind: str = "staff", password: str, **login_name) -> Person:
        """An account made by an admin (``phone=`` or ``username=``), then logged in."""
        self.post("identity", "/users", admin, expect=201, json={
            "kind": kind, "name": name, "password": password, **login_name,
            "grants": [{"role": role, "scope": scope} for role, scope in grants]})
        return self.login(label, password=password, **login_name)

    def register_resident(self, *, phone: str, name: str, password: str, **more) -> Person:
        """Ask for a code, read it from the texts the phone received, register with it
        (``more``: optional fields such as ``national_id``)."""
        self.post("identity", "/codes", json={"phone": phone, "purpose": "register"}, expect=202)
        code = self.sms.code_for(phone, timeout=PROPAGATION)
        self.post("identity", "/residents", expect=201, json={
            "phone": phone, "code": code, "name": name, "password": password} | more)
        return self.login("resident", phone=phone, password=password)

    def staff(self, who: Person, grid_id: int, person: Person, role: str) -> None:
        self.post("grids", f"/grids/{grid_id}/staff", who, json={"user_id": person.id, "role": role}, expect=201)


# --------------------------------------------------------------------------
# the live stream
# --------------------------------------------------------------------------


class NoticeStream:
    """``GET /me/notifications/stream`` read in a thread, reconnecting with
    ``Last-Event-ID`` when a response ends, the way a browser client does."""

    def __init__(self, gridgov: Gridgov, who: Person):
        self.gridgov, self.who = gridgov, who
        self.notices: list[dict] = []
        self.connected = threading.Event()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._response: requests.Response | None = None
        self._last_id: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"sse-{who.label}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            # A fresh stream starts from now; a reconnection asks for what came meanwhile
            # ("0" when nothing came yet: everything recent).
            headers = dict(self.who.headers) | ({} if first else {"Last-Event-ID": self._last_id or "0"})
            first = False
            try:
                with requests.get(self.gridgov.urls["notify"] + "/me/notifications/stream", headers=headers,
                                  stream=True, timeout=(10, 60)) as response:
                    self._response = response
                    if response.status_code != 200:
                        self.errors.append(f"{response.status_code} {response.text[:500]}")
                        return
                    self._read(response)
            except Exception as exc:  # noqa: BLE001 - closing the response mid-read raises anything
                if not self._stop.is_set():
                    self.errors.append(repr(exc))
                    self._stop.wait(0.5)  # then reconnect, as EventSource does after `retry`

    def _read(self, response: requests.Response) -> None:
        event: dict[str, str] = {}
        for line in response.iter_lines(decode_unicode=True):
            if self._stop.is_set():
                return
            if line.startswith(": connected"):
                self.connected.set()
            elif line == "":
                if event.get("event") == "notice":
                    self.notices.append(json.loads(event["data"]))
                    self._last_id = event.get("id") or self._last_id
                event = {}
            elif not line.startswith(":") and ":" in line:
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")

    def wait_connected(self) -> None:
        try:
            wait_for(self.connected.is_set, timeout=PROPAGATION, interval=0.05,
                     message=f"{self.who.label}'s notification stream to open")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.errors}") from None

    def wait_for(self, predicate: Callable[[dict], bool], message: str) -> dict:
        return wait_for(lambda: next((n for n in list(self.notices) if predicate(n)), None),
                        timeout=PROPAGATION, interval=0.05, message=message)

    def close(self) -> None:
        self._stop.set()
        if self._response is not None:
            self._response.close()
        self._thread.join(timeout=15)


# --------------------------------------------------------------------------
# the cast and the world they live in
# --------------------------------------------------------------------------


@dataclass
class Cast:
    """Everyone the journey needs, logged in, and where the petition is made."""

    county: Person  # county admin: categories, departments' officers, the marker division
    resident: Person
    workers: tuple[Person, Person]  # both staff the target grid; they race to claim
    community_admin: Person  # the community's admin: supervises the escalated case, whistles
    officer: Person  # a department officer (department:<DEPARTMENT>)
    category: str  # a category of the target grid's network
    network: str
    place: dict  # {"building_id": …} or {"lon", "lat"}
    grid_id: int  # where the case must be routed
    grid_name: str
    community_name: str
    bystanders: list[Person] = field(default_factory=list)  # staff at the same place who must hear nothing
    grid_head: Person | None = None


def png() -> bytes:
    """A real 1×1 PNG (one orange pixel): intake checks the type by the bytes' magic numbers."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    pixel = zlib.compress(b"\x00\xff\x80\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixel) + chunk(b"IEND", b"")


def square(lon: float, lat: float, size: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size],
                                                [lon, lat + size], [lon, lat]]]}


def wait_until_dispatch_has_the_world(gg: Gridgov, county: Person) -> None:
    """dispatch routes from its projection of grids' events: a case opened before the
    grids, divisions and staff reached it would go elsewhere. grids publishes in order
    and dispatch consumes its queue in order, so once a marker division created *now*
    has arrived, everything grids published before it has too. The marker is a tiny
    county far from everything (a community, since that is what dispatch answers about)."""
    tag = uuid.uuid4().hex[:6].upper()
    lon, lat = 121.0 + int(tag[:2], 16) * 0.01, 31.0 + int(tag[2:4], 16) * 0.01
    for kind, code, parent in (("county", f"MARK-{tag}", None), ("street", f"MARK-{tag}-1", f"MARK-{tag}"),
                               ("community", f"MARK-{tag}-1-1", f"MARK-{tag}-1")):
        gg.post("grids", "/divisions", county, expect=201, json={
            "code": code, "name": f"标记{kind}{tag}", "kind": kind, "parent_code": parent,
            "boundary": square(lon, lat, 0.005)})
    wait_for(lambda: gg.get("dispatch", f"/communities/MARK-{tag}-1-1/settings", county).status_code == 200,
             timeout=PROPAGATION, interval=0.2, message="dispatch's projection to catch up with grids")


# --------------------------------------------------------------------------
# the journey
# --------------------------------------------------------------------------

EXPECTED_STEPS = ["submitted", "opened", "assigned", "claimed", "progressed", "deadline_missed", "escalated",
                  "whistled", "reported_in", "resolved", "rated", "closed"]


def notices_of(gg: Gridgov, who: Person, case: tuple[str, str]) -> list[dict]:
    """Someone's notices about the case (case id, petition id): intake's own events
    (the rating) name the petition only."""
    case_id, petition_id = case
    page = gg.get("notify", "/me/notifications", who, params={"limit": 200}, expect=200).json()
    return [n for n in page["items"] if n["case_id"] == case_id or n["petition_id"] == petition_id]


def kinds_of(gg: Gridgov, who: Person, case: tuple[str, str]) -> list[str]:
    return sorted(n["kind"] for n in notices_of(gg, who, case))


def case_detail(gg: Gridgov, who: Person, case_id: str) -> dict:
    return gg.get("dispatch", f"/cases/{case_id}", who, expect=200).json()


def run_journey(gg: Gridgov, cast: Cast) -> dict:
    """Report → route → race to claim → deadline missed and escalated → whistle and
    report-in → resolve → timeline → rating → figures → everybody's notices."""
    resident, (first, second), admin = cast.resident, cast.workers, cast.community_admin

    # -- an urgent category: claim within 10 minutes, handle within 1 --------------------
    category = gg.call("PATCH", "intake", f"/categories/{cast.category}", cast.county, expect=200, json={
        "claim_minutes": CLAIM_MINUTES, "handle_minutes": HANDLE_MINUTES}).json()
    assert category["handle_minutes"] == HANDLE_MINUTES and category["network"] == cast.network
    wait_until_dispatch_has_the_world(gg, cast.county)

    # -- a worker's claim board is open before anything happens ------------------------
    stream = NoticeStream(gg, first)
    try:
        stream.wait_connected()

        # -- the resident reports, with a photo -----------------------------------------
        photo_bytes = png()
        photo = gg.post("intake", "/photos", resident, data=photo_bytes,
                        headers={"Content-Type": "image/png"}, expect=201).json()
        body = {"category": cast.category, "description": "楼道里有很重的燃气味，担心泄漏",
                "place": cast.place, "photos": [photo["id"]]}

        def submitted():
            # intake learns places (counties, buildings) from grids' events: until they
            # arrive the place is refused, so retry until it is accepted.
            answer = gg.post("intake", "/petitions", resident, json=body)
            if answer.status_code == 422 and "place" in answer.json().get("errors", {}):
                return None
            assert answer.status_code == 201, answer.text
            return answer.json()

        petition = wait_for(submitted, timeout=PROPAGATION, interval=0.5, message="intake to accept the place")
        petition_id = petition["id"]
        assert petition["status"] == "submitted" and petition["photos"] == [photo["id"]]

        # -- the case routes to the right grid of the category's network -----------------
        def assigned():
            p = gg.get("intake", f"/petitions/{petition_id}", resident, expect=200).json()
            return p if p["status"] == "assigned" and p["case_id"] else None

        petition = wait_for(assigned, timeout=PROPAGATION, interval=0.2, message="the case to be offered")
        case_id = petition["case_id"]
        assert petition["grid_id"] == cast.grid_id, (petition["grid_id"], cast.grid_id)

        # -- the offer arrives live on the worker's stream -------------------------------
        offer = stream.wait_for(lambda n: n["kind"] == "case_offered" and n["case_id"] == case_id,
                                message="the offer on the worker's live stream")
        assert offer["petition_id"] == petition_id
    finally:
        stream.close()

    ids = (case_id, petition_id)
    case = case_detail(gg, admin, case_id)
    assert case["state"] == "offered" and case["grid_id"] == cast.grid_id and case["network"] == cast.network
    assert {first.id, second.id} <= set(case["offered_to"])
    assert not {b.id for b in cast.bystanders} & set(case["offered_to"])
    queue = gg.get("dispatch", "/cases/queue", second, params={"which": "offered"}, expect=200).json()
    assert case_id in [c["id"] for c in queue["items"]]
    # Staff see the resident's photo.
    shown = gg.get("intake", f"/photos/{photo['id']}", second, expect=200)
    assert shown.content == photo_bytes and shown.headers["Content-Type"] == "image/png"

    # -- 秒认领: two workers race; exactly one wins --------------------------------------
    barrier = threading.Barrier(2)
    answers: dict[str, requests.Response] = {}

    def claim(worker: Person) -> None:
        barrier.wait(timeout=30)
        answers[worker.id] = gg.post("dispatch", f"/cases/{case_id}/claim", worker)

    racers = [threading.Thread(target=claim, args=(w,)) for w in (first, second)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    statuses = sorted(a.status_code for a in answers.values())
    assert statuses == [201, 409], {k: (a.status_code, a.text[:300]) for k, a in answers.items()}
    winner, loser = (first, second) if answers[first.id].status_code == 201 else (second, first)
    assert answers[winner.id].json()["claimed_by"] == winner.id
    assert answers[loser.id].headers["Content-Type"] == "application/problem+json"
    assert "claim" in answers[loser.id].json()["detail"]

    gg.post("dispatch", f"/cases/{case_id}/notes", winner, json={"text": NOTE}, expect=201)

    # -- the handling deadline passes: the case climbs to the community ------------------
    def escalated():
        detail = case_detail(gg, admin, case_id)
        return detail if detail["level"] == "community" else None

    case = wait_for(escalated, timeout=DEADLINE, interval=0.5, message="the handling deadline to be missed")
    assert case["state"] == "claimed" and case["light"] == "red"
    assert any(t["action"] == "escalate" and "deadline missed" in t["reason"] for t in case["transitions"])

    # -- 吹哨报到: the community admin whistles a department, which reports in ------------
    whistle = gg.post("dispatch", f"/cases/{case_id}/whistle", admin, expect=201, json={
        "departments": [DEPARTMENT], "report_in_hours": 2, "reason": "燃气管道需专业部门处置"}).json()
    whistled = wait_for(lambda: [n for n in notices_of(gg, cast.officer, ids) if n["kind"] == "case_whistled"],
                        timeout=PROPAGATION, interval=0.3, message="the officer to hear the whistle")
    assert whistled[0]["critical"] is True
    reported = gg.post("dispatch", f"/cases/{case_id}/whistles/{whistle['id']}/report-in", cast.officer,
                       json={}, expect=200).json()
    assert reported["reported_by"] == cast.officer.id and reported["late"] is False
    gg.post("dispatch", f"/cases/{case_id}/whistles/{whistle['id']}/handling", cast.officer,
            json={"text": "已派燃气抢修队到场"}, expect=200)

    # -- resolved; the resident sees it and rates it ------------------------------------
    resolved = gg.post("dispatch", f"/cases/{case_id}/resolve", winner, json={"result": RESULT}, expect=200)
    assert resolved.json()["state"] == "resolved"
    wait_for(lambda: gg.get("intake", f"/petitions/{petition_id}", resident, expect=200).json()["status"]
             == "resolved", timeout=PROPAGATION, interval=0.2, message="the resident to see the resolution")
    rated = gg.post("intake", f"/petitions/{petition_id}/rating", resident,
                    json={"rating": 5, "comment": COMMENT}, expect=200).json()
    assert rated["rating"] == 5

    # -- the timeline: every step, in order, in plain words -----------------------------
    def closed():
        t = gg.get("intake", f"/petitions/{petition_id}/timeline", resident, expect=200).json()
        return t if t["status"] == "closed" and t["steps"][-1]["kind"] == "closed" else None

    timeline = wait_for(closed, timeout=PROPAGATION, interval=0.3, message="the case to be archived")
    steps = timeline["steps"]
    assert [s["kind"] for s in steps] == EXPECTED_STEPS, [(s["kind"], s["text"]) for s in steps]
    text = {s["kind"]: s["text"] for s in steps}
    assert text["submitted"].startswith("诉求已提交")
    assert text["assigned"] == f"已分派至 {cast.grid_name}"
    assert text["claimed"] == "工作人员已认领，正在办理"
    assert text["progressed"] == f"办理进展：{NOTE}"
    assert text["deadline_missed"] == "办理超时，已督办"
    assert text["escalated"] == f"已上报至{cast.community_name}处理"
    assert text["whistled"] == f"已吹哨，{DEPARTMENT} 报到联合处理"
    assert text["reported_in"] == f"{DEPARTMENT} 已报到"
    assert text["resolved"] == f"已办结：{RESULT}"
    assert text["rated"] == "您的评价：5 星"
    assert text["closed"] == "已归档"
    english = gg.get("intake", f"/petitions/{petition_id}/timeline", resident,
                     headers={"Accept-Language": "en"}, expect=200).json()
    assert english["language"] == "en" and english["steps"][-2]["text"] == "Your rating: 5 stars"

    # -- figures (三率) for the grid -------------------------------------------------------
    def grid_row():
        rows = gg.get("dispatch", "/figures", admin, params={"by": "grid"}, expect=200).json()["rows"]
        row = next((r for r in rows if r["key"] == str(cast.grid_id)), None)
        return row if row and row["rated"] == 1 else None

    row = wait_for(grid_row, timeout=PROPAGATION, interval=0.3, message="the rating to reach the figures")
    assert row["opened"] == row["offered"] == row["claimed_in_time"] == row["resolved"] == row["satisfied"] == 1
    assert row["response_rate"] == row["resolution_rate"] == row["satisfaction_rate"] == 1.0
    assert row["overdue"] == 0 and row["median_claim_seconds"] is not None

    # -- everybody heard what they had to, and nothing else -----------------------------
    expected = {
        "resident": (resident, ["case_claimed", "case_closed", "case_opened", "case_progressed", "case_resolved"]),
        "winner": (winner, ["case_offered", "deadline_missed", "petition_rated"]),
        "loser": (loser, ["case_offered"]),
        "community admin": (admin, ["deadline_missed"]),
        "officer": (cast.officer, ["case_whistled"]),
    }
    for label, (who, kinds) in expected.items():
        try:
            wait_for(lambda who=who, kinds=kinds: set(kinds) <= set(kinds_of(gg, who, ids)),
                     timeout=PROPAGATION, interval=0.3, message=f"the {label}'s notices {kinds}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; has {kinds_of(gg, who, ids)}") from None
    got = {label: kinds_of(gg, who, ids) for label, (who, _) in expected.items()}
    # The reminder at 80 % of the handling time reaches the handler unless a sweep came
    # only after the deadline itself (a very loaded machine): allowed, not required.
    if "deadline_approaching" in got["winner"]:
        got["winner"].remove("deadline_approaching")
    assert got == {label: kinds for label, (_, kinds) in expected.items()}, got
    missed = [n for n in notices_of(gg, admin, ids) if n["kind"] == "deadline_missed"]
    assert missed[0]["critical"] is True and missed[0]["petition_id"] == petition_id
    for person in [*cast.bystanders, *([cast.grid_head] if cast.grid_head else [])]:
        assert kinds_of(gg, person, ids) == [], person
    unread = gg.get("notify", "/me/notifications/unread-count", resident, expect=200).json()["unread"]
    assert unread >= 5

    return {"petition_id": petition_id, "case_id": case_id, "winner": winner, "loser": loser,
            "timeline": steps, "figures": row}


# --------------------------------------------------------------------------
# casts: a small world built from nothing, or the demo county of `gridgov run`
# --------------------------------------------------------------------------

STAFF_PASSWORD = "journey-staff-pass"
CATEGORY = "safety_hazard"  # handled by the security network


def small_world_cast(gg: Gridgov, sysadmin: Person) -> Cast:
    """A fresh installation, through the public APIs only: a county admin, a county →
    street → community, a security grid (west half) and an urban grid (south half) that
    both cover the petition's place, staff in identity and on the grids, a department
    officer, a building and a resident."""
    county = gg.create_user(sysadmin, "county admin", name="县级管理员", username="county-journey",
                            password=STAFF_PASSWORD, grants=[("county_admin", "county")])
    area = square(100.20, 25.60, 0.10)
    for kind, code, parent, name in (("county", "JN", None, "旅程县"), ("street", "JN-1", "JN", "旅程街道"),
                                     ("community", "JN-1-1", "JN-1", "和平社区")):
        community = gg.post("grids", "/divisions", county, expect=201, json={
            "code": code, "name": name, "kind": kind, "parent_code": parent, "boundary": area}).json()
    west = {"type": "Polygon", "coordinates": [[[100.20, 25.60], [100.25, 25.60], [100.25, 25.70],
                                                [100.20, 25.70], [100.20, 25.60]]]}
    south = {"type": "Polygon", "coordinates": [[[100.20, 25.60], [100.30, 25.60], [100.30, 25.65],
                                                 [100.20, 25.65], [100.20, 25.60]]]}
    security = gg.post("grids", "/grids", county, expect=201, json={
        "network": "security", "code": "JN-S-01", "name": "和平社区1号网格", "level": 1,
        "division_id": community["id"], "boundary": west}).json()
    urban = gg.post("grids", "/grids", county, expect=201, json={
        "network": "urban", "code": "JN-U-01", "name": "和平社区城管1号网格", "level": 1,
        "division_id": community["id"], "boundary": south}).json()

    def staff(label: str, name: str, phone: str, role: str, scope: str) -> Person:
        return gg.create_user(county, label, name=name, phone=phone, password=STAFF_PASSWORD,
                              grants=[(role, scope)])

    first = staff("first worker", "张网格", "13700000011", "grid_worker", f"grid:{security['id']}")
    second = staff("second worker", "李网格", "13700000012", "grid_worker", f"grid:{security['id']}")
    head = staff("grid head", "王网格长", "13700000013", "grid_head", f"grid:{security['id']}")
    urban_worker = staff("urban worker", "赵城管", "13700000014", "grid_worker", f"grid:{urban['id']}")
    admin = gg.create_user(county, "community admin", name="和平社区书记", username="heping-admin",
                           password=STAFF_PASSWORD, grants=[("community_admin", "division:JN-1-1")])
    officer = gg.create_user(county, "officer", kind="dept_officer", name="住建局值班员", username="housing-duty",
                             password=STAFF_PASSWORD, grants=[("dept_officer", f"department:{DEPARTMENT}")])
    for person, role in ((first, "grid_worker"), (second, "grid_worker"), (head, "grid_head")):
        gg.staff(county, security["id"], person, role)
    gg.staff(county, urban["id"], urban_worker, "grid_worker")
    building = gg.post("grids", "/buildings", county, expect=201, json={
        "code": "JN-B001", "name": "和平小区1号楼", "grid_id": security["id"],
        "location": {"type": "Point", "coordinates": [100.22, 25.62]}}).json()
    located = gg.get("grids", "/locate", county, params={"lon": 100.22, "lat": 25.62}, expect=200).json()
    assert {g["network"]: g["id"] for g in located["grids"]} == {"security": security["id"], "urban": urban["id"]}

    resident = gg.register_resident(phone="13912340001", name="陈居民", password="a long pass phrase")
    return Cast(county=county, resident=resident, workers=(first, second), community_admin=admin, officer=officer,
                category=CATEGORY, network="security", place={"building_id": building["id"]},
                grid_id=security["id"], grid_name=security["name"], community_name="和平社区",
                bystanders=[urban_worker], grid_head=head)


def demo_accounts(banner: str) -> dict[str, dict]:
    """The demo accounts `gridgov run` prints: role → {phone, password, note}."""
    accounts = {}
    for line in banner.splitlines():
        # "  grid_worker      phone 13984349256  password gridgov-demo  (姚海斌, grid security-DL-01-01-001)"
        # "  community_admin  phone username community  password gridgov-demo  (community DL-01-01; …)"
        found = re.match(r"^\s+(\w+)\s+phone (.+?)\s+password (\S+)\s*(.*)$", line)
        if found:
            role, phone, password, note = found.groups()
            accounts[role] = {"phone": phone, "password": password, "note": note}
    return accounts


def demo_cast(gg: Gridgov, banner: str) -> Cast:
    """The demo county of `gridgov run`, with the accounts it prints: the resident, the
    grid worker and grid head of a security grid, the `community` and `county` admins.
    The petition is made where that grid is the deepest security grid (so the case is
    routed to it), at one of its buildings when one lies there. The county admin adds a
    worker and a department officer; the grid head puts the new worker on the grid (a
    grid head staffs workers in their grid's subtree)."""
    accounts = demo_accounts(banner)
    resident = gg.login("resident", phone=accounts["resident"]["phone"], password=accounts["resident"]["password"])
    worker = gg.login("demo worker", phone=accounts["grid_worker"]["phone"],
                      password=accounts["grid_worker"]["password"])
    head = gg.login("demo grid head", phone=accounts["grid_head"]["phone"],
                    password=accounts["grid_head"]["password"])
    county = gg.login("county admin", username="county", password=accounts["county_admin"]["password"])
    admin = gg.login("community admin", username="community", password=accounts["community_admin"]["password"])
    grid_code = accounts["grid_worker"]["note"].rstrip(")").rsplit(" ", 1)[-1]  # "(姚海斌, grid security-…)"

    home = gg.get("grids", "/grids", county, params={"network": "security", "code": grid_code},
                  expect=200).json()["items"][0]
    place, target, located = demo_place(gg, county, home)
    colleague = gg.create_user(county, "new worker", name="新网格员", phone="13700000099",
                               password=STAFF_PASSWORD, grants=[("grid_worker", f"grid:{target['id']}")])
    for person in (colleague,) if target["id"] == home["id"] else (worker, colleague):
        gg.staff(head, target["id"], person, "grid_worker")
    officer = gg.create_user(county, "officer", kind="dept_officer", name="住建局值班员", username="housing-duty",
                             password=STAFF_PASSWORD, grants=[("dept_officer", f"department:{DEPARTMENT}")])
    return Cast(county=county, resident=resident, workers=(worker, colleague), community_admin=admin,
                officer=officer, category=CATEGORY, network="security", place=place,
                grid_id=target["id"], grid_name=target["name"], community_name=located["community"]["name"],
                grid_head=head)


def demo_place(gg: Gridgov, who: Person, home: dict) -> tuple[dict, dict, dict]:
    """A place whose deepest security grid (where dispatch routes) is ``home`` or, when
    sub-grids tile ``home``, one of them: a building there if any, else a point.
    Answers (place, that grid, the locate answer)."""
    from shapely.geometry import Point, shape

    def deepest(lon: float, lat: float) -> tuple[dict | None, dict]:
        located = gg.get("grids", "/locate", who, params={"lon": lon, "lat": lat}, expect=200).json()
        security = [g for g in located["grids"] if g["network"] == "security"]
        grid = max(security, key=lambda g: (g["level"], -g["id"]), default=None)  # as dispatch routes
        return (grid if grid and home["id"] in ancestry(gg, who, grid["id"]) else None), located

    root = ancestry(gg, who, home["id"])[-1]  # buildings belong to level-1 grids
    buildings = gg.get("grids", "/buildings", who, params={"grid": root, "limit": 100}, expect=200).json()["items"]
    boundary = shape(gg.get("grids", f"/grids/{home['id']}", who, expect=200).json()["boundary"])
    for building in buildings:
        lon, lat = building["location"]["coordinates"][:2]
        if boundary.contains(Point(lon, lat)):
            grid, located = deepest(lon, lat)
            if grid:
                return {"building_id": building["id"]}, grid, located
    x0, y0, x1, y1 = boundary.bounds
    candidates = [boundary.representative_point()] + [
        Point(x0 + (x1 - x0) * i / 8, y0 + (y1 - y0) * j / 8) for i in range(1, 8) for j in range(1, 8)]
    for point in candidates:
        if boundary.contains(point):
            grid, located = deepest(point.x, point.y)
            if grid:
                return {"lon": point.x, "lat": point.y}, grid, located
    raise AssertionError(f"no place in {home['code']} is routed to it or its sub-grids")


def ancestry(gg: Gridgov, who: Person, grid_id: int | None) -> list[int]:
    chain = []
    while grid_id is not None and grid_id not in chain:
        chain.append(grid_id)
        grid_id = gg.get("grids", f"/grids/{grid_id}", who, expect=200).json()["parent_id"]
    return chain
