"""code texts: one-time codes on their way to a phone, sealed, until sent or expired

Revision ID: c503bcf42e0e
Revises: bda5c8773fad
Create Date: 2026-12-07 11:46:14.391668
"""
import sqlalchemy as sa
from alembic import op

revision = 'c503bcf42e0e'
down_revision = 'bda5c8773fad'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('code_texts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('recipient_sealed', sa.Text(), nullable=False),
    sa.Column('text_sealed', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_code_texts')),
    sa.UniqueConstraint('event_id', name=op.f('uq_code_texts_event_id'))
    )
    with op.batch_alter_table('code_texts', schema=None) as batch_op:
        batch_op.create_index('ix_code_texts_due', ['next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('code_texts', schema=None) as batch_op:
        batch_op.drop_index('ix_code_texts_due')

    op.drop_table('code_texts')
