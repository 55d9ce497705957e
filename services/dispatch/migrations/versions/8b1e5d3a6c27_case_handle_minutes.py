"""cases.handle_minutes: the category's handling deadline in minutes, when it gives one

Revision ID: 8b1e5d3a6c27
Revises: 13d2f1eb811c
Create Date: 2026-11-23 09:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '8b1e5d3a6c27'
down_revision = '13d2f1eb811c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handle_minutes', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('handle_minutes')
