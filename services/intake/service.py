"""intake's composition root."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from gridkit.crypto import DataKey
from gridkit.service import Runtime, ServiceSpec

from . import api
from .categories import Categories
from .events import catalogue
from .handlers import subscriptions
from .photos import FilesystemPhotoStore
from .places import Places
from .tables import Base, idempotency, inbox, outbox

log = logging.getLogger(__name__)


def setup(runtime: Runtime) -> None:
    runtime.extras.setdefault("data_key", DataKey.from_settings(runtime.settings))
    runtime.extras.setdefault("photos", FilesystemPhotoStore(Path(runtime.settings.data_dir) / "photos"))
    runtime.extras.setdefault("places", Places())
    runtime.extras.setdefault("categories", Categories())


def forget_idempotency_keys(runtime: Runtime, stop: threading.Event) -> None:
    """Beside the relay and the consumers: a retry comes within minutes, so a key and
    its stored answer are forgotten once older than the store's ttl (24 h)."""
    while not stop.wait(runtime.extras.get("idempotency_purge_seconds", 600.0)):
        try:
            if n := idempotency.purge(runtime.db):
                log.info("idempotency keys forgotten", extra={"keys": n})
        except Exception:  # noqa: BLE001 - housekeeping: try again next time
            log.exception("forgetting idempotency keys failed; retrying")


spec = ServiceSpec(
    name="intake",
    description="Petitions from every channel (app, hotline, mailbox, window, patrol), categories, "
    "photos, duplicates (me too, merge), and the resident's own view: list, detail, timeline in "
    "plain words, withdraw, rating and rework.",
    base=Base,
    catalogue=catalogue,
    blueprints=lambda: [api.blp],
    migrations=Path(__file__).parent / "migrations",
    port=8003,
    outbox=outbox,
    inbox=inbox,
    subscriptions=subscriptions,
    setup=setup,
    background=[forget_idempotency_keys],
)
