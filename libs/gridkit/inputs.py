"""JSON request bodies, read once at the kit's door with a nesting limit.

Python's JSON reader recurses once per level of arrays and objects: a body
nested 50 000 deep raised ``RecursionError`` (a 500), and one nested a few
hundred deep still reached marshmallow and the services' own code. Every JSON
body a route sees is read here instead:

* webargs (every ``@blp.arguments`` of a :class:`gridkit.web.Blueprint`),
  through :class:`BodyParser`;
* ``request.get_json()``, through :class:`JSONProvider` (``app.json``);
* the ``Idempotency-Key`` fingerprint, through :func:`request_json`.

A body nested deeper than :data:`MAX_JSON_DEPTH` levels, holding a number
Python will not read (more than 4 300 digits) or a string with a lone UTF-16
surrogate (``"\\ud800"``: valid JSON, but no text that UTF-8 or PostgreSQL
can hold) is a 422 problem naming ``json``; a body that is not JSON at all is
webargs' 422 as before. The size limit is Flask's ``MAX_CONTENT_LENGTH``
(``Settings.max_request_bytes``, a 413). The body is parsed once per request
and the result shared.

Cost: a body with at most :data:`MAX_JSON_DEPTH` brackets cannot be too deep,
which two ``bytes.count`` calls tell, and one without a ``\\ud``/``\\uD``
escape cannot hold a surrogate; only other bodies (GeoJSON, batches) are
walked after parsing.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Request, request
from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from .problems import Problem

# GeoJSON, the deepest body any route takes (a MultiPolygon in a FeatureCollection),
# is 8 levels deep; nothing legitimate comes near 32.
MAX_JSON_DEPTH = 32

_CACHE = "gridkit.json"  # request.environ key of the parsed body


class TooDeep(Problem):
    def __init__(self) -> None:
        super().__init__(422, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels",
                         type="validation-error", title="Unprocessable Content",
                         errors={"json": [f"nested deeper than {MAX_JSON_DEPTH} levels"]})


class Unreadable(Problem):
    def __init__(self, reason: str) -> None:
        super().__init__(422, f"the JSON body cannot be read: {reason}", type="validation-error",
                         title="Unprocessable Content", errors={"json": [reason]})


def loads(raw: bytes | str) -> Any:
    """``json.loads`` (UTF-8) for a request body; :class:`TooDeep` past :data:`MAX_JSON_DEPTH`
    levels, :class:`Unreadable` for a number Python refuses. Malformed JSON raises
    ``json.JSONDecodeError`` as ``json.loads`` does (webargs answers it)."""
    try:
        value = core.parse_json(raw)  # type: ignore[type-var]  # either, not a union
    except RecursionError:
        raise TooDeep() from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. an integer of more than 4 300 digits
        raise Unreadable("a number is too long") from exc
    if type(value) in (list, dict):
        opening = (raw.count(b"[") + raw.count(b"{")) if isinstance(raw, bytes) \
            else (raw.count("[") + raw.count("{"))
        if opening > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
            raise TooDeep()
    # "\ud800" alone is valid JSON but no text: UTF-8 (an answer, PostgreSQL) cannot hold it.
    # Only a body with a \uD8xx…\uDFxx escape can carry one (a pair is an emoji: fine).
    escapes = (b"\\ud", b"\\uD") if isinstance(raw, bytes) else ("\\ud", "\\uD")
    if (escapes[0] in raw or escapes[1] in raw) and _has_lone_surrogate(value):  # type: ignore[operator]
        raise Unreadable("a string holds a lone UTF-16 surrogate (\\ud800–\\udfff)")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if kind is dict:
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if kind is list:
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _deeper_than(value: list | dict, room: int) -> bool:
    """Whether ``value`` (an array or object) nests more than ``room`` levels.
    Recurses at most ``room`` + 1 deep."""
    if room == 0:
        return True
    for child in (value.values() if type(value) is dict else value):
        kind = type(child)
        if (kind is list or kind is dict) and _deeper_than(child, room - 1):
            return True
    return False


def request_json(req: Request | None = None) -> Any:
    """The current request's JSON body, parsed once (:func:`loads`) and shared by
    everything that reads it. Call only for a JSON request (``req.is_json``)."""
    req = req if req is not None else request
    environ = req.environ
    if _CACHE in environ:
        return environ[_CACHE]
    value = environ[_CACHE] = loads(req.get_data(cache=True))
    return value


class BodyParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with :func:`request_json`."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return request_json(req)


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, with :func:`loads` for what it reads (``request.get_json()``)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s) if not kwargs else super().loads(s, **kwargs)
