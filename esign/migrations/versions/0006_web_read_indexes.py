"""indexes of the home page and the document page: steps held on someone's behalf

Who may see a document (officers and advisers) includes the documents where they hold a
step for someone else (``principal_id``); without an index that test read every step record.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('step_records', schema=None) as batch_op:
        batch_op.create_index('ix_step_records_principal', ['principal_id'], unique=False,
                              postgresql_where=sa.text('principal_id IS NOT NULL'),
                              sqlite_where=sa.text('principal_id IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('step_records', schema=None) as batch_op:
        batch_op.drop_index('ix_step_records_principal')
