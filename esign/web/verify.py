"""Verification for people: the auditor's upload page, the PDF reports, and the QR page's check.

Uploaded files are untrusted: they are verified in a worker with limits
(:func:`esign.services.verification.verify_upload`) and rendered, where a
comparison is useful, in another child process. The file itself is never kept
or served back; what stays, for the PDF report, is the report (JSON) under
``[storage] previews/checked/<user>-<sha256>.json`` for a day.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, render_template, request, url_for
from flask_login import login_required

from esign.errors import NotFound
from esign.services import overview, verification
from esign.verify import Change, Finding, Report, SignatureReport, Verdict
from esign.web import revisions, verdicts
from esign.web.forms import VerifyForm
from esign.web.helpers import PRODUCT, esign_ctx, lang, me, web_settings
from esign.web.report_pdf import Subject, build_report_pdf

bp = Blueprint("verify", __name__)

#: how long the report of an upload stays available for its PDF
KEEP_S = 24 * 3600


# --- reports kept for the PDF --------------------------------------------------------------


def _checked_dir() -> Path:
    return web_settings().storage.previews / "checked"


def _checked_file(user_id: int, sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise NotFound("This page does not exist")
    return _checked_dir() / f"{user_id}-{sha256}.json"


def _keep(user_id: int, report: Report, file_name: str, at: datetime) -> None:
    folder = _checked_dir()
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.glob("*.json"):
        try:
            if now - old.stat().st_mtime > KEEP_S:
                old.unlink()
        except OSError:
            pass
    payload = {"file_name": file_name, "at": at.isoformat(), "report": report.to_dict()}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(payload, out, ensure_ascii=False)
    os.replace(tmp, _checked_file(user_id, report.file_sha256))


def _finding(d: dict[str, Any]) -> Finding:
    return Finding(d["code"], Verdict[d["severity"]], d["message_en"], d["message_vi"], d.get("field"),
                   d.get("detail") or "")


def report_from_dict(d: dict[str, Any]) -> Report:
    """The inverse of ``Report.to_dict`` (for reports kept as JSON)."""
    signatures = []
    for s in d.get("signatures", []):
        values = dict(s)
        values["verdict"] = Verdict[values["verdict"]]
        values["changes_after"] = tuple(Change(**{**c, "changed_fields": tuple(c["changed_fields"]),
                                                  "added_annotations": tuple(c["added_annotations"])})
                                        for c in values.get("changes_after", []))
        for name in ("trust_path", "byte_range"):
            values[name] = tuple(values.get(name) or ())
        signatures.append(SignatureReport(**values))
    return Report(
        verdict=Verdict[d["verdict"]],
        reasons=tuple(_finding(f) for f in d.get("reasons", [])),
        info=tuple(_finding(f) for f in d.get("info", [])),
        signatures=tuple(signatures),
        revisions=d.get("revisions", 0),
        file_sha256=d.get("file_sha256", ""),
        size=d.get("size", 0),
        duration_ms=d.get("duration_ms", 0.0),
        validation_time=d.get("validation_time"),
    )


def _kept(user_id: int, sha256: str) -> tuple[Report, str, datetime]:
    path = _checked_file(user_id, sha256)
    try:
        if time.time() - path.stat().st_mtime > KEEP_S:
            raise FileNotFoundError(path)
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise NotFound("This verification is no longer available; check the file again") from None
    return report_from_dict(payload["report"]), payload["file_name"], datetime.fromisoformat(payload["at"])


# --- pages ----------------------------------------------------------------------------------


def file_name_of(storage: Any) -> str:
    name = os.path.basename((getattr(storage, "filename", "") or "").replace("\\", "/"))
    return name[:200] or "upload.pdf"


def _pdf_response(data: bytes, name: str) -> Response:
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/verify", methods=["GET", "POST"])
@login_required
def upload() -> Any:
    form = VerifyForm()
    limit = web_settings().app.max_upload_mb
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("verify/upload.html", form=form, limit=limit), status
    data = form.file.data.read()
    name = file_name_of(form.file.data)
    report = verification.verify_upload(esign_ctx(), data)
    at = datetime.now(UTC)
    _keep(me().id, report, name, at)
    comparison = revisions.compare(data, report) if report.verdict != Verdict.MALFORMED else None
    del data
    return render_template("verify/upload.html", form=VerifyForm(formdata=None), limit=limit, view=verdicts.view(report),
                           file_name=name, checked_at=at, comparison=comparison,
                           report_url=url_for("verify.upload_report", sha256=report.file_sha256))


@bp.get("/verify/report.pdf")
@login_required
def upload_report() -> Any:
    sha256 = request.args.get("sha256", "")
    report, name, at = _kept(me().id, sha256)
    data = build_report_pdf(report, Subject(file_name=name), checked_at=at, timezone=web_settings().app.timezone,
                            lang=lang(), product=PRODUCT)
    return _pdf_response(data, f"esign-verification-{sha256[:12]}.pdf")


@bp.get("/documents/<int:document_id>/verification.pdf")
@login_required
def document_report(document_id: int) -> Any:
    ctx = esign_ctx()
    ov = overview.document_overview(ctx, me(), document_id)  # access check: invisible means missing
    report = verification.verify_document(ctx, document_id)
    subject = Subject(file_name=f"esign-{ov.id}-r{ov.head_index}.pdf", number=ov.number or "",
                      issuer=ov.unit_name, title=ov.title)
    data = build_report_pdf(report, subject, checked_at=datetime.now(UTC), timezone=web_settings().app.timezone,
                            lang=lang(), product=PRODUCT)
    return _pdf_response(data, f"esign-{ov.id}-verification.pdf")
