"""Role × endpoint matrix: every notify route, the ten roles and no token."""

import pytest

from gridkit.auth import ROLES

EVERYONE = set(ROLES)
OPERATORS = {"sysadmin", "county_admin"}

ROUTES = [
    ("get", "/me/notifications", None, EVERYONE),
    ("get", "/me/notifications/unread-count", None, EVERYONE),
    ("post", "/me/notifications/read-all", None, EVERYONE),
    ("post", "/me/notifications/1/read", None, EVERYONE),  # 404 for everyone: nobody owns notice 1
    ("get", "/me/contacts", None, EVERYONE),
    ("put", "/me/contacts", {"email": "a@example.cn"}, EVERYONE),
    ("get", "/me/preferences", None, EVERYONE),
    ("put", "/me/preferences", {"language": "en"}, EVERYONE),
    ("get", "/deliveries", None, OPERATORS),
]
SCOPES = {"dept_officer": "department:police", "grid_worker": "grid:7", "grid_head": "grid:7",
          "building_manager": "grid:7", "community_admin": "division:DL-01-01", "street_admin": "division:DL-01"}


@pytest.mark.parametrize("method,path,body,allowed", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_each_role_gets_what_the_route_allows_and_no_token_gets_401(client, tokens, method, path, body, allowed):
    answers = {}
    for role in (*ROLES, None):
        headers = tokens.header((role, SCOPES.get(role, "county"))) if role else {}
        answer = getattr(client, method)(path, json=body, headers=headers)
        answers[role] = answer.status_code
        assert answer.content_type in ("application/json", "application/problem+json")
    expected_ok = 404 if path.endswith("/1/read") else 200
    assert answers == {role: expected_ok if role in allowed else 403 for role in ROLES} | {None: 401}


def test_the_stream_needs_a_token_and_is_open_to_every_role(client, tokens):
    assert client.get("/me/notifications/stream").status_code == 401
    bad = client.get("/me/notifications/stream", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401 and bad.content_type == "application/problem+json"
    for role in ROLES:
        response = client.get("/me/notifications/stream", headers=tokens.header((role, SCOPES.get(role, "county"))),
                              buffered=False)
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        assert next(response.response).startswith(b"retry:")
        response.close()
