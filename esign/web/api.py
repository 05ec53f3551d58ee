"""JSON API for signing devices the server cannot reach (the desktop token agent, plugins).

The officer's browser is signed in; POSTs carry the CSRF token in the
``X-CSRFToken`` header. Errors come back as ``{"error": code, "message": ...}``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, jsonify, request
from flask_babel import gettext as _
from flask_login import login_required

from esign.errors import CertificateRefused
from esign.services import access, overview, signing, verification
from esign.services.signing import SigningOutcome
from esign.web.auth import reauth_required
from esign.web.errors import error_response
from esign.web.helpers import db, esign_ctx, me, unreachable_certificate

bp = Blueprint("api", __name__, url_prefix="/api")


def outcome_json(outcome: SigningOutcome) -> dict[str, Any]:
    return {
        "id": outcome.request_id,
        "document_id": outcome.document_id,
        "status": outcome.status,
        "tbs": base64.b64encode(outcome.tbs).decode() if outcome.tbs else None,
        "md_algorithm": outcome.md_algorithm,
        "mechanism": outcome.mechanism,
        "expires_at": outcome.expires_at.isoformat() if outcome.expires_at else None,
        "revision_index": outcome.revision_index,
        "message": _(outcome.message) if outcome.message else "",
    }


def _certificate_for_device(document_id: int, device: str) -> int | None:
    """The officer's certificate on ``device`` ("token", "mobile") that the server cannot reach, if any."""
    found = unreachable_certificate(overview.document_overview(esign_ctx(), me(), document_id).certificates, device)
    return found.id if found is not None else None


@bp.post("/documents/<int:document_id>/signature-requests")
@login_required
@reauth_required(back="documents.show")
def create_request(document_id: int) -> Any:
    """Prepare a signature for a device in the officer's hands (the desktop agent's token).

    Body: the sign form's fields as JSON: ``action``, ``certificate_id`` (or
    ``device``: "token" | "mobile"), ``comment``, ``advisers``, ``number``,
    ``idempotency_key``. Answers the request with the tbs to sign.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("action"), str):
        return error_response(400, "bad_request", _('Send JSON with at least {"action": "..."}.'))
    certificate_id = body.get("certificate_id")
    try:
        certificate_id = int(certificate_id) if certificate_id not in (None, "") else None
    except (TypeError, ValueError):
        return error_response(400, "bad_request", _("certificate_id is a number."))
    if isinstance(body.get("device"), str):
        # "device" names what signs (the token in the officer's hands); the sign form's
        # certificate choice that token.js sends along may be another device's
        certificate_id = _certificate_for_device(document_id, body["device"])
        if certificate_id is None:
            raise CertificateRefused("You have no certificate registered on this device; ask the administrator")
    advisers = body.get("advisers") or []
    if isinstance(advisers, str):
        advisers = [advisers]
    number = body.get("number")
    outcome = signing.request_signature(
        esign_ctx(),
        me(),
        document_id,
        body["action"],
        certificate_id=certificate_id,
        comment=str(body.get("comment") or ""),
        advisers=[str(a) for a in advisers if isinstance(a, str)],
        number=str(number) if number not in (None, "") else None,
        idempotency_key=str(body.get("idempotency_key") or "") or None,
    )
    return jsonify(outcome_json(outcome)), 200 if outcome.status == "completed" else 201


@bp.get("/signature-requests/<request_id>")
@login_required
def request_status(request_id: str) -> Any:
    return jsonify(outcome_json(signing.get_request(esign_ctx(), me(), request_id)))


@bp.post("/signature-requests/<request_id>/complete")
@login_required
def complete(request_id: str) -> Any:
    body = request.get_json(silent=True)
    encoded = body.get("signature") if isinstance(body, dict) else None
    if not isinstance(encoded, str) or not encoded:
        return error_response(400, "bad_request",
                              _('Send JSON {"signature": "<base64 of the signature value>"}.'))
    try:
        value = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return error_response(400, "bad_request", _("The signature value is not valid base64."))
    outcome = signing.complete_signature(esign_ctx(), request_id, value, actor=me())
    return jsonify(outcome_json(outcome))


@bp.post("/signature-requests/<request_id>/cancel")
@login_required
def cancel(request_id: str) -> Any:
    ctx = esign_ctx()
    signing.cancel_signature(ctx, me(), request_id)
    return jsonify(outcome_json(signing.get_request(ctx, me(), request_id)))


@bp.post("/verify")
@login_required
def verify() -> Any:
    """Verify a PDF: a multipart ``file`` or a raw ``application/pdf`` body. Answers ``Report.to_dict()``."""
    upload = request.files.get("file")
    if upload is not None:
        data = upload.read()
    elif request.mimetype == "application/pdf":
        data = request.get_data(cache=False)
    else:
        return error_response(400, "bad_request",
                              _("Send the PDF as a multipart field named file, or as an application/pdf body."))
    if not data:
        return error_response(400, "bad_request", _("The file is empty."))
    return jsonify(verification.verify_upload(esign_ctx(), data).to_dict())


@bp.get("/documents/<int:document_id>/verification")
@login_required
def document_verification(document_id: int) -> Any:
    """The verification of a stored document's current revision, with the workflow check."""
    access.get_visible(db(), me(), document_id)  # a document one may not see does not exist
    return jsonify(verification.verify_document(esign_ctx(), document_id).to_dict())
