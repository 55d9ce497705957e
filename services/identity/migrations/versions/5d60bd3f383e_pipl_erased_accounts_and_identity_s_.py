"""pipl: erased accounts, and identity's contact reads move to the kit's audit trail

Every read of someone's contact so far (``contact_reads``) becomes a line of the
kit's ``audit_trail`` (action ``read_contact``, resource ``user:<id>``), where
auditors read every service's trail; the old table goes.

Revision ID: 5d60bd3f383e
Revises: 03fafc00a37f
Create Date: 2026-12-07 11:56:30.188644
"""
import sqlalchemy as sa
from alembic import op

revision = '5d60bd3f383e'
down_revision = '03fafc00a37f'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))

    op.execute(
        "INSERT INTO audit_trail (at, actor_id, actor_roles, action, subject_id, resource, reason, request_id) "
        "SELECT read_at, reader_id, reader_roles, 'read_contact', subject_id, 'user:' || subject_id, reason, NULL "
        "FROM contact_reads ORDER BY id")
    with op.batch_alter_table('contact_reads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_reads_reader_id'))
        batch_op.drop_index(batch_op.f('ix_contact_reads_subject_id'))
    op.drop_table('contact_reads')


def downgrade() -> None:
    op.create_table('contact_reads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('reader_id', sa.String(length=36), nullable=False),
    sa.Column('reader_roles', sa.String(length=200), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_reads'))
    )
    with op.batch_alter_table('contact_reads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_reads_subject_id'), ['subject_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_reads_reader_id'), ['reader_id'], unique=False)
    op.execute(
        "INSERT INTO contact_reads (reader_id, reader_roles, subject_id, reason, read_at) "
        "SELECT substr(actor_id, 1, 36), actor_roles, substr(subject_id, 1, 36), coalesce(reason, ''), at "
        "FROM audit_trail WHERE action = 'read_contact' AND resource LIKE 'user:%' ORDER BY id")

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
