"""categories.handle_minutes: a handling deadline in minutes for urgent categories

Revision ID: 4f7a2c91d0b3
Revises: 650b2dc457d9
Create Date: 2026-11-23 09:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '4f7a2c91d0b3'
down_revision = '650b2dc457d9'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handle_minutes', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.drop_column('handle_minutes')
