"""inbox: index processed_at, so that the worker forgets the oldest rows by a bounded scan

Revision ID: 977bc8cfd310
Revises: b33f2e0cdec0
Create Date: 2026-12-02 08:04:35.024149
"""
from alembic import op

revision = '977bc8cfd310'
down_revision = 'b33f2e0cdec0'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_processed', ['processed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_processed')
