"""Issue #11's proof of offboarding: every service as its own gunicorn and worker processes on
real RabbitMQ and PostgreSQL. A grid worker holding an offer and a claimed case is disabled
by an admin in scope; within seconds every service refuses the token issued before, the
offer is gone, the claimed case is with the grid head, and the resident's timeline and the
notices say so. Disabling oneself, or someone outside one's scope, changes nothing."""

from __future__ import annotations

import time

import requests

from gridkit.testkit import wait_for

from .journey import (
    CATEGORY,
    PROPAGATION,
    STAFF_PASSWORD,
    Gridgov,
    Person,
    square,
    wait_until_dispatch_has_the_world,
)

SERVICES_SEEN_BY_A_WORKER = {  # one authenticated read per service, for any grid worker
    "identity": "/me",
    "grids": "/networks",
    "intake": "/categories",
    "dispatch": "/cases/queue",
    "notify": "/me/notifications",
}
REFUSED_WITHIN = 30.0  # seconds; about one on an idle machine, the rest is a loaded 2-core CI


def statuses(gg: Gridgov, who: Person) -> dict[str, int]:
    return {service: gg.get(service, path, who).status_code for service, path in SERVICES_SEEN_BY_A_WORKER.items()}


def petition(gg: Gridgov, resident: Person, building_id: int, text: str) -> str:
    body = {"category": CATEGORY, "description": text, "place": {"building_id": building_id}, "separate": True}

    def submitted():
        answer = gg.post("intake", "/petitions", resident, json=body)
        if answer.status_code == 422 and "place" in answer.json().get("errors", {}):
            return None  # intake has not heard of the building yet
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    return wait_for(submitted, timeout=PROPAGATION, interval=0.5, message="intake to accept the place")


def case_of(gg: Gridgov, resident: Person, petition_id: str) -> str:
    def routed():
        p = gg.get("intake", f"/petitions/{petition_id}", resident, expect=200).json()
        return p["case_id"] if p["status"] == "assigned" and p["case_id"] else None

    return wait_for(routed, timeout=PROPAGATION, interval=0.3, message="the case to be offered")


def kinds(gg: Gridgov, who: Person, case_id: str) -> list[str]:
    page = gg.get("notify", "/me/notifications", who, params={"limit": 200}, expect=200).json()
    return sorted(n["kind"] for n in page["items"] if n["case_id"] == case_id)


def test_a_grid_worker_who_leaves_is_refused_everywhere_and_strands_no_case(platform, sms_gateway):
    platform.gridgov("create-sysadmin", "--username", "offboarding-root",
                     extra_env={"GRIDGOV_ADMIN_PASSWORD": "offboarding-root-password"})
    gg = Gridgov(platform.urls, sms=sms_gateway)
    root = gg.login("sysadmin", username="offboarding-root", password="offboarding-root-password")
    county = gg.create_user(root, "county admin", name="县级管理员", username="county-offboarding",
                            password=STAFF_PASSWORD, grants=[("county_admin", "county")])

    # -- a community with two security grids, a worker and a grid head on the first ---------
    area = square(100.20, 25.60, 0.10)
    for kind, code, parent in (("county", "OB", None), ("street", "OB-1", "OB"), ("community", "OB-1-1", "OB-1")):
        community = gg.post("grids", "/divisions", county, expect=201, json={
            "code": code, "name": f"离岗{kind}", "kind": kind, "parent_code": parent, "boundary": area}).json()
    grid = gg.post("grids", "/grids", county, expect=201, json={
        "network": "security", "code": "OB-S-01", "name": "离岗测试1号网格", "level": 1,
        "division_id": community["id"], "boundary": square(100.20, 25.60, 0.05)}).json()
    other = gg.post("grids", "/grids", county, expect=201, json={
        "network": "security", "code": "OB-S-02", "name": "离岗测试2号网格", "level": 1,
        "division_id": community["id"], "boundary": square(100.25, 25.60, 0.05)}).json()
    worker = gg.create_user(county, "leaving worker", name="周网格", phone="13700000021",
                            password=STAFF_PASSWORD, grants=[("grid_worker", f"grid:{grid['id']}")])
    head = gg.create_user(county, "grid head", name="吴网格长", phone="13700000022",
                          password=STAFF_PASSWORD, grants=[("grid_head", f"grid:{grid['id']}")])
    # admins at one grid each (identity's scope for community admins who manage grid staff)
    in_scope = gg.create_user(county, "admin in scope", name="本网格管理员", username="ob-admin-1",
                              password=STAFF_PASSWORD, grants=[("community_admin", f"grid:{grid['id']}")])
    outsider = gg.create_user(county, "admin elsewhere", name="别的网格管理员", username="ob-admin-2",
                              password=STAFF_PASSWORD, grants=[("community_admin", f"grid:{other['id']}")])
    gg.staff(county, grid["id"], worker, "grid_worker")
    gg.staff(county, grid["id"], head, "grid_head")
    building = gg.post("grids", "/buildings", county, expect=201, json={
        "code": "OB-B001", "name": "离岗小区1号楼", "grid_id": grid["id"],
        "location": {"type": "Point", "coordinates": [100.22, 25.62]}}).json()
    resident = gg.register_resident(phone="13912340021", name="钱居民", password="a long pass phrase")
    wait_until_dispatch_has_the_world(gg, county)

    # -- the worker claims one case and is offered another -------------------------------
    claimed_petition = petition(gg, resident, building["id"], "小区门口井盖松动，夜里很危险")
    claimed = case_of(gg, resident, claimed_petition)
    gg.post("dispatch", f"/cases/{claimed}/claim", worker, expect=201)
    wait_for(lambda: gg.get("intake", f"/petitions/{claimed_petition}", resident).json()["status"] == "claimed",
             timeout=PROPAGATION, interval=0.3, message="the resident to see the claim")
    offered = case_of(gg, resident, petition(gg, resident, building["id"], "楼道堆放杂物，堵塞消防通道"))
    queue = gg.get("dispatch", "/cases/queue", worker, expect=200).json()["items"]
    assert {c["id"] for c in queue} == {claimed, offered}
    assert set(statuses(gg, worker).values()) == {200}

    # -- bad requests change nothing -----------------------------------------------------
    for who, target in ((outsider, worker), (in_scope, in_scope)):
        refused = gg.post("identity", f"/users/{target.id}/disable", who, json={"reason": "trying it out"})
        assert refused.status_code in (403, 409, 422), refused.text
        assert refused.headers["Content-Type"] == "application/problem+json" and refused.json()["detail"]
    assert gg.get("identity", f"/users/{worker.id}/status-changes", county, expect=200).json() == []
    assert gg.get("identity", f"/users/{worker.id}", county, expect=200).json()["disabled"] is False
    assert set(statuses(gg, worker).values()) == {200}
    assert gg.get("dispatch", f"/cases/{claimed}", head, expect=200).json()["claimed_by"] == worker.id

    # -- the admin in scope disables the worker ------------------------------------------
    started = time.monotonic()
    gone = gg.post("identity", f"/users/{worker.id}/disable", in_scope, expect=200,
                   json={"reason": "调离网格员岗位"}).json()
    assert gone["disabled"] is True and gone["grants"] == []

    def everywhere_refused():
        seen = statuses(gg, worker)
        return seen if set(seen.values()) == {401} else None

    try:
        wait_for(everywhere_refused, timeout=REFUSED_WITHIN, interval=0.2,
                 message="every service to refuse the token issued before")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {statuses(gg, worker)}") from None
    refused_after = time.monotonic() - started
    assert refused_after < REFUSED_WITHIN

    # -- the offer is gone and the claimed case is with the grid head -----------------------
    def with_the_head():
        cases = [gg.get("dispatch", f"/cases/{c}", head, expect=200).json() for c in (claimed, offered)]
        return cases if all(c["state"] == "offered" and c["offered_to"] == [head.id] for c in cases) else None

    held, was_offered = wait_for(with_the_head, timeout=PROPAGATION, interval=0.3,
                                 message="both cases to be with the grid head")
    assert held["claimed_by"] is None and held["step"] == "claim"
    assert held["transitions"][-1]["action"] == "hand_back" and "handler left" in held["transitions"][-1]["reason"]
    assert worker.id not in was_offered["offered_to"]
    head_queue = gg.get("dispatch", "/cases/queue", head, params={"which": "offered"}, expect=200).json()["items"]
    assert {claimed, offered} <= {c["id"] for c in head_queue}
    staff = gg.get("grids", f"/grids/{grid['id']}/staff", county, expect=200).json()
    assert worker.id not in [s["user_id"] for s in staff["current"]]
    assert worker.id in [s["user_id"] for s in staff["past"]]

    # -- the resident's timeline and the notices say so -----------------------------------
    def handed_back_line():
        timeline = gg.get("intake", f"/petitions/{claimed_petition}/timeline", resident, expect=200).json()
        return timeline if timeline["steps"][-1]["kind"] == "handed_back" else None

    timeline = wait_for(handed_back_line, timeout=PROPAGATION, interval=0.3, message="the timeline line")
    assert timeline["steps"][-1]["text"] == "原办理人员有变动，正在重新安排工作人员办理"
    assert timeline["status"] == "assigned"
    assert "周网格" not in str(timeline)
    wait_for(lambda: "case_handed_back" in kinds(gg, head, claimed) and "case_handed_back" in kinds(gg, head, offered),
             timeout=PROPAGATION, interval=0.3, message="the grid head's notices")
    wait_for(lambda: "case_handler_changed" in kinds(gg, resident, claimed), timeout=PROPAGATION, interval=0.3,
             message="the resident's notice")
    assert "case_handler_changed" not in kinds(gg, resident, offered)  # nobody had claimed it

    # -- and the grid head moves the case to someone in scope ------------------------------
    newcomer = gg.create_user(county, "new worker", name="郑网格", phone="13700000023",
                              password=STAFF_PASSWORD, grants=[("grid_worker", f"grid:{grid['id']}")])
    gg.staff(county, grid["id"], newcomer, "grid_worker")

    def reassigned():
        answer = gg.post("dispatch", f"/cases/{claimed}/reassign", head,
                         json={"to": newcomer.id, "reason": "接替离岗网格员"})
        return answer.json() if answer.status_code == 200 else None  # until dispatch has the staffing

    moved = wait_for(reassigned, timeout=PROPAGATION, interval=0.5, message="the reassignment")
    assert (moved["state"], moved["claimed_by"]) == ("claimed", newcomer.id)
    wait_for(lambda: "case_reassigned" in kinds(gg, newcomer, claimed), timeout=PROPAGATION, interval=0.3,
             message="the new handler's notice")
    assert requests.get(platform.url("dispatch", "/readyz"), timeout=10).status_code == 200
