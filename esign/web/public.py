"""The public page behind a document's QR code: who signed what and when, never the content."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from esign.services import overview
from esign.web.helpers import esign_ctx

bp = Blueprint("public", __name__)


@bp.get("/v/<public_code>")
def verify(public_code: str) -> Any:
    record = overview.public_record(esign_ctx(), public_code)
    response = render_template("public/verify.html", record=record)
    return response, 200, {"X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}
