"""pipl: an erased person's marker in preferences

Revision ID: a293a63c80d3
Revises: 6f823f5695a8
Create Date: 2026-12-07 11:58:05.729403
"""
import sqlalchemy as sa
from alembic import op

revision = 'a293a63c80d3'
down_revision = '6f823f5695a8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('preferences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('preferences', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
