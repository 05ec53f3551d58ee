"""Read models for the web pages: what one screen shows, gathered in one session.

Added by the web helper. Nothing here writes; every function checks access the
way the rest of the services do (a document one may not see does not exist).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import date, datetime

from asn1crypto import x509
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from esign.errors import IntegrityError, NotFound
from esign.models import (
    AuditEvent,
    Certificate,
    Comment,
    Document,
    DocumentVersion,
    Revision,
    SignatureRequest,
    StepRecord,
    Unit,
    User,
    WorkflowInstance,
)
from esign.services.access import visible_clause
from esign.services.context import Context
from esign.services.documents import SIGNATURE_KINDS, DocumentRow, InboxItem, current_version
from esign.services.routing import definition_of, effective_roles, open_steps
from esign.workflow import engine

#: audit events the timeline leaves out: each has a step.* twin that says it better
#: the step.* event of the same signature is the one shown
QUIET_EVENTS = frozenset({"signature.requested", "signature.completed", "signature.uploaded"})


@dataclass(frozen=True)
class SignatureRow:
    index: int
    field: str | None
    kind: str
    signer: str
    signer_title: str
    at: datetime
    subject: str
    issuer: str
    device: str
    sha256: str


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    actor: str
    data: dict[str, object]


@dataclass(frozen=True)
class ActionOffer:
    action: str
    label: dict[str, str]
    signed: bool
    comment_required: bool
    #: the agency seal signs, not the officer's own certificate
    seal: bool
    #: the step fills the document number and date
    numbers: bool


@dataclass(frozen=True)
class CertificateRow:
    id: int
    device: str
    backend: str
    subject: str
    not_after: datetime
    #: the subject's common name: the person, as a choice list shows it
    name: str
    #: sha256 of the certificate (hex): what a device in the officer's hands must hold
    fingerprint: str = ""


@dataclass(frozen=True)
class Person:
    username: str
    full_name: str
    title: str
    roles: frozenset[str]


@dataclass(frozen=True)
class OpenStep:
    assignee: str
    state: str
    due_at: datetime | None
    overdue: bool
    authority: str
    principal: str


@dataclass(frozen=True)
class PendingRequest:
    id: str
    action: str
    status: str
    backend: str
    expires_at: datetime
    tbs: bytes
    md_algorithm: str
    mechanism: str


@dataclass(frozen=True)
class DocumentOverview:
    id: int
    title: str
    doc_type: str
    number: str | None
    issued_on: date | None
    source: str
    public_code: str
    unit_name: str
    drafter: str
    created_at: datetime
    updated_at: datetime
    state: str
    state_name: dict[str, str]
    terminal: bool
    workflow_name: dict[str, str]
    version: int
    version_reason: str
    head_index: int
    head_sha256: str
    head_size: int
    my_step_due: datetime | None
    my_step_authority: str
    open_steps: list[OpenStep]
    signatures: list[SignatureRow]
    timeline: list[TimelineEntry]
    actions: list[ActionOffer]
    certificates: list[CertificateRow]
    advisers: list[Person]
    members: list[Person]
    authorities: list[str]
    pending: list[PendingRequest]
    action_labels: dict[str, dict[str, str]] = field(default_factory=dict)


@functools.lru_cache(maxsize=1024)
def common_name(der: bytes, part: str) -> str:
    """The common name of a certificate's subject or issuer ("" when it has none).

    A certificate's bytes never change, so neither does the answer: parsed once per process."""
    try:
        name = getattr(x509.Certificate.load(der), part).native
    except (ValueError, TypeError):
        return ""
    value = name.get("common_name", "") if isinstance(name, dict) else ""
    return value if isinstance(value, str) else ""


def _person(user: User) -> Person:
    return Person(user.username, user.full_name, user.title, user.roles)


def _signature_rows(revisions: list[Revision], unit_name: str) -> list[SignatureRow]:
    """The signed revisions of one version (``revisions`` in index order, certificates loaded)."""
    rows = []
    for revision in revisions:
        if revision.kind == "initial":
            continue
        cert: Certificate | None = revision.certificate
        signer = revision.created_by
        seal = cert is not None and cert.device == "seal"
        rows.append(SignatureRow(
            index=revision.index,
            field=revision.field,
            kind=revision.kind,
            signer=(unit_name if seal else (signer.full_name if signer else "")),
            signer_title="" if seal else (signer.title if signer else ""),
            at=revision.created_at,
            subject=cert.subject if cert else "",
            issuer=cert.issuer if cert else "",
            device=cert.device if cert else "",
            sha256=revision.sha256,
        ))
    return rows


def _revisions(session, version: DocumentVersion) -> list[Revision]:  # type: ignore[no-untyped-def]
    """The version's revisions in index order with their certificates, in one query."""
    revisions = list(session.scalars(
        select(Revision).where(Revision.version_id == version.id)
        .options(joinedload(Revision.certificate)).order_by(Revision.index)))
    if not revisions:
        raise IntegrityError("Version %(id)s has no revision", id=version.id)
    return revisions


def _timeline(session, document: Document) -> list[TimelineEntry]:  # type: ignore[no-untyped-def]
    """Audit events and notes; their authors come from the session's identity map when loaded."""
    entries = []
    for event in session.scalars(select(AuditEvent).where(AuditEvent.document_id == document.id)
                                 .order_by(AuditEvent.seq)):
        if event.kind in QUIET_EVENTS:
            continue
        try:
            data = json.loads(event.data)
        except ValueError:
            data = {}
        entries.append(TimelineEntry(event.at, event.kind, event.actor.full_name if event.actor else "",
                                     data if isinstance(data, dict) else {}))
    # notes written without an action; comments that went with an action are in their event
    for comment in session.scalars(select(Comment).where(Comment.document_id == document.id,
                                                         Comment.action == "")):
        entries.append(TimelineEntry(comment.created_at, "comment", comment.author.full_name,
                                     {"comment": comment.body}))
    entries.sort(key=lambda e: e.at)
    return entries


def document_overview(ctx: Context, actor: User, document_id: int) -> DocumentOverview:
    """Everything the document page shows to ``actor``, including the actions they may take now.

    Eight queries whatever the number of documents, signatures or events: the unit's people
    with their roles (signers, assignees, advisers and authors are found among them), the
    document with its workflow and unit, the current version with its revisions and their
    certificates, the open steps, the actor's certificates, pending requests, events, notes.
    """
    now = ctx.now()
    with ctx.db.session() as session:
        # everyone who may see a document is of its unit: its people, loaded once, name every actor
        people = list(session.scalars(select(User).where(User.unit_id == actor.unit_id).order_by(User.id)
                                      .options(joinedload(User.role_rows))).unique())
        names = {u.id: u for u in people}
        actor = names.get(actor.id) or session.get(User, actor.id)
        document = session.scalar(
            select(Document).where(Document.id == document_id, visible_clause(actor))
            .options(joinedload(Document.workflow), joinedload(Document.unit)))
        if document is None:
            raise NotFound("This document does not exist or is not yours to see")
        instance = document.workflow
        definition = definition_of(ctx, instance)
        # the current version with its revisions and their certificates, in one query
        version = session.scalars(
            select(DocumentVersion).where(DocumentVersion.document_id == document.id)
            .order_by(DocumentVersion.number.desc()).limit(1)
            .options(joinedload(DocumentVersion.revisions).joinedload(Revision.certificate))).unique().first()
        if version is None:
            raise IntegrityError("Document %(id)s has no version", id=document.id)
        revisions = list(version.revisions)
        if not revisions:
            raise IntegrityError("Version %(id)s has no revision", id=version.id)
        head = revisions[-1]
        steps_open = open_steps(session, instance)
        # the actor's open step on the current state (what step_of finds), from the same rows
        step = next((s for s in steps_open if s.state == instance.state and s.assignee_id == actor.id), None)
        roles = effective_roles(actor, step, definition)
        spec = definition.states[instance.state]
        actions = []
        for transition in engine.available_actions(definition, instance.state, roles):
            if step is None and transition.action != "reassign":
                continue  # the step belongs to someone else
            signature = transition.signature
            actions.append(ActionOffer(
                action=transition.action,
                label=dict(transition.label),
                signed=signature is not None,
                comment_required=transition.comment == "required",
                seal=signature is not None and signature.device == "seal",
                numbers=signature is not None and bool(signature.fill),
            ))
        offered = list(ctx.settings.signing.backends)
        certificates = [
            CertificateRow(c.id, c.device, c.backend, c.subject, c.not_after, common_name(c.der, "subject"),
                           c.fingerprint)
            for c in session.scalars(select(Certificate).where(Certificate.user_id == actor.id, Certificate.active)
                                     .order_by(Certificate.id))
            if c.backend in offered and c.not_before <= now <= c.not_after
        ]
        certificates.sort(key=lambda c: offered.index(c.backend))
        steps = [
            OpenStep(
                assignee=names[s.assignee_id].full_name if s.assignee_id in names else "",
                state=s.state,
                due_at=s.due_at,
                overdue=s.due_at is not None and s.due_at < now,
                authority=s.authority,
                principal=names[s.principal_id].full_name if s.principal_id in names else "",
            )
            for s in steps_open
        ]
        pending = [
            PendingRequest(r.id, r.action, r.status, r.backend, r.expires_at, r.tbs,
                           json.loads(r.prepared_json).get("md_algorithm", "sha256"),
                           json.loads(r.prepared_json).get("mechanism", ""))
            for r in session.scalars(select(SignatureRequest).where(
                SignatureRequest.document_id == document.id, SignatureRequest.user_id == actor.id,
                SignatureRequest.status.in_(("prepared", "pending")), SignatureRequest.expires_at > now,
            ).order_by(SignatureRequest.created_at))
        ]
        return DocumentOverview(
            id=document.id,
            title=document.title,
            doc_type=document.doc_type,
            number=document.number,
            issued_on=document.issued_on,
            source=document.source,
            public_code=document.public_code,
            unit_name=document.unit.name,
            drafter=document.created_by.full_name,
            created_at=document.created_at,
            updated_at=document.updated_at,
            state=instance.state,
            state_name=dict(spec.name),
            terminal=bool(spec.terminal),
            workflow_name=dict(definition.name),
            version=version.number,
            version_reason=version.reason,
            head_index=head.index,
            head_sha256=head.sha256,
            head_size=head.size,
            my_step_due=step.due_at if step else None,
            my_step_authority=step.authority if step else "",
            open_steps=steps,
            signatures=_signature_rows(revisions, document.unit.name),
            timeline=_timeline(session, document),
            actions=actions,
            certificates=certificates,
            # unit_members' choice: active advisers in id order
            advisers=[_person(u) for u in people if u.active and "adviser" in u.roles],
            members=[_person(u) for u in sorted(people, key=lambda u: u.full_name) if u.active],
            authorities=list(spec.authority or ()),
            pending=pending,
            action_labels={t.action: dict(t.label) for t in definition.transitions},
        )


def state_names(ctx: Context) -> dict[str, dict[str, str]]:
    """The states of the default workflow with their names, in definition order."""
    definition = ctx.workflows.latest(ctx.settings.workflows.default)
    return {name: dict(spec.name) for name, spec in definition.states.items()}


# --- the inbox ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxPage:
    """One page of the home screen: a page of my open steps and a page of the documents I see."""

    tasks: list[InboxItem]
    #: all my open steps, not only this page's
    tasks_total: int
    tasks_page: int
    tasks_more: bool
    rows: list[DocumentRow]
    page: int
    more: bool


def inbox_page(ctx: Context, actor: User, *, tasks_page: int = 1, tasks_per_page: int = 20,
               state: str | None = None, page: int = 1, per_page: int = 25) -> InboxPage:
    """The home screen in one session and two indexed queries, whatever the number of documents.

    Only the columns shown are read (never a document's content); both lists are pages
    (offset pagination: page numbers stay small, a person pages through a few screens);
    ``actor`` is the signed-in user's row as loaded for the request (id, unit and roles).
    """
    now = ctx.now()
    tasks_page, page = max(tasks_page, 1), max(page, 1)
    # the officer's open steps in their unit: ix_step_records_open holds all three and the order
    mine = (StepRecord.assignee_id == actor.id, StepRecord.status == "open", StepRecord.unit_id == actor.unit_id)
    count = select(func.count()).select_from(StepRecord).where(*mine)
    with ctx.db.session() as session:
        # the page of steps and, on every row, the count of all of them (read once): one query
        task_rows = session.execute(
            select(StepRecord.id, StepRecord.due_at, StepRecord.assigned_at, StepRecord.authority,
                   Document.id, Document.title, WorkflowInstance.state, User.full_name,
                   count.scalar_subquery().correlate(None))
            .join(Document, Document.id == StepRecord.document_id)
            .join(WorkflowInstance, WorkflowInstance.document_id == StepRecord.document_id)
            .join(User, User.id == Document.created_by_id)
            .where(*mine)
            .order_by(StepRecord.due_at.asc().nulls_last(), StepRecord.id)
            .limit(tasks_per_page).offset((tasks_page - 1) * tasks_per_page)
        ).all()
        if task_rows:
            total = task_rows[0][-1]
        elif tasks_page > 1:  # a page past the end: count them alone
            total = session.scalar(count) or 0
        else:
            total = 0
        query = (
            select(Document.id, Document.title, WorkflowInstance.state, Document.number, Document.updated_at,
                   User.full_name)
            .join(WorkflowInstance, WorkflowInstance.document_id == Document.id)
            .join(User, User.id == Document.created_by_id)
            .where(visible_clause(actor))
            .order_by(Document.updated_at.desc(), Document.id.desc())
            .limit(per_page + 1)
            .offset((page - 1) * per_page)
        )
        if state:
            query = query.where(WorkflowInstance.state == state)
        rows = [DocumentRow(*r) for r in session.execute(query).all()]
    tasks = [
        InboxItem(document_id=doc_id, title=title, state=doc_state, step_id=step_id, due_at=due_at,
                  overdue=due_at is not None and due_at < now, drafter=drafter, assigned_at=assigned_at,
                  authority=authority)
        for step_id, due_at, assigned_at, authority, doc_id, title, doc_state, drafter, _total in task_rows
    ]
    return InboxPage(tasks=tasks, tasks_total=total, tasks_page=tasks_page,
                     tasks_more=tasks_page * tasks_per_page < total, rows=rows[:per_page], page=page,
                     more=len(rows) > per_page)


# --- the public verification page ----------------------------------------------------------


@dataclass(frozen=True)
class PublicSigner:
    name: str
    title: str
    at: datetime
    subject: str
    seal: bool


@dataclass(frozen=True)
class PublicRecord:
    """What anyone holding the QR code may learn: never the content."""

    public_code: str
    doc_type: str
    number: str | None
    issued_on: date | None
    unit_name: str
    state: str
    state_name: dict[str, str]
    version: int
    head_sha256: str
    head_index: int
    signers: list[PublicSigner]
    #: for the server's own use (verifying the document); the page shows the code, not the id
    document_id: int = 0


def public_record(ctx: Context, public_code: str) -> PublicRecord:
    with ctx.db.session() as session:
        document = session.scalar(select(Document).where(Document.public_code == public_code))
        if document is None:
            raise NotFound("No document has this verification code")
        instance = document.workflow
        definition = definition_of(ctx, instance)
        version = current_version(session, document)
        revisions = _revisions(session, version)
        head = revisions[-1]
        signers = [
            PublicSigner(row.signer, row.signer_title, row.at, row.subject, row.device == "seal")
            for row in _signature_rows(revisions, document.unit.name) if row.kind in SIGNATURE_KINDS
        ]
        return PublicRecord(
            public_code=document.public_code,
            doc_type=document.doc_type,
            number=document.number,
            issued_on=document.issued_on,
            unit_name=document.unit.name,
            state=instance.state,
            state_name=dict(definition.states[instance.state].name),
            version=version.number,
            head_sha256=head.sha256,
            head_index=head.index,
            signers=signers,
            document_id=document.id,
        )


# --- administration ------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateInfo:
    id: int
    device: str
    backend: str
    credential: str
    subject: str
    issuer: str
    not_after: datetime
    fingerprint: str
    active: bool
    name: str
    issuer_name: str


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    full_name: str
    title: str
    email: str
    unit_id: int
    unit_name: str
    roles: frozenset[str]
    active: bool
    certificates: list[CertificateInfo]


def _certificate_info(c: Certificate) -> CertificateInfo:
    return CertificateInfo(c.id, c.device, c.backend, c.credential, c.subject, c.issuer, c.not_after,
                           c.fingerprint, c.active, common_name(c.der, "subject"), common_name(c.der, "issuer"))


def _user_row(user: User) -> UserRow:
    return UserRow(user.id, user.username, user.full_name, user.title, user.email, user.unit_id,
                   user.unit.name, user.roles, user.active,
                   [_certificate_info(c) for c in sorted(user.certificates, key=lambda c: c.id)])


def list_users(ctx: Context, actor: User) -> list[UserRow]:
    from esign.services.users import require_admin

    require_admin(actor)
    with ctx.db.session() as session:
        users = session.scalars(select(User).join(Unit).order_by(Unit.name, User.full_name)).all()
        return [_user_row(u) for u in users]


def user_detail(ctx: Context, actor: User, user_id: int) -> UserRow:
    from esign.services.users import require_admin

    require_admin(actor)
    with ctx.db.session() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("There is no such user")
        return _user_row(user)


def list_units(ctx: Context) -> list[tuple[int, str]]:
    with ctx.db.session() as session:
        return [(u.id, u.name) for u in session.scalars(select(Unit).order_by(Unit.name))]


def unit_seals(ctx: Context, actor: User) -> list[CertificateInfo]:
    """The agency seal certificates of the actor's unit."""
    with ctx.db.session() as session:
        return [_certificate_info(c) for c in session.scalars(
            select(Certificate).where(Certificate.unit_id == actor.unit_id).order_by(Certificate.id))]


def bound_credentials(ctx: Context) -> set[tuple[str, str]]:
    """(backend, credential) of every certificate bound to anyone, active or withdrawn."""
    with ctx.db.session() as session:
        return {(b, c) for b, c in session.execute(select(Certificate.backend, Certificate.credential))}
