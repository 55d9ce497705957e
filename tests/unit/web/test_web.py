import pytest

from gridkit.config import Settings
from gridkit.service import Runtime

from .sample_service import spec

PROBLEM = "application/problem+json"


@pytest.fixture
def client(tmp_path, tokens):
    settings = Settings(service="sample", database_url=f"sqlite:///{tmp_path}/sample.db")
    runtime = Runtime.build(spec, settings, verifier=tokens.verifier())
    app = runtime.app(testing=True)
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    return app.test_client()


def test_valid_body_is_accepted(client):
    response = client.post("/notes", json={"title": "leak", "priority": 2})
    assert response.status_code == 201
    assert response.json == {"id": 1, "title": "leak", "priority": 2}


def test_unknown_field_is_rejected_with_a_problem_naming_it(client):
    response = client.post("/notes", json={"title": "leak", "colour": "red"})
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert "colour" in response.json["errors"]
    assert response.json["status"] == 422


def test_wrong_type_names_the_field(client):
    response = client.post("/notes", json={"title": "x", "priority": "high"})
    assert response.status_code == 422
    assert "priority" in response.json["errors"]


@pytest.mark.parametrize("path, body", [
    ("/notes", {"title": "a\u0000b", "priority": 2}),  # PostgreSQL text cannot hold it
    ("/notes/%00", None),
    ("/notes?title=%00&x=\x00", None),
    ("/notes?title=a%00b", None),  # percent-encoded: werkzeug decodes it to a NUL
    ("/notes?%00=1", None),
])
def test_a_nul_character_anywhere_is_a_422_problem(client, path, body):
    response = client.post(path, json=body) if body else client.get(path)
    assert response.status_code == 422 and response.content_type == PROBLEM
    assert response.json["errors"] == {"request": ["contains a NUL character"]}


def test_body_that_is_not_json_is_a_problem(client):
    response = client.post("/notes", data="{not json", content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.content_type == PROBLEM


def test_huge_payload_is_refused_with_413(client):
    response = client.post("/notes", json={"title": "x" * 20_000})
    assert response.status_code == 413
    assert response.content_type == PROBLEM


def test_domain_conflict_is_a_409_problem(client):
    response = client.post("/notes", json={"title": "taken"})
    assert response.status_code == 409
    assert response.json["detail"] == "a note with that title exists"


def test_unknown_route_is_a_404_problem_not_html(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.content_type == PROBLEM


def test_unexpected_error_is_a_500_problem_without_the_stack_or_message(client):
    response = client.get("/notes/boom")
    assert response.status_code == 500
    assert response.content_type == PROBLEM
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert generated and " " not in generated


def test_the_webs_readiness_needs_its_database_not_the_broker(client):
    # The outbox keeps what the web changes while the broker is away: a web pod stays in service.
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok"}


def test_metrics_count_requests_by_route_template(client):
    client.post("/notes", json={"title": "a"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'gridgov_http_requests_total{method="POST",route="/notes",service="sample",status="201"}' in text


def test_metrics_count_unknown_methods_as_other(client):
    # Any method string a client sends would otherwise be a new series, without bound.
    client.open("/notes", method="BREW")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'method="other"' in text and "BREW" not in text


def test_openapi_documents_routes_and_problem_errors(client):
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.")
    post = doc["paths"]["/notes"]["post"]
    assert "NoteIn" in str(post["requestBody"])
    responses = doc["components"]["responses"]
    assert all("application/json" not in r.get("content", {}) for r in responses.values())


def test_protected_route_needs_a_token_and_the_role(client, tokens):
    assert client.get("/notes/secret").status_code == 401
    worker = tokens.header(("grid_worker", "grid:1"))
    assert client.get("/notes/secret", headers=worker).status_code == 403
    admin = tokens.header(("county_admin", "county"))
    assert client.get("/notes/secret", headers=admin).status_code == 200


def test_behind_a_trusted_proxy_the_client_address_is_the_forwarded_one(tmp_path, tokens):
    from flask import request

    settings = Settings(service="sample", database_url=f"sqlite:///{tmp_path}/p.db", trusted_proxies=1)
    app = Runtime.build(spec, settings, verifier=tokens.verifier()).app(testing=True)
    app.add_url_rule("/whoami", "whoami", lambda: {"ip": request.remote_addr})
    answer = app.test_client().get("/whoami", headers={"X-Forwarded-For": "203.0.113.9"})
    assert answer.json["ip"] == "203.0.113.9"


def test_every_answer_carries_the_security_headers(client):
    for response in (client.post("/notes", json={"title": "a"}), client.post("/notes", json={"colour": 1}),
                     client.get("/nowhere"), client.get("/notes/boom"), client.get("/metrics")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Cache-Control" not in response.headers  # only answers with secrets say no-store
        assert "X-Powered-By" not in response.headers


def test_a_page_may_set_its_own_content_security_policy(client):
    page = client.get("/notes/page")
    assert page.headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_an_answer_with_a_secret_is_never_stored(client):
    assert client.get("/notes/key").headers["Cache-Control"] == "no-store"
