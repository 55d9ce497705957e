"""Outside channels: email over SMTP and an SMS gateway port with one HTTP provider.

A channel either returns (sent; optionally the provider's reference) or
raises :class:`ChannelError`; ``permanent`` failures (an address the server
refuses, a 4xx from the gateway) are not retried.
"""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage
from email.utils import make_msgid

import requests

from .config import NotifyConfig


class ChannelError(Exception):
    def __init__(self, reason: str, *, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


class EmailSender:
    def __init__(self, config: NotifyConfig, timeout: float = 10.0):
        self.config = config
        self.timeout = timeout

    def send(self, to: str, subject: str, body: str, *, reference: str) -> str | None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.config.smtp_from, to, subject
        message_id = make_msgid(idstring=reference, domain="gridgov")
        message["Message-ID"] = message_id
        message.set_content(body)  # utf-8, Chinese included
        try:
            with smtplib.SMTP(self.config.smtp_host, self.config.smtp_port, timeout=self.timeout) as smtp:
                if self.config.smtp_starttls:
                    smtp.starttls()
                if self.config.smtp_user:
                    smtp.login(self.config.smtp_user, self.config.smtp_password)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(f"recipient refused: {exc.recipients}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            raise ChannelError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                               permanent=500 <= exc.smtp_code < 600) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"SMTP unavailable: {exc!r}") from exc
        return message_id


# The gateway refuses this message (bad number, bad body): retrying cannot help.
# Auth errors (401/403) stay transient: an operator fixes the key and retries succeed.
REJECTED = (400, 404, 410, 413, 422)


class SmsGateway:
    """The port: send one text message to one phone number."""

    def send(self, phone: str, text: str, *, reference: str) -> str | None:
        raise NotImplementedError


class HttpSmsGateway(SmsGateway):
    """POST JSON ``{"to", "text", "reference"}`` with an API key header.

    ``reference`` (the delivery id) is also the ``Idempotency-Key``, so a
    provider that honours it never sends the same message twice on retries.
    Connection errors, 5xx, 429 and auth errors are retried a few times at once; anything
    left fails the attempt and the delivery loop backs off.
    """

    def __init__(self, config: NotifyConfig, timeout: float = 5.0, session: requests.Session | None = None):
        self.config = config
        self.timeout = timeout
        self.session = session or requests.Session()

    def send(self, phone: str, text: str, *, reference: str) -> str | None:
        headers = {self.config.sms_key_header: self.config.sms_api_key, "Idempotency-Key": reference}
        reason = "not attempted"
        for attempt in range(self.config.sms_retries + 1):
            if attempt:
                time.sleep(min(0.2 * 2 ** attempt, 2.0))
            try:
                response = self.session.post(self.config.sms_url, json={
                    "to": phone, "text": text, "reference": reference}, headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                reason = f"SMS gateway unreachable: {type(exc).__name__}"
                continue
            if response.ok:
                try:
                    answer = response.json()
                except ValueError:
                    answer = {}
                return str(answer.get("id") or answer.get("message_id") or "") or None
            reason = f"SMS gateway answered {response.status_code}: {response.text[:200]}"
            if response.status_code in REJECTED:
                raise ChannelError(reason, permanent=True)
        raise ChannelError(reason)
