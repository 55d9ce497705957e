"""offboarding, supervision and unattended cases: account status, case supervised and unattended

account_status projects identity's disabled/enabled accounts so that nobody disabled stands
on a rung of the ladder; cases remember the last supervision (督办) and since when nobody can
take them (alerted).

Revision ID: a7da33a85da2
Revises: 310f090ebd5f
Create Date: 2026-12-07 11:57:07.972158
"""
import sqlalchemy as sa
from alembic import op

revision = 'a7da33a85da2'
down_revision = '310f090ebd5f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'account_status',
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('disabled', sa.Boolean(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_account_status')),
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supervised_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('supervised_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('unattended_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_cases_unattended', ['unattended_since'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_unattended')
        batch_op.drop_column('unattended_since')
        batch_op.drop_column('supervised_by')
        batch_op.drop_column('supervised_at')
    op.drop_table('account_status')
