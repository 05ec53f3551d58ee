"""The migrations build the schema the models describe, and carry existing data forward."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from esign.models import Base, Document, StepRecord, User, WorkflowInstance
from esign.services import documents, signing
from esign.services.context import Context
from esign.services.migrate import alembic_config


def _alembic(ctx: Context, action: str, revision: str) -> None:
    config = alembic_config(ctx.settings.database.url)
    with ctx.db.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def test_the_migrated_schema_is_the_models_schema(ctx: Context) -> None:
    with ctx.db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                       Base.metadata)
    assert differences == []


def test_step_records_get_their_document_and_unit_from_existing_rows(demo: Context) -> None:
    """0007 fills the new columns of steps recorded before it, and 0006 can be gone back to."""
    with demo.db.session() as s:
        officer = s.scalar(select(User).where(User.username == "nguyenvana"))
        officer.roles  # noqa: B018 (loaded before the session closes)
        s.expunge(officer)
    memo = documents.MemoInput(title="Tờ trình thử", body="Nội dung.", recipients=("Lưu: VT.",))
    doc_ids = [documents.compose_document(demo, officer, memo) for _ in range(2)]
    signing.request_signature(demo, officer, doc_ids[0], "submit", advisers=["tranthibinh"])

    def steps() -> list:  # type: ignore[type-arg]
        with demo.db.session() as s:
            return sorted(s.execute(
                select(StepRecord.id, StepRecord.document_id, StepRecord.unit_id, Document.unit_id)
                .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
                .join(Document, Document.id == WorkflowInstance.document_id)
                .where(WorkflowInstance.document_id == StepRecord.document_id)).all())

    before = steps()
    assert len(before) == 3  # the two drafts (one done: submitted) and the adviser's step
    assert {row[1] for row in before} == set(doc_ids)
    assert all(unit == document_unit for _, _, unit, document_unit in before)

    _alembic(demo, "downgrade", "0006")
    columns = {c["name"] for c in inspect(demo.db.engine).get_columns("step_records")}
    assert not {"document_id", "unit_id"} & columns
    _alembic(demo, "upgrade", "head")
    demo.db.engine.dispose()  # connections that cached the old table layout

    assert steps() == before
    with demo.db.engine.connect() as connection:
        nulls = connection.scalar(text("SELECT count(*) FROM step_records WHERE document_id IS NULL OR unit_id IS NULL"))
    assert nulls == 0
