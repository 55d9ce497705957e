"""calendar_days: the county's own days off and working days, on top of the national calendar

Revision ID: 310f090ebd5f
Revises: 0930ce07ef17
Create Date: 2026-12-07 11:57:56.177164
"""
import sqlalchemy as sa
from alembic import op

revision = '310f090ebd5f'
down_revision = '0930ce07ef17'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'calendar_days',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('set_by', sa.String(length=64), nullable=False),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_calendar_days')),
    )


def downgrade() -> None:
    op.drop_table('calendar_days')
    op.execute("DELETE FROM projection_revision WHERE id = 2")
