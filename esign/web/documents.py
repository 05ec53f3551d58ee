"""Composing and uploading documents, the document page, and its actions."""

from __future__ import annotations

import secrets
from io import BytesIO
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_required

from esign.errors import EsignError
from esign.services import access, documents, meeting, overview, plugin_upload, routing, signing
from esign.services.documents import MemoInput
from esign.web import previews
from esign.web.auth import reauth_required
from esign.web.forms import ActionForm, ComposeForm, PluginUploadForm, SignForm, UploadForm
from esign.web.helpers import (
    DATE,
    db,
    esign_ctx,
    local_date,
    me,
    translate_error,
    unreachable_certificate,
    web_settings,
)
from esign.web.helpers import label_of as label

bp = Blueprint("documents", __name__, url_prefix="/documents")

AUTHORITIES = ("KT.", "TL.", "TUQ.", "Q.", "TM.")


def _lines(text: str | None) -> tuple[str, ...]:
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


@bp.route("/new", methods=["GET", "POST"])
@login_required
def compose() -> Any:
    form = ComposeForm()
    error, status = None, 200
    if not form.idempotency_key.data:
        form.idempotency_key.data = secrets.token_urlsafe(16)
    if form.validate_on_submit():
        memo = MemoInput(
            title=form.title.data or "",
            body="\n".join(_lines(form.body.data)),
            doc_type=form.doc_type.data or "TTr",
            recipients=_lines(form.recipients.data),
            addressee=(form.addressee.data or "").strip(),
        )
        try:
            document_id = documents.compose_document(esign_ctx(), me(), memo,
                                                     idempotency_key=form.idempotency_key.data or None)
        except EsignError as e:
            error, status = translate_error(e), e.status
        else:
            flash(_("The memo was created. Check it, then sign it and send it for advice."), "success")
            return redirect(url_for("documents.show", document_id=document_id))
    elif form.is_submitted():
        status = 400
    return render_template("documents/new.html", form=form, error=error), status


@bp.route("/upload", methods=["GET", "POST"])
@login_required
def upload() -> Any:
    form = UploadForm()
    error, status = None, 200
    if not form.idempotency_key.data:
        form.idempotency_key.data = secrets.token_urlsafe(16)
    if form.validate_on_submit():
        data = form.file.data.read()
        try:
            document_id = documents.upload_document(
                esign_ctx(), me(), title=form.title.data or "", data=data, doc_type=form.doc_type.data or "TTr",
                idempotency_key=form.idempotency_key.data or None,
            )
        except EsignError as e:
            error, status = translate_error(e), e.status
        else:
            flash(_("The PDF was uploaded. Check it, then sign it and send it for advice."), "success")
            return redirect(url_for("documents.show", document_id=document_id))
    elif form.is_submitted():
        status = 400
    return render_template("documents/upload.html", form=form, error=error,
                           limit=web_settings().app.max_upload_mb), status


def _sign_form(ov: overview.DocumentOverview, data: Any = None) -> SignForm:
    form = SignForm(formdata=data)
    device_names = {"token": _("USB token"), "mobile": _("Mobile certificate")}
    form.certificate_id.choices = [
        (c.id, _("%(device)s — %(name)s, until %(date)s", device=device_names.get(c.device, c.device),
                 name=c.name or c.subject, date=local_date(c.not_after, DATE)))
        for c in ov.certificates
    ]
    form.advisers.choices = [(p.username, f"{p.full_name} ({p.title})" if p.title else p.full_name)
                             for p in ov.advisers]
    if data is None:
        form.idempotency_key.data = secrets.token_urlsafe(16)
    return form


def _action_form(ov: overview.DocumentOverview, data: Any = None) -> ActionForm:
    form = ActionForm(formdata=data)
    form.assignee.choices = [(p.username, f"{p.full_name} ({p.title})" if p.title else p.full_name)
                             for p in ov.members]
    form.authority.choices = [("", _("Own authority"))] + [(a, a) for a in ov.authorities or AUTHORITIES]
    if data is None:
        form.idempotency_key.data = secrets.token_urlsafe(16)
    return form


def _render_show(document_id: int, *, failed_action: str | None = None, error: str | None = None,
                 sign_form: SignForm | None = None, action_form: ActionForm | None = None,
                 status: int = 200) -> Any:
    ctx = esign_ctx()
    ov = overview.document_overview(ctx, me(), document_id)
    pages = previews.page_count(web_settings().storage.previews, ov.head_sha256,
                                lambda: ctx.blobs.read(ov.head_sha256))
    sign_form = sign_form or _sign_form(ov)
    if sign_form.idempotency_key.data is None or failed_action is not None:
        sign_form.idempotency_key.data = secrets.token_urlsafe(16)
    token_certificate = unreachable_certificate(ov.certificates, "token")
    if token_certificate is not None:
        # the token signs through its own button; the choice list is for the other devices
        sign_form.certificate_id.choices = [c for c in sign_form.certificate_id.choices
                                            if c[0] != token_certificate.id]
    number = None
    if any(a.numbers for a in ov.actions):
        number = signing.suggested_number(ctx, document_id)
        if not sign_form.number.data:
            sign_form.number.data = number
    return render_template(
        "documents/show.html",
        ov=ov,
        pages=pages,
        sign_form=sign_form,
        action_form=action_form or _action_form(ov),
        failed_action=failed_action,
        error=error,
        suggested_number=number,
        verify_url=f"{web_settings().app.base_url.rstrip('/')}/v/{ov.public_code}",
        token_certificate=token_certificate,
        mobile_certificate=_mobile_certificate(ov),
    ), status


@bp.get("/<int:document_id>")
@login_required
def show(document_id: int) -> Any:
    return _render_show(document_id)


def _visible_head_sha(document_id: int) -> str:
    document = access.get_visible(db(), me(), document_id)
    return documents.head_revision(db(), documents.current_version(db(), document)).sha256


@bp.get("/<int:document_id>/pages/<int:n>.png")
@login_required
def page(document_id: int, n: int) -> Any:
    ctx = esign_ctx()
    sha = _visible_head_sha(document_id)
    path = previews.page_file(web_settings().storage.previews, sha, n, lambda: ctx.blobs.read(sha))
    response = Response(path.read_bytes(), mimetype="image/png")
    response.set_etag(f"{sha}-{n}")
    response.make_conditional(request)
    if request.args.get("r") == sha:
        # the address names the revision, whose pages never change
        response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    else:
        response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.get("/<int:document_id>/pdf")
@login_required
def download(document_id: int) -> Any:
    document, revision, data = documents.current_pdf(esign_ctx(), me(), document_id)
    name = f"esign-{document.id}-r{revision.index}.pdf"
    response = send_file(BytesIO(data), mimetype="application/pdf", as_attachment=True, download_name=name,
                         max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _mobile_certificate(ov: overview.DocumentOverview) -> Any:
    """The officer's mobile certificate on a remote signing service, if the server reaches one."""
    remote = meeting.remote_backend_names(esign_ctx())
    return next((c for c in ov.certificates if c.device == "mobile" and c.backend in remote), None)


def _chosen_certificate(ov: overview.DocumentOverview, form: SignForm) -> int | None:
    """The form's choice, or the mobile certificate for "Sign with mobile certificate"."""
    if request.args.get("device") == "mobile":
        mobile = _mobile_certificate(ov)
        if mobile is not None:
            return mobile.id  # type: ignore[no-any-return]
    return form.certificate_id.data or None


@bp.post("/<int:document_id>/sign")
@login_required
@reauth_required(back="documents.show")
def sign(document_id: int) -> Any:
    ctx = esign_ctx()
    ov = overview.document_overview(ctx, me(), document_id)
    form = _sign_form(ov, request.form)
    action = form.action.data or ""
    offer = next((a for a in ov.actions if a.action == action and a.signed), None)
    if not form.validate():
        return _render_show(document_id, failed_action=action, sign_form=form,
                            error=_("Check the form: some fields are not valid."), status=400)
    if offer is None and not form.idempotency_key.data:
        abort(403)
    # without an offer only a repeat of a request already made (same key) can succeed: the
    # service answers it with the first one's result and refuses anything else
    try:
        outcome = signing.request_signature(
            ctx,
            me(),
            document_id,
            action,
            certificate_id=None if offer is None or offer.seal else _chosen_certificate(ov, form),
            comment=form.comment.data or "",
            advisers=(form.advisers.data or ()) if action == "submit" else (),
            number=(form.number.data or None) if offer is not None and offer.numbers else None,
            idempotency_key=form.idempotency_key.data or None,
        )
    except EsignError as e:
        return _render_show(document_id, failed_action=action, sign_form=form, error=translate_error(e),
                            status=e.status)
    if outcome.status == "completed":
        flash(_("Signed: %(action)s.", action=label(offer.label, action) if offer else action), "success")
    else:
        confirmation = meeting.batch_of_request(ctx, me(), outcome.request_id)
        if confirmation is not None:  # a mobile certificate: the live "confirm on your phone" page
            return redirect(url_for("meeting.confirm", batch_id=confirmation))
        flash(_("The signature was prepared and is waiting for your signing device."), "info")
    return redirect(url_for("documents.show", document_id=document_id))


@bp.post("/<int:document_id>/signed-upload")
@login_required
@reauth_required(back="documents.show")
def signed_upload(document_id: int) -> Any:
    """A PDF signed by the officer's whole-document plugin, as the signature of a signed action."""
    ctx = esign_ctx()
    ov = overview.document_overview(ctx, me(), document_id)
    form = PluginUploadForm()
    action = form.action.data or ""
    offer = next((a for a in ov.actions if a.action == action and a.signed and not a.seal and not a.numbers),
                 None)
    if offer is None and not form.idempotency_key.data:
        abort(403)
    if not form.validate():
        return _render_show(document_id, failed_action=action, status=400,
                            error=_("Check the form: some fields are not valid."))
    try:
        plugin_upload.accept_signed_upload(
            ctx, me(), document_id, action, form.file.data.read(),
            comment=form.comment.data or "",
            advisers=(form.advisers.data or ()) if action == "submit" else (),
            idempotency_key=form.idempotency_key.data or None,
        )
    except EsignError as e:
        return _render_show(document_id, failed_action=action, error=translate_error(e), status=e.status)
    flash(_("Signed with your plugin: %(action)s.", action=label(offer.label, action) if offer else action),
          "success")
    return redirect(url_for("documents.show", document_id=document_id))


@bp.post("/<int:document_id>/act")
@login_required
def act(document_id: int) -> Any:
    ctx = esign_ctx()
    ov = overview.document_overview(ctx, me(), document_id)
    form = _action_form(ov, request.form)
    action = form.action.data or ""
    offer = next((a for a in ov.actions if a.action == action and not a.signed), None)
    if not form.validate():
        return _render_show(document_id, failed_action=action, action_form=form,
                            error=_("Check the form: some fields are not valid."), status=400)
    if offer is None and not form.idempotency_key.data:
        abort(403)
    if offer is not None and offer.comment_required and not (form.comment.data or "").strip():
        return _render_show(document_id, failed_action=action, action_form=form,
                            error=_("Write the reason: it is required for this action."), status=400)
    try:
        routing.perform_action(
            ctx, me(), document_id, action,
            comment=form.comment.data or "",
            assignee=(form.assignee.data or None) if action == "reassign" else None,
            authority=(form.authority.data or "") if action == "reassign" else "",
            idempotency_key=f"{form.idempotency_key.data}-{action}" if form.idempotency_key.data else None,
        )
    except EsignError as e:
        return _render_show(document_id, failed_action=action, action_form=form, error=translate_error(e),
                            status=e.status)
    flash(_("Done: %(action)s.", action=label(offer.label, action) if offer else action), "success")
    try:
        access.get_visible(db(), me(), document_id)
    except EsignError:
        return redirect(url_for("inbox.home"))
    return redirect(url_for("documents.show", document_id=document_id))


@bp.post("/<int:document_id>/requests/<request_id>/cancel")
@login_required
def cancel_request(document_id: int, request_id: str) -> Any:
    signing.cancel_signature(esign_ctx(), me(), request_id)
    flash(_("The signature request was cancelled."), "info")
    return redirect(url_for("documents.show", document_id=document_id))


@bp.post("/<int:document_id>/requests/<request_id>/collect")
@login_required
def collect_request(document_id: int, request_id: str) -> Any:
    ctx = esign_ctx()
    signing.get_request(ctx, me(), request_id)  # only the requester may ask
    confirmation = meeting.batch_of_request(ctx, me(), request_id)
    if confirmation is not None:  # a mobile certificate: its live page asks and shows the answer
        meeting.batch_status(ctx, me(), confirmation)
        return redirect(url_for("meeting.confirm", batch_id=confirmation))
    outcome = signing.collect_signature(ctx, request_id)
    if outcome.status == "completed":
        flash(_("The signature is complete."), "success")
    else:
        flash(_("Still waiting for your signing device."), "info")
    return redirect(url_for("documents.show", document_id=document_id))
