"""inbox: index processed_at, so that the worker forgets the oldest rows by a bounded scan

Revision ID: c8d54b6dfb3f
Revises: 26c2aff64047
Create Date: 2026-12-02 08:04:39.248625
"""
from alembic import op

revision = 'c8d54b6dfb3f'
down_revision = '26c2aff64047'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_processed', ['processed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_processed')
