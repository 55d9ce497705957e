"""Cursor pagination: stable under inserts, no OFFSET scans.

A cursor is where the next page starts: the sort key of the last row given
out, as a JSON array in URL-safe base64 without padding (``WzQyXQ`` is
``[42]``). Clients treat it as opaque: they pass back the ``next_cursor`` of
the previous page, nothing else.

Each list declares the shape of its cursor once, with the types of its keys::

    GRIDS = Cursor(RowId())                     # grids: the last grid's id
    CASES = Cursor(Text(36))                    # dispatch: the last case's id
    PETITIONS = Cursor(datetime, Text(36))      # intake: (submitted_at, id)

    class CaseQuery(Page):
        cursor = CASES.field()                  # loads to a tuple, or a 422 naming cursor

A cursor is read strictly: valid base64 of a JSON array with exactly one
value per key, each of its key's type — ``int`` within a 64-bit column,
``str`` of bounded length without NUL, an aware ISO 8601 ``datetime``, a UUID.
Anything else (wrong shape, type, arity or range, garbage, longer than
:data:`MAX_CURSOR` characters) is a 422 naming ``cursor`` and never reaches
the database.

Before this, grids and identity gave out the base64 of the bare last id
(``MTIz`` for 123, padded); a cursor of one key still accepts that form so
that pages a client is walking keep working across the upgrade. It can go in
the release after.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import Session

from .problems import Invalid
from .schemas import MAX_ID

MAX_CURSOR = 512  # characters; the longest cursor any list gives out is under 120
NOT_OURS = "not a cursor this API gave out"

__all__ = ["Cursor", "Int", "RowId", "Text", "Moment", "Uuid", "paginate", "MAX_CURSOR"]


class Key:
    """One value of a cursor: ``load`` checks a JSON value (ValueError if it does not fit),
    ``dump`` gives the JSON value of a row's attribute."""

    def load(self, value: Any) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def from_text(self, text: str) -> Any:
        """The legacy one-key form: the key's bare text."""
        return self.load(text)


class Int(Key):
    """An integer within a 64-bit column (or ``lo``…``hi``)."""

    def __init__(self, lo: int = -(2**63), hi: int = 2**63 - 1):
        self.lo, self.hi = lo, hi

    def load(self, value: Any) -> int:
        if type(value) is not int or not self.lo <= value <= self.hi:
            raise ValueError("not an integer in range")
        return value

    def from_text(self, text: str) -> int:
        digits = text[1:] if text.startswith("-") else text
        if not (0 < len(digits) <= 20 and digits.isascii() and digits.isdigit()):
            raise ValueError("not an integer")
        return self.load(int(text))


class RowId(Int):
    """A row id: 1 … 2**63-1 (as :class:`gridkit.schemas.Id`)."""

    def __init__(self):
        super().__init__(1, MAX_ID)


class Text(Key):
    """A string of at most ``max_length`` characters, without NUL."""

    def __init__(self, max_length: int = 255):
        self.max_length = max_length

    def load(self, value: Any) -> str:
        if type(value) is not str or len(value) > self.max_length or "\x00" in value:
            raise ValueError("not a string in bounds")
        return value


class Moment(Key):
    """An aware datetime, as ISO 8601 text; loaded in UTC."""

    def load(self, value: Any) -> datetime:
        if type(value) is not str or len(value) > 40:
            raise ValueError("not a datetime")
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a datetime without its offset")
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("a datetime out of range") from None

    def dump(self, value: datetime) -> str:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


class Uuid(Key):
    """A UUID, in its canonical text form."""

    def load(self, value: Any) -> str:
        if type(value) is not str or len(value) > 45:
            raise ValueError("not a UUID")
        return str(uuid.UUID(value))

    def dump(self, value: Any) -> str:
        return str(value)


SHORTHANDS: dict[type, type[Key]] = {int: Int, str: Text, datetime: Moment, uuid.UUID: Uuid}


class Cursor:
    """The shape of one list's cursor: the types of the sort key of its rows."""

    def __init__(self, *keys: Key | type):
        if not keys:
            raise ValueError("a cursor has at least one key")
        self.keys: tuple[Key, ...] = tuple(k if isinstance(k, Key) else SHORTHANDS[k]() for k in keys)

    def encode(self, *values: Any) -> str:
        """The cursor after a row whose sort key is ``values``."""
        data = [key.dump(value) for key, value in zip(self.keys, values, strict=True)]
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    def decode(self, text: str) -> tuple:
        """The sort key in ``text``, typed; :class:`~gridkit.problems.Invalid` naming
        ``cursor`` for anything this shape would not have given out."""
        try:
            return self._decode(text)
        except (ValueError, TypeError, RecursionError):
            raise Invalid({"cursor": [NOT_OURS]}) from None

    def _decode(self, text: str) -> tuple:
        if type(text) is not str or not 0 < len(text) <= MAX_CURSOR:
            raise ValueError("no cursor")
        bare = text.rstrip("=")
        try:
            raw = base64.b64decode(bare + "=" * (-len(bare) % 4), altchars=b"-_", validate=True)
        except binascii.Error as exc:
            raise ValueError("not base64") from exc
        plain = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
        if not plain.startswith("["):
            if len(self.keys) != 1:
                raise ValueError("not an array")
            return (self.keys[0].from_text(plain),)  # the legacy form: the bare key
        values = json.loads(plain)
        if type(values) is not list or len(values) != len(self.keys):
            raise ValueError("wrong arity")
        return tuple(key.load(value) for key, value in zip(self.keys, values, strict=True))

    def field(self, **kwargs: Any) -> fields.Field:
        """A query-string field that loads this cursor to its typed tuple."""
        kwargs.setdefault("metadata", {"description": "Opaque: the previous page's next_cursor",
                                       "maxLength": MAX_CURSOR})
        return CursorField(self, **kwargs)


class CursorField(fields.String):
    """A cursor in a query string: loads to the tuple :meth:`Cursor.decode` gives."""

    def __init__(self, cursor: Cursor, **kwargs: Any):
        super().__init__(**kwargs)
        self.cursor = cursor

    def _deserialize(self, value, attr, data, **kwargs) -> tuple | None:  # type: ignore[override]
        text = super()._deserialize(value, attr, data, **kwargs)
        if text == "":
            return None  # ?cursor= is the first page, as it always was
        try:
            return self.cursor._decode(text)
        except (ValueError, TypeError, RecursionError):
            raise ValidationError(NOT_OURS) from None


def paginate(session: Session, query: Select, keys: Sequence, after: tuple | None, limit: int,
             cursor: Cursor, *, descending: bool = False) -> tuple[list, str | None]:
    """Run ``query`` ordered by the columns ``keys`` (unique together) from just after
    ``after`` (a decoded ``cursor``, or None for the first page); return (rows, next cursor)."""
    if after is not None:
        if type(after) is not tuple or len(after) != len(keys):
            raise TypeError("after: a tuple decoded by the list's Cursor")
        if len(keys) == 1:
            query = query.where(keys[0] < after[0] if descending else keys[0] > after[0])
        else:
            query = query.where(tuple_(*keys) < tuple_(*after) if descending else tuple_(*keys) > tuple_(*after))
    order = [key.desc() for key in keys] if descending else list(keys)
    rows = session.scalars(query.order_by(*order).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = cursor.encode(*(getattr(last, key.key) for key in keys))
    return list(rows), next_cursor
