"""Words and times for people: which language a client asked for, and a moment
written in local time the way that language writes it.

Machine fields in the APIs and events stay ISO 8601 instants with their offset;
these helpers are for text a person reads (timelines, notices, messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "request_language", "best_language", "local_time"]

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = LANGUAGES[0]
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def best_language(accept_languages, supported: Sequence[str] = LANGUAGES) -> str:
    """The supported language the client prefers most (q-values honoured), else the first.

    ``accept_languages`` is werkzeug's parsed header (``request.accept_languages``).
    Each supported tag is also offered by its primary subtag, so ``zh-Hans;q=0.8,
    en-GB;q=0.5`` is Chinese (werkzeug alone would settle on the first exact ``en``)."""
    candidates = list(supported)
    primary: dict[str, str] = {}
    for tag in supported:
        primary.setdefault(tag.split("-")[0], tag)
    candidates += [short for short in primary if short not in candidates]
    match = accept_languages.best_match(candidates, default=supported[0])
    return match if match in supported else primary[match]


def request_language(supported: Sequence[str] = LANGUAGES) -> str:
    """The language of the current request's ``Accept-Language``."""
    from flask import request

    return best_language(request.accept_languages, supported)


def local_time(moment: datetime | str, language: str, tz: ZoneInfo) -> str:
    """``moment`` in local time, to the minute: zh-CN ``2026年12月8日 21:03``, en
    ``8 Dec 2026, 21:03``. A naive moment is UTC (as every stored time); an ISO 8601
    string is read first (values kept in JSON)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(tz)
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if language == "en":
        return f"{local.day} {MONTHS[local.month - 1]} {local.year}, {clock}"
    return f"{local.year}年{local.month}月{local.day}日 {clock}"
