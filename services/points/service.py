"""points: composition root."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import event

from gridkit.service import Runtime, ServiceSpec

from . import api, awards, demo, earning_api, figures, ledger, shops_api
from .events import catalogue
from .handlers import subscriptions
from .personal_data import Points
from .tables import Base, inbox, outbox


def setup(runtime: Runtime) -> None:
    event.listen(runtime.db.sessions, "after_commit", ledger.count_committed)
    event.listen(runtime.db.sessions, "after_soft_rollback", ledger.forget_uncommitted)
    runtime.extras.setdefault("sweep_seconds", float(
        runtime.settings.extra.get("GRIDGOV_POINTS_SWEEP_SECONDS")
        or os.environ.get("GRIDGOV_POINTS_SWEEP_SECONDS") or 5.0))
    runtime.extras.setdefault("expiry_seconds", float(
        runtime.settings.extra.get("GRIDGOV_POINTS_EXPIRY_SECONDS")
        or os.environ.get("GRIDGOV_POINTS_EXPIRY_SECONDS") or 3600.0))
    runtime.share_with_sessions(**{awards.TZ: runtime.settings.tz})


spec = ServiceSpec(
    name="points",
    description="Civility points (文明积分): a double-entry ledger of accounts (people, households, a "
    "community's issuing pool, supermarkets, the expiry sink) and immutable transfers with client-chosen "
    "ids, holds that are posted or voided (or time out), no overdraft, statements with running balances.",
    base=Base,
    catalogue=catalogue,
    blueprints=lambda: [api.blp, earning_api.blp, shops_api.blp],
    migrations=Path(__file__).parent / "migrations",
    port=8005,
    outbox=outbox,
    inbox=inbox,
    setup=setup,
    background=[ledger.expire_holds, awards.expire_points],
    subscriptions=subscriptions,  # handlers.py: award sources, and grids' events into households.py
    collectors=[figures.collect],
    demo=demo.seed,
    personal_data=Points(),
)
