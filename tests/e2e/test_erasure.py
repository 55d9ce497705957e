"""Issue #11's proof of erasure (PIPL), on real RabbitMQ and PostgreSQL with every service
as its own gunicorn and worker processes.

A resident with petitions (one handled, closed and rated; one open; one taken on the
hotline for her), a photo, notices, contacts in notify and a household in grids
downloads what the platform holds about her, then erases herself. Afterwards no row of
any service's database holds her name, phone, national ID or email: every text column
of every table is searched for the clear values, every sealed value in them is opened
with that service's key and searched too, and her blind indexes are nowhere. Her cases
are still there, and the figures (三率) are what they were.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import psycopg

from contracts.identity import RECIPIENT_PURPOSE, TRANSIT_CONTEXT
from gridkit import registry
from gridkit.crypto import DataKey
from gridkit.testkit import wait_for

from .conftest import DATA_KEY
from .journey import PROPAGATION, Gridgov, Person, png, square, wait_until_dispatch_has_the_world

SERVICES = tuple(registry.SERVICES)  # a service added tomorrow is searched and erased too
PASSWORD = "erase-me-properly"
STAFF_PASSWORD = "erasure-staff-pass"
NAME, PHONE, EMAIL = "陈晓燕", "13912349876", "chen.xiaoyan@example.cn"
NEIGHBOUR_NAME, NEIGHBOUR_PHONE = "邓邻居", "13912349877"
CATEGORY = "other"  # security network, deadlines of days: nothing changes the figures meanwhile
SEALED_PURPOSES = ("phone", "name", "national_id", "contact.email", "contact.sms", "idempotency", "code.sms",
                   RECIPIENT_PURPOSE)
ERASED = "identity.user.erased.v1"


def national_id(body: str = "53290119900307002") -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


NATIONAL_ID = national_id()


# --------------------------------------------------------------------------
# reading every service's database
# --------------------------------------------------------------------------

def text_cells(url: str) -> Iterator[tuple[str, str, str]]:
    """(table, column, value) of every non-null text cell of every table of the database."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'character', 'json', "
            "'jsonb') ORDER BY table_name, ordinal_position").fetchall()
        for table, column in columns:
            for (value,) in conn.execute(f'SELECT "{column}"::text FROM "{table}" WHERE "{column}" IS NOT NULL'):
                yield table, column, value


def opened(key: DataKey, value: str) -> list[str]:
    """What a sealed value says, under whichever purpose opens it."""
    if not value.startswith(("v1:", "v2:")):
        return []
    found = []
    for purpose in SEALED_PURPOSES:
        try:
            found.append(key.open(value, purpose))
        except Exception:  # noqa: BLE001 - not sealed for this purpose
            continue
    return found


def findings(platform, needles: dict[str, str]) -> list[str]:
    """Where any of ``needles`` (label → clear value or blind index) appears in any service's
    database, in clear or inside a sealed value."""
    master = base64.urlsafe_b64decode(DATA_KEY)
    found = []
    transit = DataKey(master, TRANSIT_CONTEXT)  # what identity seals for notify (a code's text)
    for service in SERVICES:
        key = DataKey(master, service)
        for table, column, value in text_cells(platform.env[f"GRIDGOV_{service.upper()}_DATABASE_URL"]):
            for text in (value, *opened(key, value), *opened(transit, value)):
                for label, needle in needles.items():
                    if needle in text:
                        where = "sealed in" if text is not value else "in"
                        found.append(f"{label} {where} {service}.{table}.{column}")
    return found


def blind_indexes(phone: str, nid: str) -> dict[str, str]:
    identity = DataKey(base64.urlsafe_b64decode(DATA_KEY), "identity")
    return {"phone index": identity.index(phone, "phone"), "national ID index": identity.index(nid, "national_id"),
            "login index": identity.index(f"phone:{phone}", "login")}


def erased_everywhere(platform) -> bool:
    """Every service's worker has processed identity.user.erased on the kit's accounts queue."""
    for service in SERVICES:
        with psycopg.connect(platform.env[f"GRIDGOV_{service.upper()}_DATABASE_URL"]) as conn:
            if not conn.execute("SELECT 1 FROM inbox WHERE consumer = %s AND event_type = %s",
                                (f"{service}.accounts", ERASED)).fetchone():
                return False
    return True


# --------------------------------------------------------------------------
# the proof
# --------------------------------------------------------------------------

def test_an_erased_resident_leaves_no_trace_in_any_service_while_her_cases_and_the_figures_stay(platform, sms_gateway):
    platform.gridgov("create-sysadmin", "--username", "erasure-root",
                     extra_env={"GRIDGOV_ADMIN_PASSWORD": "erasure-root-password"})
    gg = Gridgov(platform.urls, sms=sms_gateway)
    root = gg.login("sysadmin", username="erasure-root", password="erasure-root-password")
    county = gg.create_user(root, "county admin", name="县级管理员", username="county-erasure",
                            password=STAFF_PASSWORD, grants=[("county_admin", "county")])
    auditor = gg.create_user(root, "auditor", name="审计员", username="auditor-erasure",
                             password=STAFF_PASSWORD, grants=[("auditor", "county")])

    # -- the world: a county with one security grid, a building, a household -------------
    area = square(100.40, 25.40, 0.10)
    for kind, code, parent, name in (("county", "ER", None, "抹除县"), ("street", "ER-1", "ER", "抹除街道"),
                                     ("community", "ER-1-1", "ER-1", "安宁社区")):
        community = gg.post("grids", "/divisions", county, expect=201, json={
            "code": code, "name": name, "kind": kind, "parent_code": parent, "boundary": area}).json()
    grid = gg.post("grids", "/grids", county, expect=201, json={
        "network": "security", "code": "ER-S-01", "name": "安宁社区1号网格", "level": 1,
        "division_id": community["id"], "boundary": area}).json()
    worker = gg.create_user(county, "worker", name="周网格", phone="13700009901", password=STAFF_PASSWORD,
                            grants=[("grid_worker", f"grid:{grid['id']}")])
    gg.staff(county, grid["id"], worker, "grid_worker")
    building = gg.post("grids", "/buildings", county, expect=201, json={
        "code": "ER-B1", "name": "安宁小区1号楼", "grid_id": grid["id"],
        "location": {"type": "Point", "coordinates": [100.42, 25.42]}}).json()
    unit = gg.post("grids", f"/buildings/{building['id']}/units", county, expect=201,
                   json={"code": "1", "name": "1单元"}).json()
    household = gg.post("grids", f"/units/{unit['id']}/households", county, expect=201,
                        json={"code": "1-302", "floor": 3}).json()

    # -- she and a neighbour register; both live there ------------------------------------
    her = gg.register_resident(phone=PHONE, name=NAME, password=PASSWORD, national_id=NATIONAL_ID)
    neighbour = gg.register_resident(phone=NEIGHBOUR_PHONE, name=NEIGHBOUR_NAME, password=PASSWORD)
    for person in (her, neighbour):
        gg.post("grids", f"/households/{household['id']}/residents", county, expect=201,
                json={"user_id": person.id})
    gg.call("PUT", "notify", "/me/contacts", her, expect=200, json={"email": EMAIL, "phone": PHONE})
    wait_until_dispatch_has_the_world(gg, county)

    # -- her petitions: with a photo, handled and rated; an open one; one by the hotline ---
    photo = gg.post("intake", "/photos", her, data=png(), headers={"Content-Type": "image/png"}, expect=201).json()

    def submitted(who: Person, body: dict) -> dict:
        def go():
            answer = gg.post("intake", "/petitions", who, json=body)
            if answer.status_code == 422 and "place" in answer.json().get("errors", {}):
                return None  # intake has not heard of the county yet
            assert answer.status_code == 201, answer.text
            return answer.json()
        return wait_for(go, timeout=PROPAGATION, interval=0.5, message="intake to accept the place")

    place = {"building_id": building["id"]}
    handled = submitted(her, {"category": CATEGORY, "description": "楼道灯坏了，晚上很黑", "place": place,
                              "photos": [photo["id"]], "contact": {"phone": PHONE}})
    still_open = submitted(her, {"category": CATEGORY, "description": "单元门禁失灵", "place": place,
                                 "separate": True})
    by_phone = submitted(county, {"channel": "hotline", "category": CATEGORY, "description": "电话反映：垃圾清运不及时",
                                  "place": place, "separate": True, "reporter_id": her.id,
                                  "contact": {"name": NAME, "phone": PHONE}})
    gg.post("intake", "/petitions", neighbour, expect=201, json={
        "category": CATEGORY, "description": "邻居的诉求", "place": place, "separate": True,
        "contact": {"phone": NEIGHBOUR_PHONE}})

    def case_of(petition: dict) -> str:
        def offered():
            p = gg.get("intake", f"/petitions/{petition['id']}", her, expect=200).json()
            return p["case_id"] if p["status"] == "assigned" and p["case_id"] else None
        return wait_for(offered, timeout=PROPAGATION, interval=0.3, message="the case to be offered")

    cases = {name: case_of(p) for name, p in (("handled", handled), ("open", still_open), ("hotline", by_phone))}
    gg.post("dispatch", f"/cases/{cases['handled']}/claim", worker, expect=201)
    gg.post("dispatch", f"/cases/{cases['handled']}/resolve", worker, expect=200, json={"result": "已更换灯泡"})
    wait_for(lambda: gg.get("intake", f"/petitions/{handled['id']}", her, expect=200).json()["status"] == "resolved",
             timeout=PROPAGATION, interval=0.3, message="her petition to be resolved")
    gg.post("intake", f"/petitions/{handled['id']}/rating", her, expect=200, json={"rating": 5, "comment": "很及时"})
    wait_for(lambda: gg.get("dispatch", f"/cases/{cases['handled']}", county, expect=200).json()["state"] == "closed",
             timeout=PROPAGATION, interval=0.3, message="the rated case to close")
    wait_for(lambda: {"case_opened", "case_claimed", "case_resolved", "case_closed"} <= {
        n["kind"] for n in gg.get("notify", "/me/notifications", her, params={"limit": 100}, expect=200)
        .json()["items"]}, timeout=PROPAGATION, interval=0.3, message="her notices")

    # -- staff read her contact: each read is in the trail, which the auditor reads -------
    shown = gg.get("intake", f"/petitions/{handled['id']}", county, expect=200).json()
    assert shown["reporter"] == {"id": her.id, "name": NAME, "phone": PHONE, "masked": False}
    gg.get("identity", f"/users/{her.id}/contact", county, params={"reason": "回访诉求办理情况"}, expect=200)
    for service in ("intake", "identity"):
        lines = gg.get(service, "/audit", auditor, params={"subject": her.id}, expect=200).json()["items"]
        assert any(line["action"] == "read_contact" and line["actor_id"] == county.id for line in lines), service
    gg.get("grids", f"/households/{household['id']}", county, expect=200)
    assert gg.get("grids", "/audit", auditor, params={"subject": her.id}, expect=200).json()["items"]
    assert gg.get("intake", "/audit", county).status_code == 403

    # -- she downloads everything the platform holds about her ----------------------------
    download = gg.get("identity", "/me/personal-data/download", her, expect=200).json()
    parts = download["services"]
    assert set(parts) == set(SERVICES)
    account = parts["identity"]["data"]["account"]
    assert (account["name"], account["phone"], account["national_id"]) == (NAME, PHONE, NATIONAL_ID)
    assert [h["household"] for h in parts["grids"]["data"]["households"]] == ["1-302"]
    reported = {p["id"]: p for p in parts["intake"]["data"]["petitions_reported"]}
    assert set(reported) == {handled["id"], still_open["id"], by_phone["id"]}
    assert reported[by_phone["id"]]["contact"] == {"name": NAME, "phone": PHONE}
    assert {c["case_id"] for c in parts["dispatch"]["data"]["cases_from_my_petitions"]} == set(cases.values())
    assert parts["notify"]["data"]["contacts"]["email"] == EMAIL and parts["notify"]["data"]["notices"]
    assert any(r["action"] == "read_contact" for r in parts["intake"]["reads_by_staff"])
    assert download["exported_at"][-6:] in ("+08:00", "+00:00")

    figures_before = gg.get("dispatch", "/figures", county, params={"by": "grid"}, expect=200).json()
    needles = {"her name": NAME, "her phone": PHONE, "her national ID": NATIONAL_ID, "her email": EMAIL,
               **blind_indexes(PHONE, NATIONAL_ID)}
    assert findings(platform, needles), "before the erasure the search finds her (else it proves nothing)"

    # -- she erases herself ----------------------------------------------------------------
    erased = gg.post("identity", "/me/erasure", her, expect=202, json={"password": PASSWORD}).json()
    assert erased["user_id"] == her.id
    wait_for(lambda: erased_everywhere(platform), timeout=PROPAGATION, interval=0.5,
             message="every service to process identity.user.erased")

    # -- no row of any service holds her name, phone, national ID or email ----------------
    assert findings(platform, needles) == []
    photo_bytes = hashlib.sha256(png()).hexdigest()
    assert not list((Path(platform.env["GRIDGOV_DATA_DIR"]) / "photos").rglob(photo_bytes)), "her photo's bytes"
    # The search still sees the neighbour, who was not erased: it looked where she was.
    left = findings(platform, {"neighbour name": NEIGHBOUR_NAME, "neighbour phone": NEIGHBOUR_PHONE})
    assert "neighbour name in identity.users.display_name" in left
    assert "neighbour phone sealed in intake.petitions.contact_phone" in left

    # -- she is gone: no login, no token -----------------------------------------------------
    assert gg.post("identity", "/tokens", json={"grant_type": "password", "phone": PHONE,
                                                "password": PASSWORD}).status_code == 401
    for service in SERVICES:
        wait_for(lambda s=service: gg.get(s, "/me/personal-data", her).status_code == 401, timeout=PROPAGATION,
                 interval=0.5, message=f"{service} to refuse her token")

    # -- her cases and the figures are intact, without her ----------------------------------
    for name, case_id in cases.items():
        case = gg.get("dispatch", f"/cases/{case_id}", county, expect=200).json()
        assert case["reporter_id"] is None, name
    closed = gg.get("dispatch", f"/cases/{cases['handled']}", county, expect=200).json()
    assert closed["state"] == "closed" and closed["rating"] == 5
    kept = gg.get("intake", f"/petitions/{handled['id']}", county, expect=200).json()
    assert kept["status"] == "closed" and kept["rating"] == 5 and kept["description"] == "楼道灯坏了，晚上很黑"
    assert kept["reporter"]["name"] is None and kept["reporter"]["phone"] is None and kept["photos"] == []
    assert gg.get("dispatch", "/figures", county, params={"by": "grid"}, expect=200).json() == figures_before
    household_now = gg.get("grids", f"/households/{household['id']}", county, expect=200).json()
    assert household_now["residents"] == [neighbour.id]
    # The open case goes on without her.
    gg.post("dispatch", f"/cases/{cases['open']}/claim", worker, expect=201)
    wait_for(lambda: gg.get("intake", f"/petitions/{still_open['id']}", county, expect=200).json()["status"]
             == "claimed", timeout=PROPAGATION, interval=0.3, message="the open case to be claimed")
    with psycopg.connect(platform.env["GRIDGOV_NOTIFY_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM notices WHERE recipient_id = %s", (her.id,)).fetchone()[0] == 0
