"""RFC 7807 problem details: the only shape an error response ever has."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, fields
from werkzeug.http import HTTP_STATUS_CODES

PROBLEM_TYPE_BASE = "https://gridgov.org/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem response."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 type: str | None = None, errors: dict | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTP_STATUS_CODES.get(status, "Error")
        self.type = type or slug(self.title)
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def slug(title: str) -> str:
    return "-".join(title.lower().replace("'", "").split())


class NotFound(Problem):
    def __init__(self, what: str, ident: Any):
        super().__init__(404, f"{what} {ident} does not exist", type="not-found")


class Conflict(Problem):
    def __init__(self, detail: str, **extra: Any):
        super().__init__(409, detail, type="conflict", **extra)


class Forbidden(Problem):
    def __init__(self, detail: str = "your role and scope do not allow this"):
        super().__init__(403, detail, type="forbidden")


class Unauthorized(Problem):
    def __init__(self, detail: str = "a valid access token is required"):
        super().__init__(401, detail, type="unauthorized",
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Invalid(Problem):
    """422 naming the fields at fault: ``Invalid({"boundary": ["Self-intersection"]})``."""

    def __init__(self, errors: dict, detail: str | None = None):
        first = next(iter(errors), "request")
        super().__init__(422, detail or f"invalid value for {first}", type="validation-error",
                         title="Unprocessable Content", errors=errors)


class ProblemSchema(Schema):
    class Meta:
        unknown = INCLUDE  # RFC 7807 allows extension members (e.g. "field", "checks")

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    instance = fields.String()
    errors = fields.Dict(metadata={"description": "Field name → messages"})
    request_id = fields.String()
