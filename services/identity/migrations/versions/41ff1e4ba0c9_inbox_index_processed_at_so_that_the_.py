"""inbox: index processed_at, so that the worker forgets the oldest rows by a bounded scan

Revision ID: 41ff1e4ba0c9
Revises: 75e1aec643bc
Create Date: 2026-12-02 08:04:33.608534
"""
from alembic import op

revision = '41ff1e4ba0c9'
down_revision = '75e1aec643bc'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_processed', ['processed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_processed')
