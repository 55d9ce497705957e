"""Every table of the test service, straight from its metadata.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.get_context().opts["target_metadata"].create_all(op.get_bind())


def downgrade() -> None:
    op.get_context().opts["target_metadata"].drop_all(op.get_bind())
