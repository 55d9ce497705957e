"""Alembic environment: the kit runs it the same way for every service."""

from dispatch.tables import Base
from gridkit.migrations import run_env

run_env(Base.metadata)
