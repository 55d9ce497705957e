"""Alembic environment: the kit runs it the same way for every service."""

from gridkit.migrations import run_env
from points.tables import Base

run_env(Base.metadata)
