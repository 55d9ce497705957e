"""WSGI entry for gunicorn: ``gunicorn 'gridkit.wsgi:create("grids")' -c deploy/gunicorn.conf.py``."""

from __future__ import annotations

from . import logs, registry, tracing
from .config import Settings
from .service import Runtime


def create(service: str):
    settings = Settings.from_env(service)
    logs.configure(service, settings.log_level, process="web")
    tracing.configure(service, "web")
    return Runtime.build(registry.load(service), settings).app()
