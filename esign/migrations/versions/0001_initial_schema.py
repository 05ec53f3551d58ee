"""initial schema, with append-only audit trail and revisions

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 11:21:42.122847
"""

import sqlalchemy as sa
from alembic import op

import esign.models.base

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_blobs'))
    )
    op.create_table('units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('parent_name', sa.String(length=200), nullable=False),
    sa.Column('place', sa.String(length=100), nullable=False),
    sa.Column('number_suffix', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_units')),
    sa.UniqueConstraint('code', name=op.f('uq_units_code'))
    )
    op.create_table('number_sequences',
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('doc_type', sa.String(length=16), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_number_sequences_unit_id_units')),
    sa.PrimaryKeyConstraint('unit_id', 'year', 'doc_type', name=op.f('pk_number_sequences'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_users_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_unit_id'), ['unit_id'], unique=False)

    op.create_table('certificates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('device', sa.String(length=16), nullable=False),
    sa.Column('backend', sa.String(length=16), nullable=False),
    sa.Column('credential', sa.String(length=200), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('chain_pem', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('issuer', sa.String(length=500), nullable=False),
    sa.Column('serial', sa.String(length=80), nullable=False),
    sa.Column('not_before', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('not_after', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(user_id IS NULL) <> (unit_id IS NULL)', name=op.f('ck_certificates_one_owner')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_certificates_unit_id_units')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_certificates_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('backend', 'credential', name=op.f('uq_certificates_backend_credential')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_certificates_fingerprint'))
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificates_unit_id'), ['unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_certificates_user_id'), ['user_id'], unique=False)

    op.create_table('delegations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('principal_id', sa.Integer(), nullable=False),
    sa.Column('delegate_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('authority', sa.String(length=8), nullable=False),
    sa.Column('valid_from', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_until', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_delegations_created_by_id_users')),
    sa.ForeignKeyConstraint(['delegate_id'], ['users.id'], name=op.f('fk_delegations_delegate_id_users')),
    sa.ForeignKeyConstraint(['principal_id'], ['users.id'], name=op.f('fk_delegations_principal_id_users')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_delegations_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delegations'))
    )
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delegations_delegate_id'), ['delegate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delegations_unit_id'), ['unit_id'], unique=False)

    op.create_table('documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('public_code', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('doc_type', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('content_json', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=True),
    sa.Column('issued_on', sa.Date(), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_documents_created_by_id_users')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_documents_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents')),
    sa.UniqueConstraint('number', name=op.f('uq_documents_number')),
    sa.UniqueConstraint('public_code', name=op.f('uq_documents_public_code'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_unit_id'), ['unit_id'], unique=False)
        batch_op.create_index('ix_documents_unit_updated', ['unit_id', 'updated_at'], unique=False)

    op.create_table('user_roles',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.CheckConstraint("role IN ('officer', 'adviser', 'chair', 'clerk', 'auditor', 'admin')", name=op.f('ck_user_roles_known_role')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_roles_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'role', name=op.f('pk_user_roles'))
    )
    op.create_table('audit_events',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('document_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_events_actor_id_users')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_audit_events_document_id_documents')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_audit_events_unit_id_units')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_events_hash'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_document_id'), ['document_id'], unique=False)

    op.create_table('document_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('superseded', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_document_versions_created_by_id_users')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_document_versions_document_id_documents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_document_versions')),
    sa.UniqueConstraint('document_id', 'number', name=op.f('uq_document_versions_document_id_number'))
    )
    with op.batch_alter_table('document_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_versions_document_id'), ['document_id'], unique=False)

    op.create_table('workflow_instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('definition_id', sa.String(length=64), nullable=False),
    sa.Column('definition_version', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('started_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', esign.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_workflow_instances_document_id_documents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_instances')),
    sa.UniqueConstraint('document_id', name=op.f('uq_workflow_instances_document_id'))
    )
    with op.batch_alter_table('workflow_instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflow_instances_state'), ['state'], unique=False)

    op.create_table('comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_comments_author_id_users')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_comments_document_id_documents')),
    sa.ForeignKeyConstraint(['version_id'], ['document_versions.id'], name=op.f('fk_comments_version_id_document_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comments'))
    )
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comments_document_id'), ['document_id'], unique=False)

    op.create_table('revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('field', sa.String(length=64), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('certificate_id', sa.Integer(), nullable=True),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_revisions_certificate_id_certificates')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_revisions_created_by_id_users')),
    sa.ForeignKeyConstraint(['sha256'], ['blobs.sha256'], name=op.f('fk_revisions_sha256_blobs')),
    sa.ForeignKeyConstraint(['version_id'], ['document_versions.id'], name=op.f('fk_revisions_version_id_document_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_revisions')),
    sa.UniqueConstraint('version_id', 'index', name=op.f('uq_revisions_version_id_index'))
    )
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revisions_version_id'), ['version_id'], unique=False)

    op.create_table('step_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=False),
    sa.Column('principal_id', sa.Integer(), nullable=True),
    sa.Column('authority', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=True),
    sa.Column('assigned_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', esign.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', esign.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revision_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_step_records_assignee_id_users')),
    sa.ForeignKeyConstraint(['instance_id'], ['workflow_instances.id'], name=op.f('fk_step_records_instance_id_workflow_instances')),
    sa.ForeignKeyConstraint(['principal_id'], ['users.id'], name=op.f('fk_step_records_principal_id_users')),
    sa.ForeignKeyConstraint(['revision_id'], ['revisions.id'], name=op.f('fk_step_records_revision_id_revisions')),
    sa.ForeignKeyConstraint(['version_id'], ['document_versions.id'], name=op.f('fk_step_records_version_id_document_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step_records'))
    )
    with op.batch_alter_table('step_records', schema=None) as batch_op:
        batch_op.create_index('ix_step_records_assignee_open', ['assignee_id', 'status', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_step_records_instance_id'), ['instance_id'], unique=False)

    op.create_table('signature_requests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('field', sa.String(length=64), nullable=False),
    sa.Column('backend', sa.String(length=16), nullable=False),
    sa.Column('base_revision_id', sa.Integer(), nullable=False),
    sa.Column('prepared_sha256', sa.String(length=64), nullable=False),
    sa.Column('prepared_json', sa.Text(), nullable=False),
    sa.Column('tbs', sa.LargeBinary(), nullable=False),
    sa.Column('args_json', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('backend_ref', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=80), nullable=True),
    sa.Column('created_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', esign.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', esign.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('result_revision_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['base_revision_id'], ['revisions.id'], name=op.f('fk_signature_requests_base_revision_id_revisions')),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_signature_requests_certificate_id_certificates')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_signature_requests_document_id_documents')),
    sa.ForeignKeyConstraint(['prepared_sha256'], ['blobs.sha256'], name=op.f('fk_signature_requests_prepared_sha256_blobs')),
    sa.ForeignKeyConstraint(['result_revision_id'], ['revisions.id'], name=op.f('fk_signature_requests_result_revision_id_revisions')),
    sa.ForeignKeyConstraint(['step_id'], ['step_records.id'], name=op.f('fk_signature_requests_step_id_step_records')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_signature_requests_user_id_users')),
    sa.ForeignKeyConstraint(['version_id'], ['document_versions.id'], name=op.f('fk_signature_requests_version_id_document_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signature_requests')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_signature_requests_idempotency_key'))
    )
    with op.batch_alter_table('signature_requests', schema=None) as batch_op:
        batch_op.create_index('ix_signature_requests_open', ['document_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_signature_requests_user_id'), ['user_id'], unique=False)


    _append_only("audit_events")
    _append_only("revisions")


# The audit trail and the revisions are history: the database itself refuses
# to change or delete them, whatever code runs against it.
APPEND_ONLY_MESSAGE = "is append-only"


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION esign_{table}_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '{table} {APPEND_ONLY_MESSAGE}'; END
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION esign_{table}_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} {APPEND_ONLY_MESSAGE}'); END"
            )


def _drop_append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS esign_{table}_append_only()")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")

def downgrade() -> None:
    _drop_append_only("revisions")
    _drop_append_only("audit_events")
    with op.batch_alter_table('signature_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signature_requests_user_id'))
        batch_op.drop_index('ix_signature_requests_open')

    op.drop_table('signature_requests')
    with op.batch_alter_table('step_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_step_records_instance_id'))
        batch_op.drop_index('ix_step_records_assignee_open')

    op.drop_table('step_records')
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revisions_version_id'))

    op.drop_table('revisions')
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comments_document_id'))

    op.drop_table('comments')
    with op.batch_alter_table('workflow_instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflow_instances_state'))

    op.drop_table('workflow_instances')
    with op.batch_alter_table('document_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_versions_document_id'))

    op.drop_table('document_versions')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_document_id'))

    op.drop_table('audit_events')
    op.drop_table('user_roles')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_unit_updated')
        batch_op.drop_index(batch_op.f('ix_documents_unit_id'))

    op.drop_table('documents')
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delegations_unit_id'))
        batch_op.drop_index(batch_op.f('ix_delegations_delegate_id'))

    op.drop_table('delegations')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificates_user_id'))
        batch_op.drop_index(batch_op.f('ix_certificates_unit_id'))

    op.drop_table('certificates')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_unit_id'))

    op.drop_table('users')
    op.drop_table('number_sequences')
    op.drop_table('units')
    op.drop_table('blobs')
    op.drop_table('audit_head')
