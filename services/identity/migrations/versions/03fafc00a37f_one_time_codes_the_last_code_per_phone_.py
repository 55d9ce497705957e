"""one-time codes: the last code per phone and purpose (hashed), and code requests for throttling

Revision ID: 03fafc00a37f
Revises: 53988f709005
Create Date: 2026-12-07 11:46:05.271548
"""
import sqlalchemy as sa
from alembic import op

revision = '03fafc00a37f'
down_revision = '53988f709005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('code_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('phone_key', sa.String(length=64), nullable=False),
    sa.Column('client_ip', sa.String(length=64), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_code_requests'))
    )
    with op.batch_alter_table('code_requests', schema=None) as batch_op:
        batch_op.create_index('ix_code_requests_client_at', ['client_ip', 'requested_at'], unique=False)
        batch_op.create_index('ix_code_requests_phone_at', ['phone_key', 'requested_at'], unique=False)

    op.create_table('one_time_codes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('phone_key', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=True),
    sa.Column('wrong_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_one_time_codes'))
    )
    with op.batch_alter_table('one_time_codes', schema=None) as batch_op:
        batch_op.create_index('ix_one_time_codes_expires_at', ['expires_at'], unique=False)
        batch_op.create_index('ix_one_time_codes_phone_purpose', ['phone_key', 'purpose', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('one_time_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_one_time_codes_phone_purpose')
        batch_op.drop_index('ix_one_time_codes_expires_at')

    op.drop_table('one_time_codes')
    with op.batch_alter_table('code_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_code_requests_phone_at')
        batch_op.drop_index('ix_code_requests_client_at')

    op.drop_table('code_requests')
