"""intake's composition root."""

from __future__ import annotations

from pathlib import Path

from gridkit.crypto import DataKey, Sealed
from gridkit.idempotency import SEAL_PURPOSE
from gridkit.service import Runtime, ServiceSpec

from . import api, figures
from .categories import Categories
from .events import catalogue
from .handlers import subscriptions
from .personal_data import Petitions
from .photos import FilesystemPhotoStore
from .places import Places
from .retention import forget_expired_photos, photo_retention_days
from .tables import Base, idempotency, inbox, outbox


def setup(runtime: Runtime) -> None:
    runtime.extras.setdefault("data_key", DataKey.from_settings(runtime.settings))
    runtime.extras.setdefault("photos", FilesystemPhotoStore(Path(runtime.settings.data_dir) / "photos"))
    runtime.extras.setdefault("places", Places())
    runtime.extras.setdefault("categories", Categories())
    runtime.extras.setdefault("photo_retention_days", photo_retention_days(runtime.settings))


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
    # Keys older than 24 h; photos past GRIDGOV_PHOTO_RETENTION_DAYS.
    background=[idempotency.forget_expired, forget_expired_photos],
    personal_data=Petitions(),
    collectors=[figures.petitions],
    sealed=(
        Sealed("petitions", "contact_name", purpose="name"),
        Sealed("petitions", "contact_phone", purpose="phone"),
        Sealed("idempotency_keys", "body", purpose=SEAL_PURPOSE),  # stored answers show the contact
    ),
)
