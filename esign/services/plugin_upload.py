"""Accepting a PDF signed by an official's whole-document plugin.

The vendor plugins (the Vietnamese CAs' signing tools) download the PDF, sign
it with the USB token and hand back the whole file. The server never sees a
tbs, so it judges the result instead: under the document lock, the upload must
be the current head byte for byte plus one update holding exactly the step's
signature (esign.signing.plugin), made with a certificate bound to the officer
assigned to the step. Then it is committed and advances the workflow exactly
like a signature made through esign.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from esign.errors import (
    ActionNotAllowed,
    CertificateRefused,
    CommentRequired,
    DocumentTooLarge,
    UploadRefused,
)
from esign.models import Certificate, Revision, User
from esign.services import audit, blobs
from esign.services.access import get_visible
from esign.services.context import Context
from esign.services.documents import current_version, head_revision, lock_document, read_revision
from esign.services.routing import (
    PLAIN_ACTIONS,
    choose_advisers,
    definition_of,
    effective_roles,
    step_of,
)
from esign.services.signing import SigningOutcome, commit_signed_revision
from esign.services.users import bundle_of
from esign.services.verification import trust_store
from esign.signing import deferred, plugin
from esign.workflow import engine

#: the officer's own devices; the agency seal is held by the server and never signs through a plugin
OFFICER_DEVICES = ("token", "mobile")


def accept_signed_upload(
    ctx: Context,
    actor: User,
    document_id: int,
    action: str,
    data: bytes,
    *,
    comment: str = "",
    advisers: Sequence[str] = (),
    idempotency_key: str | None = None,
) -> SigningOutcome:
    """Store ``data``, signed by the actor's plugin, as the signature of ``action``; or say why not.

    Uploading the same bytes again once they are stored returns the stored
    revision (a double click signs once).
    """
    if action in PLAIN_ACTIONS:
        raise ActionNotAllowed("%(action)s is not signed", action=action)
    limit = ctx.settings.app.max_upload_mb * 1024 * 1024
    if len(data) > limit:
        raise DocumentTooLarge("The file is %(size)s MB; the limit is %(limit)s MB",
                               size=f"{len(data) / 1048576:.1f}", limit=ctx.settings.app.max_upload_mb)
    request_id = idempotency_key or str(uuid.uuid4())
    with ctx.db.session() as session:
        document = lock_document(session, document_id)
        actor = session.get(User, actor.id)
        get_visible(session, actor, document_id)
        version = current_version(session, document)
        head = head_revision(session, version)
        if head.kind == "upload" and head.created_by_id == actor.id and head.sha256 == blobs.sha256_hex(data):
            return SigningOutcome(request_id=request_id, document_id=document.id, status="completed",
                                  revision_index=head.index, message="Already completed")
        instance = document.workflow
        definition = definition_of(ctx, instance)
        step = step_of(session, instance, actor)
        transition = engine.fire(definition, instance.state, action, effective_roles(actor, step, definition))
        if step is None:
            raise ActionNotAllowed("This step is not assigned to you")
        spec = transition.signature
        if spec is None:
            raise ActionNotAllowed("%(action)s is not signed", action=action)
        if spec.device == "seal":
            raise UploadRefused("This step is signed with the agency seal held by the server, not with a plugin")
        if spec.fill:
            raise UploadRefused("This step fills in the document number and date; sign it in esign, not with a plugin")
        if transition.comment == "required" and not comment.strip():
            raise CommentRequired("Write a comment: it is required for this action")
        if transition.target == "advise":
            choose_advisers(session, document, advisers)  # refuse a bad choice before anything is stored
        used = set(session.scalars(select(Revision.field).where(Revision.version_id == version.id,
                                                                Revision.field.is_not(None))))
        field = spec.field or engine.signature_field_for(definition, transition, used)
        now = ctx.now()
        signed = plugin.check_plugin_signature(
            read_revision(ctx, head), data, field=field, certify=spec.certify,
            validation_context=trust_store(ctx).context(moment=now),
        )
        certificate = session.scalar(select(Certificate).where(
            Certificate.user_id == actor.id, Certificate.active, Certificate.device.in_(OFFICER_DEVICES),
            Certificate.fingerprint == signed.fingerprint))
        if certificate is None:
            raise CertificateRefused(
                "The PDF was signed with a certificate that is not registered to you (%(subject)s); "
                "sign with your own token or mobile certificate",
                subject=signed.signer.subject.human_friendly,
            )
        # the same certificate policy as a signature made through esign: validity now, and
        # revocation asked of the CA's OCSP/CRL (the upload itself was judged without fetching)
        deferred.check_certificate(bundle_of(certificate), now, validation_context=ctx.validation_context())
        revision = commit_signed_revision(
            session, ctx, document, version, step, transition, actor, data, kind="upload", field=field,
            certificate=certificate, comment=comment, advisers=advisers, timestamper=ctx.timestamper(),
        )
        audit.record(session, "signature.uploaded", actor=actor, document=document, request=request_id,
                     action=action, field=field, certificate=certificate.fingerprint, revision=revision.index,
                     sha256=revision.sha256, size=len(data))
        return SigningOutcome(request_id=request_id, document_id=document.id, status="completed",
                              revision_index=revision.index)
