"""The web app factory every service uses.

``create_app(spec, runtime)`` gives a Flask app with: marshmallow schemas on
every route (unknown fields rejected) through flask-smorest, ``/openapi.json``
generated from them, RFC 7807 problems for every error (never HTML, never a
stack trace), request ids, JSON logs, ``/healthz``, ``/readyz`` and
``/metrics``, and the security headers every answer carries (:data:`SECURITY_HEADERS`;
a response that sets its own ``Content-Security-Policy``, e.g. a human-readable page,
keeps it; :func:`no_store` for answers carrying secrets). JSON bodies are read by
:mod:`gridkit.inputs` (a nesting limit); a NUL character anywhere in the request is a 422.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from typing import Any

import flask_smorest
from flask import Flask, Response, g, request
from flask_smorest import Api
from marshmallow import fields, validate
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from . import access, audit, inputs, logs, metrics, privacy, probes, tracing
from .db import unavailable
from .pagination import MAX_CURSOR
from .problems import PROBLEM_CONTENT_TYPE, Problem, ProblemSchema
from .schemas import Schema

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

__all__ = ["Blueprint", "create_app", "Schema", "fields", "Page", "no_store", "SECURITY_HEADERS"]

# JSON APIs load nothing, embed nothing and are framed by nobody.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": API_CSP,
    "Referrer-Policy": "no-referrer",
}


def no_store(view):
    """Route decorator: the answer carries secrets (tokens, a client secret, unmasked
    personal data), so no cache may keep it (``Cache-Control: no-store``, RFC 6749 §5.1),
    whatever the outcome."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.no_store = True
        return view(*args, **kwargs)

    return wrapper


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint, with each route's argument schema built once.

    Given a schema class, webargs builds a new instance on every request, and
    building a marshmallow schema (it copies every declared field) cost more than
    loading the body with it. JSON bodies are read by :func:`gridkit.inputs.loads`."""

    ARGUMENTS_PARSER = inputs.BodyParser()

    def arguments(self, schema, *args, **kwargs):
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)


class ProblemApi(Api):
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException):
        # flask-smorest puts webargs' field messages in error.data["messages"].
        data = getattr(error, "data", None) or {}
        messages = data.get("messages")
        if messages:
            # webargs nests by location ("json", "query"): flatten to field names.
            errors: dict[str, Any] = {}
            for location, fields_ in messages.items():
                if isinstance(fields_, dict):
                    errors.update(fields_)
                else:
                    errors[location] = fields_
            first = next(iter(errors), "request")
            problem = Problem(422 if error.code in (400, 422) else error.code or 400,
                              f"invalid value for {first}", type="validation-error",
                              title="Unprocessable Content", errors=errors)
            return problem_response(problem)
        return problem_response(Problem(error.code or 500, error.description or error.name,
                                        title=error.name))


def problem_response(problem: Problem) -> Response:
    body = problem.body(instance=request.path if request else None)
    rid = getattr(g, "request_id", None)
    if rid:
        body["request_id"] = rid
    response = Response(json.dumps(body, ensure_ascii=False, default=str), status=problem.status,
                        content_type=PROBLEM_CONTENT_TYPE)
    for key, value in problem.headers.items():
        response.headers[key] = value
    return response


class Page(Schema):
    """Cursor pagination parameters shared by list routes. A list route declares the
    shape of its cursor, which then loads to a typed tuple (:mod:`gridkit.pagination`)::

        class CaseQuery(Page):
            cursor = CASES.field()
    """

    cursor = fields.String(validate=validate.Length(max=MAX_CURSOR),
                           metadata={"description": "Opaque cursor from the previous page's next_cursor"})
    # marshmallow 4 ignores a validator's False return: validators must raise (Range does).
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500),
                           metadata={"description": "1–500"})


class BoundedInt(IntegerConverter):
    """``<int:id>`` that never exceeds a 64-bit column (a larger id is a 404, not a 500)."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 - werkzeug's signature
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def _reject_nul() -> None:
    # PostgreSQL text cannot hold NUL; no legitimate input has one. The path is decoded
    # already; a query string is checked raw and percent-encoded (%00).
    query = request.query_string
    if "\x00" in request.path or (query and (b"\x00" in query or b"%00" in query)) \
            or (request.is_json and b"\\u0000" in request.get_data()):
        raise Problem(422, "text must not contain NUL characters", type="validation-error",
                      title="Unprocessable Content", errors={"request": ["contains a NUL character"]})


def create_app(spec, runtime, *, testing: bool = False) -> Flask:
    app = Flask(spec.name)
    app.json = inputs.JSONProvider(app)
    app.url_map.converters["int"] = BoundedInt
    app.config.update(
        TESTING=testing,
        API_TITLE=f"gridgov {spec.name}",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=None,  # we serve /openapi.json ourselves (problem content types)
        MAX_CONTENT_LENGTH=runtime.settings.max_request_bytes,
        JSON_SORT_KEYS=False,
        API_SPEC_OPTIONS={
            "info": {"description": spec.description},
            "components": {"securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        },
    )
    app.extensions["gridgov"] = runtime
    if runtime.settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = runtime.settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    api = ProblemApi(app)
    for blueprint in spec.blueprints():
        api.register_blueprint(blueprint)
    api.register_blueprint(audit.blueprint())  # every service's audit trail, for auditors
    api.register_blueprint(privacy.blueprint())  # what the service holds about the caller (PIPL)
    app.extensions["gridgov.api"] = api

    @app.before_request
    def _start() -> None:
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else os.urandom(16).hex()
        g.started = time.perf_counter()
        logs.request_id.set(g.request_id)
        # The caller's W3C trace continues here (or one starts): logs and recorded events carry it.
        route = request.url_rule.rule if request.url_rule else "unmatched"
        g.trace = tracing.start_server_span(f"{request.method} {route}", request.environ)
        _reject_nul()

    @app.teardown_request
    def _end_trace(exc: BaseException | None) -> None:
        if started := g.pop("trace", None):
            tracing.end(*started)

    # Each (method, route, status)'s metric children, looked up once: labels() costs a
    # lock and a few allocations on every request otherwise.
    counted: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    @app.after_request
    def _finish(response: Response) -> Response:
        headers = response.headers
        headers["X-Request-Id"] = g.get("request_id", "")
        for name, value in SECURITY_HEADERS.items():
            if name not in headers:  # a response may set its own policy
                headers[name] = value
        if g.get("no_store"):
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        route = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        method = request.method if request.method in METHODS else "other"  # bounded label values
        key = (method, route, response.status_code)
        if key not in counted:
            counted[key] = (metrics.HTTP_REQUESTS.labels(spec.name, method, route, str(response.status_code)),
                            metrics.HTTP_SECONDS.labels(spec.name, method, route))
        requests_total, seconds = counted[key]
        requests_total.inc()
        seconds.observe(elapsed)
        if route not in ("/metrics", "/healthz", "/readyz") and log.isEnabledFor(logging.INFO):
            log.info("request", extra={"method": request.method, "route": route,
                                       "status": response.status_code,
                                       "duration_ms": round(elapsed * 1000, 2)})
        return response

    @app.errorhandler(Problem)
    def _problem(problem: Problem):
        return problem_response(problem)

    @app.errorhandler(DataError)
    def _unstorable(exc: DataError):
        # A value the schema let through but the database cannot hold (e.g. out of range).
        log.warning("unstorable value", extra={"error": str(exc.orig)[:300]})
        return problem_response(Problem(422, "a value in the request is out of range or cannot be stored",
                                        type="validation-error", title="Unprocessable Content"))

    @app.errorhandler(OperationalError)
    def _database_down(exc: Exception):
        log.error("database unavailable", extra={"error": str(getattr(exc, "orig", None) or exc)[:300]})
        return problem_response(Problem(503, "the service's database is unavailable; retry shortly",
                                        type="unavailable", headers={"Retry-After": "5"}))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return api.handle_http_exception(exc)
        if unavailable(exc):  # not only OperationalError: a dropped connection, the pool, a standby
            return _database_down(exc)
        log.exception("unhandled error")
        return problem_response(Problem(500, "an unexpected error occurred; it has been logged",
                                        type="internal-error"))

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "service": spec.name}

    @app.get("/readyz")
    def readyz():
        checks = probes.readiness(runtime)
        if all(v == probes.OK for v in checks.values()):
            return {"status": "ready", "checks": checks}
        raise probes.not_ready(checks)

    @app.get("/metrics")
    def metrics_view():
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    @app.get("/openapi.json")
    def openapi():
        return openapi_document(app)

    metrics.SERVICE_INFO.labels(spec.name, metrics.VERSION).set(1)
    # Present from the start (0), so that increase() and alerts see the first refusal.
    access.REFUSED.labels(spec.name)
    return app


def openapi_document(app: Flask) -> dict:
    doc = app.extensions["gridgov.api"].spec.to_dict()
    # Errors are problem documents (RFC 7807), not plain JSON.
    for response in doc.get("components", {}).get("responses", {}).values():
        content = response.get("content", {})
        if "application/json" in content:
            content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if str(status).startswith(("4", "5")) and isinstance(response, dict):
                    content = response.get("content", {})
                    if "application/json" in content:
                        content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
    return doc
