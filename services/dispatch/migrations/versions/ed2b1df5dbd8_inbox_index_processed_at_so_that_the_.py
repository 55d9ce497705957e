"""inbox: index processed_at, so that the worker forgets the oldest rows by a bounded scan

Revision ID: ed2b1df5dbd8
Revises: 8b1e5d3a6c27
Create Date: 2026-12-02 08:04:37.951503
"""
from alembic import op

revision = 'ed2b1df5dbd8'
down_revision = '8b1e5d3a6c27'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_processed', ['processed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_processed')
