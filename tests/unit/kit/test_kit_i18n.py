"""Language and local time for people, from the kit."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from gridkit.config import Settings
from gridkit.i18n import local_time, request_language

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("header, language", [
    ("zh;q=0.1, en;q=0.9", "en"),  # q-values decide, not the order
    ("en;q=0.2, zh-CN", "zh-CN"),
    ("zh-Hans;q=0.8, en-GB;q=0.5", "zh-CN"),  # a region or script of a supported language
    ("en-US,en;q=0.9", "en"),
    ("zh-CN,zh;q=0.9,en;q=0.5", "zh-CN"),
    ("fr, de;q=0.5", "zh-CN"),  # nothing supported: the default
    ("*", "zh-CN"),
    ("", "zh-CN"),
    (None, "zh-CN"),
])
def test_the_language_is_the_supported_one_the_client_prefers_most(header, language):
    app = Flask("i18n")
    with app.test_request_context(headers={"Accept-Language": header} if header is not None else {}):
        assert request_language() == language


def test_a_moment_reads_in_local_time_to_the_minute_as_each_language_writes_it():
    moment = datetime(2026, 12, 8, 13, 3, 0, 698590, tzinfo=UTC)
    assert local_time(moment, "zh-CN", SHANGHAI) == "2026年12月8日 21:03"
    assert local_time(moment, "en", SHANGHAI) == "8 Dec 2026, 21:03"
    assert local_time(moment.replace(tzinfo=None), "en", SHANGHAI) == "8 Dec 2026, 21:03"  # naive is UTC
    assert local_time("2026-12-08 13:03:00.698590+00:00", "zh-CN", SHANGHAI) == "2026年12月8日 21:03"
    assert local_time(moment, "en", ZoneInfo("America/New_York")) == "8 Dec 2026, 08:03"


def test_the_time_zone_is_a_setting_of_every_service(monkeypatch):
    assert Settings.from_env("intake").tz == SHANGHAI
    monkeypatch.setenv("GRIDGOV_TIMEZONE", "Asia/Urumqi")
    assert Settings.from_env("dispatch").tz == ZoneInfo("Asia/Urumqi")
    monkeypatch.setenv("GRIDGOV_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError, match="GRIDGOV_TIMEZONE"):
        Settings.from_env("notify")
