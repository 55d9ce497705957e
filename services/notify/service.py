"""notify: composition root."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from sqlalchemy import event, text

from contracts.identity import TRANSIT_CONTEXT
from gridkit.crypto import DataKey, Sealed
from gridkit.service import Runtime, ServiceSpec

from . import api
from .config import NotifyConfig
from .deliveries import delivery_loop
from .events import catalogue
from .handlers import subscriptions
from .personal_data import Notices
from .retention import forget_old_notices, notice_retention_days
from .stream import NOTICES_CHANNEL, Broadcaster, notice_json, notify_payloads
from .tables import Base, inbox, outbox


def setup(runtime: Runtime) -> None:
    config = NotifyConfig.from_settings(runtime.settings)
    broadcaster = Broadcaster(runtime.db, poll_seconds=config.poll_seconds)
    deliveries_due = threading.Event()
    sealer = DataKey.from_settings(runtime.settings)
    runtime.extras.update(notify_config=config, sealer=sealer, broadcaster=broadcaster,
                          deliveries_due=deliveries_due)
    runtime.extras.setdefault("notice_retention_days", notice_retention_days(runtime.settings))
    # Handlers receive only a session: it carries the config and keys they need (beside what
    # the kit put there: the service's metadata and runtime; the transit key opens what
    # identity sealed for a text message, see contracts.identity).
    runtime.share_with_sessions(notify_config=config, sealer=sealer, embedded=runtime.settings.embedded,
                                transit_key=DataKey.from_settings(runtime.settings, context=TRANSIT_CONTEXT))

    def before_commit(session) -> None:
        notices = session.info.get("notices_written")
        if notices and not runtime.db.is_sqlite:
            session.flush()  # their ids (one INSERT … RETURNING for a whole batch)
            # Delivered at commit, notices and all, to every process's broadcaster
            # (LISTEN): the worker writes the notices, gunicorn's workers serve the streams.
            # The payloads travel as one JSON array of strings: as a text[] parameter psycopg
            # quoted each payload through a regular expression, 8 % of the worker's time.
            payloads = json.dumps(notify_payloads([notice_json(n) for n in notices]), ensure_ascii=False)
            session.execute(text("SELECT pg_notify(:channel, payload) FROM json_array_elements_text("
                                 "CAST(:payloads AS json)) AS payload"),
                            {"channel": NOTICES_CHANNEL, "payloads": payloads})

    def after_commit(session) -> None:
        if session.info.pop("notices_written", None) and runtime.db.is_sqlite:
            broadcaster.poke()  # one process, no LISTEN: streams here hear of it at once
        if session.info.pop("deliveries_written", False):
            deliveries_due.set()  # the delivery loop, if it runs here

    def after_rollback(session) -> None:
        session.info.pop("notices_written", None)
        session.info.pop("deliveries_written", None)

    event.listen(runtime.db.sessions, "before_commit", before_commit)
    event.listen(runtime.db.sessions, "after_commit", after_commit)
    event.listen(runtime.db.sessions, "after_soft_rollback", lambda session, previous: after_rollback(session))


spec = ServiceSpec(
    name="notify",
    description="Who hears about what, over which channel: an in-app inbox with live push (SSE), "
    "email over SMTP and an SMS gateway; templates in zh-CN and English; per-user preferences; "
    "deliveries retried with backoff and dead-lettered as notify.delivery.failed.",
    base=Base,
    catalogue=catalogue,
    blueprints=lambda: [api.blp],
    migrations=Path(__file__).parent / "migrations",
    port=8006,
    outbox=outbox,
    inbox=inbox,
    subscriptions=subscriptions,
    setup=setup,
    background=[delivery_loop, forget_old_notices],
    personal_data=Notices(),
    sealed=(
        Sealed("contacts", "email_sealed", purpose="contact.email"),
        Sealed("contacts", "phone_sealed", purpose="contact.sms"),
        Sealed("code_texts", "recipient_sealed", purpose="code.sms"),
        Sealed("code_texts", "text_sealed", purpose="code.text"),
    ),
)
