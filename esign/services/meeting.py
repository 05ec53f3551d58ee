"""Meeting mode: the chair approves several documents with one confirmation on the phone.

The chair picks documents from the list of their pending approvals;
:func:`approve_selected` prepares one :class:`SignatureRequest` per document
(each under its own document lock: one that cannot be prepared is reported and
the others go on), then asks the remote signing service for **one**
authorization over every tbs (``sign_many``). Each request keeps the reference
of its own hash (``csc1:<authorization>#<i>``), so each completes on its own:
a document that changed meanwhile fails alone, and everything lives in the
database, so collecting after a restart completes.

A *confirmation* (the batch) is named by the authorization id of the remote
service. A single mobile signature from the document page is a confirmation of
one, and shows on the same live page.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, false, func, or_, select

from esign.errors import (
    BackendError,
    CertificateRefused,
    EsignError,
    NotFound,
    TokenUnavailable,
)
from esign.models import (
    Certificate,
    Comment,
    Document,
    Revision,
    SignatureRequest,
    StepRecord,
    User,
    WorkflowInstance,
)
from esign.services import audit, signing
from esign.services.context import Context
from esign.services.documents import current_version, head_revision
from esign.services.routing import definition_of
from esign.signing.backend import Pending, SignRequest
from esign.signing.csc import REF_PREFIX, CscBackend, parse_ref

log = logging.getLogger(__name__)

APPROVE = "approve"


# --- what the chair sees --------------------------------------------------------------------


@dataclass(frozen=True)
class Opinion:
    adviser: str
    title: str
    #: done | open | returned ...
    status: str
    comment: str
    at: datetime | None


@dataclass(frozen=True)
class Approval:
    document_id: int
    title: str
    doc_type: str
    drafter: str
    due_at: datetime | None
    overdue: bool
    head_sha256: str
    opinions: list[Opinion]
    #: an open request of the chair's already waits for this document
    waiting: bool = False


def _approve_states(ctx: Context, instance: WorkflowInstance) -> bool:
    definition = definition_of(ctx, instance)
    return any(
        t.action == APPROVE and instance.state in t.sources and t.signature is not None
        and t.signature.device != "seal"
        for t in definition.transitions
    )


def pending_approvals(ctx: Context, actor: User) -> list[Approval]:
    """The documents waiting for the actor's approval signature, the most urgent first."""
    now = ctx.now()
    out: list[Approval] = []
    with ctx.db.session() as session:
        steps = session.scalars(
            select(StepRecord)
            .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
            .where(StepRecord.assignee_id == actor.id, StepRecord.status == "open",
                   StepRecord.state == WorkflowInstance.state)
            .order_by(StepRecord.due_at, StepRecord.id)
        ).all()
        for step in steps:
            instance = step.instance
            if not _approve_states(ctx, instance):
                continue
            document = session.get(Document, instance.document_id)
            version = current_version(session, document)
            head = head_revision(session, version)
            comments = {
                c.author_id: c.body
                for c in session.scalars(select(Comment).where(
                    Comment.document_id == document.id, Comment.version_id == version.id,
                    Comment.action == "advise").order_by(Comment.id))
            }
            opinions = [
                Opinion(s.assignee.full_name, s.assignee.title, s.status, comments.get(s.assignee_id, ""),
                        s.completed_at)
                for s in session.scalars(select(StepRecord).where(
                    StepRecord.instance_id == instance.id, StepRecord.version_id == version.id,
                    StepRecord.state == "advise").order_by(StepRecord.id))
            ]
            waiting = session.scalar(select(SignatureRequest.id).where(
                SignatureRequest.document_id == document.id, SignatureRequest.user_id == actor.id,
                SignatureRequest.status.in_(("prepared", "pending")), SignatureRequest.expires_at > now,
            ).limit(1)) is not None
            out.append(Approval(
                document_id=document.id, title=document.title, doc_type=document.doc_type,
                drafter=document.created_by.full_name, due_at=step.due_at,
                overdue=step.due_at is not None and step.due_at < now, head_sha256=head.sha256,
                opinions=opinions, waiting=waiting,
            ))
    return out


def _approve_state_names(ctx: Context) -> set[str]:
    return {
        state
        for definition in ctx.workflows
        for t in definition.transitions
        if t.action == APPROVE and t.signature is not None and t.signature.device != "seal"
        for state in t.sources
    }


def approvals_waiting(ctx: Context, actor: User) -> Select[tuple[int]]:
    """The query counting the approvals waiting for the actor (for the navigation link).

    Read from ``ix_step_records_open`` (the step's state is in it): only the approval
    steps are then joined to their instance, to skip any left behind by a state change.
    """
    states = sorted(_approve_state_names(ctx))
    return (
        select(func.count()).select_from(StepRecord)
        .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
        .where(StepRecord.assignee_id == actor.id, StepRecord.status == "open",
               StepRecord.state.in_(states) if states else false(), StepRecord.state == WorkflowInstance.state)
    )


def count_pending_approvals(ctx: Context, actor: User) -> int:
    """How many approvals wait for the actor: one count query."""
    with ctx.db.session() as session:
        return int(session.scalar(approvals_waiting(ctx, actor)) or 0)


# --- the batch --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    document_id: int
    title: str
    message: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchStart:
    #: the confirmation's id (None when nothing could be prepared, or it completed at once)
    batch_id: str | None
    request_ids: list[str]
    refused: list[Refused]


def remote_backend(ctx: Context) -> tuple[str, CscBackend]:
    for name, backend in ctx.backends.items():
        if isinstance(backend, CscBackend):
            return name, backend
    raise CertificateRefused(
        "This server offers no mobile certificates (no remote signing service is configured)")


def remote_backend_names(ctx: Context) -> set[str]:
    """The configured backends that are remote signing services (mobile certificates)."""
    return {name for name, backend in ctx.backends.items() if isinstance(backend, CscBackend)}


def mobile_certificate(ctx: Context, actor: User) -> Certificate:
    """The actor's active mobile certificate on the remote signing service."""
    name, _ = remote_backend(ctx)
    now = ctx.now()
    with ctx.db.session() as session:
        found = [c for c in session.scalars(select(Certificate).where(
            Certificate.user_id == actor.id, Certificate.backend == name, Certificate.active,
        ).order_by(Certificate.id.desc())) if c.not_before <= now <= c.not_after]
        if not found:
            raise CertificateRefused(
                "You have no valid mobile certificate on the remote signing service; ask the administrator")
        session.expunge(found[0])
        return found[0]


def _title(ctx: Context, document_id: int) -> str:
    with ctx.db.session() as session:
        document = session.get(Document, document_id)
        return document.title if document is not None else f"#{document_id}"


def approve_selected(ctx: Context, actor: User, document_ids: Sequence[int], *,
                     idempotency_key: str | None = None) -> BatchStart:
    """Prepare the approval of every selected document and ask for one confirmation on the phone."""
    name, backend = remote_backend(ctx)
    certificate = mobile_certificate(ctx, actor)
    prepared: list[tuple[int, signing.SigningOutcome]] = []
    refused: list[Refused] = []
    for document_id in dict.fromkeys(document_ids):  # each once, in the chair's order
        try:
            outcome = signing.request_signature(
                ctx, actor, document_id, APPROVE, certificate_id=certificate.id, ask_device=False,
                idempotency_key=f"{idempotency_key}:{document_id}" if idempotency_key else None,
            )
        except EsignError as e:
            refused.append(Refused(document_id, _title(ctx, document_id), e.template, dict(e.params)))
            continue
        prepared.append((document_id, outcome))
    fresh = [(d, o) for d, o in prepared if o.status == "prepared"]
    if not fresh:
        # nothing new: the same form sent twice answers the confirmation already asked for
        again = [o.request_id for _, o in prepared]
        return BatchStart(_batch_of_ids(ctx, again), again, refused)
    requests = [
        SignRequest(credential=certificate.credential, tbs=o.tbs or b"", md_algorithm=o.md_algorithm,
                    mechanism=o.mechanism, label=_title(ctx, d))
        for d, o in fresh
    ]
    ids = [o.request_id for _, o in fresh]
    try:
        answer = backend.sign_many(requests)
    except BackendError as e:
        for request_id in ids:
            signing._mark(ctx, request_id, "failed", e.template if not e.params else str(e))
        raise
    if isinstance(answer, Pending):
        with ctx.db.session() as session:
            for i, request_id in enumerate(ids):
                row = session.get(SignatureRequest, request_id)
                row.status, row.backend_ref = "pending", CscBackend.item_ref(answer.ref, i)
            audit.record(session, "signature.batch_requested", actor=session.get(User, actor.id),
                         unit_id=actor.unit_id, backend=name, requests=ids,
                         documents=[d for d, _ in fresh], authorization=parse_ref(answer.ref)[0])
        log.info("meeting: %d approvals wait for one confirmation", len(ids))
        return BatchStart(parse_ref(answer.ref)[0], [o.request_id for _, o in prepared], refused)
    # the provider signed at once (a PIN given, or a service without confirmation)
    for request_id, signed in zip(ids, answer, strict=True):
        try:
            signing.complete_signature(ctx, request_id, signed.signature, actor=actor)
        except EsignError as e:
            log.info("meeting: request %s not completed: %s", request_id, e)
    return BatchStart(None, [o.request_id for _, o in prepared], refused)


def _batch_of_ids(ctx: Context, request_ids: Sequence[str]) -> str | None:
    with ctx.db.session() as session:
        for request_id in request_ids:
            row = session.get(SignatureRequest, request_id)
            if row is not None and row.backend_ref and row.backend_ref.startswith(REF_PREFIX):
                return parse_ref(row.backend_ref)[0]
    return None


def batch_of_request(ctx: Context, actor: User, request_id: str) -> str | None:
    """The confirmation a request of the actor's waits for on the phone, if any."""
    with ctx.db.session() as session:
        row = session.get(SignatureRequest, request_id)
        if row is None or row.user_id != actor.id:
            return None
        backend = ctx.backends.get(row.backend)
        if not isinstance(backend, CscBackend) or not row.backend_ref:
            return None
        return parse_ref(row.backend_ref)[0]


# --- progress -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    request_id: str
    document_id: int
    title: str
    #: waiting | signed | declined | expired | failed | cancelled
    status: str
    message: str = ""
    revision_index: int | None = None


@dataclass(frozen=True)
class Batch:
    batch_id: str
    code: str
    #: when the phone confirmation expires (while it is pending)
    expires_at: datetime | None
    #: pending | confirmed | declined | expired | failed | cancelled | unknown (service unreachable)
    phone_status: str
    items: list[BatchItem]
    #: a transient problem reaching the service (the confirmation may still complete)
    provider_error: str = ""
    provider_error_params: dict[str, object] = field(default_factory=dict)
    #: the service's confirmation page (while pending), for a link or a QR code
    confirm_url: str | None = None

    @property
    def done(self) -> bool:
        return all(i.status != "waiting" for i in self.items)


_SHOWN = {"prepared": "waiting", "pending": "waiting", "completed": "signed"}


def _rows(ctx: Context, actor: User, batch_id: str) -> list[SignatureRequest]:
    if not batch_id or "#" in batch_id:
        raise NotFound("This confirmation does not exist")
    with ctx.db.session() as session:
        rows = list(session.scalars(select(SignatureRequest).where(
            SignatureRequest.user_id == actor.id,
            or_(SignatureRequest.backend_ref == f"{REF_PREFIX}{batch_id}",
                SignatureRequest.backend_ref.startswith(f"{REF_PREFIX}{batch_id}#", autoescape=True)),
        )))
        for row in rows:
            session.expunge(row)
    if not rows:
        raise NotFound("This confirmation does not exist")
    return sorted(rows, key=lambda r: parse_ref(r.backend_ref or "")[1] or 0)


def batch_status(ctx: Context, actor: User, batch_id: str, *, collect: bool = True) -> Batch:
    """Where a confirmation stands; with ``collect``, complete every request the phone confirmed."""
    rows = _rows(ctx, actor, batch_id)
    backend = ctx.backends.get(rows[0].backend)
    code, expires_at, phone, problem, problem_params, url = "", None, "unknown", "", {}, None
    if isinstance(backend, CscBackend):
        try:
            state = backend.confirmation(rows[0].backend_ref or "")
            code, expires_at, phone, url = state["code"], state["expires_at"], state["status"], state["url"]
        except TokenUnavailable as e:
            problem, problem_params = e.template, dict(e.params)
        except BackendError as e:
            problem, problem_params = e.template, dict(e.params)
    if collect and phone not in ("pending", "unknown"):
        for row in rows:
            if row.status != "pending":
                continue
            try:
                signing.collect_signature(ctx, row.id)
            except TokenUnavailable as e:
                problem, problem_params = e.template, dict(e.params)
                break
            except EsignError as e:  # recorded on the request by collect_signature
                log.info("meeting: request %s: %s", row.id, e)
        rows = _rows(ctx, actor, batch_id)
    if expires_at is not None:
        expires_at = min([expires_at, *(r.expires_at for r in rows if r.status == "pending")])
    with ctx.db.session() as session:
        titles = {d.id: d.title for d in session.scalars(select(Document).where(
            Document.id.in_([r.document_id for r in rows])))}
        revisions = {}
        for r in rows:
            if r.result_revision_id:
                revision = session.get(Revision, r.result_revision_id)
                revisions[r.id] = revision.index if revision else None
    items = [
        BatchItem(r.id, r.document_id, titles.get(r.document_id, ""), _SHOWN.get(r.status, r.status),
                  r.error or "", revisions.get(r.id))
        for r in rows
    ]
    return Batch(batch_id, code, expires_at, phone, items, problem, problem_params,
                 url if phone == "pending" else None)


def cancel_batch(ctx: Context, actor: User, batch_id: str) -> Batch:
    """Withdraw the confirmation on the phone and cancel every request still waiting."""
    rows = _rows(ctx, actor, batch_id)
    backend = ctx.backends.get(rows[0].backend)
    if isinstance(backend, CscBackend) and any(r.status in ("prepared", "pending") for r in rows):
        try:
            backend.cancel(f"{REF_PREFIX}{batch_id}")
        except BackendError as e:
            # already answered or expired on the phone, or the service is away: esign cancels anyway
            log.info("meeting: the remote service did not cancel %s: %s", batch_id, e)
    for row in rows:
        signing.cancel_signature(ctx, actor, row.id)
    return batch_status(ctx, actor, batch_id, collect=False)

