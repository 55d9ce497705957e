"""Alembic, once for every service.

Each service keeps ``migrations/`` beside its code with a two-line
``env.py`` that calls :func:`run_env`. ``upgrade(spec, url)`` migrates to head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool


def alembic_config(migrations_dir: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url.replace("postgresql://", "postgresql+psycopg://", 1))
    return cfg


def upgrade(migrations_dir: Path, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations_dir, url), revision)


def run_env(metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py``."""
    cfg = context.config
    url = cfg.get_main_option("sqlalchemy.url") or ""
    render_as_batch = url.startswith("sqlite")  # SQLite needs batch ALTERs
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True,
                          render_as_batch=render_as_batch)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=render_as_batch, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def autogenerate(migrations_dir: Path, message: str, package: str | None = None) -> None:
    """Write a new revision from the models' changes (diffed against a scratch SQLite).
    A new service's first revision creates its ``migrations/`` folder (:func:`scaffold`)."""
    import tempfile

    if not (migrations_dir / "env.py").exists():
        scaffold(migrations_dir, package or migrations_dir.parent.name)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scratch.db"
        cfg = alembic_config(migrations_dir, url)
        command.upgrade(cfg, "head")
        written = command.revision(cfg, message=message, autogenerate=True)
    for script in written if isinstance(written, list) else [written]:
        if script is not None:  # as ruff wants it: no trailing blanks (an empty "Revises: ")
            path = Path(script.path)
            path.write_text("\n".join(line.rstrip() for line in path.read_text().splitlines()) + "\n")


ENV_PY = '''"""Alembic environment: the kit runs it the same way for every service."""

from gridkit.migrations import run_env
from {package}.tables import Base

run_env(Base.metadata)
'''

SCRIPT_MAKO = '''"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""
import sqlalchemy as sa
from alembic import op
% if imports:
${imports}
% endif

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''


def scaffold(migrations_dir: Path, package: str) -> None:
    """Create ``migrations/`` for a new service."""
    (migrations_dir / "versions").mkdir(parents=True, exist_ok=True)
    (migrations_dir / "env.py").write_text(ENV_PY.format(package=package))
    (migrations_dir / "script.py.mako").write_text(SCRIPT_MAKO)
