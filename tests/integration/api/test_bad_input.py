"""Bad input that used to get a 500 (issue 11): each finding is now a 4xx problem.

The kit's property-based test (tests/integration/kit/test_kit_bad_input.py) throws
generated input at every route; these pin the findings themselves, route by route.
"""

from __future__ import annotations

import base64
import json

import pytest

from gridkit import registry

from ..staff import broad_staff_headers

PROBLEM = "application/problem+json"
DEEP_ARRAY = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT = '{"a":' * 50_000 + "1" + "}" * 50_000
A_CASE = "0190a0a0-0000-7000-8000-000000000000"

# Every list route that takes a cursor, with a cursor of the shape it gives out.
LIST_ROUTES = [
    ("identity", "/users"),
    ("grids", "/grids"),
    ("grids", "/buildings"),
    ("intake", "/petitions"),
    ("intake", "/me/petitions"),
    ("dispatch", "/cases"),
    ("dispatch", "/cases/queue"),
    ("notify", "/me/notifications"),
    ("notify", "/deliveries"),
]


def b64(text: str, padded: bool = False) -> str:
    encoded = base64.urlsafe_b64encode(text.encode()).decode()
    return encoded if padded else encoded.rstrip("=")


@pytest.fixture
def service_client(make_runtime, tokens):
    """service_client(name, db) → (test client, headers of a broad staff token)."""
    def make(name: str, db: str = "postgres"):
        runtime = make_runtime(registry.load(name), db=db)
        return runtime.app(testing=True).test_client(), broad_staff_headers(runtime, tokens)

    return make


def assert_problem(response, status: int | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:500])
    if status is not None:
        assert response.status_code == status, response.json
    assert response.content_type == PROBLEM
    return response.json


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize("service, method, path", [
    ("identity", "POST", "/residents"),
    ("grids", "POST", "/locate"),
    ("intake", "POST", "/petitions"),
    ("dispatch", "POST", f"/cases/{A_CASE}/notes"),
    ("notify", "PUT", "/me/preferences"),
])
def test_json_nested_fifty_thousand_deep_is_a_422_problem(service_client, service, method, path, body):
    client, headers = service_client(service, "sqlite")
    response = client.open(path, method=method, data=body, content_type="application/json", headers=headers)
    problem = assert_problem(response, 422)
    assert problem["errors"] == {"json": ["nested deeper than 32 levels"]}


@pytest.mark.parametrize("service, method, path", [
    ("identity", "POST", "/residents"),
    ("intake", "POST", "/petitions"),
])
def test_json_with_an_integer_of_five_thousand_digits_is_a_422_problem(service_client, service, method, path):
    # Python refuses to read an integer longer than 4300 digits with a plain ValueError.
    client, headers = service_client(service, "sqlite")
    response = client.open(path, method=method, data='{"a": ' + "7" * 5000 + "}",
                           content_type="application/json", headers=headers)
    assert_problem(response, 422)


def test_a_photo_whose_bytes_are_deeply_nested_json_is_a_422_not_parsed_for_its_fingerprint(service_client):
    client, headers = service_client("intake", "sqlite")
    response = client.post("/photos", data=DEEP_ARRAY.encode(),
                           headers=headers | {"Content-Type": "image/png", "Idempotency-Key": "photo-1"})
    problem = assert_problem(response, 422)
    assert "body" in problem["errors"]  # the bytes are not a PNG image


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
@pytest.mark.parametrize("service, path", [
    ("grids", "/grids?cursor=" + b64("99999999999999999999999", padded=True)),  # grids' own form
    ("grids", "/buildings?grid=99999999999999999999999"),
    ("grids", "/grids?parent=99999999999999999999999"),
    ("dispatch", "/cases?cursor=" + b64(json.dumps([2**80]))),
    ("notify", "/me/notifications?cursor=" + b64(json.dumps([2**80]))),
    ("notify", "/deliveries?cursor=" + b64(json.dumps([2**80]))),
])
def test_an_integer_past_sixty_four_bits_in_a_cursor_or_an_id_is_a_422(service_client, service, path, db):
    client, headers = service_client(service, db)
    problem = assert_problem(client.get(path, headers=headers), 422)
    assert set(problem["errors"]) & {"cursor", "grid", "parent"}


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
@pytest.mark.parametrize("service, path", LIST_ROUTES)
def test_a_cursor_of_the_wrong_shape_is_a_422_naming_cursor(service_client, service, path, db):
    client, headers = service_client(service, db)
    for values in ([{"a": 1}], [[1, 2]], [{"a": 1}, "x"], [[1, 2], [3]], [2**80], [-(2**80), "x"]):
        response = client.get(path, query_string={"cursor": b64(json.dumps(values))}, headers=headers)
        problem = assert_problem(response, 422)
        assert list(problem["errors"]) == ["cursor"], (values, problem)


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
@pytest.mark.parametrize("service, path", [
    ("grids", "/grids/9223372036854775807"),
    ("grids", "/grids/99999999999999999999999"),
    ("grids", "/buildings/0"),
    ("grids", "/households/9223372036854775807"),
    ("notify", "/me/notifications/9223372036854775807/read"),
])
def test_a_path_id_past_the_range_is_a_404_or_422(service_client, service, path, db):
    client, headers = service_client(service, db)
    method = "POST" if path.endswith("/read") else "GET"
    assert assert_problem(client.open(path, method=method, headers=headers))["status"] in (404, 422)


@pytest.mark.parametrize("last_event_id", ["²", "99999999999999999999999", "-1", "1e3"])
def test_a_last_event_id_that_is_no_notice_id_is_a_422(service_client, last_event_id):
    # "²".isdigit() is true in Python, and int("²") a ValueError (found by the kit's fuzz test).
    client, headers = service_client("notify", "sqlite")
    response = client.get("/me/notifications/stream", headers=headers | {"Last-Event-ID": last_event_id})
    assert list(assert_problem(response, 422)["errors"]) == ["Last-Event-ID"]


def test_a_lone_surrogate_in_a_json_string_is_a_422_not_an_answer_that_cannot_be_encoded(service_client):
    # Valid JSON, but no UTF-8 text: an answer echoing it could not be written (found by the
    # kit's fuzz test on grids' import report).
    client, headers = service_client("grids", "postgres")
    body = '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null, ' \
        '"properties": {"code": "\\ud800", "name": "\\ud800", "level": 1}}]}'
    response = client.post("/networks/security/import", data=body, content_type="application/json",
                           headers=headers)
    assert list(assert_problem(response, 422)["errors"]) == ["json"]
