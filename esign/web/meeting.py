"""Meeting mode and the live "confirm on your phone" page of mobile signatures.

``/meeting/`` lists the chair's pending approvals (title, drafter, advisers'
opinions, deadline, a preview of the first page) with checkboxes; "approve
selected" asks for one confirmation on the phone for all of them.
``/meeting/confirm/<id>`` shows the short code, the titles, a countdown and
each document's status; ``js/phone.js`` polls :func:`poll` every ~1.5 s, and
without scripts the page offers "check now" (a POST, as every step that may
embed a signature).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from esign.errors import EsignError, NotFound
from esign.services import meeting
from esign.web.auth import reauth_required
from esign.web.helpers import esign_ctx, me, translate_error

bp = Blueprint("meeting", __name__, url_prefix="/meeting")

#: seconds between two polls of the confirmation page
POLL_SECONDS = 1.5


def _message(template: str, params: dict[str, object] | None = None) -> str:
    if not template:
        return ""
    return _(template, **(params or {}))  # type: ignore[no-any-return]


@bp.get("/")
@login_required
def index() -> Any:
    ctx = esign_ctx()
    approvals = meeting.pending_approvals(ctx, me())
    try:
        certificate = meeting.mobile_certificate(ctx, me())
        no_mobile = ""
    except EsignError as e:
        certificate, no_mobile = None, translate_error(e)
    return render_template("meeting/index.html", approvals=approvals, certificate=certificate,
                           no_mobile=no_mobile, idempotency_key=secrets.token_urlsafe(16))


@bp.post("/approve")
@login_required
@reauth_required(back="meeting.index")
def approve() -> Any:
    ids = []
    for value in request.form.getlist("document"):
        if not value.isdigit():
            abort(400)
        ids.append(int(value))
    if not ids:
        flash(_("Select at least one document to approve."), "error")
        return redirect(url_for("meeting.index"))
    try:
        start = meeting.approve_selected(esign_ctx(), me(), ids,
                                         idempotency_key=(request.form.get("idempotency_key") or "")[:60] or None)
    except EsignError as e:
        flash(translate_error(e), "error")
        return redirect(url_for("meeting.index"))
    for refused in start.refused:
        flash(_("Not approved: %(title)s — %(reason)s", title=refused.title,
                reason=_message(refused.message, refused.params)), "error")
    if start.batch_id is None:
        if start.request_ids:
            flash(_("Approved and signed."), "success")
        return redirect(url_for("meeting.index"))
    return redirect(url_for("meeting.confirm", batch_id=start.batch_id))


def _batch_json(batch: meeting.Batch) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": batch.batch_id,
        "code": batch.code,
        "phone": batch.phone_status,
        "expires_at": batch.expires_at.isoformat() if batch.expires_at else None,
        "seconds_left": max(int((batch.expires_at - now).total_seconds()), 0) if batch.expires_at else None,
        "done": batch.done,
        "provider_error": _message(batch.provider_error, batch.provider_error_params),
        "items": [
            {
                "request_id": i.request_id,
                "document_id": i.document_id,
                "title": i.title,
                "status": i.status,
                "message": _message(i.message) if i.message else "",
                "url": url_for("documents.show", document_id=i.document_id),
            }
            for i in batch.items
        ],
    }


def _render(batch: meeting.Batch) -> Any:
    seconds = _batch_json(batch)["seconds_left"]
    return render_template("meeting/confirm.html", batch=batch, seconds_left=seconds, poll=POLL_SECONDS,
                           message=_message)


@bp.get("/confirm/<batch_id>")
@login_required
def confirm(batch_id: str) -> Any:
    return _render(meeting.batch_status(esign_ctx(), me(), batch_id, collect=False))


@bp.post("/confirm/<batch_id>/check")
@login_required
def check(batch_id: str) -> Any:
    """Without scripts: ask the phone now, then show the page again."""
    meeting.batch_status(esign_ctx(), me(), batch_id)
    return redirect(url_for("meeting.confirm", batch_id=batch_id))


@bp.post("/confirm/<batch_id>/poll")
@login_required
def poll(batch_id: str) -> Any:
    """The page's live status (js/phone.js): collects what the phone confirmed."""
    try:
        batch = meeting.batch_status(esign_ctx(), me(), batch_id)
    except NotFound:
        return jsonify({"error": "not_found", "message": _("This confirmation does not exist")}), 404
    return jsonify(_batch_json(batch))


@bp.post("/confirm/<batch_id>/cancel")
@login_required
def cancel(batch_id: str) -> Any:
    meeting.cancel_batch(esign_ctx(), me(), batch_id)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(_batch_json(meeting.batch_status(esign_ctx(), me(), batch_id, collect=False)))
    flash(_("The confirmation was cancelled; nothing was signed."), "info")
    return redirect(url_for("meeting.confirm", batch_id=batch_id))


def init_app(app: Any) -> None:
    app.register_blueprint(bp)
