"""Cursor pagination: stable under inserts, no OFFSET scans.

The cursor is the opaque, url-safe encoding of the last row's sort key.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from .problems import Invalid


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise Invalid({"cursor": ["not a cursor this API gave out"]}) from None
    if not isinstance(values, list):
        raise Invalid({"cursor": ["not a cursor this API gave out"]})
    return values


def paginate(session: Session, query: Select, keys: list, cursor: str | None, limit: int) -> tuple[list, str | None]:
    """Run ``query`` ordered by ``keys`` (unique together) after ``cursor``; return (rows, next cursor)."""
    if cursor:
        values = decode_cursor(cursor)
        if len(values) != len(keys):
            raise Invalid({"cursor": ["not a cursor this API gave out"]})
        query = query.where(tuple_(*keys) > tuple_(*values))
    rows = session.scalars(query.order_by(*keys).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor([getattr(last, key.key) for key in keys])
    return list(rows), next_cursor
