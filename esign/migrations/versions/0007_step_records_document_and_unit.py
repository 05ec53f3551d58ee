"""step records carry their document and unit: the home page's counts from one index

Every page shows the officer's open-step count, and the home page lists those steps
and the documents the officer may see. Each of those queries used to join every open
step of the officer to ``workflow_instances`` and ``documents`` to learn the unit
(and visibility joined every step the officer ever held); with the document and unit
on the step itself they are answered from the indexes below. Both columns are fixed
for the life of a step (a document never changes unit).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('step_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('document_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('unit_id', sa.Integer(), nullable=True))
    op.execute(
        'UPDATE step_records SET document_id = (SELECT workflow_instances.document_id FROM workflow_instances '
        'WHERE workflow_instances.id = step_records.instance_id)'
    )
    op.execute(
        'UPDATE step_records SET unit_id = (SELECT documents.unit_id FROM documents '
        'WHERE documents.id = step_records.document_id)'
    )
    with op.batch_alter_table('step_records', schema=None) as batch_op:
        batch_op.alter_column('document_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('unit_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(batch_op.f('fk_step_records_document_id_documents'), 'documents',
                                    ['document_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_step_records_unit_id_units'), 'units', ['unit_id'], ['id'])
        batch_op.drop_index('ix_step_records_assignee_open')
        batch_op.drop_index('ix_step_records_principal')
        batch_op.create_index('ix_step_records_open', ['assignee_id', 'status', 'unit_id', 'due_at', 'id', 'state'],
                              unique=False)
        batch_op.create_index('ix_step_records_assignee', ['assignee_id', 'id', 'document_id'], unique=False)
        batch_op.create_index('ix_step_records_principal', ['principal_id', 'document_id'], unique=False,
                              postgresql_where=sa.text('principal_id IS NOT NULL'),
                              sqlite_where=sa.text('principal_id IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('step_records', schema=None) as batch_op:
        batch_op.drop_index('ix_step_records_principal')
        batch_op.drop_index('ix_step_records_assignee')
        batch_op.drop_index('ix_step_records_open')
        batch_op.create_index('ix_step_records_principal', ['principal_id'], unique=False,
                              postgresql_where=sa.text('principal_id IS NOT NULL'),
                              sqlite_where=sa.text('principal_id IS NOT NULL'))
        batch_op.create_index('ix_step_records_assignee_open', ['assignee_id', 'status', 'due_at'], unique=False)
        batch_op.drop_constraint(batch_op.f('fk_step_records_unit_id_units'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_step_records_document_id_documents'), type_='foreignkey')
        batch_op.drop_column('unit_id')
        batch_op.drop_column('document_id')
