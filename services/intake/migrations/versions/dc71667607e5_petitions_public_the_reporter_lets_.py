"""petitions.public: the reporter lets followers see the description and photos (never the contact); existing petitions stay private

Revision ID: dc71667607e5
Revises: 096f831d516f
Create Date: 2026-12-07 11:46:58.156963
"""
import sqlalchemy as sa
from alembic import op

revision = 'dc71667607e5'
down_revision = '096f831d516f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('public', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('petitions', schema=None) as batch_op:
        batch_op.drop_column('public')
