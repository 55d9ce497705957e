"""Settings from the environment."""

from __future__ import annotations

import pytest

from gridkit.config import Settings


def test_the_inbox_must_outlast_the_outbox_it_may_be_replayed_from(monkeypatch):
    monkeypatch.setenv("GRIDGOV_OUTBOX_RETENTION_DAYS", "14")
    monkeypatch.setenv("GRIDGOV_INBOX_RETENTION_DAYS", "10")
    with pytest.raises(ValueError, match="GRIDGOV_INBOX_RETENTION_DAYS .10. must be at least"):
        Settings.from_env("intake")

    monkeypatch.setenv("GRIDGOV_INBOX_RETENTION_DAYS", "14")
    settings = Settings.from_env("intake")
    assert (settings.outbox_retention_days, settings.inbox_retention_days) == (14, 14)
