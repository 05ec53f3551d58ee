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

from esign.services import signing
from esign.services.signing import SigningOutcome
from esign.web.errors import error_response
from esign.web.helpers import esign_ctx, me

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
