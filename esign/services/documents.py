"""Creating documents and reading their chains.

A document's first revision (r0) carries every signature field of its
workflow and the QR code of its public verification page, so the drafter's
certification signature covers them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from esign.errors import CommentRequired, DocumentError, Forbidden, IntegrityError, NotFound
from esign.models import (
    Document,
    DocumentVersion,
    Revision,
    StepRecord,
    Unit,
    User,
    UserRole,
    WorkflowInstance,
)
from esign.services import audit, blobs, idempotency
from esign.services.access import get_visible, visible_clause
from esign.services.context import Context
from esign.signing import layout
from esign.workflow.definition import Definition

DOC_TYPES = {"TTr": "TỜ TRÌNH", "BC": "BÁO CÁO", "QĐ": "QUYẾT ĐỊNH", "CV": "CÔNG VĂN", "TB": "THÔNG BÁO"}
MAX_TITLE = 300
#: revisions that add an officer's signature: made through esign, or uploaded from a plugin
SIGNATURE_KINDS = frozenset({"signature", "upload"})


@dataclass(frozen=True)
class MemoInput:
    """What an officer types into the compose form."""

    title: str
    body: str
    doc_type: str = "TTr"
    recipients: tuple[str, ...] = ()
    #: addressee line "Kính gửi: ..."
    addressee: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> MemoInput:
        data = json.loads(text)
        data["recipients"] = tuple(data.get("recipients", ()))
        return cls(**data)


def local_now(ctx: Context) -> datetime:
    return ctx.now().astimezone(ZoneInfo(ctx.settings.app.timezone))


def verify_url(ctx: Context, document: Document) -> str:
    return f"{ctx.settings.app.base_url.rstrip('/')}/v/{document.public_code}"


def lock_document(session: Session, document_id: int) -> Document:
    """Take the document's write lock for this transaction and return it fresh.

    The UPDATE is the lock: PostgreSQL locks the row, SQLite takes its write
    lock, so signing steps on one document run one at a time. It must be the
    transaction's first write.
    """
    result = session.execute(
        update(Document).where(Document.id == document_id).values(lock_version=Document.lock_version + 1)
    )
    if result.rowcount != 1:
        raise NotFound("This document does not exist")
    document = session.get(Document, document_id, populate_existing=True)
    assert document is not None
    return document


def current_version(session: Session, document: Document) -> DocumentVersion:
    version = session.scalar(
        select(DocumentVersion)
        .where(DocumentVersion.document_id == document.id)
        .order_by(DocumentVersion.number.desc())
        .limit(1)
    )
    if version is None:
        raise IntegrityError("Document %(id)s has no version", id=document.id)
    return version


def head_revision(session: Session, version: DocumentVersion) -> Revision:
    revision = session.scalar(
        select(Revision).where(Revision.version_id == version.id).order_by(Revision.index.desc()).limit(1)
    )
    if revision is None:
        raise IntegrityError("Version %(id)s has no revision", id=version.id)
    return revision


def read_revision(ctx: Context, revision: Revision) -> bytes:
    return ctx.blobs.read(revision.sha256)


def append_revision(
    session: Session,
    ctx: Context,
    version: DocumentVersion,
    data: bytes,
    *,
    kind: str,
    actor: User | None,
    field: str | None = None,
    certificate_id: int | None = None,
) -> Revision:
    """Store ``data`` as the next revision, after checking that the head is its prefix."""
    previous = session.scalar(
        select(Revision).where(Revision.version_id == version.id).order_by(Revision.index.desc()).limit(1)
    )
    if previous is not None and not ctx.blobs.is_prefix_of(previous.sha256, data):
        raise IntegrityError(
            "Revision %(next)s of version %(version)s does not extend revision %(index)s; it was not stored",
            next=previous.index + 1, version=version.number, index=previous.index,
        )
    digest = blobs.store(session, ctx.blobs, data)
    revision = Revision(
        version_id=version.id,
        index=0 if previous is None else previous.index + 1,
        sha256=digest,
        size=len(data),
        kind=kind,
        field=field,
        created_by_id=actor.id if actor else None,
        certificate_id=certificate_id,
        created_at=ctx.now(),
    )
    session.add(revision)
    session.flush()
    return revision


def _definition(ctx: Context) -> Definition:
    return ctx.workflows.latest(ctx.settings.workflows.default)


def _field_slots(definition: Definition) -> list[layout.FieldSlot]:
    return [layout.FieldSlot(name=f.name, kind=f.kind, slot=f.slot) for f in definition.fields]


def _memo_content(ctx: Context, unit: Unit, memo: MemoInput, signer: tuple[str, str, str]) -> layout.MemoContent:
    today = local_now(ctx).date()
    authority, title, name = signer
    return layout.MemoContent(
        parent_agency=unit.parent_name,
        agency=unit.name,
        number_suffix=f"{memo.doc_type}-{unit.number_suffix}",
        place=unit.place,
        date=today,
        doc_type=DOC_TYPES.get(memo.doc_type, memo.doc_type),
        title=memo.title,
        addressee=memo.addressee,
        body=tuple(p.strip() for p in memo.body.split("\n") if p.strip()),
        recipients=memo.recipients,
        signer_authority=authority,
        signer_title=title,
        signer_name=name,
    )


def _first_revision_bytes(ctx: Context, session: Session, document: Document, definition: Definition,
                          pdf: bytes) -> bytes:
    return layout.prepare_first_revision(
        pdf, _field_slots(definition), verify_url(ctx, document), document.public_code
    )


def _chair_signer(session: Session, unit: Unit) -> tuple[str, str, str]:
    """The signer block printed on a composed memo: the unit's chair, for the committee."""
    chair = session.scalar(
        select(User)
        .join(UserRole, UserRole.user_id == User.id)
        .where(User.unit_id == unit.id, User.active, UserRole.role == "chair")
        .order_by(User.id)
        .limit(1)
    )
    return ("TM. ỦY BAN NHÂN DÂN", "CHỦ TỊCH", chair.full_name if chair else "")


def _new_document(session: Session, ctx: Context, actor: User, *, title: str, doc_type: str, source: str,
                  content_json: str = "") -> tuple[Document, Definition]:
    if "officer" not in actor.roles:
        raise Forbidden("Only an officer can draft a document")
    title = title.strip()
    if not title:
        raise DocumentError("A document needs a title")
    if len(title) > MAX_TITLE:
        raise DocumentError("A title has at most %(n)s characters", n=MAX_TITLE)
    definition = _definition(ctx)
    now = ctx.now()
    document = Document(
        unit_id=actor.unit_id,
        public_code=secrets.token_urlsafe(9),
        title=title,
        doc_type=doc_type,
        source=source,
        content_json=content_json,
        created_by_id=actor.id,
        created_at=now,
        updated_at=now,
    )
    session.add(document)
    session.flush()
    session.add(
        WorkflowInstance(
            document_id=document.id,
            definition_id=definition.id,
            definition_version=definition.version,
            state=definition.initial,
            started_at=now,
        )
    )
    session.flush()
    return document, definition


def _start_version(session: Session, ctx: Context, document: Document, definition: Definition, actor: User,
                   pdf: bytes, *, reason: str = "") -> DocumentVersion:
    number = (session.scalar(
        select(func.max(DocumentVersion.number)).where(DocumentVersion.document_id == document.id)
    ) or 0) + 1
    session.execute(
        update(DocumentVersion).where(DocumentVersion.document_id == document.id).values(superseded=True)
    )
    version = DocumentVersion(document_id=document.id, number=number, created_by_id=actor.id,
                              created_at=ctx.now(), reason=reason)
    session.add(version)
    session.flush()
    first = _first_revision_bytes(ctx, session, document, definition, pdf)
    append_revision(session, ctx, version, first, kind="initial", actor=actor)
    return version


def _open_draft_step(session: Session, ctx: Context, document: Document, version: DocumentVersion,
                     definition: Definition, drafter: User) -> None:
    from esign.services.routing import open_step

    open_step(session, ctx, document.workflow, version, definition, definition.initial, drafter)


def compose_document(ctx: Context, actor: User, memo: MemoInput, *, idempotency_key: str | None = None) -> int:
    """Render a memo from the template and start its workflow; returns the document id.

    A second call with the same ``idempotency_key`` returns the first one's document.
    """
    if memo.doc_type not in DOC_TYPES:
        raise DocumentError("Unknown document type %(type)s", type=memo.doc_type)
    if not memo.body.strip():
        raise DocumentError("The memo has no text")
    return idempotency.once(ctx, actor.id, "compose", idempotency_key,
                            lambda session: _compose(session, ctx, actor, memo))


def _compose(session: Session, ctx: Context, actor: User, memo: MemoInput) -> int:
    actor = session.get(User, actor.id)
    document, definition = _new_document(
        session, ctx, actor, title=memo.title, doc_type=memo.doc_type, source="composed",
        content_json=memo.to_json(),
    )
    pdf = layout.render_memo(_memo_content(ctx, actor.unit, memo, _chair_signer(session, actor.unit)))
    version = _start_version(session, ctx, document, definition, actor, pdf)
    _open_draft_step(session, ctx, document, version, definition, actor)
    audit.record(session, "document.composed", actor=actor, document=document, title=document.title,
                 version=version.number, sha256=version.revisions[0].sha256 if version.revisions else None)
    return document.id


def upload_document(ctx: Context, actor: User, *, title: str, data: bytes, doc_type: str = "TTr",
                    idempotency_key: str | None = None) -> int:
    """Store an uploaded PDF as a new document's first revision; returns the document id.

    A second call with the same ``idempotency_key`` returns the first one's document.
    """
    layout.check_pdf(data, ctx.settings.app.max_upload_mb * 1024 * 1024)
    return idempotency.once(ctx, actor.id, "upload", idempotency_key,
                            lambda session: _upload(session, ctx, actor, title, data, doc_type))


def _upload(session: Session, ctx: Context, actor: User, title: str, data: bytes, doc_type: str) -> int:
    actor = session.get(User, actor.id)
    document, definition = _new_document(session, ctx, actor, title=title, doc_type=doc_type,
                                         source="uploaded")
    version = _start_version(session, ctx, document, definition, actor, data)
    _open_draft_step(session, ctx, document, version, definition, actor)
    audit.record(session, "document.uploaded", actor=actor, document=document, title=document.title,
                 size=len(data), sha256=blobs.sha256_hex(data))
    return document.id


def restart_version(session: Session, ctx: Context, document: Document, actor: User, reason: str) -> DocumentVersion:
    """Start a new chain for a returned document; the old version stays in history."""
    if not reason.strip():
        raise CommentRequired("Say why the document goes back for revision")
    definition = ctx.workflows.get(document.workflow.definition_id, document.workflow.definition_version)
    old = current_version(session, document)
    if document.source == "composed":
        memo = MemoInput.from_json(document.content_json)
        pdf = layout.render_memo(_memo_content(ctx, document.unit, memo, _chair_signer(session, document.unit)))
    else:
        # the uploaded original is the part of r0 before esign's own update
        pdf = layout.original_of(read_revision(ctx, old.revisions[0]))
    return _start_version(session, ctx, document, definition, actor, pdf, reason=reason.strip())


def current_pdf(ctx: Context, actor: User, document_id: int) -> tuple[Document, Revision, bytes]:
    with ctx.db.session() as session:
        actor = session.get(User, actor.id)
        document = get_visible(session, actor, document_id)
        revision = head_revision(session, current_version(session, document))
        return document, revision, read_revision(ctx, revision)


def export_pdf(ctx: Context, document_id: int) -> bytes:
    """The current PDF of a document, for the command line (no access check)."""
    with ctx.db.session() as session:
        document = session.get(Document, document_id)
        if document is None:
            raise NotFound("There is no document %(id)s", id=document_id)
        return read_revision(ctx, head_revision(session, current_version(session, document)))


@dataclass(frozen=True)
class InboxItem:
    document_id: int
    title: str
    state: str
    step_id: int
    due_at: datetime | None
    overdue: bool
    drafter: str
    assigned_at: datetime
    authority: str = ""


def inbox(ctx: Context, actor: User, *, limit: int = 200) -> list[InboxItem]:
    """What needs the actor's action, soonest deadline first."""
    now = ctx.now()
    with ctx.db.session() as session:
        rows = session.execute(
            select(StepRecord, Document, WorkflowInstance, User.full_name)
            .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
            .join(Document, Document.id == WorkflowInstance.document_id)
            .join(User, User.id == Document.created_by_id)
            .where(StepRecord.assignee_id == actor.id, StepRecord.status == "open",
                   Document.unit_id == actor.unit_id)
            .order_by(StepRecord.due_at.is_(None), StepRecord.due_at, StepRecord.id)
            .limit(limit)
        ).all()
        return [
            InboxItem(
                document_id=doc.id,
                title=doc.title,
                state=instance.state,
                step_id=step.id,
                due_at=step.due_at,
                overdue=step.due_at is not None and step.due_at < now,
                drafter=drafter,
                assigned_at=step.assigned_at,
                authority=step.authority,
            )
            for step, doc, instance, drafter in rows
        ]


@dataclass(frozen=True)
class DocumentRow:
    id: int
    title: str
    state: str
    number: str | None
    updated_at: datetime
    drafter: str


def list_documents(ctx: Context, actor: User, *, state: str | None = None, limit: int = 50,
                   offset: int = 0) -> list[DocumentRow]:
    with ctx.db.session() as session:
        actor = session.get(User, actor.id)
        query = (
            select(Document, WorkflowInstance.state, User.full_name)
            .join(WorkflowInstance, WorkflowInstance.document_id == Document.id)
            .join(User, User.id == Document.created_by_id)
            .where(visible_clause(actor))
            .order_by(Document.updated_at.desc(), Document.id.desc())
            .limit(limit)
            .offset(offset)
        )
        if state:
            query = query.where(WorkflowInstance.state == state)
        return [
            DocumentRow(d.id, d.title, s, d.number, d.updated_at, name)
            for d, s, name in session.execute(query).all()
        ]


def all_documents(ctx: Context) -> list[DocumentRow]:
    """Every document (command line)."""
    with ctx.db.session() as session:
        rows = session.execute(
            select(Document, WorkflowInstance.state, User.full_name)
            .join(WorkflowInstance, WorkflowInstance.document_id == Document.id)
            .join(User, User.id == Document.created_by_id)
            .order_by(Document.id)
        ).all()
        return [DocumentRow(d.id, d.title, s, d.number, d.updated_at, name) for d, s, name in rows]
