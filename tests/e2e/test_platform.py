"""identity and grids as separate gunicorn processes with their own workers,
on real PostgreSQL and RabbitMQ: tokens verified across services through the
JWKS, events flowing through the outbox, the bus and the inbox."""

import re

import requests

from gridkit import registry
from gridkit.testkit import wait_for

SQUARE = {"type": "Polygon", "coordinates": [[[100.20, 25.60], [100.30, 25.60], [100.30, 25.70],
                                              [100.20, 25.70], [100.20, 25.60]]]}
HALF = {"type": "Polygon", "coordinates": [[[100.20, 25.60], [100.25, 25.60], [100.25, 25.70],
                                            [100.20, 25.70], [100.20, 25.60]]]}


def login(platform, **credentials) -> dict:
    answer = requests.post(platform.url("identity", "/tokens"), json={"grant_type": "password", **credentials},
                           timeout=10)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_a_county_is_set_up_across_services_and_events_reach_the_registry(platform, sms_gateway):
    platform.gridgov("create-sysadmin", "--username", "root-admin",
                     extra_env={"GRIDGOV_ADMIN_PASSWORD": "e2e-admin-password"})
    admin = login(platform, username="root-admin", password="e2e-admin-password")

    # A resident registers herself with the code texted to her (identity → bus → notify → SMS
    # gateway); her phone never leaves identity unmasked to others.
    asked = requests.post(platform.url("identity", "/codes"), json={
        "phone": "13912345678", "purpose": "register"}, timeout=10)
    assert asked.status_code == 202, asked.text
    resident = requests.post(platform.url("identity", "/residents"), json={
        "phone": "13912345678", "code": sms_gateway.code_for("13912345678"), "name": "李四",
        "password": "a long pass phrase"}, timeout=10)
    assert resident.status_code == 201, resident.text

    # The admin creates a grid worker account in identity …
    worker = requests.post(platform.url("identity", "/users"), headers=admin, json={
        "kind": "staff", "name": "张网格", "phone": "13700000001"}, timeout=10)
    assert worker.status_code == 201, worker.text
    worker_id = worker.json()["id"]
    assert worker.json()["phone"] == "137****0001"

    # … and the registry, trusting identity's tokens through the JWKS, gets a county.
    grids = platform.url("grids")
    county = requests.post(grids + "/divisions", headers=admin, json={
        "code": "T", "name": "测试县", "kind": "county", "boundary": SQUARE}, timeout=10)
    assert county.status_code == 201, county.text
    street = requests.post(grids + "/divisions", headers=admin, json={
        "code": "T-1", "name": "测试街道", "kind": "street", "parent_code": "T", "boundary": SQUARE}, timeout=10)
    community = requests.post(grids + "/divisions", headers=admin, json={
        "code": "T-1-1", "name": "测试社区", "kind": "community", "parent_code": "T-1", "boundary": SQUARE},
        timeout=10)
    assert street.status_code == community.status_code == 201, community.text
    grid = requests.post(grids + "/grids", headers=admin, json={
        "network": "security", "code": "T-G1", "name": "一号网格", "level": 1,
        "division_id": community.json()["id"], "boundary": HALF}, timeout=10)
    assert grid.status_code == 201, grid.text
    grid_id = grid.json()["id"]

    overlapping = requests.post(grids + "/grids", headers=admin, json={
        "network": "security", "code": "T-G2", "name": "二号网格", "level": 1,
        "division_id": community.json()["id"], "boundary": SQUARE}, timeout=10)
    assert overlapping.status_code == 422
    assert overlapping.headers["Content-Type"] == "application/problem+json"
    assert "boundary" in overlapping.json()["errors"]

    located = requests.get(grids + "/locate", params={"lon": 100.22, "lat": 25.65}, headers=admin, timeout=10)
    assert located.status_code == 200
    assert [g["code"] for g in located.json()["grids"]] == ["T-G1"]
    assert located.json()["community"]["code"] == "T-1-1"

    # Staff the grid with the identity user; the registry learns the name from
    # identity.user.registered (outbox → RabbitMQ → grids.people inbox).
    staffed = requests.post(f"{grids}/grids/{grid_id}/staff", headers=admin,
                            json={"user_id": worker_id, "role": "grid_worker"}, timeout=10)
    assert staffed.status_code == 201, staffed.text

    def staff_name():
        answer = requests.get(f"{grids}/grids/{grid_id}/staff", headers=admin, timeout=10).json()
        return [s["display_name"] for s in answer["current"]] == ["张网格"]

    wait_for(staff_name, timeout=30, message="the worker's name to reach grids through the bus")

    # A resident's token may read but not draw grids.
    citizen = login(platform, phone="13912345678", password="a long pass phrase")
    assert requests.get(grids + "/networks", headers=citizen, timeout=10).status_code == 200
    assert requests.post(grids + "/grids", headers=citizen, json={
        "network": "security", "code": "X", "name": "x", "level": 1, "boundary": HALF},
        timeout=10).status_code == 403
    # A forged token is refused by a service that never saw identity's private key.
    forged = admin["Authorization"][:-4] + "AAAA"
    assert requests.get(grids + "/networks", headers={"Authorization": forged}, timeout=10).status_code == 401


def test_metrics_are_counted_across_gunicorn_workers(platform):
    url = platform.url("grids")
    for _ in range(40):
        requests.get(url + "/healthz", timeout=5)
    text = requests.get(url + "/metrics", timeout=5).text
    match = re.search(r'gridgov_http_requests_total\{method="GET",route="/healthz",service="grids",status="200"\} (\S+)', text)
    assert match and float(match.group(1)) >= 40


def test_gunicorn_answers_name_no_server_and_carry_the_security_headers(platform):
    refused = requests.post(platform.url("identity", "/tokens"), timeout=10,
                            json={"grant_type": "password", "username": "nobody", "password": "not the one"})
    assert refused.status_code == 401 and refused.headers["Cache-Control"] == "no-store"
    for service in registry.SERVICES:
        for response in (requests.get(platform.url(service, "/healthz"), timeout=10),
                         requests.get(platform.url(service, "/nowhere"), timeout=10), refused):
            headers = response.headers
            assert "Server" not in headers and "X-Powered-By" not in headers, (service, dict(headers))
            assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
            assert headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
            assert headers["Referrer-Policy"] == "no-referrer"
