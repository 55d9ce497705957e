"""The kit's side of PIPL across services: one event from identity erases her everywhere
(over RabbitMQ), and identity assembles her download from each service's own route."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from gridkit import privacy
from gridkit.auth import TokenVerifier
from gridkit.processes import free_port
from gridkit.testkit import wait_for
from grids.service import spec as grids_spec
from grids.tables import Person
from identity.service import spec as identity_spec
from identity.testing import register
from intake.service import spec as intake_spec
from intake.tables import Petition
from intake.testing import INSIDE, seed_places

PASSWORD = "correct horse battery"
NAME, PHONE = "林晓燕", "13987650001"


def trusting(identity) -> TokenVerifier:
    """A verifier for another service that trusts identity's own keys, as in production."""
    return TokenVerifier.from_jwks(identity.extras["keyring"].jwks, issuer="gridgov-identity", audience="gridgov")


def resident(identity, phone: str = PHONE) -> tuple[str, dict]:
    client = identity.app(testing=True).test_client()
    created = register(client, {"phone": phone, "name": NAME, "password": PASSWORD})
    assert created.status_code == 201, created.json
    token = client.post("/tokens", json={"grant_type": "password", "phone": phone, "password": PASSWORD}).json
    return created.json["id"], {"Authorization": f"Bearer {token['access_token']}"}


def serve(runtime) -> str:
    port = free_port()
    server = make_server("127.0.0.1", port, runtime.app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    runtime.extras["server"] = server
    return f"http://127.0.0.1:{port}"


def test_one_event_from_identity_erases_her_in_every_service_over_rabbitmq(make_runtime):
    identity = make_runtime(identity_spec, db="postgres", bus="amqp")
    grids = make_runtime(grids_spec, db="postgres", bus="amqp", verifier=trusting(identity))
    intake = make_runtime(intake_spec, db="postgres", bus="amqp", verifier=trusting(identity))
    seed_places(intake)
    for runtime in (identity, grids, intake):
        runtime.start_background()
    her, own = resident(identity)
    wait_for(lambda: person_in_grids(grids, her), timeout=30, message="grids to learn of her")
    at_intake = intake.app(testing=True).test_client()
    petition = at_intake.post("/petitions", headers=own, json={
        "category": "water_leak", "description": f"漏水，请联系{NAME}", "place": INSIDE,
        "contact": {"phone": PHONE}}).json

    at_identity = identity.app(testing=True).test_client()
    assert at_identity.post("/me/erasure", headers=own, json={"password": PASSWORD}).status_code == 202

    def erased_in_intake():
        with intake.db.transaction() as session:
            kept = session.get(Petition, petition["id"])
            return kept.contact_name is None and kept.contact_phone is None and NAME not in kept.description
    wait_for(erased_in_intake, timeout=30, message="intake to erase her contact")
    wait_for(lambda: person_in_grids(grids, her).display_name == privacy.ERASED_NAME, timeout=30,
             message="grids to forget her name")
    with intake.db.transaction() as session:
        assert session.get(Petition, petition["id"]).reporter_id == her  # the petition stays, hers
    for runtime in (intake, grids, identity):
        client = runtime.app(testing=True).test_client()
        wait_for(lambda c=client: c.get("/me/personal-data", headers=own).status_code == 401, timeout=30,
                 message=f"{runtime.spec.name} to refuse her token")


def person_in_grids(grids, user_id: str) -> Person | None:
    with grids.db.transaction() as session:
        return session.get(Person, user_id)


@pytest.fixture
def three_services(make_runtime, monkeypatch):
    """identity, grids and intake as HTTP servers, the platform being those three."""
    monkeypatch.setenv("GRIDGOV_SERVICES", "identity,grids,intake")
    identity = make_runtime(identity_spec, db="postgres")
    grids = make_runtime(grids_spec, db="postgres", verifier=trusting(identity))
    intake = make_runtime(intake_spec, db="postgres", verifier=trusting(identity))
    seed_places(intake)
    urls = {"grids": serve(grids), "intake": serve(intake)}
    identity.settings.extra.update({f"GRIDGOV_{name.upper()}_URL": url for name, url in urls.items()})
    yield identity, grids, intake
    for runtime in (grids, intake):
        runtime.extras["server"].shutdown()


def test_identity_assembles_her_download_from_each_services_own_route_with_her_token(three_services):
    identity, grids, intake = three_services
    her, own = resident(identity, "13987650002")
    petition = intake.app(testing=True).test_client().post("/petitions", headers=own, json={
        "category": "water_leak", "description": "楼道漏水", "place": INSIDE, "contact": {"phone": "13987650002"}})
    assert petition.status_code == 201, petition.json

    answer = identity.app(testing=True).test_client().get("/me/personal-data/download", headers=own)
    assert answer.status_code == 200, answer.json
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="gridgov-personal-data-')
    doc = answer.json
    assert doc["user_id"] == her and set(doc["services"]) == {"identity", "grids", "intake"}
    assert doc["exported_at"].endswith("+08:00")
    assert doc["services"]["identity"]["data"]["account"]["phone"] == "13987650002"
    [reported] = doc["services"]["intake"]["data"]["petitions_reported"]
    assert reported["id"] == petition.json["id"] and reported["contact"] == {"name": NAME, "phone": "13987650002"}
    assert doc["services"]["grids"]["data"]["households"] == []


def test_a_download_missing_a_service_is_a_503_naming_it(three_services):
    identity, _, _ = three_services
    identity.settings.extra["GRIDGOV_GRIDS_URL"] = f"http://127.0.0.1:{free_port()}"  # nobody listens
    _, own = resident(identity, "13987650003")
    answer = identity.app(testing=True).test_client().get("/me/personal-data/download", headers=own)
    assert answer.status_code == 503 and answer.json["services"] == ["grids"]
    assert "grids unreachable" in answer.json["detail"] and answer.headers["Retry-After"] == "30"
