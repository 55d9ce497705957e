"""identity verifies its own tokens through its own JWKS; forged tokens are refused."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update


def claims_for(user_id, **overrides):
    now = datetime.now(UTC)
    return {"iss": "gridgov-identity", "aud": "gridgov", "sub": user_id, "iat": now,
            "exp": now + timedelta(minutes=5), "jti": str(uuid.uuid4()), "kind": "user",
            "grants": [{"role": "sysadmin", "scope": "county"}]} | overrides


def active_key(identity):
    with identity.db.transaction() as session:
        return identity.extras["keyring"]._signing_key(session)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(identity, user_id, attack):
    kid, key = active_key(identity)
    headers = {"kid": kid, "typ": "at+jwt"}
    if attack == "alg none":
        return jwt.encode(claims_for(user_id), None, algorithm="none", headers=headers)
    if attack == "HS256 with the public key":
        public = key.public_key().public_bytes_raw()
        return jwt.encode(claims_for(user_id), public, algorithm="HS256", headers=headers)
    if attack == "unknown kid":
        return jwt.encode(claims_for(user_id), Ed25519PrivateKey.generate(), algorithm="EdDSA",
                          headers=headers | {"kid": "not-ours"})
    if attack == "our kid, someone else's key":
        return jwt.encode(claims_for(user_id), Ed25519PrivateKey.generate(), algorithm="EdDSA",
                          headers=headers)
    if attack == "tampered payload":
        token = jwt.encode(claims_for(user_id, grants=[{"role": "resident", "scope": "county"}]),
                           key, algorithm="EdDSA", headers=headers)
        head, _, signature = token.split(".")
        payload = b64(json.dumps(claims_for(user_id) | {"iat": 0, "exp": 4_000_000_000}).encode())
        return f"{head}.{payload}.{signature}"
    overrides = {
        "expired": {"exp": datetime.now(UTC) - timedelta(minutes=1),
                    "iat": datetime.now(UTC) - timedelta(minutes=11)},
        "wrong aud": {"aud": "some-other-system"},
        "wrong iss": {"iss": "https://evil.example"},
        "no exp": {"exp": None},
    }
    if attack == "wrong typ":
        return jwt.encode(claims_for(user_id), key, algorithm="EdDSA", headers=headers | {"typ": "JWT"})
    claims = {k: v for k, v in (claims_for(user_id) | overrides[attack]).items() if v is not None}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)


ATTACKS = ["alg none", "HS256 with the public key", "expired", "wrong aud", "wrong iss", "wrong typ",
           "tampered payload", "unknown kid", "our kid, someone else's key", "no exp"]


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("route", [("GET", "/me"), ("GET", "/users"), ("POST", "/keys/rotate")])
def test_forged_tokens_are_refused_with_401(identity, client, people, attack, route):
    user_id = people.add(("sysadmin", "county"))
    token = forge(identity, user_id, attack)
    method, path = route
    response = client.open(path, method=method, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, (attack, response.json)
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("header", ["Bearer", "Bearer not.a.jwt", "Basic dXNlcjpwdw==", "Bearer a.b"])
def test_malformed_authorization_headers_are_401(client, header):
    assert client.get("/me", headers={"Authorization": header}).status_code == 401


def test_an_honest_token_signed_by_the_active_key_is_accepted(identity, client, people):
    # Control for the attacks above: the same construction, unmodified, works.
    user_id = people.add(("sysadmin", "county"))
    kid, key = active_key(identity)
    token = jwt.encode(claims_for(user_id), key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_jwks_publishes_only_public_ed25519_keys(client):
    keys = client.get("/.well-known/jwks.json").json["keys"]
    assert len(keys) == 1
    assert set(keys[0]) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert (keys[0]["kty"], keys[0]["crv"], keys[0]["alg"], keys[0]["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")


def test_key_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(identity, client, people):
    from identity.tables import SigningKey

    identity.extras["keyring"].publish_lead = timedelta(0)  # see the next test for the lead
    root_id, root = people.with_role("sysadmin")
    old_token = people.token(root_id)
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    rotated = client.post("/keys/rotate", headers=root)
    assert rotated.status_code == 200 and rotated.json["previous_kid"] == old_kid
    new_kid = rotated.json["kid"]
    assert {k["kid"] for k in client.get("/.well-known/jwks.json").json["keys"]} == {old_kid, new_kid}

    new_token = people.token(root_id)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    identity.verifier.jwks._fetched_at = 0  # with no publish lead, verifiers must re-fetch
    for token in (old_token, new_token):
        assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    # Once every token the old key signed has expired, the old key leaves the JWKS.
    with identity.db.transaction() as session:
        session.execute(update(SigningKey).where(SigningKey.kid == old_kid)
                        .values(retire_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert [k["kid"] for k in client.get("/.well-known/jwks.json").json["keys"]] == [new_kid]
    identity.verifier.jwks._fetched_at = 0  # skip the verifier's one-second cache
    assert client.get("/me", headers={"Authorization": f"Bearer {old_token}"}).status_code == 401

    # The next rotation destroys the retired private key.
    client.post("/keys/rotate", headers={"Authorization": f"Bearer {new_token}"})
    with identity.db.transaction() as session:
        assert session.get(SigningKey, old_kid).private_sealed is None


def test_a_rotated_key_is_published_before_it_signs(identity, client, people):
    root_id, root = people.with_role("sysadmin")
    old_kid = jwt.get_unverified_header(people.token(root_id))["kid"]
    rotated = client.post("/keys/rotate", headers=root).json
    assert datetime.fromisoformat(rotated["signs_from"]) > datetime.now(UTC) + timedelta(seconds=5)
    assert rotated["kid"] in {k["kid"] for k in client.get("/.well-known/jwks.json").json["keys"]}
    # Verifiers get time to fetch the new key: until then the old key keeps signing.
    assert jwt.get_unverified_header(people.token(root_id))["kid"] == old_kid


def test_private_signing_keys_are_encrypted_at_rest(identity):
    from sqlalchemy import text

    with identity.db.engine.connect() as conn:
        sealed = conn.execute(text("SELECT private_sealed FROM signing_keys")).scalar_one()
    assert sealed.startswith("v2:") and "PRIVATE KEY" not in sealed
