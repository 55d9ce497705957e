"""Every intake endpoint × every role: allowed (2xx) or forbidden (403); no token → 401.

Each caller holds one role; grid roles sit on grid:11, community/street admins on their
division. The petition acted on belongs to another resident, so the reporter-only
routes (withdraw, rating, rework) are forbidden to every role here; their positive
paths are in test_intake_timeline.py.
"""

from __future__ import annotations

import pytest

from gridkit.auth import ROLES
from intake.testing import JPEG, feed_case

from .conftest import petition_body, submit, upload

SCOPE = {"grid_worker": "grid:11", "grid_head": "grid:11", "building_manager": "grid:11",
         "community_admin": "division:DL-01-01", "street_admin": "division:DL-01",
         "dept_officer": "department:water"}
ALL = set(ROLES)
STAFF = {"grid_worker", "grid_head", "community_admin", "street_admin", "county_admin", "dept_officer", "sysadmin"}
OPERATORS = {"grid_worker", "community_admin", "street_admin", "county_admin"}
ADMINS = {"community_admin", "street_admin", "county_admin"}
UPLOADERS = {"resident", "grid_worker", "grid_head"} | ADMINS


def hotline(c, h, w):
    return c.post("/petitions", headers=h, json=petition_body(
        channel="hotline", reporter_id="r-1", contact={"name": "张三", "phone": "13712345678"}, separate=True))


ENDPOINTS = [
    ("GET /categories", ALL, lambda c, h, w: c.get("/categories", headers=h)),
    ("POST /categories", {"county_admin", "sysadmin"}, lambda c, h, w: c.post("/categories", headers=h, json={
        "code": f"c_{w['n']}", "name_zh": "测试", "name_en": "Test", "network": "urban",
        "claim_minutes": 10, "handle_hours": 10})),
    ("PATCH /categories/<code>", {"county_admin", "sysadmin"}, lambda c, h, w: c.patch(
        "/categories/other", headers=h, json={"handle_hours": 100})),
    ("POST /photos", UPLOADERS, lambda c, h, w: c.post("/photos", data=JPEG, headers=h | {
        "Content-Type": "image/jpeg"})),
    ("GET /photos/<id>", STAFF, lambda c, h, w: c.get(f"/photos/{w['photo']}", headers=h)),
    ("POST /petitions (app)", {"resident"}, lambda c, h, w: c.post(
        "/petitions", headers=h, json=petition_body(separate=True))),
    ("POST /petitions (hotline)", OPERATORS, hotline),
    ("POST /petitions (patrol)", {"grid_worker", "grid_head"}, lambda c, h, w: c.post(
        "/petitions", headers=h, json=petition_body(channel="patrol", separate=True))),
    ("GET /petitions", ADMINS, lambda c, h, w: c.get("/petitions", headers=h)),
    ("GET /me/petitions", ALL, lambda c, h, w: c.get("/me/petitions", headers=h)),
    ("GET /petitions/<id>", STAFF, lambda c, h, w: c.get(f"/petitions/{w['open']}", headers=h)),
    ("GET /petitions/<id>/timeline", STAFF, lambda c, h, w: c.get(f"/petitions/{w['open']}/timeline", headers=h)),
    ("POST /petitions/<id>/withdraw", set(), lambda c, h, w: c.post(f"/petitions/{w['open']}/withdraw", headers=h)),
    ("POST /petitions/<id>/rating", set(), lambda c, h, w: c.post(
        f"/petitions/{w['resolved']}/rating", headers=h, json={"rating": 5})),
    ("POST /petitions/<id>/rework", set(), lambda c, h, w: c.post(
        f"/petitions/{w['resolved']}/rework", headers=h, json={"reason": "不满意"})),
    ("POST /petitions/<id>/followers", {"resident"}, lambda c, h, w: c.post(
        f"/petitions/{w['open']}/followers", headers=h)),
    ("POST /petitions/<id>/merge", ADMINS, lambda c, h, w: c.post(
        f"/petitions/{w['fresh']()}/merge", headers=h, json={"into": w["open"]})),
]


@pytest.fixture
def world(intake, client, people):
    _, owner = people.resident()
    photo = upload(client, owner).json["id"]
    open_ = submit(client, owner, photos=[photo])
    resolved = submit(client, owner, separate=True)
    feed_case(intake, "resolved", resolved)
    counter = iter(range(1000))
    return {"photo": photo, "open": open_["id"], "resolved": resolved["id"], "n": next(counter),
            "fresh": lambda: submit(client, owner, separate=True)["id"]}


@pytest.mark.parametrize("name,allowed,call", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_each_role_is_allowed_or_forbidden_and_no_token_is_401(client, people, world, name, allowed, call):
    assert call(client, {}, world).status_code == 401
    for n, role in enumerate(ROLES):
        world["n"] = n
        _, headers = people.person((role, SCOPE.get(role, "county")))
        status = call(client, headers, world).status_code
        if role in allowed:
            assert 200 <= status < 300, f"{name} as {role}: {status}"
        else:
            assert status == 403, f"{name} as {role}: {status}"
