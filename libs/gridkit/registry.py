"""Every gridgov service, in start order. Add a new one here."""

from __future__ import annotations

import importlib
import os

SERVICES = {
    "identity": "identity.service:spec",
    "grids": "grids.service:spec",
    "intake": "intake.service:spec",
    "dispatch": "dispatch.service:spec",
    "notify": "notify.service:spec",
    "points": "points.service:spec",
}


def load(name: str):
    module, attr = SERVICES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def available() -> list[str]:
    """Services whose package is present (lets the kit run before all exist),
    narrowed to ``GRIDGOV_SERVICES`` (comma-separated) when that is set."""
    wanted = [n.strip() for n in os.environ.get("GRIDGOV_SERVICES", "").split(",") if n.strip()]
    names = []
    for name in wanted or SERVICES:
        try:
            load(name)
        except ModuleNotFoundError:
            continue
        names.append(name)
    return names
