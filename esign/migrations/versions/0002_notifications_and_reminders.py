"""notifications, sent reminders, and the indexes of the reminder scan and the unit report

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import esign.models.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=True),
    sa.Column('step_id', sa.Integer(), nullable=True),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('read_at', esign.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_notifications_document_id_documents')),
    sa.ForeignKeyConstraint(['step_id'], ['step_records.id'], name=op.f('fk_notifications_step_id_step_records')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_user_read', ['user_id', 'read_at', 'id'], unique=False)

    op.create_table('sent_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('sent_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('email_to', sa.Text(), nullable=False),
    sa.Column('emailed_at', esign.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('email_attempts', sa.Integer(), nullable=False),
    sa.Column('email_error', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['step_id'], ['step_records.id'], name=op.f('fk_sent_reminders_step_id_step_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sent_reminders')),
    sa.UniqueConstraint('step_id', 'kind', name=op.f('uq_sent_reminders_step_id_kind'))
    )

    with op.batch_alter_table('step_records', schema=None) as batch_op:
        batch_op.create_index('ix_step_records_status_due', ['status', 'due_at'], unique=False)
        batch_op.create_index('ix_step_records_completed_at', ['completed_at'], unique=False)
    with op.batch_alter_table('workflow_instances', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_instances_ended_at', ['ended_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('workflow_instances', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_instances_ended_at')
    with op.batch_alter_table('step_records', schema=None) as batch_op:
        batch_op.drop_index('ix_step_records_completed_at')
        batch_op.drop_index('ix_step_records_status_due')
    op.drop_table('sent_reminders')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_user_read')
    op.drop_table('notifications')
