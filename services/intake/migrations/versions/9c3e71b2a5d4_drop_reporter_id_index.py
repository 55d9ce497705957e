"""petitions: drop ix_petitions_reporter_id; ix_petitions_reporter_order (reporter_id, submitted_at, id) serves every lookup by reporter, and each index costs every new petition a write

Revision ID: 9c3e71b2a5d4
Revises: 4f7a2c91d0b3
Create Date: 2026-12-01 00:40:00.000000
"""
from alembic import op

revision = '9c3e71b2a5d4'
down_revision = '4f7a2c91d0b3'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.drop_index('ix_petitions_reporter_id')


def downgrade() -> None:
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.create_index('ix_petitions_reporter_id', ['reporter_id'], unique=False)
