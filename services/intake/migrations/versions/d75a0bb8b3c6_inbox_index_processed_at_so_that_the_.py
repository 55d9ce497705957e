"""inbox: index processed_at, so that the worker forgets the oldest rows by a bounded scan

Revision ID: d75a0bb8b3c6
Revises: 9c3e71b2a5d4
Create Date: 2026-12-02 08:04:36.514471
"""
from alembic import op

revision = 'd75a0bb8b3c6'
down_revision = '9c3e71b2a5d4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_processed', ['processed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_processed')
