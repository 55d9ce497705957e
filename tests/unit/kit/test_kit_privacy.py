"""The kit's side of personal data rights: no service forgets to say what it holds."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from contracts.identity import USER_ERASED
from gridkit import privacy, registry


@pytest.mark.parametrize("name", list(registry.SERVICES))
def test_every_registered_service_declares_what_it_holds_about_people(name):
    spec = registry.load(name)
    assert isinstance(spec.personal_data, privacy.PersonalData), (
        f"{name}: give ServiceSpec a personal_data hook (gridkit.privacy), HOLDS_NOTHING if it keeps nothing")
    hook = type(spec.personal_data)
    if spec.personal_data is not privacy.HOLDS_NOTHING:
        assert hook.export is not privacy.PersonalData.export and hook.erase is not privacy.PersonalData.erase


@pytest.mark.parametrize("name", list(registry.SERVICES))
def test_every_service_erases_on_identitys_event_on_the_kits_accounts_queue(name):
    queues = registry.load(name).subscriptions.queues
    assert USER_ERASED.type in queues[f"{name}.accounts"].handlers


def test_redact_takes_out_every_known_value_longest_first():
    text = "王小明（13912345678）说王小明家漏水"
    assert privacy.redact(text, ["王小明", "13912345678", None, "", "王"]) == "***（***）说***家漏水"
    assert privacy.redact(None, ["x"]) is None and privacy.redact("", ["x"]) == ""
    assert privacy.redact("楼道漏水", []) == "楼道漏水"


def test_a_download_writes_times_with_their_offset():
    shanghai = ZoneInfo("Asia/Shanghai")
    doc = privacy.readable({"at": datetime(2025, 3, 1, 2, 0, tzinfo=UTC), "naive": datetime(2025, 3, 1, 2, 0),
                            "day": date(2025, 3, 1), "items": [{"n": 1}], "ids": ("a",)}, shanghai)
    assert doc == {"at": "2025-03-01T10:00:00+08:00", "naive": "2025-03-01T10:00:00+08:00",
                   "day": "2025-03-01", "items": [{"n": 1}], "ids": ["a"]}
