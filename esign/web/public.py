"""The public page behind a document's QR code: who signed what and when, the verdict of the
stored file, and a check of a copy someone holds; never the content."""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, render_template

from esign.errors import EsignError
from esign.services import overview, verification
from esign.web import verdicts
from esign.web.forms import CheckCopyForm
from esign.web.helpers import esign_ctx, translate_error, web_settings

bp = Blueprint("public", __name__)

HEADERS = {"X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}


def _page(public_code: str, *, form: CheckCopyForm | None = None, copy: dict[str, Any] | None = None,
          error: str | None = None, status: int = 200) -> Any:
    ctx = esign_ctx()
    record = overview.public_record(ctx, public_code)
    # many people scan one QR code: one verification per head revision
    stored = verification.verify_document_cached(ctx, record.document_id)
    page = render_template("public/verify.html", record=record, stored=verdicts.view(stored),
                           form=form or CheckCopyForm(formdata=None), copy=copy, error=error,
                           limit=web_settings().app.max_upload_mb)
    return page, status, HEADERS


@bp.get("/v/<public_code>")
def verify(public_code: str) -> Any:
    return _page(public_code)


@bp.post("/v/<public_code>")
def check_copy(public_code: str) -> Any:
    """A copy checked against the document: the verdict and reasons, never its content or pages."""
    form = CheckCopyForm()
    if not form.validate_on_submit():
        return _page(public_code, form=form, status=400)
    record = overview.public_record(esign_ctx(), public_code)
    try:
        report = verification.verify_document(esign_ctx(), record.document_id, data=form.file.data.read())
    except EsignError as e:
        return _page(public_code, form=form, error=translate_error(e), status=e.status)
    copy = verdicts.view(report)
    copy["same_as_current"] = report.file_sha256 == record.head_sha256
    copy["file_name"] = os.path.basename((form.file.data.filename or "").replace("\\", "/"))[:200]
    return _page(public_code, copy=copy)
