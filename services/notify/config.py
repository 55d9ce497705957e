"""notify's own settings, from the environment (``Settings.extra`` overrides, for tests).

    GRIDGOV_SMTP_HOST / _PORT / _FROM / _USER / _PASSWORD / _STARTTLS   email (off when no host)
    GRIDGOV_SMS_URL / GRIDGOV_SMS_API_KEY / GRIDGOV_SMS_KEY_HEADER      SMS gateway (off when no URL)
    GRIDGOV_SMS_RETRIES            quick retries inside one attempt (connection errors, 5xx, 429)
    GRIDGOV_NOTIFY_MAX_ATTEMPTS    attempts before a delivery is dead (notify.delivery.failed)
    GRIDGOV_NOTIFY_RETRY_SECONDS   first backoff; doubles per attempt, capped at 1 h
    GRIDGOV_NOTIFY_STREAM_SECONDS  lifetime of one SSE response (the client reconnects)
    GRIDGOV_NOTIFY_HEARTBEAT_SECONDS, GRIDGOV_NOTIFY_POLL_SECONDS

Times in notices are written in the kit's ``GRIDGOV_TIMEZONE`` (``Settings.tz``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class NotifyConfig:
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "gridgov@localhost"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    sms_url: str = ""
    sms_api_key: str = ""
    sms_key_header: str = "X-Api-Key"
    sms_retries: int = 1
    max_attempts: int = 5
    retry_seconds: float = 30.0
    stream_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    poll_seconds: float = 0.3
    timezone: ZoneInfo = ZoneInfo("Asia/Shanghai")

    @property
    def available_channels(self) -> set[str]:
        return {name for name, on in (("email", self.smtp_host), ("sms", self.sms_url)) if on}

    @classmethod
    def from_settings(cls, settings) -> NotifyConfig:
        def get(name: str, default: str = "") -> str:
            return str(settings.extra.get(name) or os.environ.get(name) or default)

        return cls(
            smtp_host=get("GRIDGOV_SMTP_HOST"),
            smtp_port=int(get("GRIDGOV_SMTP_PORT", "25")),
            smtp_from=get("GRIDGOV_SMTP_FROM", "gridgov@localhost"),
            smtp_user=get("GRIDGOV_SMTP_USER"),
            smtp_password=get("GRIDGOV_SMTP_PASSWORD"),
            smtp_starttls=get("GRIDGOV_SMTP_STARTTLS", "0").lower() in ("1", "true", "yes"),
            sms_url=get("GRIDGOV_SMS_URL"),
            sms_api_key=get("GRIDGOV_SMS_API_KEY"),
            sms_key_header=get("GRIDGOV_SMS_KEY_HEADER", "X-Api-Key"),
            sms_retries=int(get("GRIDGOV_SMS_RETRIES", "1")),
            max_attempts=int(get("GRIDGOV_NOTIFY_MAX_ATTEMPTS", "5")),
            retry_seconds=float(get("GRIDGOV_NOTIFY_RETRY_SECONDS", "30")),
            stream_seconds=float(get("GRIDGOV_NOTIFY_STREAM_SECONDS", "30")),
            heartbeat_seconds=float(get("GRIDGOV_NOTIFY_HEARTBEAT_SECONDS", "10")),
            poll_seconds=float(get("GRIDGOV_NOTIFY_POLL_SECONDS", "0.3")),
            timezone=settings.tz,
        )
