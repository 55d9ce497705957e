"""case_handlers: each petition's case, before anyone claims it

Notices about a petition (rated, merged) name its case, so the projection now
learns the case at dispatch.case.opened; the handler follows at the claim.

Revision ID: 6f823f5695a8
Revises: c503bcf42e0e
Create Date: 2026-12-07 11:45:39.704151
"""
import sqlalchemy as sa
from alembic import op

revision = '6f823f5695a8'
down_revision = 'c503bcf42e0e'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case_handlers', schema=None) as batch_op:
        batch_op.alter_column('handler_id', existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM case_handlers WHERE handler_id IS NULL")
    with op.batch_alter_table('case_handlers', schema=None) as batch_op:
        batch_op.alter_column('handler_id', existing_type=sa.String(length=64), nullable=False)
