"""Signing a step: prepare, let a device sign the tbs, finish — one revision each time.

Every signature goes through one deferred flow whatever the device:

1. ``request_signature`` checks the actor, the step and the certificate,
   prepares the revision (placeholder, digest, signed attributes) and
   persists a :class:`SignatureRequest`;
2. the device signs the tbs: at once for devices the server holds (the
   request completes in the same transaction), or later for the officer's
   desktop agent or phone;
3. ``complete_signature`` checks the value, embeds it, and commits the new
   revision, the step and the audit event in one transaction.

Signing steps on one document are serialised by the document lock; a request
prepared on a revision that is no longer the head cannot complete (it would
fork the chain) and is refused with a request to sign again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from esign.errors import (
    ActionNotAllowed,
    BackendError,
    BackendExpired,
    CertificateRefused,
    CommentRequired,
    Conflict,
    Declined,
    NotFound,
    RequestExpired,
    SigningError,
    TokenUnavailable,
    WorkflowError,
)
from esign.models import (
    Certificate,
    Document,
    DocumentVersion,
    NumberSequence,
    Revision,
    SignatureRequest,
    StepRecord,
    Unit,
    User,
)
from esign.services import audit, blobs, faults
from esign.services.access import get_visible
from esign.services.context import Context
from esign.services.documents import (
    append_revision,
    current_version,
    head_revision,
    local_now,
    lock_document,
    read_revision,
)
from esign.services.routing import (
    PLAIN_ACTIONS,
    advance_after_signature,
    choose_advisers,
    definition_of,
    effective_roles,
    step_of,
)
from esign.services.users import bundle_of
from esign.signing import deferred
from esign.signing.backend import Pending, Signed, SignRequest
from esign.workflow import engine
from esign.workflow.definition import Transition

if TYPE_CHECKING:
    from pyhanko.sign.timestamps import TimeStamper

log = logging.getLogger(__name__)

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled", "declined"})
#: a device's final answer other than a value: the request's status and the reason it keeps
DEVICE_ENDINGS: tuple[tuple[type[BackendError], str], ...] = (
    (Declined, "declined"),
    (BackendExpired, "expired"),
)


@dataclass(frozen=True)
class SigningOutcome:
    request_id: str
    document_id: int
    #: completed | pending
    status: str
    tbs: bytes | None = None
    md_algorithm: str = "sha256"
    mechanism: str = ""
    expires_at: datetime | None = None
    revision_index: int | None = None
    message: str = ""


def _outcome(request: SignatureRequest, revision_index: int | None = None, message: str = "") -> SigningOutcome:
    pending = request.status in ("prepared", "pending")
    prepared = json.loads(request.prepared_json)
    return SigningOutcome(
        request_id=request.id,
        document_id=request.document_id,
        status="completed" if request.status == "completed" else request.status,
        tbs=request.tbs if pending else None,
        md_algorithm=prepared.get("md_algorithm", "sha256"),
        mechanism=prepared.get("mechanism", ""),
        expires_at=request.expires_at,
        revision_index=revision_index,
        message=message,
    )


def _choose_certificate(session: Session, ctx: Context, actor: User, document: Document,
                        transition: Transition, certificate_id: int | None) -> Certificate:
    now = ctx.now()
    if transition.signature is not None and transition.signature.device == "seal":
        cert = session.scalar(
            select(Certificate).where(Certificate.unit_id == document.unit_id, Certificate.device == "seal",
                                      Certificate.active).order_by(Certificate.id.desc()).limit(1)
        )
        if cert is None:
            raise CertificateRefused("This unit has no agency seal certificate; ask the administrator to bind one")
    elif certificate_id is not None:
        cert = session.get(Certificate, certificate_id)
        if cert is None or cert.user_id != actor.id:
            raise CertificateRefused("This certificate is not yours: sign with a certificate registered to you")
        if not cert.active:
            raise CertificateRefused("This certificate has been withdrawn; choose another one")
    else:
        offered = list(ctx.settings.signing.backends)
        mine = [c for c in session.scalars(select(Certificate).where(Certificate.user_id == actor.id,
                                                                     Certificate.active))
                if c.backend in offered]
        if not mine:
            raise CertificateRefused("You have no certificate registered for signing; ask the administrator")
        cert = min(mine, key=lambda c: offered.index(c.backend))
    if not (cert.not_before <= now <= cert.not_after):
        raise CertificateRefused(
            "The certificate is not valid now (valid %(start)s – %(end)s)",
            start=f"{cert.not_before:%d/%m/%Y}", end=f"{cert.not_after:%d/%m/%Y}",
        )
    return cert


def _stamp(session: Session, actor: User, step: StepRecord, document: Document, signed_at: datetime,
           style: str) -> deferred.StampText:
    if style == "seal":
        return deferred.StampText(authority="", title=document.unit.name, name=document.unit.name,
                                  signed_at=signed_at)
    authority = ""
    if step.authority:
        principal = session.get(User, step.principal_id) if step.principal_id else None
        lines = engine.authority_lines(step.authority, principal.title if principal else "", actor.title,
                                       "ỦY BAN NHÂN DÂN")
        authority, title = "\n".join(lines[:-1]), lines[-1]
    else:
        title = actor.title
        if "chair" in actor.roles and style == "full" and step.state == "approve":
            authority = "TM. ỦY BAN NHÂN DÂN"
    # the signature block's title lines are capitals (Decree 30); the drafter's stamp keeps the job title
    return deferred.StampText(authority=authority, title=title.upper() if authority else title,
                              name=actor.full_name, signed_at=signed_at)


def _next_number(session: Session, document: Document, year: int) -> int:
    row = session.get(NumberSequence, (document.unit_id, year, document.doc_type))
    return (row.last if row else 0) + 1


def _format_number(document: Document, n: int) -> str:
    return f"{n}/{document.doc_type}-{document.unit.number_suffix}"


def _format_date_line(document: Document, day: date) -> str:
    place = document.unit.place
    return f"{place + ', ' if place else ''}ngày {day.day:02d} tháng {day.month:02d} năm {day.year}"


def suggested_number(ctx: Context, document_id: int) -> str:
    with ctx.db.session() as session:
        document = session.get(Document, document_id)
        if document is None:
            raise NotFound("This document does not exist")
        return str(_next_number(session, document, local_now(ctx).year))


def _fill_values(session: Session, ctx: Context, document: Document, transition: Transition,
                 number: str | None) -> dict[str, str]:
    if transition.signature is None or not transition.signature.fill:
        return {}
    today = local_now(ctx).date()
    # one numbering at a time per unit: documents issued at the same instant get different numbers
    session.execute(select(Unit.id).where(Unit.id == document.unit_id).with_for_update())
    value = (number or "").strip() or str(_next_number(session, document, today.year))
    if not value.isdigit() or int(value) < 1:
        raise WorkflowError("The document number is a positive whole number")
    full = _format_number(document, int(value))
    taken = session.scalar(select(Document.id).where(Document.number == full, Document.id != document.id))
    if taken:
        raise Conflict("Number %(number)s is already used by another document", number=full)
    values = {"number": full, "date": _format_date_line(document, today)}
    return {name: values[name] for name in transition.signature.fill if name in values}


def request_signature(
    ctx: Context,
    actor: User,
    document_id: int,
    action: str,
    *,
    certificate_id: int | None = None,
    comment: str = "",
    advisers: Sequence[str] = (),
    number: str | None = None,
    pin: str | None = None,
    idempotency_key: str | None = None,
    ask_device: bool = True,
) -> SigningOutcome:
    """Prepare the actor's signature for ``action`` and ask the device to sign it.

    With ``ask_device=False`` the request stays ``prepared`` and the caller hands
    its tbs to the device (the chair's batch: one confirmation for several requests).
    """
    if action in PLAIN_ACTIONS:
        raise ActionNotAllowed("%(action)s is not signed", action=action)
    with ctx.db.session() as session:
        # the lock first: a repeated request with the same key waits for the first one to commit
        document = lock_document(session, document_id)
        if idempotency_key:
            existing = session.scalar(select(SignatureRequest).where(
                SignatureRequest.idempotency_key == idempotency_key))
            if existing is not None:
                if existing.user_id != actor.id or existing.document_id != document_id:
                    raise Conflict("This request key belongs to another request")
                return _outcome(existing)
        actor = session.get(User, actor.id)
        get_visible(session, actor, document_id)
        instance = document.workflow
        definition = definition_of(ctx, instance)
        step = step_of(session, instance, actor)
        transition = engine.fire(definition, instance.state, action, effective_roles(actor, step, definition))
        if step is None:
            raise ActionNotAllowed("This step is not assigned to you")
        if transition.signature is None:
            raise ActionNotAllowed("%(action)s is not signed", action=action)
        if transition.comment == "required" and not comment.strip():
            raise CommentRequired("Write a comment: it is required for this action")
        if transition.target == "advise":
            choose_advisers(session, document, advisers)  # refuse a bad choice before anything is signed
        certificate = _choose_certificate(session, ctx, actor, document, transition, certificate_id)
        version = current_version(session, document)
        head = head_revision(session, version)
        used = set(session.scalars(select(Revision.field).where(Revision.version_id == version.id,
                                                                Revision.field.is_not(None))))
        field = transition.signature.field or engine.signature_field_for(definition, transition, used)
        now = ctx.now()
        fill = _fill_values(session, ctx, document, transition, number)
        spec = deferred.SignatureSpec(
            field=field,
            stamp=_stamp(session, actor, step, document, local_now(ctx), transition.signature.stamp),
            certify=transition.signature.certify,
            lock=transition.signature.lock,
            lock_except=tuple(transition.signature.lock_except),
            fill=fill,
            style=transition.signature.stamp,
            reason=transition.label.get("vi", transition.action),
            location=document.unit.place,
        )
        bundle = bundle_of(certificate)
        # path and revocation (OCSP/CRL) before anything is prepared: a revoked certificate never signs
        deferred.check_certificate(bundle, now, validation_context=ctx.validation_context())
        prepared = deferred.prepare_signature(read_revision(ctx, head), spec, bundle,
                                              timestamp=ctx.timestamper() is not None)
        prepared_sha = blobs.store(session, ctx.blobs, prepared.prepared_pdf)
        # _finish reads the prepared PDF back from the store: not a second copy in memory meanwhile
        prepared = dataclasses.replace(prepared, prepared_pdf=b"")
        request = SignatureRequest(
            id=str(uuid.uuid4()),
            document_id=document.id,
            version_id=version.id,
            step_id=step.id,
            user_id=actor.id,
            certificate_id=certificate.id,
            action=action,
            field=field,
            backend=certificate.backend,
            base_revision_id=head.id,
            prepared_sha256=prepared_sha,
            prepared_json=prepared.to_json(),
            tbs=prepared.tbs,
            args_json=json.dumps({"comment": comment, "advisers": list(advisers), "fill": fill},
                                 ensure_ascii=False),
            idempotency_key=idempotency_key,
            created_at=now,
            expires_at=now + timedelta(minutes=ctx.settings.signing.request_ttl_minutes),
        )
        session.add(request)
        session.flush()
        audit.record(session, "signature.requested", actor=actor, document=document, request=request.id,
                     action=action, field=field, certificate=certificate.fingerprint, backend=certificate.backend)
        faults.point(ctx.settings, "signing.prepare_before_commit")
        faults.on_commit(session, ctx.settings, "signing.after_prepare")
        backend = ctx.backends.get(certificate.backend)
        if backend is not None and not ask_device:
            return _outcome(request)
        if backend is None:
            # a device the server cannot reach: the officer's browser brings the value back
            request.status = "pending"
            return _outcome(request)
        answer = backend.sign(SignRequest(credential=certificate.credential, tbs=prepared.tbs,
                                          md_algorithm=prepared.md_algorithm, mechanism=prepared.mechanism,
                                          label=document.title, pin=pin))
        if isinstance(answer, Pending):
            request.status, request.backend_ref = "pending", answer.ref
            return _outcome(request, message=answer.message)
        revision = _finish(session, ctx, request, answer.signature, document, actor)
        return _outcome(request, revision.index)


def _finish(session: Session, ctx: Context, request: SignatureRequest, value: bytes, document: Document,
            actor: User) -> Revision:
    """Embed ``value`` and commit the revision and the step (the document lock is held)."""
    version = session.get(DocumentVersion, request.version_id)
    head = head_revision(session, version)
    if version.superseded or head.id != request.base_revision_id:
        raise Conflict("The document changed since this signature was prepared; sign again")
    step = session.get(StepRecord, request.step_id)
    if step is None or step.status != "open":
        raise Conflict("This step is no longer waiting for your signature")
    certificate = session.get(Certificate, request.certificate_id)
    prepared = deferred.Prepared.from_json(request.prepared_json)
    prepared = dataclasses.replace(prepared, prepared_pdf=ctx.blobs.read(request.prepared_sha256))
    # with a TSA: signature timestamp and validation data (B-LT); the DSS update is a second PDF
    # revision inside the same stored revision. A request prepared without room gets neither.
    timestamper = ctx.timestamper() if prepared.timestamp else None
    signed = deferred.finish_signature(
        prepared, value, bundle_of(certificate), timestamper=timestamper,
        validation_context=ctx.validation_context() if timestamper else None,
    )
    args = json.loads(request.args_json)
    instance = document.workflow
    definition = definition_of(ctx, instance)
    transition = engine.fire(definition, instance.state, request.action, effective_roles(actor, step, definition))
    revision = commit_signed_revision(
        session, ctx, document, version, step, transition, actor, signed, kind="signature",
        field=request.field, certificate=certificate, comment=args.get("comment", ""),
        advisers=args.get("advisers", ()), fill=args.get("fill") or {}, timestamper=timestamper,
    )
    request.status, request.completed_at, request.result_revision_id = "completed", ctx.now(), revision.id
    audit.record(session, "signature.completed", actor=actor, document=document, request=request.id,
                 revision=revision.index, sha256=revision.sha256)
    faults.point(ctx.settings, "signing.before_commit")
    faults.on_commit(session, ctx.settings, "signing.after_commit")
    return revision


def commit_signed_revision(
    session: Session,
    ctx: Context,
    document: Document,
    version: DocumentVersion,
    step: StepRecord,
    transition: Transition,
    actor: User,
    signed: bytes,
    *,
    kind: str,
    field: str,
    certificate: Certificate,
    comment: str = "",
    advisers: Sequence[str] = (),
    fill: dict[str, str] | None = None,
    timestamper: TimeStamper | None = None,
) -> Revision:
    """Store ``signed`` as the next revision and move the step as its signature does.

    The caller holds the document lock and has checked the signature; every
    signed step, whoever embedded it, goes through here.
    """
    revision = append_revision(session, ctx, version, signed, kind=kind, actor=actor, field=field,
                               certificate_id=certificate.id)
    fill = fill or {}
    if "number" in fill:
        document.number = fill["number"]
        document.issued_on = local_now(ctx).date()
        try:
            session.flush()
        except SAIntegrityError:
            # a request prepared earlier reserved the same number and committed first
            raise Conflict("Number %(number)s is already used by another document", number=fill["number"]) from None
        key = (document.unit_id, document.issued_on.year, document.doc_type)
        sequence = session.get(NumberSequence, key)
        n = int(fill["number"].split("/", 1)[0])
        if sequence is None:
            session.add(NumberSequence(unit_id=key[0], year=key[1], doc_type=key[2], last=n))
        else:
            sequence.last = max(sequence.last, n)
    advance_after_signature(session, ctx, document, step, transition, actor, revision,
                            comment=comment, advisers=advisers)
    if transition.target == "issued" and timestamper is not None:
        # PAdES B-LTA: the issued document ends with a document timestamp, in the same transaction
        stamped = deferred.add_document_timestamp(signed, timestamper, ctx.validation_context())
        stamp = append_revision(session, ctx, version, stamped, kind="timestamp", actor=actor)
        audit.record(session, "document.timestamped", actor=actor, document=document, revision=stamp.index,
                     sha256=stamp.sha256)
    return revision


def _load_open_request(session: Session, ctx: Context, request_id: str) -> tuple[SignatureRequest, Document]:
    request = session.get(SignatureRequest, request_id)
    if request is None:
        raise NotFound("This signature request does not exist")
    document = lock_document(session, request.document_id)
    session.refresh(request)
    return request, document


def _expire_if_due(ctx: Context, request: SignatureRequest) -> None:
    if request.status in ("prepared", "pending") and ctx.now() > request.expires_at:
        raise RequestExpired("This signature request has expired; start the signature again")


def _mark(ctx: Context, request_id: str, status: str, error: str) -> None:
    with ctx.db.session() as session:
        request = session.get(SignatureRequest, request_id)
        if request is not None and request.status in ("prepared", "pending"):
            request.status, request.error = status, error
            audit.record(session, f"signature.{status}", actor=session.get(User, request.user_id),
                         document=session.get(Document, request.document_id), request=request_id, reason=error)


def complete_signature(ctx: Context, request_id: str, value: bytes, *, actor: User | None = None) -> SigningOutcome:
    """Finish a request with the value the device returned. Completing twice yields one revision."""
    try:
        with ctx.db.session() as session:
            request, document = _load_open_request(session, ctx, request_id)
            if actor is not None and request.user_id != actor.id:
                raise NotFound("This signature request does not exist")
            if request.status == "completed":
                revision = session.get(Revision, request.result_revision_id)
                return _outcome(request, revision.index if revision else None, "Already completed")
            if request.status in TERMINAL:
                raise SigningError("This signature request is %(status)s; start the signature again", status=request.status)
            _expire_if_due(ctx, request)
            faults.point(ctx.settings, "signing.value_received")
            signer = session.get(User, request.user_id)
            revision = _finish(session, ctx, request, value, document, signer)
            return _outcome(request, revision.index)
    except RequestExpired as e:
        _mark(ctx, request_id, "expired", str(e))
        raise
    except Conflict as e:
        _mark(ctx, request_id, "failed", str(e))
        raise


def collect_signature(ctx: Context, request_id: str) -> SigningOutcome:
    """Ask the device again about a pending request; complete it if it has answered."""
    with ctx.db.session() as session:
        request = session.get(SignatureRequest, request_id)
        if request is None:
            raise NotFound("This signature request does not exist")
        if request.status != "pending" or request.backend not in ctx.backends or not request.backend_ref:
            return _outcome(request)
        backend, ref = ctx.backends[request.backend], request.backend_ref
    try:
        answer = backend.collect(ref)
        if isinstance(answer, Signed):
            return complete_signature(ctx, request_id, answer.signature)
    except TokenUnavailable:
        raise  # the service may answer again: the request stays pending
    except (BackendError, Conflict, RequestExpired) as e:
        # a final answer: declined, expired, too many wrong PINs, refused, or the document
        # changed meanwhile. The request ends with its reason; nothing was embedded.
        status = next((s for kind, s in DEVICE_ENDINGS if isinstance(e, kind)), "failed")
        if isinstance(e, RequestExpired):
            status = "expired"
        _mark(ctx, request_id, status, e.template if not e.params else str(e))
        with ctx.db.session() as session:
            return _outcome(session.get(SignatureRequest, request_id), message=e.template if not e.params else str(e))
    with ctx.db.session() as session:
        return _outcome(session.get(SignatureRequest, request_id), message=answer.message)


def cancel_signature(ctx: Context, actor: User, request_id: str) -> None:
    with ctx.db.session() as session:
        request = session.get(SignatureRequest, request_id)
        if request is None or request.user_id != actor.id:
            raise NotFound("This signature request does not exist")
        if request.status in ("prepared", "pending"):
            request.status = "cancelled"
            audit.record(session, "signature.cancelled", actor=session.get(User, actor.id),
                         document=session.get(Document, request.document_id), request=request_id)


def get_request(ctx: Context, actor: User, request_id: str) -> SigningOutcome:
    with ctx.db.session() as session:
        request = session.get(SignatureRequest, request_id)
        if request is None or request.user_id != actor.id:
            raise NotFound("This signature request does not exist")
        return _outcome(request)


def expire_requests(ctx: Context) -> int:
    """Mark every open request past its expiry; returns how many."""
    now = ctx.now()
    with ctx.db.session() as session:
        ids = list(session.scalars(select(SignatureRequest.id).where(
            SignatureRequest.status.in_(("prepared", "pending")), SignatureRequest.expires_at < now)))
    for request_id in ids:
        _mark(ctx, request_id, "expired", "expired before the device answered")
    return len(ids)
