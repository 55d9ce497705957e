"""The grid registry: composition root."""

from __future__ import annotations

from pathlib import Path

from gridkit.service import Runtime, ServiceSpec

from . import api
from .events import catalogue
from .handlers import subscriptions
from .locate import Registry
from .personal_data import Residence
from .tables import Base, inbox, outbox


def setup(runtime: Runtime) -> None:
    # One locate snapshot cache per process; it follows registry_revision.
    runtime.extras["registry"] = Registry(runtime.db)


spec = ServiceSpec(
    name="grids",
    description="The grid registry: networks (party, security, urban, …), grids with levels, codes, "
    "boundaries and validity periods, buildings, units, households, staffing, and locating "
    "a point in every network.",
    base=Base,
    catalogue=catalogue,
    blueprints=lambda: [api.blp],
    migrations=Path(__file__).parent / "migrations",
    port=8002,
    outbox=outbox,
    inbox=inbox,
    subscriptions=subscriptions,
    setup=setup,
    personal_data=Residence(),
)
