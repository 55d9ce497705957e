"""Answers that carry secrets are never cached; every answer carries the security headers."""

from __future__ import annotations

from conftest import new_phone

PASSWORD = "correct horse battery"


def secret_free(response) -> bool:
    return response.headers.get("Cache-Control") != "no-store"


def test_answers_with_tokens_secrets_or_unmasked_personal_data_are_never_stored(client, people):
    phone = new_phone()
    people.add(("grid_worker", "grid:1"), password=PASSWORD, phone=phone)
    login = client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": PASSWORD})
    assert login.status_code == 200 and login.headers["Cache-Control"] == "no-store"
    assert login.headers["Pragma"] == "no-cache"
    refreshed = client.post("/tokens", json={"grant_type": "refresh_token",
                                             "refresh_token": login.json["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.headers["Cache-Control"] == "no-store"
    refused = client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": "wrong one!"})
    assert refused.status_code == 401 and refused.headers["Cache-Control"] == "no-store"

    me = {"Authorization": f"Bearer {login.json['access_token']}"}
    assert client.get("/me", headers=me).headers["Cache-Control"] == "no-store"
    _, root = people.with_role("sysadmin")
    created = client.post("/service-accounts", headers=root, json={"name": "水务局系统"})
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    _, admin = people.with_role("county_admin")
    contact = client.get(f"/users/{created.json['id']}/contact?reason=核实报修人身份", headers=admin)
    assert contact.status_code == 200 and contact.headers["Cache-Control"] == "no-store"

    assert secret_free(client.get("/.well-known/jwks.json"))  # public keys: verifiers may cache them
    assert secret_free(client.get("/healthz"))


def test_every_answer_carries_the_security_headers_and_no_banner(client):
    for response in (client.get("/healthz"), client.get("/.well-known/jwks.json"), client.get("/openapi.json"),
                     client.post("/tokens", json={"grant_type": "password"}), client.get("/nowhere")):
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "Server" not in headers and "X-Powered-By" not in headers
