"""Dispatch: composition root."""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from gridkit import tracing
from gridkit.service import Runtime, ServiceSpec

from . import api, cases, figures
from .events import catalogue
from .handlers import subscriptions
from .personal_data import Cases
from .tables import Base, inbox, outbox

log = logging.getLogger(__name__)


def setup(runtime: Runtime) -> None:
    # Every door (HTTP, events, the sweep) has a session: it carries the local time zone
    # that working hours count in (workdays.calendar).
    runtime.share_with_sessions(timezone=runtime.settings.tz)
    runtime.extras["rating_days"] = int(os.environ.get("GRIDGOV_DISPATCH_RATING_DAYS", cases.DEFAULT_RATING_DAYS))
    runtime.extras["sweep_seconds"] = float(os.environ.get("GRIDGOV_DISPATCH_SWEEP_SECONDS", "5"))


def sweep_once(runtime: Runtime, now: datetime | None = None) -> dict[str, int]:
    with runtime.db.transaction() as session:
        return cases.sweep(session, now or datetime.now(UTC), rating_days=runtime.extras.get(
            "rating_days", cases.DEFAULT_RATING_DAYS))


def deadline_sweep(runtime: Runtime, stop: threading.Event) -> None:
    """Beside the relay and the consumers: reminders, escalations, rating timeouts.
    Several workers may sweep at once; SKIP LOCKED keeps them off each other's cases."""
    while not stop.wait(runtime.extras.get("sweep_seconds", 5.0)):
        try:
            with tracing.background("dispatch deadline sweep"):
                done = sweep_once(runtime)
            if any(done.values()):
                log.info("deadline sweep", extra=done)
        except Exception:  # noqa: BLE001 - a bad sweep must not end the loop
            log.exception("deadline sweep failed; retrying")


spec = ServiceSpec(
    name="dispatch",
    description="Cases: one per petition, routed to a grid by place and network, approved, claimed "
    "(秒认领), handled, escalated up the ladder on missed deadlines, whistled to departments "
    "(吹哨报到), resolved, rated, with figures (三率).",
    base=Base,
    catalogue=catalogue,
    blueprints=lambda: [api.blp],
    migrations=Path(__file__).parent / "migrations",
    port=8004,
    outbox=outbox,
    inbox=inbox,
    subscriptions=subscriptions,
    setup=setup,
    background=[deadline_sweep],
    personal_data=Cases(),
    collectors=[figures.cases],
)
